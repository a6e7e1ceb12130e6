// Rows in strips (docs/gpu.md, Optimisations): a parallel loop over rows around a parallel loop
// over columns whose body reads an array at neighbouring rows,
//
//   for i in range(lo, hi) (parallel):           for s in range(S) (parallel):
//     for j in ... (parallel):            ->        for j in ... (parallel):
//       y[i, j] = x[i - 1, j] + x[i + 1, j]           for i in strip s: lo + s*C .. min(lo + s*C + C, hi):
//                                                       y[i, j] = x[i - 1, j] + x[i + 1, j]
//
// walks each thread down C consecutive rows of its columns (strips of kStripRows), keeping the
// rows it reads of each array in registers (one new row loaded per row), instead of one row per
// thread with its neighbours in other blocks. The iterations of both loops are independent (they are
// parallel), so any order of them is the program's. The rows loop gets one worker per strip, at
// most the threads the user gave it; the threads it has beyond one per strip take chunks of the
// columns where each columns thread would walk several. Blocks of kStripBlock threads where the
// user set no tpb. Only where the body is that plain: the columns loop is the rows loop's only
// statement (or a nest of parallel loops is, each the only statement of the one around it: a 3-D
// stencil with all three loops parallel), over ranges that do not depend on the row, and the
// innermost holds only stores to array elements, one of which reads an array at two rows 1 to C
// apart (indices affine in the row, with the same coefficient); and where the strips still run on
// half the threads that fill the GPU (GpuTarget::fill_threads) or more. A sequential loop just
// outside the innermost parallel loop (a 3-D stencil's loop over a plane's rows) joins the nest as
// a parallel loop where its iterations are independent (each row and column writes elements of
// its own, and reads no element another writes). Not where arrays share memory (fill_threads is 0
// then).
#pragma once
#include "gpu/gpu_ir.h"

namespace parpy {

// Rows per strip.
constexpr int64_t kStripRows = 8;
// Threads per block of the strips where the user gave no block size.
constexpr int64_t kStripBlock = 256;

Block strip_row_loops(const Block& b, const GpuTarget& target);

// Whether a kernel body runs rows in strips. Its arrays share no memory then (strips apply only
// where they do not), so the Cuda code marks its pointers `__restrict__` (docs/gpu.md).
bool runs_strips(const Block& body);

}  // namespace parpy
