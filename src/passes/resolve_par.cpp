#include "passes/resolve_par.h"

#include "passes/lower_slices.h"

namespace parpy {

static LoopPar merge_labels(const Stmt& s, const CompileOptions& opts) {
  LoopPar p;
  for (const auto& l : s->labels) {
    LoopPar q;
    if (l == kReduceLabel) {
      q.reduction = true;
    } else {
      auto it = opts.parallelize.find(l);
      if (it == opts.parallelize.end()) continue;
      q = it->second;
    }
    if (p.nthreads != 0 && q.nthreads != 0 && p.nthreads != q.nthreads) {
      std::string names;
      for (const auto& n : s->labels)
        if (n != kReduceLabel) names += (names.empty() ? "" : ", ") + n;
      fail("The labels associated with this statement specify conflicting number of threads in "
           "parallelization.\nLabels of this statement: " + names,
           s->span);
    }
    if (q.nthreads != 0) p.nthreads = q.nthreads;
    if (p.tpb != 1024 && q.tpb != 1024 && p.tpb != q.tpb)
      fail("Found inconsistent threads per block " + std::to_string(p.tpb) + " and " +
               std::to_string(q.tpb) + " among labels within parallel statements.",
           s->span);
    if (q.tpb != 1024) p.tpb = q.tpb;
    p.reduction = p.reduction || q.reduction;
  }
  return p;
}

Block resolve_par(const Block& b, const CompileOptions& opts) {
  return map_block(b, [&](const Stmt& s) -> Block {
    if (s->kind != StmtKind::For) return {s};
    auto n = copy(s);
    n->par = merge_labels(s, opts);
    return {n};
  });
}

}  // namespace parpy
