#pragma once
#include <string>

#include "gpu/gpu_ir.h"

namespace parpy {

struct CudaProgram {
  std::string code;  // one CUDA C++ source (host code and kernels), for nvcc
  // The same program in two sources: the kernels alone (extern "C", for `nvcc -cubin`), and the
  // host code for a plain C++ compiler, which loads the kernels from the symbol `parpy_cubin` (the
  // builder links the cubin in under that name) and launches them with cudaLaunchKernel.
  std::string device_code, host_code;
  std::string entry_symbol;  // extern "C" int32_t <entry>(void** args, void* stream)
  std::string error_symbol;  // extern "C" const char* <error>(): message of the last failure
};

// Prints a GPU program as CUDA C++: one __global__ function per kernel and an extern "C" entry
// that runs the host code, launching kernels on the caller's stream (SPEC C.6, A7); and the same
// split into a device and a host source.
CudaProgram print_cuda(const GpuProgram& p);

}  // namespace parpy
