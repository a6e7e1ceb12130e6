#pragma once
#include <map>
#include <string>

#include "ir/ir.h"

namespace parpy {
// Turns slice statements into loops (docs/language.md, Indexing and slicing: numpy's right-aligned
// broadcasting, negative bounds) and slice reductions into a neutral-element init plus a
// `_reduce` loop (same doc, Reductions).
// `shapes` gives the shape of every array variable.
Block lower_slices(const Block& b, const std::map<std::string, std::vector<int64_t>>& shapes);

// The label every reduction loop made from a slice reduction carries.
inline const char* kReduceLabel = "_reduce";
}  // namespace parpy
