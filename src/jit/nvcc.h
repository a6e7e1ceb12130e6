#pragma once

#include <optional>
#include <string>
#include <vector>

#include "jit/host_compiler.h"

// nvcc as the CUDA toolchain of the v1 JIT path: the whole generated .cu (host code + kernels)
// is built into one shared library (README, "Backends"). Found at run time, never needed to
// build parpy.
namespace parpy::cuda {

struct NvccInfo {
  bool found = false;
  std::string path;        // absolute path of the nvcc executable
  std::string version;     // e.g. "Cuda compilation tools, release 13.0, V13.0.88"
  std::string why_missing; // set when !found
};

// $PARPY_NVCC if set, else nvcc on PATH, else $CUDA_HOME/bin/nvcc, else /usr/local/cuda/bin/nvcc.
// Detected once per process; never throws.
const NvccInfo& nvcc();

// Builds `code` into cache_dir()/<key>-cuda.so with
//   nvcc <extra_flags> -I<includes> -L<libs> -O3 -std=c++17 --shared -Xcompiler -fPIC
//        -arch=<arch> -x cu <src> -o <out>
// (cudart linked statically, nvcc's default). `arch` is e.g. "sm_90" (see arch_flag()). The key
// covers nvcc's path and version, arch, every flag and the parpy version. Throws
// jit::BuildError when nvcc is missing or the compilation fails ("Compilation of generated CUDA
// code failed with exit code N: ...").
jit::BuildResult build_cuda_library(const std::string& code, const jit::BuildFlags& flags,
                                    const std::string& arch);

// The fast build of a program printed in two parts (CudaProgram::device_code/host_code), about
// half of nvcc's time for the whole program. Side by side:
//   nvcc <flags> -O3 -cubin -arch=<arch> device.cu        (kernels only: none of nvcc's host passes)
//   c++ <flags> -I<toolkit include> -O1 -c host.cpp
// then `c++ -shared cubin.s host.o -lcudart_static`, where cubin.s defines parpy_cubin (.incbin).
// Each step is cached on disk by its own key. Returns nothing, building nothing, when this machine
// lacks what it needs (a host C++ compiler; the runtime's header and static library where nvcc's
// dry run names them); throws jit::BuildError as build_cuda_library does.
// How Cuda programs are built here, for diagnostics: "two parts: ..." with the tools, or "nvcc
// builds the whole program: <why the two-part build is unavailable>". `whole_requested`: the user
// asked for the one-source build (PARPY_CUDA_BUILD=nvcc).
std::string describe_cuda_build(bool whole_requested);

std::optional<jit::BuildResult> build_two_part_cuda_library(const std::string& device_code,
                                                         const std::string& host_code,
                                                         const jit::BuildFlags& flags,
                                                         const std::string& arch);

// Compiles `code` without linking or keeping any output (for checking generated code on machines
// without a GPU). Returns false with nvcc's output (or the reason nvcc is missing) in *log.
bool nvcc_compiles(const std::string& code, const std::string& arch,
                   const std::vector<std::string>& include_dirs, std::string* log);

} // namespace parpy::cuda
