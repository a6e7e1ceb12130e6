// The backends parpy knows, in the order Auto tries them. A new backend adds its line here.
#include "backend/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/metal/metal_backend.h"

namespace parpy {

const std::vector<const Backend*>& backends() {
  static const std::vector<const Backend*> all = {&cuda_backend(), &metal_backend(), &cpu_backend()};
  return all;
}

}  // namespace parpy
