#pragma once
#include "gpu/gpu_ir.h"
#include "ir/options.h"

namespace parpy {
// Splits the parallel loop IR into host code and kernels (SPEC C.2, avoiding C.8's faults):
// each outermost parallel loop or gpu block becomes one kernel; its innermost parallel layer
// maps to threads (and blocks when it exceeds tpb), outer layers to blocks through one linear
// block index; loops become grid-stride loops over their workers, with the step honoured;
// reductions become block all-reductions, or a last-block-done multi-block reduction; block-wide
// duplicate stores are narrowed to one thread, followed by a barrier where other threads read.
GpuProgram extract_kernels(const std::string& name, const std::vector<AbiParam>& params,
                           const Block& body, const CompileOptions& opts);
}  // namespace parpy
