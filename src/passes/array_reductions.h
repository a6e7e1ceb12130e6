#pragma once
#include "ir/ir.h"

namespace parpy {
// Array reductions across a reduce() loop (docs/language.md, Reductions): a reduce() loop over i
// whose body is an update of a whole slice, `y[:] += x[i, :]` (after lower_slices a loop nest
// over the slice's elements around `y[d] = y[d] + x[i, d]`), becomes the loop nest over the
// elements, parallel where the reduce() loop was, around a sequential loop over i: each element
// is reduced on its own. The update's operator is one of +, *, max, min, its value does not read
// the reduced array, and its element does not depend on i. Any other reduce() loop is left to
// check_reductions.
Block lift_array_reductions(const Block& b);
}  // namespace parpy
