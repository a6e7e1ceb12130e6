#pragma once
#include <set>
#include <string>

#include "gpu/gpu_ir.h"
#include "ir/ir.h"

namespace parpy {

// Keeps a thread's elements of an array in registers across the innermost loops of a kernel.
//
// An array is private to its threads when every access to it in the kernel is in an innermost
// grid-stride loop `for (j = L + c*w; j < H; j += c*workers)` with the same L, c and H, at an index
// `base + j + u` (0 <= u < c) with the same base: each element is then touched by one thread
// only. Those loops run the same small constant number of times in every thread, so they are
// unrolled; the thread loads each element once, later reads of it take the register that holds
// its last value, and a store that the thread overwrites later without anyone else reading it in
// between is dropped. A softmax row then costs one read and one write of memory, not three reads
// and two writes.
//
// `worker` is the innermost layer's worker index and `workers` its number of workers. Arrays
// accessed through one of the `aliased` names (which may share memory) are never private.
Block cache_rows(const Block& body, const std::string& worker, int64_t workers,
                 const std::set<std::string>& aliased = {});

// cache_rows over the body and the vectorised variant of every kernel of prog.
void cache_kernel_rows(GpuProgram& prog);

}  // namespace parpy
