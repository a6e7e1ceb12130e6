#include "ir/intrinsics.h"

#include <string>

#include "ir/error.h"
#include "ir/reductions.h"

namespace parpy {
namespace {

struct Entry {
  Intrinsic intrinsic;
  const char* name;  // in the IR, after '$'
  bool per_reduction;  // the name ends in _<combine_name(op)>
};

constexpr Entry kIntrinsics[] = {
    {Intrinsic::SliceIndex, "slice_index", false},
    {Intrinsic::BoundsCheck, "bounds_check", false},
    {Intrinsic::Trips, "trips", false},
    {Intrinsic::Iter, "iter", false},
    {Intrinsic::SyncThreads, "syncthreads", false},
    {Intrinsic::ClusterSync, "cluster_sync", false},
    {Intrinsic::BlockReduce, "block_reduce", true},
    {Intrinsic::ClusterReduce, "cluster_reduce", true},
    {Intrinsic::MultiblockReduce, "multiblock_reduce", true},
    {Intrinsic::GroupSync, "group_sync", false},
    {Intrinsic::GroupReduce, "group_reduce", true},
    {Intrinsic::ChunkLoad, "chunk_load", false},
    {Intrinsic::StreamReduce, "stream_reduce", true},
};

const Entry* entry(Intrinsic i) {
  for (const auto& e : kIntrinsics)
    if (e.intrinsic == i) return &e;
  return nullptr;
}

}  // namespace

Expr intrinsic(Intrinsic i, std::vector<Expr> args, Span span, Type ty, std::optional<ReduceOp> op) {
  const Entry* e = entry(i);
  if (!e || e->per_reduction != op.has_value()) internal_fail("malformed intrinsic call", span);
  std::string name = std::string("$") + e->name;
  if (op) name += std::string("_") + combine_name(*op);
  auto c = copy(call(std::move(name), std::move(args), span));
  c->ty = ty;
  return c;
}

Intrinsic intrinsic_of(const Expr& x) {
  if (!x || x->kind != ExprKind::Call || x->name.empty() || x->name[0] != '$') return Intrinsic::None;
  const std::string& n = x->name;
  for (const auto& e : kIntrinsics) {
    std::string base = std::string("$") + e.name;
    if (!e.per_reduction && n == base) return e.intrinsic;
    if (e.per_reduction && n.size() > base.size() + 1 && n.compare(0, base.size() + 1, base + "_") == 0)
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min})
        if (n.compare(base.size() + 1, std::string::npos, combine_name(op)) == 0) return e.intrinsic;
  }
  return Intrinsic::None;
}

std::optional<ReduceOp> intrinsic_reduce_op(const Expr& x) {
  Intrinsic i = intrinsic_of(x);
  const Entry* e = entry(i);
  if (!e || !e->per_reduction) return std::nullopt;
  std::string suffix = x->name.substr(std::string(e->name).size() + 2);  // after "$<name>_"
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min})
    if (suffix == combine_name(op)) return op;
  return std::nullopt;
}

bool calls_intrinsic(const Stmt& s, Intrinsic i) {
  return s && s->kind == StmtKind::Call && intrinsic_of(s->rhs) == i;
}

bool block_calls_intrinsic(const Block& b, Intrinsic i) {
  bool found = false;
  visit_block(b, [&](const Stmt& s) {
    visit_stmt_exprs(s, [&](const Expr& e) { found = found || intrinsic_of(e) == i; });
  });
  return found;
}

}  // namespace parpy
