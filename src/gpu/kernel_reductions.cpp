// Reductions in kernels: block, cluster and multi-block reductions (docs/gpu.md, Reductions).
#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <set>

#include "gpu/kernel_builder.h"
#include "ir/intrinsics.h"
#include "ir/reductions.h"
#include "passes/array_locals.h"
#include "passes/constant_fold.h"

namespace parpy::gpu {

namespace {
// The accumulator type of a reduction: shuffles need at least 32-bit values.
ElemSize acc_type(ElemSize t) {
  switch (t) {
    case ElemSize::F16: return ElemSize::F32;
    case ElemSize::I8: case ElemSize::I16: return ElemSize::I32;
    case ElemSize::U8: case ElemSize::U16: return ElemSize::U32;
    default: return t;
  }
}

ReduceOp reduction_of(BinOp op) { return reduce_op_of(op).value_or(ReduceOp::Min); }
}  // namespace

// A reduction loop: its last statement is `dst = dst op value`; statements before it (from
// fuse_map_reduce) run in the same iterations.
Block KernelBuilder::reduction(const Stmt& s, size_t d) {
  const Stmt& st = s->body.back();
  const Expr& dst = st->lhs;
  ElemSize t = dst->ty.elem, at = acc_type(t);
  BinOp op = s->red_op;
  Type aty = Type::scalar(at);
  std::string acc = fresh("acc");
  Expr accv = var(acc, {}, aty);
  Expr ne = neutral_literal(reduction_of(op), at, {});
  Expr value = st->rhs->args[1];
  if (value->ty.elem != at) value = convert(value, aty);
  Block out;
  auto init = copy(assign(accv, ne, s->span));
  init->defines = true;
  out.push_back(init);
  Block body(s->body.begin(), s->body.end() - 1);
  body.push_back(assign(accv, binop(op, accv, value, s->span, aty), s->span));
  out.push_back(guarded(grid_stride(s, d, body), d, workers_of(s, d)));
  Expr total = at == t ? accv : convert(accv, dst->ty);
  Stmt update = assign(dst, binop(op, dst, total, s->span, dst->ty), s->span);
  bool host_var = dst->kind == ExprKind::Var && (d == 0 || params_.count(dst->name));
  if (host_var)
    fail("A parallel reduction into the host variable " + dst->name +
             " is not supported on the GPU; reduce into an array element instead.",
         st->span);
  ReduceOp rop = reduction_of(op);
  if (g_.inner_blocks == 1 || g_.cluster) {
    Expr total_all = g_.cluster    ? intrinsic(Intrinsic::ClusterReduce, {accv, ne}, s->span, {}, rop)
                     : g_.packed() ? intrinsic(Intrinsic::GroupReduce, {accv, ilit(g_.group)}, s->span, {}, rop)
                                   : intrinsic(Intrinsic::BlockReduce, {accv}, s->span, {}, rop);
    out.push_back(assign(accv, total_all, s->span));
    if (dst->kind == ExprKind::Access)
      out.push_back(if_stmt(leader(), {update}, {}, s->span));
    else
      out.push_back(update);
    return out;
  }
  if (dst->kind != ExprKind::Access)
    fail("A reduction over more than one thread block must write to an array element on the GPU.", st->span);
  // One slot of partials and a ticket counter per iteration of the enclosing parallel loops: a
  // block that runs several iterations (more iterations than workers) may reach the next one
  // before the last block of this one has read the partials, so slots are never reused within a
  // launch (the last block resets its counter for the next launch).
  int64_t slots = 1;
  Expr slot = ilit(0);
  for (const Stmt& l : enclosing_) {
    if (l->lo->kind != ExprKind::Int || l->hi->kind != ExprKind::Int)
      fail("A reduction over more than one thread block needs the bounds of the parallel loops around "
           "it to be known when the function is specialised. Compute the bounds from the arguments, or "
           "use at most " + std::to_string(tpb_) + " threads for the reduction.",
           l->span);
    int64_t trips = std::max<int64_t>(range_trips(l->lo->ival, l->hi->ival, l->step), 1);
    if (__builtin_mul_overflow(slots, trips, &slots) || slots > (int64_t{1} << 28) / g_.inner_blocks)
      fail("A reduction over more than one thread block inside these parallel loops needs one slot per "
           "iteration of the loops, too many for device memory. Use at most " + std::to_string(tpb_) +
               " threads for the reduction.",
           s->span);
    Expr iter = ivar(l->var);
    if (l->lo->ival != 0) iter = iop(BinOp::Sub, iter, ilit(l->lo->ival));
    if (l->step != 1) iter = iop(BinOp::FloorDiv, iter, ilit(l->step));
    slot = is_zero(slot) ? iter : iop(BinOp::Add, iop(BinOp::Mul, slot, ilit(trips)), iter);
  }
  std::string partials = fresh("partials"), counters = fresh("counters");
  prog_.scratch.push_back({partials, at, slots * g_.inner_blocks, false});
  prog_.scratch.push_back({counters, ElemSize::U32, slots, true});
  Expr block_in_group = iop(BinOp::Mod, ivar(kBlockIdx), ilit(g_.inner_blocks));
  Expr lastn = intrinsic(Intrinsic::MultiblockReduce,
                         {accv, ne, var(partials, {}, Type::pointer(at)),
                          var(counters, {}, Type::pointer(ElemSize::U32)), slot, block_in_group, ilit(g_.inner_blocks)},
                         s->span, kBool, rop);
  Stmt write = if_stmt(iop(BinOp::Eq, ivar(kThreadIdx), ilit(0)), {update}, {}, s->span);
  out.push_back(if_stmt(lastn, {write}, {}, s->span));
  return out;
}

}  // namespace parpy::gpu
