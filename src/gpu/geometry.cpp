#include "gpu/geometry.h"

#include <algorithm>
#include <climits>
#include <string>

namespace parpy {

Geometry geometry(const std::vector<int64_t>& layers, int64_t tpb, const GpuTarget& target, const Span& span) {
  Geometry g;
  g.layers = layers;
  g.k = layers.size() - 1;
  int64_t inner = layers[g.k];
  // Thread counts may be anything up to INT64_MAX: nothing here may overflow before the grid
  // size is checked (in floating point), and the products after it fit.
  g.threads = inner >= tpb ? tpb : std::min(round_up(inner, 32), tpb);
  g.inner_blocks = inner / g.threads + (inner % g.threads != 0);
  double grid = static_cast<double>(g.inner_blocks);
  for (size_t i = 0; i < g.k; ++i) grid *= static_cast<double>(layers[i]);
  if (grid > static_cast<double>(INT32_MAX))
    fail("The parallel loops request " + std::to_string(static_cast<long double>(grid)) +
             " thread blocks, more than a GPU grid can hold.",
         span);
  for (size_t i = 0; i < g.k; ++i) g.outer *= layers[i];
  // Clusters hold at most 8 blocks portably and 16 with the non-portable attribute on sm_90; wider
  // inner layers use the multi-block forms.
  g.cluster = g.inner_blocks > 1 && g.inner_blocks <= target.max_cluster_blocks;
  return g;
}

Geometry pack_rows(Geometry g, int64_t tpb) {
  if (g.k == 0 || g.inner_blocks != 1 || g.layers[g.k] > 32 || g.outer < 2) return g;
  int64_t group = 1;
  while (group < g.layers[g.k]) group *= 2;
  int64_t rows = (tpb == 1024 ? kPackedBlock : tpb) / group, fit = 1;
  while (fit < g.outer && fit < rows) fit *= 2;
  rows = std::max(std::min(rows, fit), 32 / group);
  if (rows < 2) return g;
  g.group = group;
  g.rows = rows;
  g.threads = rows * group;
  return g;
}

Geometry pack_warps(Geometry g, int64_t tpb) {
  if (g.k == 0 || g.inner_blocks != 1 || g.packed() || tpb >= 1024 || g.layers[g.k] <= 32 || g.outer < 2) return g;
  int64_t rows = std::min(tpb / g.threads, g.outer);
  if (rows < 2) return g;
  g.group = g.threads;
  g.rows = rows;
  g.threads = rows * g.group;
  return g;
}

}  // namespace parpy
