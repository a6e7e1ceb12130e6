// Indices checked when the generated code runs (docs/language.md, Index bounds): the sites that
// check_bounds records, which the printers number and the bindings turn into an IndexError.
#pragma once
#include <cstdint>
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

// Whether the code calls $bounds_check.
bool has_bounds_checks(const Block& b);

}  // namespace parpy
