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

// The columns a tile holds.
constexpr int64_t kColumnTile = 256;

Block tile_column_loops(const Block& b);

}  // namespace parpy
