// The Metal printer: a GPU program (gpu/gpu_ir.h) as one C++ source for clang++ with metal-cpp,
// holding the Metal Shading Language kernels as one string that is compiled when the program
// first runs (docs/gpu.md, Metal).
#pragma once
#include <string>

#include "gpu/gpu_ir.h"
#include "ir/options.h"

namespace parpy {

struct MetalProgram {
  std::string code;  // the C++ source: host code, with the MSL embedded as `parpy_msl`
  std::string msl;   // the MSL alone: the support code (codegen/metal_prelude.h), helpers, kernels
  // extern "C" int32_t <entry>(void** args): runs the program (arrays are host pointers: the
  // program copies them into shared Metal buffers and the written ones back).
  std::string entry_symbol;
  std::string error_symbol;   // extern "C" const char* <error>(): message of the last failure
  std::string bounds_symbol;  // with run-time index checks: see Lowered::bounds_symbol
};

// Python numbers meeting a float32 (or float16) value compute in that type (docs/language.md,
// Types); where the type checker kept a number expression (abs(-0.75), -(1.5)) in double and
// converted it, the expression is retyped here, so that no double reaches Metal.
GpuProgram narrow_weak_doubles(const GpuProgram& p);

// Rejects what Metal cannot run, as user errors at the code's location: double precision in
// device code, 64-bit atomic updates, headers of device externals (the MSL is compiled where only
// the Metal standard library is found).
void check_metal_program(const GpuProgram& p);

// Prints p (checked by check_metal_program): one `kernel void` per kernel, named after the
// function like the Cuda backend's, with the kernel's parameters in order as `device T*` buffers
// and `constant T&` scalars, then the threadgroup and thread positions; host code that runs the
// kernels in order on one command buffer and reads and writes arrays directly.
MetalProgram print_metal(const GpuProgram& p, const CompileOptions& opts);

}  // namespace parpy
