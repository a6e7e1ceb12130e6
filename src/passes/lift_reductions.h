#pragma once
#include "ir/ir.h"

namespace parpy {
// Reductions inside expressions (`mean = sum(x[i, :]) / M`, `out[i, :] = x[i, :] / max(x[i, :])`,
// `if sum(x[:]) > 0:`) are lifted into statements of their own, each assigning a fresh local that
// takes its place, right before the statement that used it (docs/language.md, Reductions);
// lower_slices then lowers them like `s = sum(...)`. An assignment and the reductions lifted from
// it form a gpu block, as `s = sum(...)` does after lower_slices. A statement with no slices of its own outside
// reductions gives its labels to the reductions lifted from it (`parpy.label('M')` before
// `mean = sum(x[i, :]) / M` parallelises the sum); a slice statement keeps its labels for its own
// loops. Reductions in while conditions stay where they are (lower_slices rejects them).
Block lift_reductions(const Block& b);
}  // namespace parpy
