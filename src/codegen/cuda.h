#pragma once
#include <string>

#include "gpu/gpu_ir.h"

namespace parpy {

struct CudaProgram {
  std::string code;
  std::string entry_symbol;  // extern "C" int32_t <entry>(void** args, void* stream)
  std::string error_symbol;  // extern "C" const char* <error>(): message of the last failure
};

// Prints a GPU program as CUDA C++: one __global__ function per kernel and an extern "C" entry
// that runs the host code, launching kernels on the caller's stream (SPEC C.6, A7).
CudaProgram print_cuda(const GpuProgram& p);

}  // namespace parpy
