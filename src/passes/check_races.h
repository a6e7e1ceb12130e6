#pragma once
#include <map>
#include <string>

#include "ir/ir.h"

namespace parpy {
// Races between the iterations of a loop that runs in parallel without reduce()
// (docs/language.md, Parallel semantics), after resolve_par and flatten_indices:
// - a store whose index does not depend on the loop variable (directly or through locals of the
//   loop body) and that no condition depending on it guards is an error;
// - a store to a[f(i)] and an access to a[g(i)] that another iteration makes (f, g affine, the
//   element provably the same) is an error: a dependence carried across the parallel loop;
// - an update `a[k] += v`, `a[k] -= v`, `a[k] = max(a[k], v)` or `min` whose index may be the same
//   in two iterations becomes atomic (StmtNode::atomic).
// `arrays` gives the type of every array parameter: its shape splits a flat index into dimensions.
Block check_races(const Block& b, const std::map<std::string, Type>& arrays);
}  // namespace parpy
