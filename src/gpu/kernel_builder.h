// The kernel builder behind extract_kernels (gpu/extract_kernels.h), one class whose jobs live in
// one file each: extract_kernels.cpp (host code, kernels, device locals, parameters),
// kernel_structure.cpp (parallel structure and parallel externals), kernel_split.cpp (the split at
// grid-wide barriers), kernel_body.cpp (loops over workers, narrowing and barriers) and
// kernel_reductions.cpp (block, cluster and multi-block reductions). Private to src/gpu/.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gpu/extract_kernels.h"
#include "gpu/geometry.h"
#include "gpu/gpu_ir.h"
#include "gpu/index_expr.h"
#include "passes/array_locals.h"

namespace parpy::gpu {

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

  Block host(const Block& b);

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
  // The grid-stride loops of the kernel being built that run at most once in each thread (as many
  // workers as iterations, or more).
  std::set<Stmt> once_;  // held, so that no other node takes the address of one

  std::string fresh(const std::string& base) { return "$" + base + std::to_string(counter_++); }
  std::string worker(size_t d) const { return "$w" + std::to_string(d); }

  // ---- Locals computed on the GPU and used by later kernels ----
  // (docs/gpu.md, Host code and kernels)
  // `s = sum(x[:])` at the top level runs in a kernel; a later kernel that reads s loads it from
  // a one-element device array that the defining kernel stores to.
  std::map<std::string, std::string> device_locals_;  // local -> its device array

  Stmt keep_device_locals(const Stmt& root);

  const Scratch& scratch_of(const std::string& name) const;

  // Host code cannot read a local whose value lives on the GPU; a host assignment makes it a
  // host local again.
  void check_host_use(const Stmt& s);

  void check_device_array(const Expr& x, const Span& use);

  // A kernel may use a local naming arrays only if host code or the kernel itself assigned it;
  // the arrays it assigns become unusable outside it.
  void track_device_arrays(const Block& body, const Span& sp);

  // ---- Parallel structure (docs/gpu.md, Grid and blocks) ----
  // The layers (thread counts, outer to inner) of siblings or branches must agree except for the
  // innermost one: the kernel runs the widest innermost layer, and each loop guards its own
  // workers (README, "Backends").
  std::vector<int64_t> unify(std::vector<int64_t> a, const std::vector<int64_t>& b, const Span& sp, bool branches);

  std::vector<int64_t> layers_block(const Block& b);

  // A statement calling a parallel external adds a layer of the external's threads (its own
  // expressions only; a loop's body contributes through the loop).
  std::vector<int64_t> layers_stmt(const Stmt& s);

  std::vector<int64_t> structure_of(const Stmt& s);

  void collect_tpb(const Stmt& s);

  // ---- Parallel externals ----
  const ParallelExternal* par_external(const Expr& e) const;

  // The threads of the widest parallel external that the statement's own expressions call (0: none).
  int64_t par_call_threads(const Stmt& s) const;

  bool calls_par_external(const Block& b) const;

  Stmt with_tpb(const Stmt& s) const;

  // An external runs in the threads of one block, which it indexes by threadIdx.x.
  void check_par_externals(const Stmt& root);

  // A statement calling a parallel external runs in all threads of the external's layer, which
  // cooperate in the call (warp shuffles, barriers). A store stays narrowed to one thread: the calls
  // move before it into locals that every thread of the layer computes. Threads beyond the layer
  // (the block is wider for a sibling loop) skip the calls, so only a store may use their result;
  // the guard is warp-uniform, so warp shuffles in the external stay safe (block barriers do not).
  Block par_call_stmt(const Stmt& s, size_t d, int64_t n);

  // ---- Kernels ----
  Block make_kernels(const Stmt& root_in);

  // A 0-dim array left on the GPU that the kernel reads is loaded once, at its start, into a local:
  // a load in a loop bound or body would otherwise repeat in every iteration (the CUDA compiler
  // cannot tell that no store of the kernel changes the element).
  Block load_device_scalars(const Block& body) const;

  // Worker indices of each layer, from the thread and the linear block index.
  Block prologue();

  // Statements of a kernel body that run once per block need a grid-wide barrier to see the
  // work of other blocks; one kernel has none. Each iteration of a loop of an outer layer runs on
  // several blocks (those of the layers inside it), and with several blocks per inner layer (no
  // cluster) so does each iteration of the innermost parallel loops' parent: a body there with
  // more than one parallel step, or statements after one, is split into kernels.
  bool needs_grid_barrier(const Stmt& root);

  // Whether the body of a loop at depth d needs no barrier across blocks. Locals that every thread
  // computes first read only what earlier kernels wrote. Above the innermost layer what remains is
  // nothing, one loop of the next layer, or a branch whose arms are such bodies; at the innermost
  // layer's parent, when it spans several blocks, one inner loop, or `dst = neutral` then a
  // reduction into dst (the last block to finish sees the initialisation).
  bool single_inner_step(const Block& body, size_t d);

  // Launch order is the barrier between blocks (docs/gpu.md, Synchronisation and kernel
  // splits): the body of a two-layer nest is cut after each inner parallel loop, every piece
  // becomes a kernel over the same outer loop, and the locals the pieces share live in device
  // memory, one element per outer iteration (sized by the outer loop's trip count).
  Block split(const Stmt& root_in);

  // A piece that only reads a shared local loads it once into a local of the original name,
  // instead of reading device memory in every iteration of its loops.
  static Block read_shared_once(const Block& piece, const std::map<std::string, std::string>& shared, const Expr& iter);

  static bool is_zero(const Expr& e) { return e->kind == ExprKind::Int && e->ival == 0; }

  Expr leader();

  Stmt barrier() const;
  static bool is_barrier(const Stmt& s);

  static bool contains_loop(const Block& b);
  static bool holds_barrier(const Block& b);  // a barrier or all-reduction anywhere in b
  static bool reads_memory(const Expr& e);    // an array access in e

  // Any array access: threads of the block read or write memory that a later (or, in a loop,
  // earlier) parallel loop of other threads touches.
  static bool contains_array_access(const Stmt& s);
  // Whether s accesses (reads or writes; a store's target is an access) an array not in `arrays`.
  static bool accesses_other_than(const Stmt& s, const std::set<std::string>& arrays);

  // Arrays that no thread of the kernel being built writes, under any name: parameters the kernel
  // stores to nowhere, that share memory with no other argument and that no local names, in a
  // kernel that calls no function (which might write through a pointer). Reads of them need no
  // barrier: every thread sees the same values whenever it loads them.
  std::set<std::string> read_only_;
  void find_read_only(const Stmt& root);

  Block transform_block(const Block& b, size_t d);

  // The kernel's work (transform_stmt of its root) under the geometry g_, without the barriers
  // that are the last thing each thread runs (drop_final_barriers).
  Block kernel_work(const Stmt& root);

  // Drops the barriers that order nothing because nothing runs after them in any thread: those at
  // the end of b when b ends the kernel, and, inside its last statement, those ending a branch or
  // the body of a loop that runs at most once in each thread (once_).
  void drop_final_barriers(Block& b) const;

  // A reduction that every thread of the block (or cluster) completes together and that writes
  // only a local: its all-reduce already ordered every memory access before it against every
  // access after it, so no barrier is needed behind it.
  bool allreduce_into_local(const Stmt& s, size_t d) const;

  // The workers of loop s at depth d: a parallel loop's own threads (fewer than its layer's when a
  // sibling loop is wider), else the layer's.
  int64_t workers_of(const Stmt& s, size_t d) const;

  // for v in range(lo, hi, step) with n workers: worker w runs lo + step*w, lo + step*(w+n), ...
  Stmt grid_stride(const Stmt& s, size_t d, Block body);

  // Whether the values the plain grid-stride loop computes (every worker's start, the value after
  // each one's last) all stay within int64: constant bounds away from its ends.
  static bool grid_stride_is_exact(const Stmt& s, int64_t n);

  // Bounds known only at run time, or near the ends of int64: the workers share the iteration
  // numbers 0 .. parpy_trips(lo, hi, step) - 1 and compute each value from its number; the bounds
  // are evaluated once, as Python's range does.
  Stmt counted_grid_stride(const Stmt& s, const Expr& w, int64_t n, Block body);

  // Threads beyond the n workers of an innermost loop skip it; they still reach the barriers and
  // block reductions after it, which stay outside the guard.
  Stmt guarded(const Stmt& loop, size_t d, int64_t n);

  Block transform_stmt(const Stmt& s, size_t d);

  // A reduction loop: its last statement is `dst = dst op value`; statements before it (from
  // fuse_map_reduce) run in the same iterations.
  Block reduction(const Stmt& s, size_t d);

  // Kernel parameters: the free variables of its body (arrays, scratch, host scalars).
  std::vector<AbiParam> free_params(const Block& body, const Span& sp);
};

}  // namespace parpy::gpu
