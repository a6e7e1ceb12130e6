// extract_kernels: host code and kernels, the locals kernels share, and kernel parameters. The
// builder's other jobs are in kernel_structure.cpp, kernel_split.cpp, kernel_body.cpp and
// kernel_reductions.cpp (see gpu/kernel_builder.h).
#include "gpu/extract_kernels.h"

#include <algorithm>
#include <map>
#include <set>

#include "gpu/geometry.h"
#include "gpu/index_expr.h"
#include "gpu/kernel_builder.h"
#include "ir/intrinsics.h"
#include "passes/array_locals.h"
#include "passes/constant_fold.h"

namespace parpy {
namespace gpu {

Block KernelBuilder::host(const Block& b) {
  Block out;
  for (const auto& s : b) {
    if (s->kind == StmtKind::WithGpu || (s->kind == StmtKind::For && s->par.is_parallel())) {
      for (const auto& launch : make_kernels(keep_device_locals(s))) out.push_back(launch);
      continue;
    }
    check_host_use(s);
    auto n = with_blocks(s, [&](const Block& x) { return host(x); });
    out.push_back(n);
  }
  return out;
}

Stmt KernelBuilder::keep_device_locals(const Stmt& root) {
  auto r = copy(root);
  // Loads of device locals this kernel reads, at the start of its body.
  std::set<std::string> read;
  visit_block({root}, [&](const Stmt& st) {
    visit_stmt_exprs(st, [&](const Expr& x) {
      if (x->kind == ExprKind::Var && device_locals_.count(x->name)) read.insert(x->name);
    });
  });
  Block body;
  for (const auto& name : read) {
    const Scratch& sc = scratch_of(device_locals_[name]);
    auto load = copy(assign(var(name, root->span, Type::scalar(sc.elem)), access(sc.name, ilit(0), sc.elem, root->span),
                            root->span));
    load->defines = true;
    body.push_back(load);
  }
  body.insert(body.end(), root->body.begin(), root->body.end());
  // A gpu block's own locals: stored for later kernels (one thread runs its top level).
  if (root->kind == StmtKind::WithGpu) {
    for (const auto& st : root->body) {
      if (st->kind != StmtKind::Assign || !st->defines || st->lhs->kind != ExprKind::Var || !st->lhs->ty.is_scalar())
        continue;
      const std::string& name = st->lhs->name;
      if (!device_locals_.count(name)) {
        std::string mem = fresh("device_" + name);
        prog_.scratch.push_back({mem, st->lhs->ty.elem, 1, false});
        device_locals_[name] = mem;
      }
      body.push_back(assign(access(device_locals_[name], ilit(0), st->lhs->ty.elem, st->span), st->lhs, st->span));
    }
  }
  r->body = body;
  return r;
}

const Scratch& KernelBuilder::scratch_of(const std::string& name) const {
  for (const auto& sc : prog_.scratch)
    if (sc.name == name) return sc;
  fail("Internal error: no device array " + name, {});
}

// Host code cannot read a local whose value lives on the GPU; a host assignment makes it a
// host local again.
void KernelBuilder::check_host_use(const Stmt& s) {
  for (const Expr* e : {&s->rhs, &s->cond, &s->lo, &s->hi})
    visit_expr(*e, [&](const Expr& x) {
      if (x->kind == ExprKind::Var && device_locals_.count(x->name))
        fail("The value of " + x->name + " is computed on the GPU, so host code cannot use it. Use it "
             "inside parallel code or a 'with parpy.gpu:' block.",
             x->span);
    });
  for (const Expr* e : {&s->rhs, &s->cond, &s->lo, &s->hi})
    visit_expr(*e, [&](const Expr& x) { check_device_array(x, x->span); });
  if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var) {
    device_locals_.erase(s->lhs->name);
    device_arrays_.erase(s->lhs->name);
  }
}

void KernelBuilder::check_device_array(const Expr& x, const Span& use) {
  if (!x || (x->kind != ExprKind::Var && x->kind != ExprKind::Access)) return;
  auto it = device_arrays_.find(x->name);
  if (it == device_arrays_.end()) return;
  fail("The array that " + x->name + " names is chosen in GPU code (on line " +
           std::to_string(it->second.line) +
           "), so code outside that parallel loop or 'with parpy.gpu:' block cannot use it. Assign " +
           x->name + " in host code (outside parallel code), or use it only in the code that assigns it.",
       use.known() ? use : it->second);
}

// A kernel may use a local naming arrays only if host code or the kernel itself assigned it;
// the arrays it assigns become unusable outside it.
void KernelBuilder::track_device_arrays(const Block& body, const Span& sp) {
  std::set<std::string> defined;
  visit_block(body, [&](const Stmt& s) {
    if (s->kind == StmtKind::Assign && s->defines && s->lhs->kind == ExprKind::Var)
      defined.insert(s->lhs->name);
  });
  visit_block(body, [&](const Stmt& s) {
    visit_stmt_exprs(s, [&](const Expr& x) {
      if (!defined.count(x->name)) check_device_array(x, x->span.known() ? x->span : sp);
    });
  });
  visit_block(body, [&](const Stmt& s) {
    if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var && !s->lhs->ty.is_scalar())
      device_arrays_[s->lhs->name] = s->span;
  });
}

// ---- Kernels ----
Block KernelBuilder::make_kernels(const Stmt& root_in) {
  Stmt root = root_in;
  if (root->kind == StmtKind::WithGpu) {
    // A gpu block is a parallel loop of one iteration and one worker
    // (docs/gpu.md, Host code and kernels).
    root = for_loop("$gpu", ilit(0), ilit(1), 1, root->body, root->span);
    auto r = copy(root);
    r->par.nthreads = 1;
    root = r;
  }
  tpb_ = 1024;
  collect_tpb(root);
  if (tpb_ > 1024)
    fail("The number of threads per block " + std::to_string(tpb_) +
             " exceeds the maximum of 1024 supported by the GPU.",
         root->span);
  check_par_externals(root);
  // An external's tpb holds for the whole nest, also in the kernels split from it that do not call
  // the external.
  if (tpb_ != 1024 && calls_par_external({root})) root = with_tpb(root);
  g_ = geometry(layers_stmt(root), tpb_, target_, root->span);
  find_read_only(root);
  if (needs_grid_barrier(root)) return split(root);
  // A parallel external may synchronise the whole block, which rows packed into it cannot.
  bool packable = target_.pack_rows && !calls_par_external({root});
  if (packable) g_ = pack_rows(g_, tpb_);
  Block work;
  if (Geometry warps = packable ? pack_warps(g_, tpb_) : g_; warps.packed_warps()) {
    // Rows of whole warps only where they need no barrier or reduction of their own.
    Geometry plain = g_;
    int counter = counter_;
    g_ = warps;
    work = kernel_work(root);
    if (holds_barrier(work)) {
      g_ = plain;
      counter_ = counter;
      work = kernel_work(root);
    }
  } else {
    work = kernel_work(root);
  }

  Kernel kern;
  kern.name = prog_.name + "_k" + std::to_string(prog_.kernels.size());
  kern.block_threads = g_.threads;
  kern.grid_blocks = g_.grid_blocks();
  kern.cluster_blocks = g_.cluster_blocks();
  Block body = prologue();
  if (g_.packed() && g_.outer % g_.rows != 0)  // rows past the last do nothing
    body.push_back(if_stmt(iop(BinOp::Lt, ivar("$outer"), ilit(g_.outer)), std::move(work), {}, root->span));
  else
    body.insert(body.end(), work.begin(), work.end());
  if (g_.packed_warps())
    kern.note = "rows packed: " + std::to_string(g_.rows) + " rows per block of " + std::to_string(g_.threads) +
                " threads, each on " + std::to_string(g_.group / 32) + " warps (" + std::to_string(g_.layers[g_.k]) +
                " workers; no barriers)";
  else if (g_.packed())
    kern.note = "rows packed: " + std::to_string(g_.rows) + " rows per block of " + std::to_string(g_.threads) +
                " threads, each on " + std::to_string(g_.group) + " lanes of one warp (" +
                std::to_string(g_.layers[g_.k]) + " workers; warp-shuffle reductions, no block barriers)";
  kern.body = load_device_scalars(constant_fold(body));
  track_device_arrays(kern.body, root->span);
  kern.inner_worker = worker(g_.k);
  kern.inner_workers = g_.layers[g_.k];
  kern.params = free_params(kern.body, root->span);
  std::vector<Expr> args;
  for (const auto& p : kern.params) args.push_back(var(p.name, root->span, p.type));
  prog_.kernels.push_back(std::move(kern));
  return {launch_stmt(prog_.kernels.back().name, std::move(args), root->span)};
}

// A 0-dim array left on the GPU that the kernel reads is loaded once, at its start, into a local:
// a load in a loop bound or body would otherwise repeat in every iteration (the CUDA compiler
// cannot tell that no store of the kernel changes the element).
Block KernelBuilder::load_device_scalars(const Block& body) const {
  std::map<std::string, ElemSize> read;
  visit_block(body, [&](const Stmt& s) {
    visit_stmt_exprs(s, [&](const Expr& x) {
      if (x->kind == ExprKind::Access && device_scalars_.count(x->name)) read[x->name] = x->ty.elem;
    });
  });
  if (read.empty()) return body;
  auto local = [](const std::string& n) { return "$scalar_" + n; };
  Block out;
  for (const auto& [n, elem] : read) {
    auto load = copy(assign(var(local(n), {}, Type::scalar(elem)), access(n, ilit(0), elem, {}), {}));
    load->defines = true;
    out.push_back(load);
  }
  Block rest = map_block_exprs(body, [&](const Expr& e) {
    return map_expr(e, [&](const Expr& x) -> Expr {
      if (x->kind != ExprKind::Access || !read.count(x->name)) return x;
      return var(local(x->name), x->span, Type::scalar(x->ty.elem));
    });
  });
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

// Worker indices of each layer, from the thread and the linear block index.
Block KernelBuilder::prologue() {
  Block b;
  auto def = [&](const std::string& n, Expr e) {
    auto s = copy(assign(ivar(n), std::move(e), {}));
    s->defines = true;
    b.push_back(s);
  };
  Expr tid = ivar(kThreadIdx), bid = ivar(kBlockIdx);
  if (g_.packed()) {
    // Row r of the block runs on lanes r * group .. r * group + group - 1.
    def(worker(g_.k), iop(BinOp::Mod, tid, ilit(g_.group)));
    def("$outer", iop(BinOp::Add, iop(BinOp::Mul, bid, ilit(g_.rows)), iop(BinOp::FloorDiv, tid, ilit(g_.group))));
  } else if (g_.inner_blocks == 1)
    def(worker(g_.k), tid);
  else
    def(worker(g_.k), iop(BinOp::Add, iop(BinOp::Mul, iop(BinOp::Mod, bid, ilit(g_.inner_blocks)), ilit(g_.threads)), tid));
  if (g_.k > 0) {
    if (!g_.packed()) def("$outer", g_.inner_blocks == 1 ? bid : iop(BinOp::FloorDiv, bid, ilit(g_.inner_blocks)));
    Expr rest = ivar("$outer");
    for (size_t d = g_.k; d-- > 0;) {
      def(worker(d), d == 0 ? rest : iop(BinOp::Mod, rest, ilit(g_.layers[d])));
      rest = iop(BinOp::FloorDiv, rest, ilit(g_.layers[d]));
    }
  }
  return b;
}

// Kernel parameters: the free variables of its body (arrays, scratch, host scalars).
std::vector<AbiParam> KernelBuilder::free_params(const Block& body, const Span& sp) {
  std::set<std::string> defined{kThreadIdx, kBlockIdx};
  std::map<std::string, Type> used;
  std::set<std::string> assigned;
  visit_block(body, [&](const Stmt& s) {
    if (s->kind == StmtKind::For) defined.insert(s->var);
    if (s->kind == StmtKind::Assign && s->defines && s->lhs->kind == ExprKind::Var)
      defined.insert(s->lhs->name);
    if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var) assigned.insert(s->lhs->name);
    if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Access) {
      if (std::find(prog_.written.begin(), prog_.written.end(), s->lhs->name) == prog_.written.end())
        prog_.written.push_back(s->lhs->name);
    }
    visit_stmt_exprs(s, [&](const Expr& x) {
      // A stream reduction binds its variable k (gpu/stream_rows.h).
      if (intrinsic_of(x) == Intrinsic::StreamReduce) defined.insert(x->args[2]->name);
      if (x->kind == ExprKind::Var) used.emplace(x->name, x->ty);
      if (x->kind == ExprKind::Access) used.emplace(x->name, params_.count(x->name) ? params_[x->name] : Type::pointer(x->ty.elem));
    });
  });
  std::set<std::string> scratch;
  for (const auto& sc : prog_.scratch) scratch.insert(sc.name);
  std::vector<AbiParam> out;
  // Arrays in the entry's order, then scratch, then host scalars by name.
  for (const auto& p : prog_.params)
    if (used.count(p.name) && !defined.count(p.name) && p.type.is_array()) out.push_back(p);
  for (const auto& sc : prog_.scratch)
    if (used.count(sc.name)) out.push_back({sc.name, Type::pointer(sc.elem)});
  for (const auto& [n, t] : used) {
    // Array parameters are passed above; scalar parameters read at run time (Python floats) are
    // passed by value like host scalars.
    if (defined.count(n) || (params_.count(n) && !params_[n].is_scalar()) || scratch.count(n)) continue;
    if (assigned.count(n))
      fail("The host variable " + n + " cannot be assigned inside parallel code.", sp);
    out.push_back({n, t});
  }
  return out;
}


}  // namespace gpu

GpuProgram extract_kernels(const std::string& name, const std::vector<AbiParam>& params,
                           const Block& body, const GpuTarget& target,
                           const std::map<std::string, ParallelExternal>& parallel_externals) {
  GpuProgram prog;
  prog.name = name;
  prog.params = params;
  prog.use_graphs = target.graphs;
  ArrayAliases aliases = array_aliases(body);
  gpu::KernelBuilder kb(prog, target, aliases, parallel_externals);
  prog.host = kb.host(body);
  prog.aliased = aliased_names(aliases);
  // A store through a local naming arrays may write any of them.
  std::set<std::string> written(prog.written.begin(), prog.written.end());
  for (const auto& n : with_aliased(written, aliases))
    if (!written.count(n)) prog.written.push_back(n);
  return prog;
}

}  // namespace parpy
