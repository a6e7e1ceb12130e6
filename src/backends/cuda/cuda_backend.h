// The Cuda backend: the GPU layer's program printed as CUDA C++ (codegen/cuda), built by nvcc
// (jit/nvcc), called through the driver API (runtime/cuda_driver).
#pragma once
#include "backend/backend.h"

namespace parpy {
const Backend& cuda_backend();

// PARPY_CUDA_BUILD=nvcc: build every program as one source with nvcc (not in two parts).
bool whole_cuda_build_requested();
}  // namespace parpy
