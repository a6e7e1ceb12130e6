// Rows in runs with their bounds read ahead (docs/gpu.md, Optimisations): a parallel loop over
// rows whose body runs a parallel loop (a row's lanes) over a range read from an array at the row,
//
//   for i in range(lo, hi) (parallel):          for r in range(runs) (parallel):
//     s = 0                                        b0 = a[lo + r*C]; b1 = a[lo + r*C + 1]
//     for k in range(a[i], a[i + 1]) (lanes): ->   for i in run r: lo + r*C .. min(lo + r*C + C, hi):
//       s += d[k] * x[c[k]]                          if i + 1 < the run's end: n = a[i + 2]
//     y[i] = s                                       s = 0
//                                                    for k in range(b0, b1) (lanes): s += ...
//                                                    y[i] = s
//                                                    b0 = b1; b1 = n
//
// walks each group of lanes down C consecutive rows (runs of kRunRows), the next row's bounds
// loaded while the current row runs: a row then waits for its values and what they gather, not
// for its bounds first (a CSR product's rows are a chain of three dependent loads: the bounds,
// the column indices, the gathered values). The rows it reads of each array stay in registers
// from one row to the next, as in strips (gpu/strip_rows.h). The iterations of the rows loop are
// independent (it is parallel), so running them in runs is the program's order for each run;
// loading a bound one row early is the program's load, moved before a row that does not write
// its array. The rows loop gets one worker per run, at most the threads the user gave it.
//
// Only where the bounds are that plain: a statement of the rows loop's body is a parallel loop
// over at most 32 lanes whose bounds read one array at rows i + d (indices affine in the row,
// offsets at most kRunRows apart), an array that nothing in the rows loop writes; the body calls
// no function and defines no array alias; and the runs still fill half the GPU
// (GpuTarget::fill_threads). Not where arrays share memory (fill_threads is 0 then).
#pragma once
#include "gpu/gpu_ir.h"

namespace parpy {

// Rows per run.
constexpr int64_t kRunRows = 4;

Block run_row_loops(const Block& b, const GpuTarget& target);

}  // namespace parpy
