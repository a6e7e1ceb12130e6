#pragma once
#include <map>
#include <set>
#include <string>

#include "gpu/gpu_ir.h"
#include "ir/ir.h"

namespace parpy {

// The innermost grid-stride loops of a kernel, rewritten so that each thread handles groups of
// consecutive elements (16 bytes of the widest element type) whose loads come first: the CUDA
// compiler then merges them into 128-bit loads and stores. Valid only when every array listed in
// `alignment` starts at an address that is a multiple of its entry (the host checks and launches
// the scalar kernel otherwise).
struct Vectorized {
  Block body;                                // empty when no loop was vectorized
  std::map<std::string, int64_t> alignment;  // array -> required alignment of its pointer, bytes
};

// `worker` is the innermost layer's worker index and `workers` its number of workers: the loops
// considered are `for (j = L + worker; j < H; j += workers)` with constant L and H. Loops that
// access an array through one of the `aliased` names (which may share memory) are left as they are.
// `sizes` gives the elements of the arrays whose size is known (the kernel's parameters): a group of
// reads of an array whose size is a multiple of the lanes may be loaded whole.
Vectorized vectorize_inner_loops(const Block& body, const std::string& worker, int64_t workers,
                                 const std::set<std::string>& aliased = {},
                                 const std::map<std::string, int64_t>& sizes = {});

// The lanes of the groups of columns that a loop over `col` whose body is `body` will run in (16
// bytes of its widest element type): every array access that depends on `col` reads or writes the
// next element for the next column, at a base that is a multiple of the lanes; 1 otherwise. For
// the passes that choose a loop's threads before kernels are made (gpu/strip_rows.h).
int64_t column_group_lanes(const Block& body, const std::string& col);

// Gives every kernel of prog its vectorised variant (Kernel::vector_body and alignment), where it has
// loops to vectorise.
void vectorize_kernels(GpuProgram& prog);

}  // namespace parpy
