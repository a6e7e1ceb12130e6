#include "gpu/extract_kernels.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <set>

#include "gpu/geometry.h"
#include "gpu/index_expr.h"
#include "ir/intrinsics.h"
#include "passes/array_locals.h"
#include "passes/constant_fold.h"
#include "ir/reductions.h"

namespace parpy {
namespace {

using gpu::ilit;
using gpu::iop;
using gpu::ivar;
using gpu::kBool;


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

std::string layer_str(int64_t threads, int64_t tpb) {
  return "ParLayer { threads: " + std::to_string(threads) + ", tpb: " + std::to_string(tpb) + " }";
}

class KernelBuilder {
 public:
  KernelBuilder(GpuProgram& prog, const GpuTarget& target, const ArrayAliases& aliases,
                const std::map<std::string, ParallelExternal>& externals)
      : prog_(prog), target_(target), par_externals_(externals), aliased_(aliased_names(aliases)) {
    for (const auto& p : prog.params) {
      params_[p.name] = p.type;
      if (p.on_device) device_scalars_.insert(p.name);
    }
  }

  Block host(const Block& b) {
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

 private:
  GpuProgram& prog_;
  const GpuTarget& target_;
  const std::map<std::string, ParallelExternal>& par_externals_;
  std::map<std::string, Type> params_;
  std::set<std::string> device_scalars_;  // 0-dim arrays left on the GPU (one element, read only)
  // Names of arrays that another name may refer to (locals naming arrays and what they name).
  std::set<std::string> aliased_;
  // Locals naming arrays (or reassigned array parameters) last assigned in a kernel: the pointer
  // lives in that kernel's registers, so no later kernel or host code can use it.
  std::map<std::string, Span> device_arrays_;
  int counter_ = 0;
  // The parallel loops around the statement being transformed, outer to inner.
  std::vector<Stmt> enclosing_;

  // The kernel being built: its threads per block at most, and its geometry.
  int64_t tpb_ = 1024;
  Geometry g_;

  std::string fresh(const std::string& base) { return "$" + base + std::to_string(counter_++); }
  std::string worker(size_t d) const { return "$w" + std::to_string(d); }

  // ---- Locals computed on the GPU and used by later kernels ----
  // (docs/gpu.md, Host code and kernels)
  // `s = sum(x[:])` at the top level runs in a kernel; a later kernel that reads s loads it from
  // a one-element device array that the defining kernel stores to.
  std::map<std::string, std::string> device_locals_;  // local -> its device array

  Stmt keep_device_locals(const Stmt& root) {
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

  const Scratch& scratch_of(const std::string& name) const {
    for (const auto& sc : prog_.scratch)
      if (sc.name == name) return sc;
    fail("Internal error: no device array " + name, {});
  }

  // Host code cannot read a local whose value lives on the GPU; a host assignment makes it a
  // host local again.
  void check_host_use(const Stmt& s) {
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

  void check_device_array(const Expr& x, const Span& use) {
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
  void track_device_arrays(const Block& body, const Span& sp) {
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

  // ---- Parallel structure (docs/gpu.md, Grid and blocks) ----
  // The layers (thread counts, outer to inner) of siblings or branches must agree except for the
  // innermost one: the kernel runs the widest innermost layer, and each loop guards its own
  // workers (README, "Backends").
  std::vector<int64_t> unify(std::vector<int64_t> a, const std::vector<int64_t>& b, const Span& sp,
                             bool branches) {
    if (a.empty()) return b;
    if (b.empty()) return a;
    auto show = [&](const std::vector<int64_t>& l) {
      std::string s = "[";
      for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + layer_str(l[i], tpb_);
      return s + "]";
    };
    const std::string hint =
        "\nParallel loops next to each other in one kernel may differ only in the number of threads of "
        "their innermost parallel loops: give the loops around those the same number of threads.";
    bool same_outer = a.size() == b.size() && std::equal(a.begin(), a.end() - 1, b.begin());
    if (branches && !same_outer)
      fail("Found branches with inconsistent parallel structure: " + show(a) + " != " + show(b) +
               ".\nThis is not supported because the compiller cannot generate efficient code for this." +
               hint,
           sp);
    if (a.size() != b.size())
      fail("Found inconsistent number of layers in parallel structure (" + std::to_string(a.size()) +
               " != " + std::to_string(b.size()) +
               ")\nParallel loops next to each other in one kernel must nest the same number of parallel "
               "loops; mark the extra loops sequential or move them into a parallel loop of their own.",
           sp);
    for (size_t i = 0; i + 1 < a.size(); ++i)
      if (a[i] != b[i])
        fail("Found inconsistent parallel structures: " + layer_str(a[i], tpb_) + " != " +
                 layer_str(b[i], tpb_) + hint,
             sp);
    a.back() = std::max(a.back(), b.back());
    return a;
  }

  std::vector<int64_t> layers_block(const Block& b) {
    std::vector<int64_t> out;
    for (const auto& s : b) out = unify(out, layers_stmt(s), s->span, false);
    return out;
  }

  // A statement calling a parallel external adds a layer of the external's threads (its own
  // expressions only; a loop's body contributes through the loop).
  std::vector<int64_t> layers_stmt(const Stmt& s) {
    int64_t calls = par_call_threads(s);
    if (calls == 0) return structure_of(s);
    return unify({calls}, structure_of(s), s->span, false);
  }

  std::vector<int64_t> structure_of(const Stmt& s) {
    switch (s->kind) {
      case StmtKind::For: {
        auto inner = layers_block(s->body);
        if (!s->par.is_parallel()) return inner;
        inner.insert(inner.begin(), s->par.nthreads);
        return inner;
      }
      case StmtKind::While: case StmtKind::WithGpu: return layers_block(s->body);
      case StmtKind::If: return unify(layers_block(s->body), layers_block(s->orelse), s->span, true);
      default: return {};
    }
  }

  void collect_tpb(const Stmt& s) {
    auto merge = [&](int64_t tpb, const Span& sp) {
      if (tpb == 1024) return;
      if (tpb_ != 1024 && tpb_ != tpb)
        fail("Found inconsistent threads per block " + std::to_string(tpb_) + " and " + std::to_string(tpb) +
                 " among labels within parallel statements.",
             sp);
      tpb_ = tpb;
    };
    visit_block({s}, [&](const Stmt& x) {
      if (x->kind == StmtKind::For) merge(x->par.tpb, x->span);
      visit_stmt_exprs(x, [&](const Expr& e) {
        if (const ParallelExternal* ext = par_external(e)) merge(ext->par.tpb, e->span);
      });
    });
  }

  // ---- Parallel externals ----
  const ParallelExternal* par_external(const Expr& e) const {
    if (!e || e->kind != ExprKind::Call) return nullptr;
    auto it = par_externals_.find(e->name);
    return it == par_externals_.end() ? nullptr : &it->second;
  }

  // The threads of the widest parallel external that the statement's own expressions call (0: none).
  int64_t par_call_threads(const Stmt& s) const {
    int64_t n = 0;
    visit_stmt_exprs(s, [&](const Expr& e) {
      if (const ParallelExternal* ext = par_external(e)) n = std::max(n, ext->par.nthreads);
    });
    return n;
  }

  bool calls_par_external(const Block& b) const {
    bool found = false;
    visit_block(b, [&](const Stmt& s) { found = found || par_call_threads(s) > 0; });
    return found;
  }

  Stmt with_tpb(const Stmt& s) const {
    auto n = copy(s);
    if (n->kind == StmtKind::For && n->par.is_parallel()) n->par.tpb = tpb_;
    for (auto& st : n->body) st = with_tpb(st);
    for (auto& st : n->orelse) st = with_tpb(st);
    return n;
  }

  // An external runs in the threads of one block, which it indexes by threadIdx.x.
  void check_par_externals(const Stmt& root) {
    visit_block({root}, [&](const Stmt& s) {
      visit_stmt_exprs(s, [&](const Expr& e) {
        const ParallelExternal* ext = par_external(e);
        if (!ext || ext->par.nthreads <= tpb_) return;
        fail("The external function " + ext->name + " is declared with parallelize=threads(" +
                 std::to_string(ext->par.nthreads) + "), more than the " + std::to_string(tpb_) +
                 " threads of one block that run it. Declare at most " + std::to_string(tpb_) + " threads.",
             e->span);
      });
      if ((s->kind == StmtKind::For || s->kind == StmtKind::While) && par_call_threads(s) > 0) {
        const Expr* e = nullptr;
        for (const Expr* x : {&s->cond, &s->lo, &s->hi})
          visit_expr(*x, [&](const Expr& y) {
            if (!e && par_external(y)) e = &y;
          });
        fail("The parallel external function " + par_external(*e)->name +
                 " cannot be called in the header of a loop. Assign its result to a variable before "
                 "the loop.",
             (*e)->span);
      }
    });
  }

  // A statement calling a parallel external runs in all threads of the external's layer, which
  // cooperate in the call (warp shuffles, barriers). A store stays narrowed to one thread: the calls
  // move before it into locals that every thread of the layer computes. Threads beyond the layer
  // (the block is wider for a sibling loop) skip the calls, so only a store may use their result;
  // the guard is warp-uniform, so warp shuffles in the external stay safe (block barriers do not).
  Block par_call_stmt(const Stmt& s, size_t d, int64_t n) {
    int64_t width = round_up(n, 32);
    bool guard = width < g_.threads * g_.inner_blocks;
    bool store = s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Access;
    if (!store) {
      if (guard) {
        const Expr* e = nullptr;
        visit_stmt_exprs(s, [&](const Expr& y) {
          if (!e && par_external(y)) e = &y;
        });
        fail("The parallel external function " + par_external(*e)->name + " runs on " +
                 std::to_string(width) + " threads, fewer than the " +
                 std::to_string(g_.threads * g_.inner_blocks) +
                 " threads of the parallel loops next to it, so the other threads do not have its "
                 "result. Store the result to an array element directly, or give those loops at most " +
                 std::to_string(width) + " threads.",
             (*e)->span);
      }
      auto t = with_blocks(s, [&](const Block& x) { return transform_block(x, d); });
      return {t};
    }
    Block calls;
    auto hoist = [&](const Expr& e) {
      return map_expr(e, [&](const Expr& x) -> Expr {
        if (!par_external(x)) return x;
        Expr t = var(fresh("ext"), x->span, x->ty);
        auto def = copy(assign(t, x, x->span));
        def->defines = true;
        calls.push_back(def);
        return t;
      });
    };
    auto st = copy(s);
    st->lhs = hoist(s->lhs);
    st->rhs = hoist(s->rhs);
    Block out;
    if (guard)
      out.push_back(if_stmt(iop(BinOp::Lt, ivar(worker(d)), ilit(width)), calls, {}, s->span));
    else
      out = calls;
    // Every thread reads the call's arguments before one of them overwrites the array.
    bool reads_target = false;
    for (const auto& c : calls) reads_target = reads_target || mentions(c->rhs, s->lhs->name);
    if (reads_target) out.push_back(barrier());
    out.push_back(if_stmt(leader(), {st}, {}, s->span));
    return out;
  }

  // ---- Kernels ----
  Block make_kernels(const Stmt& root_in) {
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
    if (needs_grid_barrier(root)) return split(root);

    Kernel kern;
    kern.name = prog_.name + "_k" + std::to_string(prog_.kernels.size());
    kern.block_threads = g_.threads;
    kern.grid_blocks = g_.grid_blocks();
    kern.cluster_blocks = g_.cluster_blocks();
    Block body = prologue();
    for (const auto& s : transform_stmt(root, 0)) body.push_back(s);
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
  Block load_device_scalars(const Block& body) const {
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
  Block prologue() {
    Block b;
    auto def = [&](const std::string& n, Expr e) {
      auto s = copy(assign(ivar(n), std::move(e), {}));
      s->defines = true;
      b.push_back(s);
    };
    Expr tid = ivar(kThreadIdx), bid = ivar(kBlockIdx);
    if (g_.inner_blocks == 1)
      def(worker(g_.k), tid);
    else
      def(worker(g_.k), iop(BinOp::Add, iop(BinOp::Mul, iop(BinOp::Mod, bid, ilit(g_.inner_blocks)), ilit(g_.threads)), tid));
    if (g_.k > 0) {
      def("$outer", g_.inner_blocks == 1 ? bid : iop(BinOp::FloorDiv, bid, ilit(g_.inner_blocks)));
      Expr rest = ivar("$outer");
      for (size_t d = g_.k; d-- > 0;) {
        def(worker(d), d == 0 ? rest : iop(BinOp::Mod, rest, ilit(g_.layers[d])));
        rest = iop(BinOp::FloorDiv, rest, ilit(g_.layers[d]));
      }
    }
    return b;
  }

  // Statements of a kernel body that run once per block need a grid-wide barrier to see the
  // work of other blocks; one kernel has none. Each iteration of a loop of an outer layer runs on
  // several blocks (those of the layers inside it), and with several blocks per inner layer (no
  // cluster) so does each iteration of the innermost parallel loops' parent: a body there with
  // more than one parallel step, or statements after one, is split into kernels.
  bool needs_grid_barrier(const Stmt& root) {
    if (g_.k == 0) return false;
    return !single_inner_step(root->body, 1);
  }

  // Whether the body of a loop at depth d needs no barrier across blocks. Locals that every thread
  // computes first read only what earlier kernels wrote. Above the innermost layer what remains is
  // nothing, one loop of the next layer, or a branch whose arms are such bodies; at the innermost
  // layer's parent, when it spans several blocks, one inner loop, or `dst = neutral` then a
  // reduction into dst (the last block to finish sees the initialisation).
  bool single_inner_step(const Block& body, size_t d) {
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
  Block split(const Stmt& root_in) {
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
      return gpu_root && st->kind == StmtKind::For && !st->par.is_parallel() && contains_parallel(st);
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
        fail("This parallel loop nest needs a barrier across thread blocks inside a statement, which "
             "the Cuda backend does not support. Use at most " + std::to_string(tpb_) +
                 " threads for the inner loops.",
             root->span);
      fail("This parallel loop nest needs a barrier across thread blocks inside a parallel loop that is "
           "nested in another parallel loop, which the Cuda backend does not support: it splits only the "
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
  static Block read_shared_once(const Block& piece, const std::map<std::string, std::string>& shared,
                                const Expr& iter) {
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

  static bool is_zero(const Expr& e) { return e->kind == ExprKind::Int && e->ival == 0; }

  Expr leader() {
    Expr first = iop(BinOp::Eq, ivar(kThreadIdx), ilit(0));
    if (g_.inner_blocks == 1) return first;
    return iop(BinOp::And, first, iop(BinOp::Eq, iop(BinOp::Mod, ivar(kBlockIdx), ilit(g_.inner_blocks)), ilit(0)));
  }

  Stmt barrier() const {
    return call_stmt(intrinsic(g_.cluster ? Intrinsic::ClusterSync : Intrinsic::SyncThreads, {}, {}), {});
  }
  static bool is_barrier(const Stmt& s) {
    return calls_intrinsic(s, Intrinsic::SyncThreads) || calls_intrinsic(s, Intrinsic::ClusterSync);
  }

  static bool contains_loop(const Block& b) {
    bool found = false;
    visit_block(b, [&](const Stmt& x) {
      if (x->kind == StmtKind::For || x->kind == StmtKind::While) found = true;
    });
    return found;
  }

  static bool contains_parallel(const Stmt& s) {
    bool found = false;
    visit_block({s}, [&](const Stmt& x) {
      if (x->kind == StmtKind::For && x->par.is_parallel()) found = true;
    });
    return found;
  }

  // Any array access: threads of the block read or write memory that a later (or, in a loop,
  // earlier) parallel loop of other threads touches.
  static bool contains_array_access(const Stmt& s) {
    bool found = false;
    visit_block({s}, [&](const Stmt& x) {
      visit_stmt_exprs(x, [&](const Expr& y) {
        if (y->kind == ExprKind::Access) found = true;
      });
    });
    return found;
  }

  Block transform_block(const Block& b, size_t d) {
    Block out;
    for (const auto& s : b) {
      for (const auto& t : transform_stmt(s, d)) out.push_back(t);
      // Statements run by the whole block order their memory accesses against the parallel
      // loops of other threads around them.
      bool after_barrier = !out.empty() && (is_barrier(out.back()) || allreduce_into_local(s, d));
      if (d >= 1 && d <= g_.k && (g_.inner_blocks == 1 || g_.cluster) && !after_barrier &&
          (contains_parallel(s) || contains_array_access(s)))
        out.push_back(barrier());
    }
    return out;
  }

  // A reduction that every thread of the block (or cluster) completes together and that writes
  // only a local: its all-reduce already ordered every memory access before it against every
  // access after it, so no barrier is needed behind it.
  bool allreduce_into_local(const Stmt& s, size_t d) const {
    if (s->kind == StmtKind::WithGpu) return !s->body.empty() && allreduce_into_local(s->body.back(), d);
    if (s->kind != StmtKind::For || !s->par.reduction || d != g_.k || (g_.inner_blocks > 1 && !g_.cluster)) return false;
    bool reduced = s->par.is_parallel() || (g_.k >= 1 && !contains_loop(s->body));
    return reduced && s->body.back()->lhs->kind == ExprKind::Var;
  }

  // The workers of loop s at depth d: a parallel loop's own threads (fewer than its layer's when a
  // sibling loop is wider), else the layer's.
  int64_t workers_of(const Stmt& s, size_t d) const {
    return s->par.is_parallel() ? s->par.nthreads : g_.layers[d];
  }

  // for v in range(lo, hi, step) with n workers: worker w runs lo + step*w, lo + step*(w+n), ...
  Stmt grid_stride(const Stmt& s, size_t d, Block body) {
    int64_t n = workers_of(s, d);
    Expr w = ivar(worker(d));
    if (!grid_stride_is_exact(s, n)) return counted_grid_stride(s, w, n, std::move(body));
    Expr start = s->step == 1 ? w : iop(BinOp::Mul, ilit(s->step), w);
    auto loop = copy(for_loop(s->var, iop(BinOp::Add, s->lo, start), s->hi, s->step * n, std::move(body), s->span));
    loop->par = LoopPar{};
    return loop;
  }

  // Whether the values the plain grid-stride loop computes (every worker's start, the value after
  // each one's last) all stay within int64: constant bounds away from its ends.
  static bool grid_stride_is_exact(const Stmt& s, int64_t n) {
    if (s->lo->kind != ExprKind::Int || s->hi->kind != ExprKind::Int) return false;
    __int128 stride = static_cast<__int128>(s->step) * n;
    __int128 last_start = s->lo->ival + static_cast<__int128>(s->step) * (n - 1);
    auto fits = [](__int128 v) { return v <= INT64_MAX && v >= INT64_MIN; };
    return fits(stride) && fits(last_start) && fits(static_cast<__int128>(s->step) * (n - 1)) &&
           increment_stays_in_range(s->hi->ival, static_cast<int64_t>(stride));
  }

  // Bounds known only at run time, or near the ends of int64: the workers share the iteration
  // numbers 0 .. parpy_trips(lo, hi, step) - 1 and compute each value from its number; the bounds
  // are evaluated once, as Python's range does.
  Stmt counted_grid_stride(const Stmt& s, const Expr& w, int64_t n, Block body) {
    std::string lo = fresh("lo"), hi = fresh("hi"), t = fresh("t");
    auto def = [&](const std::string& name, const Expr& e) {
      auto a = copy(assign(ivar(name), e, s->span));
      a->defines = true;
      return Stmt(a);
    };
    body.insert(body.begin(), def(s->var, intrinsic(Intrinsic::Iter, {ivar(lo), ivar(t), ilit(s->step)}, s->span, gpu::kI64)));
    Expr trips = intrinsic(Intrinsic::Trips, {ivar(lo), ivar(hi), ilit(s->step)}, s->span, gpu::kI64);
    auto loop = copy(for_loop(t, w, trips, n, std::move(body), s->span));
    loop->par = LoopPar{};
    return if_stmt(bool_lit(true, s->span), {def(lo, s->lo), def(hi, s->hi), loop}, {}, s->span);
  }

  // Threads beyond the n workers of an innermost loop skip it; they still reach the barriers and
  // block reductions after it, which stay outside the guard.
  Stmt guarded(const Stmt& loop, size_t d, int64_t n) {
    if (d == g_.k && g_.threads * g_.inner_blocks != n)
      return if_stmt(iop(BinOp::Lt, ivar(worker(d)), ilit(n)), {loop}, {}, loop->span);
    return loop;
  }

  Block transform_stmt(const Stmt& s, size_t d) {
    if (int64_t n = par_call_threads(s)) return par_call_stmt(s, d, n);
    switch (s->kind) {
      case StmtKind::For: {
        // A declared reduction without threads, run by the whole block, uses the block's
        // threads of the innermost layer instead of repeating the loop in every thread (not when
        // its body calls a parallel external, which every thread of the block must call alike).
        if (!s->par.is_parallel() && s->par.reduction && d == g_.k && g_.k >= 1 && !contains_loop(s->body) &&
            !calls_par_external(s->body))
          return reduction(s, d);
        if (!s->par.is_parallel()) {
          auto n = copy(s);
          n->body = transform_block(s->body, d);
          return {n};
        }
        if (d == g_.k && s->par.reduction) return reduction(s, d);
        if (s->par.reduction)
          fail("A reduction over a parallel loop that has parallel loops inside it is not supported.", s->span);
        enclosing_.push_back(s);
        Block inner = transform_block(s->body, d + 1);
        enclosing_.pop_back();
        return {guarded(grid_stride(s, d, std::move(inner)), d, workers_of(s, d))};
      }
      case StmtKind::While: case StmtKind::If: {
        auto n = with_blocks(s, [&](const Block& x) { return transform_block(x, d); });
        return {n};
      }
      case StmtKind::WithGpu: return transform_block(s->body, d);
      case StmtKind::Assign:
        if (d >= 1 && d <= g_.k && s->lhs->kind == ExprKind::Access)
          return {if_stmt(leader(), {s}, {}, s->span)};
        return {s};
      default: return {s};
    }
  }

  // A reduction loop: its last statement is `dst = dst op value`; statements before it (from
  // fuse_map_reduce) run in the same iterations.
  Block reduction(const Stmt& s, size_t d) {
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
      Expr total_all = g_.cluster ? intrinsic(Intrinsic::ClusterReduce, {accv, ne}, s->span, {}, rop)
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

  // Kernel parameters: the free variables of its body (arrays, scratch, host scalars).
  std::vector<AbiParam> free_params(const Block& body, const Span& sp) {
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
      if (defined.count(n) || params_.count(n) || scratch.count(n)) continue;
      if (assigned.count(n))
        fail("The host variable " + n + " cannot be assigned inside parallel code.", sp);
      out.push_back({n, t});
    }
    return out;
  }
};

}  // namespace

GpuProgram extract_kernels(const std::string& name, const std::vector<AbiParam>& params,
                           const Block& body, const GpuTarget& target,
                           const std::map<std::string, ParallelExternal>& parallel_externals) {
  GpuProgram prog;
  prog.name = name;
  prog.params = params;
  prog.use_graphs = target.graphs;
  ArrayAliases aliases = array_aliases(body);
  KernelBuilder kb(prog, target, aliases, parallel_externals);
  prog.host = kb.host(body);
  prog.aliased = aliased_names(aliases);
  // A store through a local naming arrays may write any of them.
  std::set<std::string> written(prog.written.begin(), prog.written.end());
  for (const auto& n : with_aliased(written, aliases))
    if (!written.count(n)) prog.written.push_back(n);
  return prog;
}

}  // namespace parpy
