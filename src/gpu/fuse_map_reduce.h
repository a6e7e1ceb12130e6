#pragma once
#include "ir/ir.h"

namespace parpy {
// Inside parallel code, fuses an inner parallel loop that writes one array element per
// iteration with the reduction over the same range that follows it and reads that element:
//
//   for j (par): a[f(j)] = e              for j (par, reduce):
//   s = ne                          =>      t = e; a[f(j)] = t; s = s op g(t)
//   for j (reduce): s = s op g(a[f(j)])
//
// Each element is then read back from a register instead of memory, and the nest has one
// barrier less (GPU backends only: the iteration of j that writes a[f(j)] is the one reading it).
Block fuse_map_reduce(const Block& b);
}  // namespace parpy
