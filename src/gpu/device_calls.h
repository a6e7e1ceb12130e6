// Jit helpers and externals on a GPU backend: they are device functions
// (docs/language.md, Functions).
#pragma once
#include <map>
#include <string>

#include "gpu/extract_kernels.h"
#include "gpu/gpu_ir.h"
#include "ir/ir.h"
#include "ir/calls.h"

namespace parpy {

// Host code cannot call a helper or an external, since both only exist on the device; a helper
// that writes through a pointer cannot run where every thread of a block runs the statement; an
// external declared with `parallelize=threads(n)` cannot be called from a helper.
void check_device_calls(const Block& main_body, const Helpers& helpers);

// The externals declared with `parallelize=threads(n)` among those called, by C name.
std::map<std::string, ParallelExternal> parallel_externals(const Helpers& helpers);

// Gives the program its device functions and the headers of its externals, adds the arrays that
// calls may write through pointer parameters to the ones copied back (docs/gpu.md, Data, streams
// and devices), and keeps kernels that pass pointers to calls scalar (no 128-bit variant).
void attach_device_functions(GpuProgram& prog, const Block& main_body, const Helpers& helpers);

}  // namespace parpy
