// Filling the GPU (docs/gpu.md, Optimisations): a parallel loop with too few iterations to fill
// the GPU, whose body accumulates over a long sequential loop,
//
//   for j in range(M) (parallel):            for j in range(M) (parallel): y[j] = 0
//     y[j] = 0                                for r in range(R) (parallel):
//     for i in range(N):              ->        for j in range(M) (parallel):
//       y[j] += x[i, j]                            acc = 0
//                                                  for i in rows r * C .. (r + 1) * C of N: acc += x[i, j]
//                                                  y[j] += acc   (atomic)
//
// runs the rows in R chunks on R times as many threads, each adding its chunk's partial result
// into the element with an atomic update (+, max or min; the order of the additions changes, as
// in any parallel sum). The statements before and after the row loop run in loops of their own,
// before and after. Only where the body is that plain: stores to array elements around one
// update `y[k] = y[k] op e` whose element does not depend on the row and whose value does not
// read y.
#pragma once
#include "gpu/gpu_ir.h"

namespace parpy {

Block split_row_loops(const Block& b, const GpuTarget& target);

}  // namespace parpy
