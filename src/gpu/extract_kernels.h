#pragma once
#include <map>
#include <string>

#include "gpu/gpu_ir.h"
#include "ir/options.h"

namespace parpy {

// An external declared with `parallelize=threads(n)`: a call to it is an innermost parallel layer
// of n threads that all call the device function (README, "Backends").
struct ParallelExternal {
  std::string name;  // Python name, for messages
  LoopPar par;
};
// Splits the parallel loop IR into host code and kernels (docs/gpu.md, Host code and kernels; Grid
// and blocks):
// each outermost parallel loop or gpu block becomes one kernel; its innermost parallel layer
// maps to threads (and blocks when it exceeds tpb), outer layers to blocks through one linear
// block index; loops become grid-stride loops over their workers, with the step honoured;
// reductions become block all-reductions, or a last-block-done multi-block reduction; block-wide
// duplicate stores are narrowed to one thread, followed by a barrier where other threads read.
// Sibling parallel loops may differ in the thread count of the innermost layer: the kernel runs
// the widest, and threads beyond a loop's own count skip its body (but not barriers or block
// reductions). `parallel_externals` maps the C names of parallel externals to their declaration.
GpuProgram extract_kernels(const std::string& name, const std::vector<AbiParam>& params,
                           const Block& body, const GpuTarget& target,
                           const std::map<std::string, ParallelExternal>& parallel_externals = {});
}  // namespace parpy
