// Rows in streams (docs/gpu.md, Optimisations): on Cuda, a parallel loop over rows whose body
// reduces over the range a[i] .. a[i + 1] (a CSR product: consecutive rows' values are one range),
//
//   for i in range(lo, hi) (parallel):            for b in range(blocks) (parallel):
//     s = 0                                          for t in range(T) (parallel, blocks of T):
//     for k in range(a[i], a[i + 1]) (lanes):  ->      part = $stream_reduce_add(a[lo + b*RB], rows, k, d[k] * x[c[k]], ...)
//       s = s + d[k] * x[c[k]]                         if t % (T / RB) == 0 and t / (T / RB) < rows:
//     y[i] = s                                           i = lo + b*RB + t / (T / RB)
//                                                        s = 0
//                                                        s = s + part
//                                                        y[i] = s
//
// runs RB consecutive rows on a block of T threads: the block computes the values of its rows'
// whole range together, each thread several with their loads in flight at once and none idle at a
// row's end, into shared memory, and each row's T / RB lanes reduce its part there
// (parpy_stream_reduce in parpy_cuda.h). The rows are parallel, so they may run in any order; each
// row's reduction is its loop's, in another order of its values, as a parallel reduction is.
//
// Only where the body is that plain: one statement of the rows loop's body is a reduction loop of
// 4 to 32 lanes (a row gets 4) over range(a[i + d], a[i + d + 1]) whose body is `acc = acc op value`, value an
// expression of the loop's variable and of no local of the rows loop, reading no array the rows loop
// writes (nor a); the statements before it assign locals, those after it hold no parallel loop; the
// rows loop calls no function; and the blocks fill half the GPU (GpuTarget::fill_threads), not
// where arrays share memory. The rows label's threads are an upper bound: one block per RB rows,
// at most one per thread it asked for.
#pragma once
#include "gpu/gpu_ir.h"

namespace parpy {

// Threads per block (where the rows label sets no tpb) and rows per block: four lanes per row.
constexpr int64_t kStreamBlock = 256;
constexpr int64_t kStreamLanes = 4;
// Values of the block's range in shared memory at a time, per row of the block; loads per thread.
constexpr int64_t kStreamValuesPerRow = 32;
constexpr int64_t kStreamLoads = 8;

Block stream_row_loops(const Block& b, const GpuTarget& target);

}  // namespace parpy
