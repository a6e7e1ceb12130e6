#include "ir/bounds.h"

#include "ir/intrinsics.h"
#include "ir/types.h"

namespace parpy {

std::string bounds_message(const BoundsSite& site, const std::string& values) {
  std::string n = std::to_string(site.extent);
  std::string where = site.slice_of.empty()
                          ? "dimension " + std::to_string(site.dim) + " of " + site.array + " has extent " + n +
                                " (shape " + shape_str(site.shape) + ")"
                          : "the slice " + site.array + " passed for it has " + n + " elements (" + site.slice_of +
                                " has shape " + shape_str(site.shape) + ")";
  std::string valid = site.extent > 0 ? "so it must lie in 0 to " + std::to_string(site.extent - 1) : "so no index is valid";
  return "Index out of bounds: " + site.index + " " + values + ", but " + where + ", " + valid + ".";
}

bool has_bounds_checks(const Block& b) {
  return block_calls_intrinsic(b, Intrinsic::BoundsCheck);
}

}  // namespace parpy
