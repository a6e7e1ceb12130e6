// Compiler intrinsics: calls the passes insert and the printers spell for their backend. Each has
// one entry in the table of intrinsics.cpp, with its name in the IR ('$' and the name; the C
// printer spells it parpy_<name>); a reduction intrinsic's name ends in its operator
// ("$block_reduce_add"). Code makes and recognises them here, never by spelling a name.
#pragma once
#include <optional>
#include <vector>

#include "ir/ir.h"

namespace parpy {

enum class Intrinsic : uint8_t {
  None,
  // `$slice_index(j, lo, hi)` (lo, hi may be null): index j into the slice lo:hi of the dimension
  // it indexes, made when a slice passed to an inlined helper is indexed there; check_bounds checks
  // j against the slice's length and replaces the call by lo + j (docs/language.md, Index bounds).
  SliceIndex,
  // `$bounds_check(i, n, site)`: i when 0 <= i < n; otherwise the call records site (1-based), i
  // and n as its failure and gives 0, so that no memory outside the array is touched.
  BoundsCheck,
  // `$trips(lo, hi, step)` and `$iter(lo, t, step)`: range(lo, hi, step)'s number of iterations
  // and its t-th value, without overflow near the ends of int64 (GPU grid-stride loops).
  Trips,
  Iter,
  // GPU barriers: the threads of a block, the blocks of a thread-block cluster.
  SyncThreads,
  ClusterSync,
  // `$group_sync(width)`: a barrier of the calling thread's group of `width` consecutive lanes of
  // its warp (a power of two, at most 32) that orders their memory accesses; valid where other
  // groups of the warp take other paths (rows packed into blocks, gpu/geometry.h).
  GroupSync,
  // GPU all-reductions of a value over a block `(v)`, a cluster `(v, neutral)`, and over the
  // blocks of a group without a grid barrier `(v, neutral, partials, counters, slot, block, blocks)`,
  // which is true in the last block to arrive (docs/gpu.md, Reductions).
  BlockReduce,
  ClusterReduce,
  MultiblockReduce,
  // All-reduction over the calling thread's group of lanes `(v, width)`, as for GroupSync.
  GroupReduce,
  // A statement `$chunk_load(x[i], a, b, c, d)`: the 16 bytes at x[i] (i a multiple of the lanes,
  // x aligned to 16 bytes, the bytes inside the array) into the locals a, b, ... (x[i], x[i + 1],
  // ...), one 128-bit load through the read-only data path: the 128-bit groups of kernels whose
  // arrays share no memory and are not written where they are read (gpu/vectorize.h).
  ChunkLoad,
  // `$stream_reduce_<op>(a[j], rows, k, value, T, RB, CAP, P)`: rows in streams (gpu/stream_rows.h).
  // Every thread of a block of T threads calls it; the block reduces `value` (an expression of the
  // variable k, which the call binds) over k in a[j + r] .. a[j + r + 1] for each of its `rows`
  // (at most RB) rows r, and thread t gets row t / (T / RB)'s result (the neutral element past the
  // last row). CAP values at a time, P loads a thread.
  StreamReduce,
};

// A call of intrinsic i with the given arguments and type; `op` names a reduction intrinsic's
// operator.
Expr intrinsic(Intrinsic i, std::vector<Expr> args, Span span, Type ty = {},
               std::optional<ReduceOp> op = std::nullopt);

// Which intrinsic e calls (None when e is not a call of one).
Intrinsic intrinsic_of(const Expr& e);

// The operator of a reduction intrinsic's call e (nullopt for other expressions).
std::optional<ReduceOp> intrinsic_reduce_op(const Expr& e);

// Whether statement s is a call of intrinsic i.
bool calls_intrinsic(const Stmt& s, Intrinsic i);

// Whether code b calls intrinsic i anywhere.
bool block_calls_intrinsic(const Block& b, Intrinsic i);

}  // namespace parpy
