// Column tiling, the Cpu backend's own lowering step (docs/architecture.md, Backends): a parallel
// loop whose body is a sequential loop walking down columns,
//
//   for j in range(M) (parallel):           for jb in range(0, M, T) (parallel):
//     y[j] = 0                                 for j in range(jb, min(jb + T, M)): y[j] = 0
//     for i in range(N):               ->      for i in range(N):
//       y[j] += x[i, j]                          for j in range(jb, min(jb + T, M)): y[j] += x[i, j]
//
// runs the rows of a tile of T columns in order, so memory is read a row segment at a time and
// the innermost loop is over contiguous elements (vectorised) instead of a column at a time.
// The iterations of a parallel loop are independent (docs/language.md, Parallel semantics), so
// any order of them is theirs. Applied only where it helps: an access in the column loop walks
// contiguous memory along the parallel loop's variable and strided memory along its own, and
// none is contiguous along the column loop's variable.
#pragma once
#include "ir/ir.h"

namespace parpy {

// The columns a tile holds: the loop's columns shared among the threads that run it, a multiple
// of 16, between 16 and 2048 (wide tiles read longer stretches of each row; narrow ones give
// every thread work); 256 where the number of columns is known only when the code runs.
int64_t column_tile(const Stmt& par);

Block tile_column_loops(const Block& b);

}  // namespace parpy
