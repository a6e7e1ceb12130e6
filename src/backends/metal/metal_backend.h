// The Metal backend: the GPU layer's program printed as Metal Shading Language kernels inside C++
// host code using metal-cpp (codegen/metal), built on macOS by clang++ (jit/metal_build). The
// code is generated on every platform (print_compiled); it runs only on macOS.
#pragma once
#include "backend/backend.h"

namespace parpy {
const Backend& metal_backend();
}
