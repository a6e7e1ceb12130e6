// Index ranges (docs/language.md, Index bounds): proves indices in range where it can, rejects
// those that are out of range for an iteration that runs, and guards the rest at run time when
// asked to.
#pragma once
#include <string>
#include <vector>

#include "ir/ir.h"

namespace parpy {

// An index checked when the code runs: what its IndexError says.
struct BoundsSite {
  Span span;            // the subscript
  std::string array;    // the array's source text ("x", "d[\"k\"]"), or the slice's ("a[:8]")
  std::string index;    // the index's source text
  int64_t dim = 0;      // the dimension indexed
  int64_t extent = 0;   // its extent (the slice's length for a slice)
  std::vector<int64_t> shape;
  std::string slice_of;  // for an index into a slice passed to a helper, the array sliced
};

// "Index out of bounds: <index> <values>, but dimension 0 of x has extent 10 (shape [10]), so it
// must lie in 0 to 9." (`values` is "is 12" or "takes the values 1 to 10").
std::string bounds_message(const BoundsSite& site, const std::string& values);

// Typed code with per-dimension subscripts. Raises an IndexError (docs/language.md, Index bounds)
// for an index that is out of range for an iteration that is reached; with `runtime`, wraps every
// index it cannot prove in range in $bounds_check, appending its site to `sites`.
Block check_bounds(const Block& b, bool runtime, std::vector<BoundsSite>& sites);

// Whether the code calls $bounds_check.
bool has_bounds_checks(const Block& b);

}  // namespace parpy
