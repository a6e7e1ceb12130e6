#pragma once
#include <string>

#include <vector>

#include "gpu/gpu_ir.h"
#include "ir/abi.h"

namespace parpy {

struct CudaProgram {
  std::string code;  // one CUDA C++ source (host code and kernels), for nvcc
  // The same program in two sources: the kernels alone (extern "C", for `nvcc -cubin`), and the
  // host code for a plain C++ compiler, which loads the kernels from the symbol `parpy_cubin` (the
  // builder links the cubin in under that name) and launches them with cudaLaunchKernel.
  std::string device_code, host_code;
  // extern "C" int32_t <entry>(void** args, void* stream, int32_t device): runs the program on
  // `device` (the thread's current device is switched for the call) and `stream`.
  std::string entry_symbol;
  std::string error_symbol;  // extern "C" const char* <error>(): message of the last failure
  std::string bounds_symbol;  // with run-time index checks: see Lowered::bounds_symbol
};

// Prints a GPU program as CUDA C++: one __global__ function per kernel and an extern "C" entry
// that runs the host code, launching kernels on the caller's stream (docs/gpu.md, Data, streams
// and devices); and the same split into a device and a host source.
CudaProgram print_cuda(const GpuProgram& p);

// The symbol of a kernel in the device code (extern "C" there): "parpy_kernel_<name>".
std::string cuda_kernel_symbol(const std::string& kernel);

// For hand-written CUDA given to compile_string: the entry and error functions of a generated
// program, calling the user's extern "C" int32_t <fname>(params...) (optionally followed by a
// cudaStream_t, which receives the call's stream). Appended to the user's source.
std::string print_cuda_user_entry(const std::string& fname, const std::vector<AbiParam>& params);

}  // namespace parpy
