// Registration functions of the parts of the parpy.parpy module.
#pragma once
#include <nanobind/nanobind.h>

namespace parpy {
// CompileBackend, ElemSize, Target, ExtType, DataType, ScalarSizes, LoopPar, CompileOptions, par.
void bind_options(nanobind::module_& m);
// python_to_ir, compile entry points, caches, JitFunction.
void bind_compiler(nanobind::module_& m);
// _cuda_sync, _cuda_device and the device memory functions of parpy.buffer.
void bind_cuda_runtime(nanobind::module_& m);
// declare_external and the ExternalDecl handle (parpy.external).
void bind_externals(nanobind::module_& m);
// The disk cache's errors, warnings and interrupts as Python's.
void bind_cache(nanobind::module_& m);
// NVRTC: where it was found, and compiling device code with it (for diagnostics and tests).
void bind_nvrtc(nanobind::module_& m);
}  // namespace parpy
