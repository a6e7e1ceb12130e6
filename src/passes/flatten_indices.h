#pragma once
#include "ir/ir.h"

namespace parpy {
// Turns full multi-dimensional subscripts into accesses with one flat row-major index.
Block flatten_indices(const Block& b);
}  // namespace parpy
