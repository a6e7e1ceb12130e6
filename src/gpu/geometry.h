// The launch geometry of a kernel (docs/gpu.md, Grid and blocks): how the workers of a nest's
// parallel layers map to threads, blocks and clusters. A value, computed from the layers alone.
#pragma once
#include <cstdint>
#include <vector>

#include "gpu/gpu_ir.h"
#include "ir/error.h"

namespace parpy {

struct Geometry {
  std::vector<int64_t> layers;  // workers of each parallel layer, outer to inner
  size_t k = 0;                 // the innermost layer's index
  int64_t threads = 32;         // threads per block: the innermost layer, rounded up to warps, at most tpb
  int64_t inner_blocks = 1;     // blocks that one iteration of the outer layers spans
  int64_t outer = 1;            // iterations of the outer layers, one row of inner_blocks each
  // The inner_blocks of a row form a thread-block cluster: they synchronise and reduce together
  // through distributed shared memory (docs/gpu.md, Synchronisation and kernel splits).
  bool cluster = false;
  // Rows packed into blocks (docs/gpu.md, Grid and blocks): each iteration of the outer layers (a
  // row) runs on `group` consecutive threads of the block, `rows` rows per block of `threads`: lanes
  // of one warp (a power of two, at most 32; pack_rows) or whole warps (pack_warps); 0: every row
  // has its own inner_blocks blocks.
  int64_t group = 0;
  int64_t rows = 1;

  bool packed() const { return group > 0; }
  // Rows of whole warps (pack_warps): they have no barriers or reductions of their own.
  bool packed_warps() const { return group > 32; }
  int64_t grid_blocks() const { return packed() ? (outer + rows - 1) / rows : inner_blocks * outer; }
  int64_t cluster_blocks() const { return cluster ? inner_blocks : 1; }
  // The threads that run one row.
  int64_t row_threads() const { return packed() ? group : threads * inner_blocks; }
};

// The geometry of layers `layers` (not empty) with at most `tpb` threads per block, on `target`.
// Fails at `span` when the grid would exceed what a GPU holds.
Geometry geometry(const std::vector<int64_t>& layers, int64_t tpb, const GpuTarget& target, const Span& span);

// Threads per block of packed rows where the user gave no `tpb` (H200, CSR SpMV of 2^20 rows with
// 4, 8 or 16 lanes per row: 0.120 / 0.109 / 0.138 ms in blocks of 128, against 0.122 / 0.119 /
// 0.143 in blocks of 256 and 0.131 / 0.127 / 0.166 in blocks of 512; benchmarks/spec_sweep.py).
constexpr int64_t kPackedBlock = 128;

// g with its rows packed into blocks of `tpb` threads (kPackedBlock when the user gave none: 1024),
// where that helps: at least two rows, and an innermost layer of at most 32 workers, which a group of
// lanes of one warp runs. Fewer rows than a block holds get the smallest block of whole warps that
// holds them.
Geometry pack_rows(Geometry g, int64_t tpb);

// g with rows of whole warps packed into blocks of `tpb` threads, where the user (or a pass) asked
// for blocks of `tpb` (not 1024) and a row's innermost layer fills at most half of one: more than
// 32 threads, rounded up to warps, and at least two rows. Only for kernels whose rows need no
// barrier or reduction (the caller checks): a row's threads cannot synchronise on their own.
Geometry pack_warps(Geometry g, int64_t tpb);

// n rounded up to a multiple of m.
inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

}  // namespace parpy
