// The split of a nest at grid-wide barriers into kernels (docs/gpu.md, Synchronisation and kernel splits).
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

// Statements of a kernel body that run once per block need a grid-wide barrier to see the
// work of other blocks; one kernel has none. Each iteration of a loop of an outer layer runs on
// several blocks (those of the layers inside it), and with several blocks per inner layer (no
// cluster) so does each iteration of the innermost parallel loops' parent: a body there with
// more than one parallel step, or statements after one, is split into kernels.
bool KernelBuilder::needs_grid_barrier(const Stmt& root) {
  if (g_.k == 0) return false;
  return !single_inner_step(root->body, 1);
}

// Whether the body of a loop at depth d needs no barrier across blocks. Locals that every thread
// computes first read only what earlier kernels wrote. Above the innermost layer what remains is
// nothing, one loop of the next layer, or a branch whose arms are such bodies; at the innermost
// layer's parent, when it spans several blocks, one inner loop, or `dst = neutral` then a
// reduction into dst (the last block to finish sees the initialisation).
bool KernelBuilder::single_inner_step(const Block& body, size_t d) {
  if (d == g_.k && (g_.inner_blocks == 1 || g_.cluster)) return true;
  Block top;
  for (const auto& st : body) {
    if (st->kind == StmtKind::WithGpu)
      top.insert(top.end(), st->body.begin(), st->body.end());
    else
      top.push_back(st);
  }
  size_t first = 0;
  while (first < top.size() && top[first]->kind == StmtKind::Assign && top[first]->lhs->kind == ExprKind::Var &&
         top[first]->defines)
    ++first;
  top.erase(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(first));
  if (d < g_.k) {
    if (top.empty()) return true;
    if (top.size() != 1) return false;
    if (top[0]->kind == StmtKind::If)
      return single_inner_step(top[0]->body, d) && single_inner_step(top[0]->orelse, d);
    return top[0]->kind == StmtKind::For && top[0]->par.is_parallel() && single_inner_step(top[0]->body, d + 1);
  }
  auto inner_work = [](const Stmt& st) {
    return st->kind == StmtKind::For && (st->par.is_parallel() || st->par.reduction);
  };
  if (top.size() == 1 && inner_work(top[0])) return true;
  return top.size() == 2 && top[0]->kind == StmtKind::Assign && top[0]->lhs->kind == ExprKind::Access &&
         inner_work(top[1]) && top[1]->par.reduction &&
         print_expr(top[1]->body.back()->lhs) == print_expr(top[0]->lhs);
}

// Launch order is the barrier between blocks (docs/gpu.md, Synchronisation and kernel
// splits): the body of a two-layer nest is cut after each inner parallel loop, every piece
// becomes a kernel over the same outer loop, and the locals the pieces share live in device
// memory, one element per outer iteration (sized by the outer loop's trip count).
Block KernelBuilder::split(const Stmt& root_in) {
  // Locals that a piece of an earlier split loads from device memory (read_shared_once) are
  // loaded again by every piece of this one: only earlier kernels write that memory.
  Block prefix;
  std::set<std::string> scratch_names;
  for (const auto& sc : prog_.scratch) scratch_names.insert(sc.name);
  auto is_scratch_load = [&](const Stmt& st) {
    return st->kind == StmtKind::Assign && st->defines && st->lhs->kind == ExprKind::Var &&
           st->rhs->kind == ExprKind::Access && scratch_names.count(st->rhs->name);
  };
  size_t first = 0;
  while (first < root_in->body.size() && is_scratch_load(root_in->body[first])) prefix.push_back(root_in->body[first++]);
  auto trimmed = copy(root_in);
  trimmed->body.assign(root_in->body.begin() + static_cast<std::ptrdiff_t>(first), root_in->body.end());
  Stmt root = trimmed;
  if (root->lo->kind != ExprKind::Int || root->hi->kind != ExprKind::Int || root->step <= 0)
    fail("Splitting this parallel loop into kernels needs constant bounds and a positive step.", root->span);
  int64_t lo = root->lo->ival, extent = 0;
  // One device array element per iteration below: their number must fit in 64 bits.
  if (__builtin_sub_overflow(root->hi->ival, lo, &extent))
    fail("The bounds of this parallel loop are too far apart: its number of iterations does not "
         "fit in 64 bits. Use a smaller range.",
         root->span);
  int64_t trips = range_trips(lo, root->hi->ival, root->step);
  // Locals defined outside the inner loops become device arrays indexed by the iteration.
  std::map<std::string, std::string> shared;
  std::function<void(const Block&)> find = [&](const Block& b) {
    for (const auto& s : b) {
      if (s->kind == StmtKind::For && s->par.is_parallel()) continue;
      if (s->kind == StmtKind::Assign && s->defines && s->lhs->kind == ExprKind::Var &&
          s->lhs->ty.is_scalar() && !shared.count(s->lhs->name)) {
        std::string n = fresh("shared_" + s->lhs->name);
        shared[s->lhs->name] = n;
        prog_.scratch.push_back({n, s->lhs->ty.elem, std::max<int64_t>(trips, 1), false});
      }
      if (s->kind != StmtKind::For) {
        find(s->body);
        find(s->orelse);
      }
    }
  };
  find(root->body);
  Expr iter = ivar(root->var);
  if (lo != 0) iter = iop(BinOp::Sub, iter, ilit(lo));
  if (root->step != 1) iter = iop(BinOp::FloorDiv, iter, ilit(root->step));
  auto to_memory = [&](const Expr& e) {
    return map_expr(e, [&](const Expr& x) -> Expr {
      if (x->kind != ExprKind::Var || !shared.count(x->name)) return x;
      return access(shared[x->name], iter, x->ty.elem, x->span);
    });
  };
  Block body = map_block_exprs(root->body, to_memory);
  body = map_block(body, [](const Stmt& st) -> Block {
    if (st->kind != StmtKind::Assign || st->lhs->kind != ExprKind::Access) return {st};
    auto n = copy(st);
    n->defines = false;
    return {n};
  });
  // Declared reductions without threads use the nest's inner layer, as they do in one kernel.
  int64_t inner_threads = g_.layers[g_.k], tpb = tpb_;
  std::function<Block(const Block&)> widen = [&](const Block& b) {
    Block out;
    for (const auto& st : b) {
      auto n = copy(st);
      if (n->kind == StmtKind::For && n->par.reduction && !n->par.is_parallel()) {
        n->par.nthreads = inner_threads;
        n->par.tpb = tpb;
      }
      if (!(st->kind == StmtKind::For && st->par.is_parallel())) {
        n->body = widen(st->body);
        n->orelse = widen(st->orelse);
      }
      out.push_back(n);
    }
    return out;
  };
  body = widen(body);
  // Cut after every statement that touches memory or loops: other blocks see its effects only
  // from the next kernel on.
  // In a gpu block (one iteration), a sequential loop holding parallel loops moves to the host
  // and launches the kernels of its body in every iteration.
  bool gpu_root = root->var == "$gpu";
  auto host_loop = [&](const Stmt& st) {
    return gpu_root && st->kind == StmtKind::For && !st->par.is_parallel() && contains_parallel({st});
  };
  std::vector<Block> pieces(1);
  for (const auto& st : body) {
    if (host_loop(st) && !pieces.back().empty()) pieces.emplace_back();
    pieces.back().push_back(st);
    if (contains_array_access(st) || contains_loop({st})) pieces.emplace_back();
  }
  if (pieces.back().empty()) pieces.pop_back();
  if (pieces.size() == 1 && !host_loop(pieces[0][0])) {
    if (g_.k == 1)
      parallelism_fail("This parallel loop nest needs a barrier across thread blocks inside a statement, which "
           "the GPU backends do not support. Use at most " + std::to_string(tpb_) +
               " threads for the inner loops.",
           root->span);
    parallelism_fail("This parallel loop nest needs a barrier across thread blocks inside a parallel loop that is "
         "nested in another parallel loop, which the GPU backends do not support: they split only the "
         "body of the outermost parallel loop into kernels. Make the middle parallel loops sequential, "
         "or use at most " + std::to_string(tpb_) + " threads for the innermost loops.",
         root->span);
  }
  // A local naming arrays that an earlier piece assigned at its top level (`a = x`) is
  // assigned again, in the same order, by every later piece: a pointer copy has no effects.
  Block launches, replayed;
  for (auto& piece : pieces) {
    auto r = copy(root);
    r->body = prefix;
    r->body.insert(r->body.end(), replayed.begin(), replayed.end());
    if (host_loop(piece[0])) {
      const Stmt& loop = piece[0];
      for (const Expr* e : {&loop->lo, &loop->hi})
        visit_expr(*e, [&](const Expr& x) {
          if (x->kind == ExprKind::Access)
            fail("This sequential loop holds parallel loops that need a barrier across thread blocks, so "
                 "it runs on the host, but its bounds are computed on the GPU. Compute the bounds outside "
                 "the 'with parpy.gpu:' block.",
                 loop->span);
        });
      for (const auto& st : read_shared_once(loop->body, shared, iter)) r->body.push_back(st);
      auto h = copy(loop);
      h->body = make_kernels(with_gpu(r->body, loop->span));
      launches.push_back(h);
      continue;
    }
    for (const auto& st : read_shared_once(piece, shared, iter)) r->body.push_back(st);
    for (const auto& l : make_kernels(r)) launches.push_back(l);
    for (const auto& st : piece)
      if (st->kind == StmtKind::Assign && st->lhs->kind == ExprKind::Var && !st->lhs->ty.is_scalar() &&
          st->rhs->kind == ExprKind::Var)
        replayed.push_back(st);
  }
  return launches;
}

// A piece that only reads a shared local loads it once into a local of the original name,
// instead of reading device memory in every iteration of its loops.
Block KernelBuilder::read_shared_once(const Block& piece, const std::map<std::string, std::string>& shared, const Expr& iter) {
  std::set<std::string> written;
  std::map<std::string, ElemSize> read;  // array -> element type
  visit_block(piece, [&](const Stmt& st) {
    if (st->kind == StmtKind::Assign && st->lhs->kind == ExprKind::Access) written.insert(st->lhs->name);
    visit_stmt_exprs(st, [&](const Expr& x) {
      if (x->kind == ExprKind::Access) read[x->name] = x->ty.elem;
    });
  });
  Block out;
  std::map<std::string, std::string> local;  // scratch name -> original local
  for (const auto& [orig, mem] : shared) {
    if (!read.count(mem) || written.count(mem)) continue;
    local[mem] = orig;
  }
  if (local.empty()) return piece;
  Block body = map_block_exprs(piece, [&](const Expr& e) {
    return map_expr(e, [&](const Expr& x) -> Expr {
      if (x->kind != ExprKind::Access || !local.count(x->name)) return x;
      return var(local[x->name], x->span, Type::scalar(x->ty.elem));
    });
  });
  for (const auto& [mem, orig] : local) {
    ElemSize elem = read[mem];
    auto def = copy(assign(var(orig, {}, Type::scalar(elem)), access(mem, iter, elem, {}), {}));
    def->defines = true;
    out.push_back(def);
  }
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace parpy::gpu
