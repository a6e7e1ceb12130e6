// Index ranges (docs/language.md, Index bounds): proves indices in range where it can, rejects
// those that are out of range for an iteration that runs, and guards the rest at run time when
// asked to.
#pragma once
#include <string>
#include <vector>

#include "ir/bounds.h"
#include "ir/ir.h"

namespace parpy {

// Typed code with per-dimension subscripts. Raises an IndexError (docs/language.md, Index bounds)
// for an index that is out of range for an iteration that is reached; with `runtime`, wraps every
// index it cannot prove in range in $bounds_check, appending its site to `sites`.
Block check_bounds(const Block& b, bool runtime, std::vector<BoundsSite>& sites);

}  // namespace parpy
