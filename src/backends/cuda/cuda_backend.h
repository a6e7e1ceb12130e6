// The Cuda backend: the GPU layer's program printed as CUDA C++ (codegen/cuda), built by nvcc
// (jit/nvcc), called through the driver API (runtime/cuda_driver).
#pragma once
#include <string>

#include "backend/backend.h"
#include "ir/options.h"

namespace parpy {
const Backend& cuda_backend();

// How a Cuda program of these options is built: kernels by NVRTC with the host code run by parpy
// (the default where NVRTC is found, and PARPY_CUDA_BUILD=nvrtc: also for externals' headers),
// or by nvcc in two parts (PARPY_CUDA_BUILD=two-part, or no NVRTC), or by nvcc as one source
// (PARPY_CUDA_BUILD=nvcc, or user flags or libraries).
enum class CudaBuild { Nvrtc, TwoPart, Whole };
CudaBuild cuda_build_mode(const CompileOptions& opts);

// The value of PARPY_CUDA_BUILD ("" when unset).
std::string requested_cuda_build();

// PARPY_CUDA_BUILD=nvcc: build every program as one source with nvcc (not in two parts).
bool whole_cuda_build_requested();

// For diagnostics: how Cuda programs are built here, with the tools.
std::string describe_cuda_build();
}  // namespace parpy
