// Unit tests of the GPU lowering (docs/gpu.md): extract_kernels' grid mapping, kernels and
// splitting, reductions, narrowing and barriers, parallel-structure errors, check_host_code, and
// the CUDA printer's fixed parts. No GPU is needed: the tests inspect the GpuProgram and the text.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "codegen/cuda.h"
#include "gpu/check_host_code.h"
#include "gpu/geometry.h"
#include "gpu/gpu_ir.h"
#include "ir/error.h"
#include "ir/ir.h"
#include "ir/options.h"
#include "lower.h"
#include "ir_builders.h"

namespace parpy {
namespace {

using namespace parpy::testing;

// The passes of lower() up to the GPU layer's program.
GpuProgram gpu_program(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts) {
  return lower_gpu_program(f, args, opts);
}

std::string cuda_code(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts) {
  return lower(f, args, opts).code;
}

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

std::string all_kernels(const GpuProgram& p) {
  std::string s;
  for (const auto& k : p.kernels) s += "## " + k.name + "\n" + print_block(k.body);
  return s;
}

bool is_sync(const Stmt& s) {
  return s->kind == StmtKind::Call && s->rhs && s->rhs->name == "$syncthreads";
}

// Calls `f(list)` for every statement list of the tree.
void each_list(const Block& b, const std::function<void(const Block&)>& f) {
  f(b);
  for (const auto& s : b) {
    each_list(s->body, f);
    each_list(s->orelse, f);
  }
}

bool names_call(const Block& b, const std::string& prefix) {
  bool found = false;
  visit_block(b, [&](const Stmt& s) {
    for (const Expr* e : {&s->lhs, &s->rhs, &s->cond, &s->lo, &s->hi})
      visit_expr(*e, [&](const Expr& x) {
        if (x->kind == ExprKind::Call && x->name.rfind(prefix, 0) == 0) found = true;
      });
  });
  return found;
}

// def f(x, y): label N; for i in range(lo, hi, step): y[i] = x[i] + 1.0
Function copy_loop(int64_t lo, int64_t hi, int64_t step = 1) {
  return fn("f", {"x", "y"},
            {For("i", lo, hi, {A(S("y", {V("i")}), add(S("x", {V("i")}), F(1.0)))}, {"N"}, step)});
}

// def f(x, y): label O; for i in range(100): label P; for j in range(m): y[i, j] = x[i, j] * 2.0
Function nest(int64_t rows, int64_t m) {
  return fn("f", {"x", "y"},
            {For("i", 0, rows,
                 {For("j", 0, m, {A(S("y", {V("i"), V("j")}), mul(S("x", {V("i"), V("j")}), F(2.0)))},
                      {"P"})},
                 {"O"})});
}

// =============================================================================================
// Grid mapping (docs/gpu.md, Grid and blocks)

struct OneLoopCase {
  int64_t n, tpb, threads, blocks;
};

TEST(GpuGrid, OneParallelLoop) {
  for (const auto& c : std::vector<OneLoopCase>{{100, 1024, 128, 1},
                                                {83, 1024, 96, 1},
                                                {32, 1024, 32, 1},
                                                {1, 1024, 32, 1},
                                                {1024, 1024, 1024, 1},
                                                {4096, 1024, 1024, 4},
                                                {1000, 256, 256, 4},
                                                {5000, 1024, 1024, 5},
                                                {300, 128, 128, 3}}) {
    SCOPED_TRACE("n=" + std::to_string(c.n) + " tpb=" + std::to_string(c.tpb));
    GpuProgram p = gpu_program(copy_loop(0, c.n), {f32({c.n}), f32({c.n})}, cuda_opts({{"N", threads(c.n, c.tpb)}}));
    ASSERT_EQ(p.kernels.size(), 1u);
    EXPECT_EQ(p.kernels[0].block_threads, c.threads);
    EXPECT_EQ(p.kernels[0].grid_blocks, c.blocks);
    EXPECT_EQ(p.kernels[0].block_threads % 32, 0);
    EXPECT_TRUE(p.scratch.empty());
    ASSERT_EQ(p.host.size(), 1u);
    EXPECT_EQ(p.host[0]->kind, StmtKind::Launch);
    EXPECT_EQ(p.host[0]->rhs->name, p.kernels[0].name);
    EXPECT_EQ(p.written, std::vector<std::string>{"y"});
  }
}

TEST(GpuGrid, GuardOnlyWhenWorkersDoNotFillTheGrid) {
  // threads * blocks != n -> `w < n` guard on the innermost layer; otherwise none.
  auto guard_of = [](int64_t n, int64_t tpb) {
    std::string code = cuda_code(copy_loop(0, n), {f32({n}), f32({n})}, cuda_opts({{"N", threads(n, tpb)}}));
    return code;
  };
  std::string c100 = guard_of(100, 1024);
  EXPECT_TRUE(has(c100, "if ((parpy_w0 < 100))") || has(c100, "if (parpy_w0 < 100)")) << c100;
  std::string c83 = guard_of(83, 1024);
  EXPECT_TRUE(has(c83, "parpy_w0 < 83")) << c83;
  std::string c1000 = guard_of(1000, 256);
  EXPECT_TRUE(has(c1000, "parpy_w0 < 1000")) << c1000;
  std::string c128 = guard_of(128, 1024);
  EXPECT_FALSE(has(c128, "parpy_w0 < 128")) << c128;
  std::string c4096 = guard_of(4096, 1024);
  EXPECT_FALSE(has(c4096, "parpy_w0 < 4096")) << c4096;

  // And in the IR: the loop is the kernel's last statement, inside an If only when guarded.
  GpuProgram g = gpu_program(copy_loop(0, 100), {f32({100}), f32({100})}, cuda_opts({{"N", threads(100)}}));
  EXPECT_EQ(g.kernels[0].body.back()->kind, StmtKind::If) << all_kernels(g);
  GpuProgram u = gpu_program(copy_loop(0, 128), {f32({128}), f32({128})}, cuda_opts({{"N", threads(128)}}));
  EXPECT_EQ(u.kernels[0].body.back()->kind, StmtKind::For) << all_kernels(u);
}

TEST(GpuGrid, GridStrideLoopOverWorkers) {
  // threads(64) over 1000 iterations: worker w runs w, w + 64, ...
  GpuProgram p = gpu_program(copy_loop(0, 1000), {f32({1000}), f32({1000})}, cuda_opts({{"N", threads(64)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].block_threads, 64);
  EXPECT_EQ(p.kernels[0].grid_blocks, 1);
  const Stmt& loop = p.kernels[0].body.back();
  ASSERT_EQ(loop->kind, StmtKind::For) << all_kernels(p);
  EXPECT_EQ(loop->step, 64);
  EXPECT_EQ(print_expr(loop->hi), "1000");
  EXPECT_FALSE(loop->par.is_parallel());
}

TEST(GpuGrid, StepIsHonouredInTheStart) {
  // The step is honoured in the start (the original library left it out): for i in
  // range(3, 1000, 2) with 64 workers starts at 3 + 2*w, step 128.
  GpuProgram p = gpu_program(copy_loop(3, 1000, 2), {f32({1000}), f32({1000})}, cuda_opts({{"N", threads(64)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  const Stmt& loop = p.kernels[0].body.back();
  ASSERT_EQ(loop->kind, StmtKind::For) << all_kernels(p);
  EXPECT_EQ(loop->step, 128);
  std::string lo = print_expr(loop->lo);
  EXPECT_TRUE(has(lo, "3") && has(lo, "2") && has(lo, "$w0")) << lo;
  std::string code = cuda_code(copy_loop(3, 1000, 2), {f32({1000}), f32({1000})}, cuda_opts({{"N", threads(64)}}));
  EXPECT_TRUE(has(code, "(3 + (2 * parpy_w0))")) << code;
  EXPECT_TRUE(has(code, "i += 128")) << code;

  // Also when the layer spans several blocks (4096 workers, tpb 1024).
  std::string big =
      cuda_code(copy_loop(0, 10000, 2), {f32({10000}), f32({10000})}, cuda_opts({{"N", threads(4096)}}));
  EXPECT_TRUE(has(big, "(2 * parpy_w0)")) << big;
  EXPECT_TRUE(has(big, "i += 8192")) << big;
}

TEST(GpuGrid, NegativeStep) {
  // for i in range(99, -1, -1) with 100 workers: starts at 99 - w, runs while i > -1, step -100.
  Function f = fn("f", {"x", "y"}, {For("i", 99, -1, {A(S("y", {V("i")}), S("x", {V("i")}))}, {"N"}, -1)});
  std::string code = cuda_code(f, {f32({100}), f32({100})}, cuda_opts({{"N", threads(100)}}));
  EXPECT_TRUE(has(code, "for (int64_t v_i = (99 + (-1 * parpy_w0)); v_i > -1; v_i += -100)")) << code;
  EXPECT_TRUE(has(code, "parpy_w0 < 100")) << code;
}

TEST(GpuGrid, OuterAndInnerLayers) {
  // outer 100, inner 128 -> 100 blocks of 128 threads.
  GpuProgram p = gpu_program(nest(100, 128), {f32({100, 128}), f32({100, 128})},
                             cuda_opts({{"O", threads(100)}, {"P", threads(128)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].block_threads, 128);
  EXPECT_EQ(p.kernels[0].grid_blocks, 100);
  std::string code = cuda_code(nest(100, 128), {f32({100, 128}), f32({100, 128})},
                               cuda_opts({{"O", threads(100)}, {"P", threads(128)}}));
  EXPECT_TRUE(has(code, "<<<dim3(100), dim3(128), 0, parpy_stream>>>")) << code;
  EXPECT_TRUE(has(code, "__launch_bounds__(128)")) << code;
}

TEST(GpuGrid, InnerLayerAboveTpbSpansBlocks) {
  // inner threads(1024).tpb(128) under outer 100 -> 8 blocks per row, 800 blocks of 128.
  GpuProgram p = gpu_program(nest(100, 1024), {f32({100, 1024}), f32({100, 1024})},
                             cuda_opts({{"O", threads(100)}, {"P", threads(1024, 128)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].block_threads, 128);
  EXPECT_EQ(p.kernels[0].grid_blocks, 800);
  EXPECT_TRUE(p.scratch.empty());
}

TEST(GpuGrid, OnlyTheInnermostLayerIsRounded) {
  // outer 100 is not rounded; inner 100 -> 128 threads, 83 -> 96.
  GpuProgram a = gpu_program(nest(100, 100), {f32({100, 100}), f32({100, 100})},
                             cuda_opts({{"O", threads(100)}, {"P", threads(100)}}));
  ASSERT_EQ(a.kernels.size(), 1u);
  EXPECT_EQ(a.kernels[0].block_threads, 128);
  EXPECT_EQ(a.kernels[0].grid_blocks, 100);
  GpuProgram b = gpu_program(nest(7, 83), {f32({7, 83}), f32({7, 83})},
                             cuda_opts({{"O", threads(7)}, {"P", threads(83)}}));
  ASSERT_EQ(b.kernels.size(), 1u);
  EXPECT_EQ(b.kernels[0].block_threads, 96);
  EXPECT_EQ(b.kernels[0].grid_blocks, 7);
  std::string code = cuda_code(nest(7, 83), {f32({7, 83}), f32({7, 83})},
                               cuda_opts({{"O", threads(7)}, {"P", threads(83)}}));
  EXPECT_TRUE(has(code, "parpy_w1 < 83")) << code;   // inner guard
  EXPECT_FALSE(has(code, "parpy_w0 < 7")) << code;   // no guard on the outer layer
}

TEST(GpuGrid, OuterWorkersFewerThanIterations) {
  // outer threads(10) over 100 rows: the block index strides by 10.
  GpuProgram p = gpu_program(nest(100, 128), {f32({100, 128}), f32({100, 128})},
                             cuda_opts({{"O", threads(10)}, {"P", threads(128)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].grid_blocks, 10);
  bool found = false;
  visit_block(p.kernels[0].body, [&](const Stmt& s) {
    if (s->kind == StmtKind::For && s->var == "i") {
      found = true;
      EXPECT_EQ(s->step, 10);
    }
  });
  EXPECT_TRUE(found) << all_kernels(p);
}

TEST(GpuGrid, TwoRootsTwoKernels) {
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 64, {A(S("y", {V("i")}), S("x", {V("i")}))}, {"A"}),
                   For("i", 0, 64, {A(S("x", {V("i")}), F(0.0))}, {"B"})});
  GpuProgram p = gpu_program(f, {f32({64}), f32({64})}, cuda_opts({{"A", threads(64)}, {"B", threads(64)}}));
  ASSERT_EQ(p.kernels.size(), 2u);
  EXPECT_NE(p.kernels[0].name, p.kernels[1].name);
  ASSERT_EQ(p.host.size(), 2u);
  EXPECT_EQ(p.host[0]->rhs->name, p.kernels[0].name);
  EXPECT_EQ(p.host[1]->rhs->name, p.kernels[1].name);
  EXPECT_EQ(p.written.size(), 2u);
}

TEST(GpuGrid, HostLoopAroundLaunchPassesTheIndex) {
  // for t in range(1, 3) (host): label N; for i in range(64): y[t, i] = y[t - 1, i] + x[i]
  // (each row reads the one before: the row loop stays on the host, around the launch)
  Function f = fn("f", {"x", "y"},
                  {For("t", 1, 3, {For("i", 0, 64,
                                       {A(S("y", {V("t"), V("i")}),
                                          add(S("y", {add(V("t"), I(-1)), V("i")}), S("x", {V("i")})))},
                                       {"N"})})});
  GpuProgram p = gpu_program(f, {f32({64}), f32({3, 64})}, cuda_opts({{"N", threads(64)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  ASSERT_EQ(p.host.size(), 1u);
  EXPECT_EQ(p.host[0]->kind, StmtKind::For);
  bool has_t = false;
  for (const auto& prm : p.kernels[0].params) has_t = has_t || prm.name == "t";
  EXPECT_TRUE(has_t);
}

// =============================================================================================
// with parpy.gpu (docs/gpu.md, Host code and kernels)

TEST(GpuGrid, HostLoopOverRowsAroundIndependentColumnsBecomesOneKernel) {
  // for t in range(3) (host): label N; for i in range(64): y[t, i] = x[i]
  Function f = fn("f", {"x", "y"},
                  {For("t", 0, 3, {For("i", 0, 64, {A(S("y", {V("t"), V("i")}), S("x", {V("i")}))}, {"N"})})});
  GpuProgram p = gpu_program(f, {f32({64}), f32({3, 64})}, cuda_opts({{"N", threads(64)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  ASSERT_EQ(p.host.size(), 1u);
  EXPECT_EQ(p.host[0]->kind, StmtKind::Launch);
}

TEST(GpuContext, TopLevelGpuBlockIsOneBlockKernel) {
  Function f = fn("f", {"x"}, {with_gpu({A(S("x", {I(0)}), F(1.0)), A(S("x", {I(1)}), F(2.0))}, sp())});
  GpuProgram p = gpu_program(f, {f32({4})}, cuda_opts());
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].grid_blocks, 1);
  EXPECT_EQ(p.kernels[0].block_threads, 32);
  ASSERT_EQ(p.host.size(), 1u);
  EXPECT_EQ(p.host[0]->kind, StmtKind::Launch);
  std::string code = cuda_code(f, {f32({4})}, cuda_opts());
  EXPECT_TRUE(has(code, "<<<dim3(1), dim3(32), 0, parpy_stream>>>")) << code;
  EXPECT_EQ(count_of(code, "__global__"), 1u) << code;
  // Only one of the 32 threads runs the body.
  EXPECT_TRUE(has(code, "parpy_w0 < 1")) << code;
}

TEST(GpuContext, ParallelLoopInsideGpuBlock) {
  // with gpu: label N; for i in range(256): x[i] = 0.0  -> layers [1, 256]: one block of 256.
  Function f = fn("f", {"x"}, {with_gpu({For("i", 0, 256, {A(S("x", {V("i")}), F(0.0))}, {"N"})}, sp())});
  GpuProgram p = gpu_program(f, {f32({256})}, cuda_opts({{"N", threads(256)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].grid_blocks, 1);
  EXPECT_EQ(p.kernels[0].block_threads, 256);
}

// =============================================================================================
// check_host_code

constexpr const char* write_outside =
    "Found a write of an array outside parallel code: on a GPU backend that code runs on the CPU, which "
    "cannot reach the array in GPU memory. Write it in a `with parpy.gpu:` block or a parallel loop of one "
    "thread (parpy.threads(1)), or with numpy before or after the call.";
constexpr const char* read_outside =
    "Found a read of an array outside parallel code: on a GPU backend that code runs on the CPU, which "
    "cannot reach the array in GPU memory. Read it in a `with parpy.gpu:` block or a parallel loop of one "
    "thread (parpy.threads(1)), or read it with numpy before the call and pass the value as an argument.";

TEST(GpuHostCode, ArrayAccessOnHostIsRejectedWithItsSpan) {
  Span s = sp();
  Block host = {assign(access("x", I(0), ElemSize::F32, s), F(1.0), sp())};
  CompileError e = error_of([&] { check_host_code(host); });
  EXPECT_EQ(e.message(), write_outside);
  EXPECT_EQ(e.kind(), ErrorKind::Runtime);
  EXPECT_EQ(e.span().line, s.line);

  // A read in a host condition also counts; parallel code and gpu blocks are not host code.
  Span r = sp();
  Block cond = {if_stmt(binop(BinOp::Gt, access("x", I(0), ElemSize::F32, r), F(0.0), sp()), {}, {}, sp())};
  CompileError e2 = error_of([&] { check_host_code(cond); });
  EXPECT_EQ(e2.message(), read_outside);
  EXPECT_EQ(e2.span().line, r.line);

  // A read on the right of a host assignment to a scalar, and the write of `y[x[0]] = ...`.
  Span v = sp();
  CompileError e3 = error_of([&] { check_host_code({assign(V("n"), access("x", I(0), ElemSize::F32, v), sp())}); });
  EXPECT_EQ(e3.message(), read_outside);
  EXPECT_EQ(e3.span().line, v.line);
  Span w = sp();
  Block indexed = {assign(access("y", access("x", I(0), ElemSize::I64, sp()), ElemSize::F32, w), F(1.0), sp())};
  CompileError e4 = error_of([&] { check_host_code(indexed); });
  EXPECT_EQ(e4.message(), write_outside);
  EXPECT_EQ(e4.span().line, w.line);

  auto par = copy(for_loop("i", I(0), I(4), 1, {assign(access("x", V("i"), ElemSize::F32, sp()), F(0.0), sp())}, sp()));
  par->par.nthreads = 4;
  EXPECT_NO_THROW(check_host_code({par}));
  EXPECT_NO_THROW(check_host_code({with_gpu({assign(access("x", I(0), ElemSize::F32, sp()), F(0.0), sp())}, sp())}));
}

TEST(GpuHostCode, ThroughLowerPointsAtTheSubscript) {
  Expr sub = S("x", {I(0)});
  Span at = sub->span;
  Function f = fn("f", {"x", "y"}, {A(sub, F(1.0)), For("i", 0, 8, {A(S("y", {V("i")}), F(0.0))}, {"N"})});
  CompileError e = error_of([&] { lower(f, {f32({8}), f32({8})}, cuda_opts({{"N", threads(8)}})); });
  EXPECT_EQ(e.message(), write_outside);
  EXPECT_EQ(e.span().line, at.line);
}

// =============================================================================================
// Reductions (docs/gpu.md, Reductions)

TEST(GpuReduce, BlockReduction) {
  auto opts = cuda_opts({{"O", threads(100)}, {"R", reduce_threads(128)}});
  GpuProgram p = gpu_program(row_sums(100, 1000), {f32({100, 1000}), f32({100})}, opts);
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].block_threads, 128);
  EXPECT_EQ(p.kernels[0].grid_blocks, 100);
  EXPECT_TRUE(p.scratch.empty());
  EXPECT_TRUE(names_call(p.kernels[0].body, "$block_reduce_add")) << all_kernels(p);
  EXPECT_FALSE(names_call(p.kernels[0].body, "$multiblock_reduce_")) << all_kernels(p);
  std::string code = cuda_code(row_sums(100, 1000), {f32({100, 1000}), f32({100})}, opts);
  EXPECT_TRUE(has(code, "parpy_block_reduce_add(")) << code;
  // The write-back is done by one thread.
  EXPECT_TRUE(has(code, "parpy_tid == 0")) << code;
}

// A reduction over at most 32 threads under parallel rows: on Cuda 4 rows of 32 lanes share a
// block of 128 threads (3 blocks for 10 rows), reducing within each row's warp; on Metal every row
// keeps a threadgroup of its own.
TEST(GpuReduce, WarpSizedReductionPacksRowsIntoBlocks) {
  auto opts = cuda_opts({{"O", threads(10)}, {"R", reduce_threads(20)}});
  GpuProgram p = gpu_program(row_sums(10, 64), {f32({10, 64}), f32({10})}, opts);
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].block_threads, 128);
  EXPECT_EQ(p.kernels[0].grid_blocks, 3);
  EXPECT_TRUE(names_call(p.kernels[0].body, "$group_reduce_add")) << all_kernels(p);
  EXPECT_FALSE(names_call(p.kernels[0].body, "$block_reduce_add")) << all_kernels(p);
  EXPECT_FALSE(names_call(p.kernels[0].body, "$syncthreads")) << all_kernels(p);
  opts.backend = CompileBackend::Metal;
  GpuProgram m = gpu_program(row_sums(10, 64), {f32({10, 64}), f32({10})}, opts);
  ASSERT_EQ(m.kernels.size(), 1u);
  EXPECT_EQ(m.kernels[0].block_threads, 32);
  EXPECT_EQ(m.kernels[0].grid_blocks, 10);
  EXPECT_TRUE(names_call(m.kernels[0].body, "$block_reduce_add")) << all_kernels(m);
}

TEST(GpuReduce, MaxReductionUsesItsSuffix) {
  Function f = fn("f", {"x", "out"},
                  {For("i", 0, 10,
                       {For("j", 0, 64,
                            {A(S("out", {V("i")}),
                               binop(BinOp::Max, S("out", {V("i")}), S("x", {V("i"), V("j")}), sp()))},
                            {"R"})},
                       {"O"})});
  GpuProgram p = gpu_program(f, {f32({10, 64}), f32({10})}, cuda_opts({{"O", threads(10)}, {"R", reduce_threads(64)}}));
  EXPECT_TRUE(names_call(p.kernels[0].body, "$block_reduce_max")) << all_kernels(p);
}

TEST(GpuReduce, MultiBlockReduction) {
  // inner reduce threads(1024).tpb(128) under outer 100: 8 blocks per row, 800 blocks in all,
  // partials for each (row, block) and one zeroed counter per row.
  auto opts = cuda_opts({{"O", threads(100)}, {"R", reduce_threads(1024, 128)}});
  GpuProgram p = gpu_program(row_sums(100, 5000), {f32({100, 5000}), f32({100})}, opts);
  ASSERT_EQ(p.kernels.size(), 1u) << all_kernels(p);
  EXPECT_EQ(p.kernels[0].block_threads, 128);
  EXPECT_EQ(p.kernels[0].grid_blocks, 800);
  EXPECT_TRUE(names_call(p.kernels[0].body, "$multiblock_reduce_add")) << all_kernels(p);
  ASSERT_EQ(p.scratch.size(), 2u);
  const Scratch* partials = nullptr;
  const Scratch* counters = nullptr;
  for (const auto& s : p.scratch) (s.zeroed ? counters : partials) = &s;
  ASSERT_NE(partials, nullptr);
  ASSERT_NE(counters, nullptr);
  EXPECT_EQ(partials->count, 800);
  EXPECT_EQ(partials->elem, ElemSize::F32);
  EXPECT_EQ(counters->count, 100);
  EXPECT_TRUE(counters->zeroed);
  // Both buffers are kernel parameters.
  int scratch_params = 0;
  for (const auto& prm : p.kernels[0].params)
    if (prm.name == partials->name || prm.name == counters->name) ++scratch_params;
  EXPECT_EQ(scratch_params, 2);

  std::string code = cuda_code(row_sums(100, 5000), {f32({100, 5000}), f32({100})}, opts);
  EXPECT_TRUE(has(code, "parpy_multiblock_reduce_add(")) << code;
  EXPECT_TRUE(has(code, "cudaMemset(")) << code;  // the counters start at zero
  EXPECT_TRUE(has(code, "800 * sizeof(float)")) << code;
}

// More rows than outer workers: a block runs several rows, and may reach its next row's reduction
// before the last block of this row has read the partials, so every row has slots of its own (found
// by the Cuda fuzzer: the rows after the first pass kept their initial value).
TEST(GpuReduce, MultiBlockReductionSlotsPerIterationNotPerWorker) {
  auto opts = cuda_opts({{"O", threads(8)}, {"R", reduce_threads(1024, 128)}});
  GpuProgram p = gpu_program(row_sums(12, 5000), {f32({12, 5000}), f32({12})}, opts);
  ASSERT_EQ(p.kernels.size(), 1u) << all_kernels(p);
  EXPECT_EQ(p.kernels[0].grid_blocks, 64);
  const Scratch* partials = nullptr;
  const Scratch* counters = nullptr;
  for (const auto& s : p.scratch) (s.zeroed ? counters : partials) = &s;
  ASSERT_NE(partials, nullptr);
  ASSERT_NE(counters, nullptr);
  EXPECT_EQ(partials->count, 12 * 8);
  EXPECT_EQ(counters->count, 12);
}

TEST(GpuReduce, MultiBlockReductionAfterItsInitialisationStaysOneKernel) {
  // for i (100): out[i] = 0.0; for j (threads 1024, tpb 256, reduce): out[i] += x[i, j]
  // The initialisation is narrowed to the first thread of the row's first block.
  Function f = fn("f", {"x", "out"},
                  {For("i", 0, 100,
                       {A(S("out", {V("i")}), F(0.0)),
                        For("j", 0, 5000, {A(S("out", {V("i")}), add(S("out", {V("i")}), S("x", {V("i"), V("j")})))},
                            {"R"})},
                       {"O"})});
  GpuProgram p = gpu_program(f, {f32({100, 5000}), f32({100})},
                             cuda_opts({{"O", threads(100)}, {"R", reduce_threads(1024, 256)}}));
  ASSERT_EQ(p.kernels.size(), 1u) << all_kernels(p);
  EXPECT_EQ(p.kernels[0].grid_blocks, 400);
  EXPECT_TRUE(names_call(p.kernels[0].body, "$multiblock_reduce_add")) << all_kernels(p);
  std::string body = all_kernels(p);
  EXPECT_TRUE(has(body, "if (($tid == 0) and (($bid % 4) == 0)):\n    out[i] = 0.0")) << body;
}

TEST(GpuReduce, MultiBlockReductionAtTopLevel) {
  // One reduce loop of 4096 workers into s[0]: 4 blocks, one partial each, one counter.
  Function f = fn("f", {"x", "s"},
                  {For("j", 0, 100000, {A(S("s", {I(0)}), add(S("s", {I(0)}), S("x", {V("j")})))}, {"R"})});
  GpuProgram p = gpu_program(f, {f32({100000}), f32({1})}, cuda_opts({{"R", reduce_threads(4096)}}));
  ASSERT_EQ(p.kernels.size(), 1u) << all_kernels(p);
  EXPECT_EQ(p.kernels[0].grid_blocks, 4);
  EXPECT_TRUE(names_call(p.kernels[0].body, "$multiblock_reduce_add")) << all_kernels(p);
  ASSERT_EQ(p.scratch.size(), 2u);
  int64_t partial_count = -1, counter_count = -1;
  for (const auto& s : p.scratch) (s.zeroed ? counter_count : partial_count) = s.count;
  EXPECT_EQ(partial_count, 4);
  EXPECT_EQ(counter_count, 1);
}

TEST(GpuReduce, F16AccumulatesInF32) {
  auto opts = cuda_opts({{"O", threads(10)}, {"R", reduce_threads(64)}});
  std::vector<ArgValue> args = {array_arg(ElemSize::F16, {10, 64}), array_arg(ElemSize::F16, {10})};
  GpuProgram p = gpu_program(row_sums(10, 64), args, opts);
  bool acc32 = false;
  visit_block(p.kernels[0].body, [&](const Stmt& s) {
    if (s->kind == StmtKind::Assign && s->defines && s->lhs->kind == ExprKind::Var &&
        s->lhs->name.rfind("$acc", 0) == 0 && s->lhs->ty.elem == ElemSize::F32)
      acc32 = true;
  });
  EXPECT_TRUE(acc32) << all_kernels(p);
}

// =============================================================================================
// Narrowing and barriers (docs/gpu.md, Synchronisation and kernel splits)

void expect_no_adjacent_barriers(const GpuProgram& p) {
  for (const auto& k : p.kernels)
    each_list(k.body, [&](const Block& b) {
      for (size_t i = 1; i < b.size(); ++i)
        EXPECT_FALSE(is_sync(b[i - 1]) && is_sync(b[i])) << "two barriers in a row in " << k.name << ":\n"
                                                         << print_block(k.body);
    });
}

TEST(GpuSync, StoreInSequentialKernelCodeIsNarrowedAndFollowedByABarrier) {
  // label O; for i in range(100): y[i, 0] = 0.0; label P; for j in range(128): y[i, j] += x[i, j]
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 100,
                       {A(S("y", {V("i"), I(0)}), F(0.0)),
                        For("j", 0, 128, {A(S("y", {V("i"), V("j")}), add(S("y", {V("i"), V("j")}), S("x", {V("i"), V("j")})))},
                            {"P"})},
                       {"O"})});
  auto opts = cuda_opts({{"O", threads(100)}, {"P", threads(128)}});
  GpuProgram p = gpu_program(f, {f32({100, 128}), f32({100, 128})}, opts);
  ASSERT_EQ(p.kernels.size(), 1u);
  // Find the outer loop's body: [if (tid == 0) {store}, sync, inner loop, ...].
  const Block* outer_body = nullptr;
  visit_block(p.kernels[0].body, [&](const Stmt& s) {
    if (s->kind == StmtKind::For && s->var == "i") outer_body = &s->body;
  });
  ASSERT_NE(outer_body, nullptr) << all_kernels(p);
  ASSERT_GE(outer_body->size(), 3u) << all_kernels(p);
  const Stmt& first = (*outer_body)[0];
  ASSERT_EQ(first->kind, StmtKind::If) << all_kernels(p);
  EXPECT_EQ(print_expr(first->cond), "($tid == 0)") << all_kernels(p);
  ASSERT_EQ(first->body.size(), 1u);
  EXPECT_EQ(first->body[0]->lhs->kind, ExprKind::Access);
  EXPECT_TRUE(is_sync((*outer_body)[1])) << all_kernels(p);
  expect_no_adjacent_barriers(p);

  std::string code = cuda_code(f, {f32({100, 128}), f32({100, 128})}, opts);
  EXPECT_TRUE(has(code, "if ((parpy_tid == 0))") || has(code, "if (parpy_tid == 0)")) << code;
  EXPECT_TRUE(has(code, "parpy_syncthreads();")) << code;
}

TEST(GpuSync, ReadsAndLoopsInSequentialCodeGetOneBarrierEach) {
  // for i (100): s = x[i, 0]; for j (120): y[i, j] = s; x[i, 0] = 1.0; for j (120): y[i, j] += x[i, j]
  // (120 elements over 128 threads: the loops stay loops, see cache_rows)
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 100,
                       {A(V("s"), S("x", {V("i"), I(0)})),
                        For("j", 0, 120, {A(S("y", {V("i"), V("j")}), V("s"))}, {"P"}),
                        A(S("x", {V("i"), I(0)}), F(1.0)),
                        For("k", 0, 120, {A(S("y", {V("i"), V("k")}), add(S("y", {V("i"), V("k")}), S("x", {V("i"), V("k")})))},
                            {"P"})},
                       {"O"})});
  auto opts = cuda_opts({{"O", threads(100)}, {"P", threads(128)}});
  GpuProgram p = gpu_program(f, {f32({100, 128}), f32({100, 128})}, opts);
  ASSERT_EQ(p.kernels.size(), 1u);
  expect_no_adjacent_barriers(p);
  const Block* outer_body = nullptr;
  visit_block(p.kernels[0].body, [&](const Stmt& s) {
    if (s->kind == StmtKind::For && s->var == "i") outer_body = &s->body;
  });
  ASSERT_NE(outer_body, nullptr);
  // Every statement that reads/writes memory or holds a parallel loop (other than a barrier)
  // is directly followed by a barrier, except possibly the last one.
  const Block& b = *outer_body;
  for (size_t i = 0; i + 1 < b.size(); ++i) {
    if (is_sync(b[i])) continue;
    EXPECT_TRUE(is_sync(b[i + 1])) << "statement " << i << " not followed by a barrier:\n" << print_block(b);
  }
  // The narrowed store of x[i, 0] is there.
  int narrowed = 0;
  for (const auto& s : b)
    if (s->kind == StmtKind::If && print_expr(s->cond) == "($tid == 0)") ++narrowed;
  EXPECT_EQ(narrowed, 1) << print_block(b);
  std::string code = cuda_code(f, {f32({100, 128}), f32({100, 128})}, opts);
  EXPECT_FALSE(has(code, "parpy_syncthreads();\n    parpy_syncthreads();")) << code;
}

TEST(GpuSync, NoBarriersInsideThreadParallelCode) {
  // A plain one-layer loop: the body runs per thread, no barrier and no narrowing.
  GpuProgram p = gpu_program(copy_loop(0, 128), {f32({128}), f32({128})}, cuda_opts({{"N", threads(128)}}));
  bool sync = false, narrowed = false;
  visit_block(p.kernels[0].body, [&](const Stmt& s) {
    sync = sync || is_sync(s);
    narrowed = narrowed || (s->kind == StmtKind::If && has(print_expr(s->cond), "$tid == 0"));
  });
  EXPECT_FALSE(sync) << all_kernels(p);
  EXPECT_FALSE(narrowed) << all_kernels(p);
}

// =============================================================================================
// Splitting kernels (docs/gpu.md, Synchronisation and kernel splits)

TEST(GpuSplit, TwoWideInnerLoopsBecomeSeveralKernelsWithScratchForSharedLocal) {
  // for i in range(10) [O]: s = x[i, 0]; for j (4096) [P]: y[i, j] = x[i, j] + s;
  //                        for j (4096) [P]: z[i, j] = y[i, 4095 - j] * s
  Function f = fn("f", {"x", "y", "z"},
                  {For("i", 0, 10,
                       {A(V("s"), S("x", {V("i"), I(0)})),
                        For("j", 0, 4096, {A(S("y", {V("i"), V("j")}), add(S("x", {V("i"), V("j")}), V("s")))}, {"P"}),
                        For("j", 0, 4096,
                            {A(S("z", {V("i"), V("j")}),
                               mul(S("y", {V("i"), binop(BinOp::Sub, I(4095), V("j"), sp())}), V("s")))},
                            {"P"})},
                       {"O"})});
  std::vector<ArgValue> args = {f32({10, 4096}), f32({10, 4096}), f32({10, 4096})};
  auto opts = cuda_opts({{"O", threads(10)}, {"P", threads(4096, 1024)}});
  GpuProgram p = gpu_program(f, args, opts);
  ASSERT_GE(p.kernels.size(), 2u) << all_kernels(p);
  EXPECT_EQ(p.host.size(), p.kernels.size());
  for (const auto& h : p.host) EXPECT_EQ(h->kind, StmtKind::Launch);
  // The loops over 4096 workers run in 10 * 4 blocks of 1024.
  int wide = 0;
  for (const auto& k : p.kernels)
    if (k.grid_blocks == 40 && k.block_threads == 1024) ++wide;
  EXPECT_EQ(wide, 2) << all_kernels(p);
  // s lives in a scratch array with one element per row (trip count 10), not zeroed.
  ASSERT_EQ(p.scratch.size(), 1u);
  EXPECT_TRUE(has(p.scratch[0].name, "shared_s")) << p.scratch[0].name;
  EXPECT_EQ(p.scratch[0].count, 10);
  EXPECT_EQ(p.scratch[0].elem, ElemSize::F32);
  EXPECT_FALSE(p.scratch[0].zeroed);
  // Every kernel that uses s takes the scratch array.
  int users = 0;
  for (const auto& k : p.kernels)
    for (const auto& prm : k.params)
      if (prm.name == p.scratch[0].name) ++users;
  EXPECT_EQ(users, 3) << all_kernels(p);
  // No kernel uses s as a free scalar parameter.
  for (const auto& k : p.kernels)
    for (const auto& prm : k.params) EXPECT_NE(prm.name, "s");
  EXPECT_NO_THROW(lower(f, args, opts));
}

TEST(GpuSplit, ScratchIsSizedByTripCountNotWorkers) {
  // outer threads(4) over range(2, 22, 2) (10 trips).
  Function f = fn("f", {"x", "y"},
                  {For("i", 2, 22,
                       {A(V("s"), S("x", {V("i"), I(0)})),
                        For("j", 0, 2048, {A(S("y", {V("i"), V("j")}), V("s"))}, {"P"}),
                        For("j", 0, 2048, {A(S("x", {V("i"), V("j")}), add(S("y", {V("i"), V("j")}), V("s")))}, {"P"})},
                       {"O"}, 2)});
  GpuProgram p = gpu_program(f, {f32({22, 2048}), f32({22, 2048})},
                             cuda_opts({{"O", threads(4)}, {"P", threads(2048)}}));
  ASSERT_EQ(p.scratch.size(), 1u) << all_kernels(p);
  EXPECT_EQ(p.scratch[0].count, 10);
}

// Each iteration of the outer loop runs on the blocks of the middle layer: the two middle loops
// are cut into two kernels over the outer loop, and each keeps its three layers.
TEST(GpuSplit, ThreeLevelNestWithTwoMiddleLoopsIsSplitIntoKernels) {
  // for i (10) [O]: { for k (4) [M]: for j (4096) [P]: y[..] = x[..] ; for k (4) [M]: for j [P]: x[..] = y[..] }
  auto ix = [] { return std::vector<Expr>{V("i"), V("k"), V("j")}; };
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 10,
                       {For("k", 0, 4, {For("j", 0, 4096, {A(S("y", ix()), S("x", ix()))}, {"P"})}, {"M"}),
                        For("k", 0, 4, {For("j", 0, 4096, {A(S("x", ix()), S("y", ix()))}, {"P"})}, {"M"})},
                       {"O"})});
  GpuProgram p = gpu_program(f, {f32({10, 4, 4096}), f32({10, 4, 4096})},
                             cuda_opts({{"O", threads(10)}, {"M", threads(4)}, {"P", threads(4096)}}));
  ASSERT_EQ(p.kernels.size(), 2u) << all_kernels(p);
  for (const auto& k : p.kernels) {
    EXPECT_EQ(k.block_threads, 1024);
    EXPECT_EQ(k.grid_blocks, 10 * 4 * 4);
  }
  EXPECT_TRUE(has(print_block(p.kernels[0].body), "y[")) << all_kernels(p);
  EXPECT_TRUE(has(print_block(p.kernels[1].body), "x[")) << all_kernels(p);
}

// With one block per middle iteration, statements between parallel loops of an outer layer still
// run on several blocks: a gpu block's parallel loop over blocks followed by a store is two
// kernels, so the store runs once and after every block (found by the Cuda fuzzer).
TEST(GpuSplit, StatementAfterAParallelLoopOverBlocksInAGpuBlockIsItsOwnKernel) {
  // with gpu: { for i (8) [N]: { s = 1; for r (4) [R] reduce: s = s + x[r] ; y[i] = s } ; z[0] = z[0] * 2 }
  Stmt red = For("r", 0, 4, {A(V("s"), add(V("s"), S("x", {V("r")})))}, {"R"});
  Stmt outer = For("i", 0, 4, {A(V("s"), F(1.0)), red, A(S("y", {V("i")}), V("s"))}, {"N"});
  Stmt after = A(S("z", {I(0)}), mul(S("z", {I(0)}), F(2.0)));
  Function f = fn("f", {"x", "y", "z"}, {with_gpu({outer, after}, sp())});
  auto opts = cuda_opts({{"N", threads(8)}, {"R", reduce_threads(32)}});
  GpuProgram p = gpu_program(f, {f32({4}), f32({4}), f32({1})}, opts);
  ASSERT_EQ(p.kernels.size(), 2u) << all_kernels(p);
  // The 8 rows of 32 lanes run 4 to a block (rows packed into blocks).
  EXPECT_EQ(p.kernels[0].grid_blocks, 2) << all_kernels(p);
  EXPECT_EQ(p.kernels[0].block_threads, 128) << all_kernels(p);
  EXPECT_EQ(p.kernels[1].grid_blocks, 1) << all_kernels(p);
  EXPECT_TRUE(has(print_block(p.kernels[1].body), "z[0]")) << all_kernels(p);
  EXPECT_FALSE(has(print_block(p.kernels[0].body), "z[0]")) << all_kernels(p);
}

// A middle loop holding two wide inner loops needs a barrier across blocks between them.
TEST(GpuSplit, ThreeLevelNestWithTwoWideInnerLoopsInTheMiddleLoopFails) {
  auto ix = [] { return std::vector<Expr>{V("i"), V("k"), V("j")}; };
  auto rev = [] {
    return std::vector<Expr>{V("i"), V("k"), binop(BinOp::Sub, I(4095), V("j"), sp())};
  };
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 10,
                       {For("k", 0, 4,
                            {For("j", 0, 4096, {A(S("y", ix()), S("x", ix()))}, {"P"}),
                             For("j", 0, 4096, {A(S("x", ix()), S("y", rev()))}, {"P"})},
                            {"M"})},
                       {"O"})});
  CompileError e = error_of([&] {
    gpu_program(f, {f32({10, 4, 4096}), f32({10, 4, 4096})},
                cuda_opts({{"O", threads(10)}, {"M", threads(4)}, {"P", threads(4096)}}));
  });
  EXPECT_TRUE(has(e.message(), "nested in another parallel loop")) << e.message();
}

// =============================================================================================
// Parallel structure errors (docs/gpu.md, Grid and blocks)

// Siblings whose innermost loops ask for different thread counts share one kernel as wide as the
// widest; the narrower loop guards its threads, and the barrier after it and the block reduction
// of the wider one stay outside every guard, so all threads of the block reach them.
TEST(GpuStructure, SiblingsWithDifferentInnerThreadCountsAreGuarded) {
  Stmt map = For("j", 0, 100, {A(S("y", {V("i"), V("j")}), mul(S("x", {V("i"), V("j")}), F(2.0)))}, {"A"});
  Stmt red = For("j", 0, 100, {A(S("z", {V("i")}), add(S("z", {V("i")}), S("y", {V("i"), V("j")})))}, {"B"});
  Function f = fn("f", {"x", "y", "z"}, {For("i", 0, 10, {map, red}, {"O"})});
  std::vector<ArgValue> args{f32({10, 100}), f32({10, 100}), f32({10})};
  auto opts = cuda_opts({{"O", threads(10)}, {"A", threads(32)}, {"B", reduce_threads(64)}});
  GpuProgram p = gpu_program(f, args, opts);
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].block_threads, 64);
  EXPECT_EQ(p.kernels[0].grid_blocks, 10);
  int guards = 0;
  visit_block(p.kernels[0].body, [&](const Stmt& s) {
    if (s->kind != StmtKind::If) return;
    std::string cond = print_expr(s->cond);
    if (has(cond, "$w1 < 32")) ++guards;
    EXPECT_FALSE(has(cond, "$w1 < 64")) << all_kernels(p);
    EXPECT_FALSE(names_call(s->body, "$block_reduce_")) << all_kernels(p);
    visit_block(s->body, [&](const Stmt& x) { EXPECT_FALSE(is_sync(x)) << all_kernels(p); });
  });
  EXPECT_EQ(guards, 1) << all_kernels(p);
  EXPECT_TRUE(names_call(p.kernels[0].body, "$block_reduce_add")) << all_kernels(p);
  std::string code = cuda_code(f, args, opts);
  EXPECT_TRUE(has(code, "k += 32") || has(code, "j += 32")) << code;
  // The reduction's loop strides by 64: four of its iterations per round (it only adds in a register).
  EXPECT_TRUE(has(code, "parpy_u0 * 64;")) << code;
  // A narrower reduction: its partial loop is guarded, the all-reduce is not.
  GpuProgram q =
      gpu_program(f, args, cuda_opts({{"O", threads(10)}, {"A", threads(100)}, {"B", reduce_threads(40)}}));
  ASSERT_EQ(q.kernels.size(), 1u);
  EXPECT_EQ(q.kernels[0].block_threads, 128);
  EXPECT_TRUE(has(all_kernels(q), "$w1 < 100")) << all_kernels(q);
  EXPECT_TRUE(has(all_kernels(q), "$w1 < 40")) << all_kernels(q);
  visit_block(q.kernels[0].body, [&](const Stmt& s) {
    if (s->kind == StmtKind::If) EXPECT_FALSE(names_call(s->body, "$block_reduce_")) << all_kernels(q);
  });
}

TEST(GpuStructure, SiblingsWithDifferentOuterLayers) {
  auto inner = [](const std::string& label) {
    return For("j", 0, 4, {For("k", 0, 64, {A(S("x", {V("i"), V("j"), V("k")}), F(0.0))}, {"K"})}, {label});
  };
  Function f = fn("f", {"x"}, {For("i", 0, 10, {inner("P1"), inner("P2")}, {"O"})});
  CompileError e = error_of([&] {
    gpu_program(f, {f32({10, 4, 64})},
                cuda_opts({{"O", threads(10)}, {"P1", threads(4)}, {"P2", threads(2)}, {"K", threads(64)}}));
  });
  EXPECT_EQ(e.message().rfind("Found inconsistent parallel structures: ParLayer { threads: 4, tpb: 1024 } != "
                              "ParLayer { threads: 2, tpb: 1024 }\n",
                              0),
            0u)
      << e.message();
  EXPECT_EQ(e.kind(), ErrorKind::Runtime);
  // The same outer layers with different inner ones are fine. Each middle loop runs on blocks of
  // its own, so the second waits for every block of the first: a kernel each.
  GpuProgram p =
      gpu_program(f, {f32({10, 4, 64})},
                  cuda_opts({{"O", threads(10)}, {"P1", threads(4)}, {"P2", threads(4)}, {"K", threads(64)}}));
  EXPECT_EQ(p.kernels.size(), 2u) << all_kernels(p);
}

TEST(GpuStructure, BranchesWithDifferentStructure) {
  Expr c = binop(BinOp::Gt, V("i"), I(4), sp());
  Function f = fn("f", {"x"},
                  {For("i", 0, 10,
                       {if_stmt(c, {For("j", 0, 32, {A(S("x", {V("i"), V("j")}), F(0.0))}, {"A"})},
                                {For("j", 0, 64, {A(S("x", {V("i"), V("j")}), F(1.0))}, {"B"})}, sp())},
                       {"O"})});
  // Branches differing in the innermost layer share a kernel of the wider one's threads.
  GpuProgram p =
      gpu_program(f, {f32({10, 64})}, cuda_opts({{"O", threads(10)}, {"A", threads(32)}, {"B", threads(64)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].block_threads, 64);
  EXPECT_TRUE(has(all_kernels(p), "$w1 < 32")) << all_kernels(p);
  // Branches differing in depth are an error.
  Function d = fn("d", {"x"},
                  {For("i", 0, 10,
                       {if_stmt(binop(BinOp::Gt, V("i"), I(4), sp()),
                                {For("j", 0, 32, {A(S("x", {V("i"), V("j")}), F(0.0))}, {"A"})},
                                {For("j", 0, 2,
                                     {For("k", 0, 32,
                                          {A(S("x", {V("i"), binop(BinOp::Add, binop(BinOp::Mul, V("j"), I(32), sp()),
                                                                   V("k"), sp())}),
                                             F(1.0))},
                                          {"A"})},
                                     {"B"})},
                                sp())},
                       {"O"})});
  CompileError e = error_of([&] {
    gpu_program(d, {f32({10, 64})}, cuda_opts({{"O", threads(10)}, {"A", threads(32)}, {"B", threads(2)}}));
  });
  EXPECT_EQ(e.message().rfind("Found branches with inconsistent parallel structure: ", 0), 0u) << e.message();
  EXPECT_TRUE(has(e.message(), "ParLayer { threads: 32, tpb: 1024 }")) << e.message();
  EXPECT_TRUE(has(e.message(), "ParLayer { threads: 2, tpb: 1024 }")) << e.message();
  // A branch with no parallelism is accepted.
  Function g = fn("g", {"x"},
                  {For("i", 0, 10,
                       {if_stmt(binop(BinOp::Gt, V("i"), I(4), sp()),
                                {For("j", 0, 32, {A(S("x", {V("i"), V("j")}), F(0.0))}, {"A"})},
                                {A(S("x", {V("i"), I(0)}), F(1.0))}, sp())},
                       {"O"})});
  EXPECT_NO_THROW(gpu_program(g, {f32({10, 64})}, cuda_opts({{"O", threads(10)}, {"A", threads(32)}})));
}

TEST(GpuStructure, InconsistentTpb) {
  CompileError e = error_of([&] {
    gpu_program(nest(100, 128), {f32({100, 128}), f32({100, 128})},
                cuda_opts({{"O", threads(100, 256)}, {"P", threads(128, 512)}}));
  });
  EXPECT_EQ(e.message(), "Found inconsistent threads per block 256 and 512 among labels within parallel statements.");
  EXPECT_EQ(e.kind(), ErrorKind::Runtime);
  // The default 1024 is a wildcard.
  GpuProgram p = gpu_program(nest(100, 1024), {f32({100, 1024}), f32({100, 1024})},
                             cuda_opts({{"O", threads(100)}, {"P", threads(1024, 256)}}));
  EXPECT_EQ(p.kernels[0].block_threads, 256);
  EXPECT_EQ(p.kernels[0].grid_blocks, 400);
}

TEST(GpuStructure, TpbAbove1024) {
  CompileError e = error_of([&] {
    gpu_program(copy_loop(0, 4096), {f32({4096}), f32({4096})}, cuda_opts({{"N", threads(4096, 2048)}}));
  });
  EXPECT_EQ(e.message(), "The number of threads per block 2048 exceeds the maximum of 1024 supported by the GPU.");
  EXPECT_EQ(e.kind(), ErrorKind::Runtime);
}

// =============================================================================================
// CUDA text (docs/differences.md, Generated code and runtime)

TEST(GpuCudaText, Fp16HeaderOnlyWhenF16Appears) {
  std::string f32code = cuda_code(copy_loop(0, 64), {f32({64}), f32({64})}, cuda_opts({{"N", threads(64)}}));
  EXPECT_FALSE(has(f32code, "cuda_fp16.h")) << f32code;
  std::string f16code = cuda_code(copy_loop(0, 64), {array_arg(ElemSize::F16, {64}), array_arg(ElemSize::F16, {64})},
                                  cuda_opts({{"N", threads(64)}}));
  EXPECT_TRUE(has(f16code, "#include <cuda_fp16.h>")) << f16code;
  EXPECT_TRUE(has(f16code, "__half")) << f16code;
  // f16 only on one argument is enough.
  std::string mixed = cuda_code(copy_loop(0, 64), {array_arg(ElemSize::F16, {64}), f32({64})},
                                cuda_opts({{"N", threads(64)}}));
  EXPECT_TRUE(has(mixed, "#include <cuda_fp16.h>")) << mixed;
}

TEST(GpuCudaText, Fp16HeaderForAnF16ScalarLocal) {
  // With force_float_size = F16 a local `s = 2.5` is a __half scalar though every array is f32.
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 64, {A(V("s"), F(2.5)), A(S("y", {V("i")}), mul(S("x", {V("i")}), V("s")))}, {"N"})});
  auto o = cuda_opts({{"N", threads(64)}});
  o.force_float_size = ElemSize::F16;
  std::string code = cuda_code(f, {f32({64}), f32({64})}, o);
  EXPECT_TRUE(has(code, "__half v_s;")) << code;
  EXPECT_TRUE(has(code, "#include <cuda_fp16.h>")) << code;
}

TEST(GpuCudaText, EntryAndErrorSymbols) {
  Function f = copy_loop(0, 64);
  f.name = "saxpy";
  Lowered l = lower(f, {f32({64}), f32({64})}, cuda_opts({{"N", threads(64)}}));
  EXPECT_EQ(l.entry_symbol, "parpy_entry_saxpy");
  EXPECT_EQ(l.error_symbol, "parpy_error_saxpy");
  EXPECT_TRUE(has(l.code, "extern \"C\" int32_t parpy_entry_saxpy(void** args, void* stream, int32_t device)")) << l.code;
  EXPECT_TRUE(has(l.code, "extern \"C\" const char* parpy_error_saxpy()")) << l.code;
  EXPECT_TRUE(has(l.code, "#include \"parpy_cuda.h\"")) << l.code;
  EXPECT_TRUE(has(l.code, "__global__ void __launch_bounds__(64)")) << l.code;
  EXPECT_TRUE(has(l.code, "PARPY_CHECK(cudaGetLastError()")) << l.code;
  EXPECT_EQ(l.written, std::vector<std::string>{"y"});
  ASSERT_EQ(l.params.size(), 2u);
}

TEST(GpuCudaText, ScalarParameterPassedToTheKernel) {
  // def f(x, y, n): label N; for i in range(n): y[i] = x[i] + 1.0 -- n is inlined as a literal.
  Function f = fn("f", {"x", "y", "n"},
                  {for_loop("i", I(0), V("n"), 1, {A(S("y", {V("i")}), add(S("x", {V("i")}), F(1.0)))}, sp(), {"N"})});
  Lowered l = lower(f, {f32({50}), f32({50}), int_arg(50)}, cuda_opts({{"N", threads(50)}}));
  EXPECT_TRUE(has(l.code, "i < 50")) << l.code;
  EXPECT_TRUE(has(l.code, "__launch_bounds__(64)")) << l.code;
}

// ---- 128-bit accesses and rows in registers ----

// for i (64): for j (1024): y[i, j] = x[i, j] + 1; for k (1024): y[i, k] = y[i, k] * x[i, k]
Function two_row_loops() {
  return fn("f", {"x", "y"},
            {For("i", 0, 64,
                 {For("j", 0, 1024, {A(S("y", {V("i"), V("j")}), add(S("x", {V("i"), V("j")}), F(1.0)))}, {"P"}),
                  For("k", 0, 1024, {A(S("y", {V("i"), V("k")}), mul(S("y", {V("i"), V("k")}), S("x", {V("i"), V("k")})))},
                      {"P"})},
                 {"O"})});
}

int count_stmts(const Block& b, const std::function<bool(const Stmt&)>& pred) {
  int n = 0;
  visit_block(b, [&](const Stmt& s) { n += pred(s) ? 1 : 0; });
  return n;
}

TEST(GpuVectorize, ContiguousRowsGetAnAlignedVariant) {
  GpuProgram p = gpu_program(two_row_loops(), {f32({64, 1024}), f32({64, 1024})},
                             cuda_opts({{"O", threads(64)}, {"P", threads(64)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  const Kernel& k = p.kernels[0];
  ASSERT_FALSE(k.vector_body.empty());
  EXPECT_EQ(k.alignment.at("x"), 16);
  EXPECT_EQ(k.alignment.at("y"), 16);
  std::string code = cuda_code(two_row_loops(), {f32({64, 1024}), f32({64, 1024})},
                               cuda_opts({{"O", threads(64)}, {"P", threads(64)}}));
  EXPECT_TRUE(has(code, "if (parpy_aligned(v_x, 16) && parpy_aligned(v_y, 16)) {")) << code;
  EXPECT_TRUE(has(code, "v_x = (float*)__builtin_assume_aligned(v_x, 16);")) << code;
}

TEST(GpuVectorize, TransposedAccessStaysScalar) {
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 64, {For("j", 0, 64, {A(S("y", {V("i"), V("j")}), S("x", {V("j"), V("i")}))}, {"P"})},
                       {"O"})});
  GpuProgram p = gpu_program(f, {f32({64, 64}), f32({64, 64})}, cuda_opts({{"O", threads(64)}, {"P", threads(64)}}));
  EXPECT_TRUE(p.kernels[0].vector_body.empty());
}

// y[i, j] = x[i, j - 1] + x[i, j + 1] over the interior columns 1 .. cols - 2: groups of four
// columns from column 0, the lanes outside the range masked.
Function interior_columns(int64_t cols) {
  Expr jm = binop(BinOp::Sub, V("j"), I(1), sp()), jp = add(V("j"), I(1));
  return fn("f", {"x", "y"},
            {For("i", 0, 64,
                 {For("j", 1, cols - 1, {A(S("y", {V("i"), V("j")}), add(S("x", {V("i"), jm}), S("x", {V("i"), jp})))},
                      {"P"})},
                 {"O"})});
}

TEST(GpuVectorize, InteriorColumnsRunInMaskedGroups) {
  CompileOptions o = cuda_opts({{"O", threads(64)}, {"P", threads(256)}});
  GpuProgram p = gpu_program(interior_columns(1024), {f32({64, 1024}), f32({64, 1024})}, o);
  const Kernel& k = p.kernels[0];
  ASSERT_FALSE(k.vector_body.empty());
  EXPECT_EQ(k.alignment.at("x"), 16);
  EXPECT_EQ(k.alignment.at("y"), 16);
  std::string code = cuda_code(interior_columns(1024), {f32({64, 1024}), f32({64, 1024})}, o);
  // Groups start at column 0; where the whole group is in range, four plain stores.
  EXPECT_TRUE(has(code, "v_j = (0 + (4 * parpy_w1)); v_j < 1023; v_j += 1024)")) << code;
  EXPECT_TRUE(has(code, "if (((v_j >= 1) && ((v_j + 4) <= 1023))) {")) << code;
  // Column j0 - 1 only where lane 0 is in range; j0 .. j0 + 3 whole (every lane reads one of them).
  EXPECT_TRUE(has(code, "(((v_j + 0) >= 1) ? v_x[")) << code;
  EXPECT_TRUE(has(code, "= v_x[((v_i * 1024) + ((v_j + 2) - 1))];")) << code;
}

TEST(GpuVectorize, RowsNotAMultipleOfTheLanesStayScalar) {
  // Rows of 1023 columns: a row's first column is not 16 bytes aligned.
  GpuProgram p = gpu_program(interior_columns(1023), {f32({64, 1023}), f32({64, 1023})},
                             cuda_opts({{"O", threads(64)}, {"P", threads(256)}}));
  EXPECT_TRUE(p.kernels[0].vector_body.empty()) << print_block(p.kernels[0].vector_body);
}

TEST(GpuVectorize, ArraysNotAMultipleOfTheLanesAreReadLaneByLane) {
  // 4099 elements: no 16 bytes of x are known to lie inside the array, so each read is guarded by
  // the lanes that read it (x[j0 + 1] by lanes 0 and 2), the stores still merged.
  Expr im = binop(BinOp::Sub, V("i"), I(1), sp()), ip = add(V("i"), I(1));
  Function f = fn("f", {"x", "y"}, {For("i", 1, 4098, {A(S("y", {V("i")}), add(S("x", {im}), S("x", {ip})))}, {"N"})});
  CompileOptions o = cuda_opts({{"N", threads(1024)}});
  GpuProgram p = gpu_program(f, {f32({4099}), f32({4099})}, o);
  ASSERT_FALSE(p.kernels[0].vector_body.empty());
  EXPECT_EQ(p.kernels[0].alignment.count("x"), 0u);
  EXPECT_EQ(p.kernels[0].alignment.at("y"), 16);
  std::string code = cuda_code(f, {f32({4099}), f32({4099})}, o);
  EXPECT_TRUE(has(code, "((((v_i + 0) >= 1) || ((v_i + 2) < 4098)) ? v_x[")) << code;
}

TEST(GpuVectorize, ArgumentsThatShareMemoryStayScalar) {
  std::vector<ArgValue> args = {f32({64, 1024}), f32({64, 1024})};
  args[0].shares_memory = args[1].shares_memory = true;
  GpuProgram p = gpu_program(interior_columns(1024), args, cuda_opts({{"O", threads(64)}, {"P", threads(256)}}));
  EXPECT_TRUE(p.kernels[0].vector_body.empty());
  EXPECT_TRUE(p.aliased.count("x") && p.aliased.count("y"));
}

TEST(GpuCacheRows, EachElementLoadedOnceAndStoredOnce) {
  // 1024 elements over 256 threads: 4 iterations per thread, unrolled; x read once, y written once.
  GpuProgram p = gpu_program(two_row_loops(), {f32({64, 1024}), f32({64, 1024})},
                             cuda_opts({{"O", threads(64)}, {"P", threads(256)}}));
  const Block& body = p.kernels[0].body;
  auto loads_of = [&](const std::string& a) {
    return count_stmts(body, [&](const Stmt& s) {
      return s->kind == StmtKind::Assign && s->rhs->kind == ExprKind::Access && s->rhs->name == a;
    });
  };
  int stores = count_stmts(body, [](const Stmt& s) {
    return s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Access && s->lhs->name == "y";
  });
  int inner_loops = count_stmts(body, [](const Stmt& s) { return s->kind == StmtKind::For && s->var != "i"; });
  EXPECT_EQ(loads_of("x"), 4) << print_block(body);
  EXPECT_EQ(loads_of("y"), 0) << print_block(body);
  EXPECT_EQ(stores, 4) << print_block(body);
  EXPECT_EQ(inner_loops, 0) << print_block(body);
}

TEST(GpuCacheRows, ElementsOfOtherThreadsAreNotCached) {
  // The second loop reads y[i, 1023 - k]: another thread's element, so y stays in memory.
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 64,
                       {For("j", 0, 1024, {A(S("y", {V("i"), V("j")}), S("x", {V("i"), V("j")}))}, {"P"}),
                        For("k", 0, 1024,
                            {A(S("x", {V("i"), V("k")}),
                               S("y", {V("i"), binop(BinOp::Sub, I(1023), V("k"), sp())}))},
                            {"P"})},
                       {"O"})});
  GpuProgram p = gpu_program(f, {f32({64, 1024}), f32({64, 1024})}, cuda_opts({{"O", threads(64)}, {"P", threads(256)}}));
  const Block& body = p.kernels[0].body;
  int y_stores = count_stmts(body, [](const Stmt& s) {
    return s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Access && s->lhs->name == "y";
  });
  std::string printed = print_block(body);
  EXPECT_EQ(y_stores, 4) << printed;  // unrolled (x is private) but every store of y kept
  EXPECT_TRUE(has(printed, "y[((i * 1024) + (1023 - ")) << printed;
}

// =============================================================================================
// 0-dim arrays left on the GPU: kernels load their element; a value that decides code is read

ArgValue on_gpu(ElemSize e, const std::string& path) {
  ArgValue a = array_arg(e, {});
  a.on_device = true;
  a.path = path;
  return a;
}
ArgValue zero_dim(ElemSize e, double v) {
  ArgValue a = array_arg(e, {});
  a.ival = static_cast<int64_t>(v);
  a.fval = v;
  return a;
}

// lower_call with `values` as the arguments with every value read; counts how often it asks.
struct LoweredCall {
  Lowered low;
  std::vector<std::string> reads;
  int read_all = 0;
};
LoweredCall lower_with(const Function& f, const std::vector<ArgValue>& args, const std::vector<ArgValue>& values,
                       const CompileOptions& opts) {
  LoweredCall c;
  c.low = lower_call(f, args, [&] { return ++c.read_all, values; }, c.reads, opts);
  return c;
}

// def f(x, y, g): label N; for i in range(lo, hi): y[i] = g * x[i]
Function scale_by(Expr g, Expr hi) {
  return fn("f", {"x", "y", "g"},
            {for_loop("i", I(0), std::move(hi), 1, {A(S("y", {V("i")}), mul(std::move(g), S("x", {V("i")})))}, sp(),
                      {"N"})});
}

TEST(DeviceScalars, KernelLoadsTheElementOnce) {
  Function f = scale_by(V("g"), I(256));
  std::vector<ArgValue> args{f32({256}), f32({256}), on_gpu(ElemSize::F32, "#3")};
  LoweredCall c = lower_with(f, args, {}, cuda_opts({{"N", threads(256)}}));
  EXPECT_EQ(c.read_all, 0);
  EXPECT_TRUE(c.reads.empty());
  ASSERT_EQ(c.low.params.size(), 3u);
  EXPECT_EQ(c.low.params[2].type, Type::tensor(ElemSize::F32, {1}));
  EXPECT_TRUE(c.low.params[2].on_device);
  EXPECT_EQ(c.low.written, std::vector<std::string>{"y"});
  const std::string& code = c.low.code;
  EXPECT_TRUE(has(code, "float* v_g")) << code;
  EXPECT_TRUE(has(code, "*(float**)args[2]")) << code;  // the argument is a pointer to the element
  // Each kernel variant loads g[0] once, before its loop, and the loop uses the local.
  EXPECT_GE(count_of(code, "parpy_scalar_g = v_g[0];"), 1u) << code;
  EXPECT_EQ(count_of(code, "v_g[0]"), count_of(code, "parpy_scalar_g = v_g[0];")) << code;
  EXPECT_TRUE(has(code, "(parpy_scalar_g * v_x[v_i])")) << code;
  GpuProgram p = gpu_program(f, args, cuda_opts({{"N", threads(256)}}));
  ASSERT_EQ(p.kernels.size(), 1u);
  bool g_param = false;
  for (const auto& prm : p.kernels[0].params) g_param = g_param || (prm.name == "g" && prm.type.is_array());
  EXPECT_TRUE(g_param);
}

TEST(DeviceScalars, ParallelLoopBoundIsReadInTheKernel) {
  // The grid comes from threads(256); the bound only ends each thread's grid-stride loop.
  Function f = fn("f", {"x", "y", "n"},
                  {for_loop("i", I(0), V("n"), 1, {A(S("y", {V("i")}), S("x", {V("i")}))}, sp(), {"N"})});
  LoweredCall c = lower_with(f, {f32({256}), f32({256}), on_gpu(ElemSize::I32, "#3")}, {},
                             cuda_opts({{"N", threads(256)}}));
  EXPECT_EQ(c.read_all, 0);
  EXPECT_TRUE(has(c.low.code, "int32_t* v_n")) << c.low.code;
  // A bound known only at run time: the threads share the iteration numbers (docs/language.md,
  // Statements), the bound read once.
  EXPECT_TRUE(has(c.low.code, " = ((int64_t)parpy_scalar_n);")) << c.low.code;
  EXPECT_TRUE(has(c.low.code, "parpy_trips(")) << c.low.code;
}

TEST(DeviceScalars, DictField) {
  Function f = scale_by(subscript(V("d"), {string_lit("gamma", sp())}, sp()), I(64));
  f.params[2].name = "d";
  ArgValue d;
  d.kind = ArgValue::Kind::Dict;
  d.fields = {{"gamma", on_gpu(ElemSize::F64, "#3[\"gamma\"]")}, {"n", int_arg(64)}};
  LoweredCall c = lower_with(f, {f32({64}), f32({64}), d}, {}, cuda_opts({{"N", threads(64)}}));
  EXPECT_EQ(c.read_all, 0);
  EXPECT_TRUE(has(c.low.code, "double* v_d_gamma")) << c.low.code;
  EXPECT_TRUE(has(c.low.code, "parpy_scalar_d_gamma = v_d_gamma[0];")) << c.low.code;
}

TEST(DeviceScalars, HostLoopBoundIsReadAndSpecialised) {
  // for t in range(n) (host): label N; for i in range(64): y[i] = g * x[i]
  Function f = fn("f", {"x", "y", "n", "g"},
                  {for_loop("t", I(0), V("n"), 1,
                            {For("i", 0, 64, {A(S("y", {V("i")}), mul(V("g"), S("x", {V("i")})))}, {"N"})}, sp())});
  std::vector<ArgValue> args{f32({64}), f32({64}), on_gpu(ElemSize::I64, "#3"), on_gpu(ElemSize::F32, "#4")};
  std::vector<ArgValue> values{f32({64}), f32({64}), zero_dim(ElemSize::I64, 5), zero_dim(ElemSize::F32, 0.5)};
  LoweredCall c = lower_with(f, args, values, cuda_opts({{"N", threads(64)}}));
  EXPECT_EQ(c.read_all, 1);
  // Only n decides code: g stays on the GPU.
  EXPECT_EQ(c.reads, std::vector<std::string>{"#3"});
  EXPECT_TRUE(has(c.low.code, "v_t < 5")) << c.low.code;
  EXPECT_TRUE(has(c.low.code, "parpy_scalar_g = v_g[0];")) << c.low.code;
  EXPECT_FALSE(c.low.params[2].on_device);
  EXPECT_TRUE(c.low.params[3].on_device);
}

TEST(DeviceScalars, HostUseInAConditionIsRead) {
  // if g > 0.0 (host): label N; for i in range(64): y[i] = x[i]
  Function f = fn("f", {"x", "y", "g"},
                  {if_stmt(binop(BinOp::Gt, V("g"), F(0.0), sp()),
                           {For("i", 0, 64, {A(S("y", {V("i")}), S("x", {V("i")}))}, {"N"})}, {}, sp())});
  LoweredCall c = lower_with(f, {f32({64}), f32({64}), on_gpu(ElemSize::F32, "#3")},
                             {f32({64}), f32({64}), zero_dim(ElemSize::F32, -1.0)}, cuda_opts({{"N", threads(64)}}));
  EXPECT_EQ(c.reads, std::vector<std::string>{"#3"});
  EXPECT_FALSE(has(c.low.code, "v_g[0]")) << c.low.code;
}

TEST(DeviceScalars, BoundsOfALoopSplitIntoKernelsAreRead) {
  // label O; for i in range(n): (label P; for j: y[i, j] = x[i, j]) (label P; for j: x[i, j] = y[i, j])
  // with 2048 inner threads: two kernels over i, which need i's bounds at compile time.
  Block inner = {For("j", 0, 2048, {A(S("y", {V("i"), V("j")}), S("x", {V("i"), V("j")}))}, {"P"}),
                 For("j", 0, 2048, {A(S("x", {V("i"), V("j")}), S("y", {V("i"), V("j")}))}, {"P"})};
  Function f = fn("f", {"x", "y", "n"}, {for_loop("i", I(0), V("n"), 1, inner, sp(), {"O"})});
  CompileOptions o = cuda_opts({{"O", threads(4)}, {"P", threads(2048)}});
  LoweredCall c = lower_with(f, {f32({4, 2048}), f32({4, 2048}), on_gpu(ElemSize::I64, "#3")},
                             {f32({4, 2048}), f32({4, 2048}), zero_dim(ElemSize::I64, 4)}, o);
  EXPECT_EQ(c.reads, std::vector<std::string>{"#3"});
  EXPECT_TRUE(has(c.low.code, "void __launch_bounds__(1024) parpy_kernel_f_k1(")) << c.low.code;
  EXPECT_FALSE(has(c.low.code, "int64_t* v_n")) << c.low.code;
}

TEST(DeviceScalars, SliceBoundIsRead) {
  // label N; y[:n] = x[:n]: the slice's extent is the parallel loop's trip count.
  Function f = fn("f", {"x", "y", "n"},
                  {A(S("y", {sl(nullptr, V("n"))}), S("x", {sl(nullptr, V("n"))}), {"N"})});
  LoweredCall c = lower_with(f, {f32({64}), f32({64}), on_gpu(ElemSize::I64, "#3")},
                             {f32({64}), f32({64}), zero_dim(ElemSize::I64, 40)}, cuda_opts({{"N", threads(64)}}));
  EXPECT_EQ(c.reads, std::vector<std::string>{"#3"});
  EXPECT_TRUE(has(c.low.code, "< 40")) << c.low.code;
}

TEST(DeviceScalars, AnErrorWhateverTheValuesIsReported) {
  // An unknown name fails with every value read too: that error is the call's.
  Function f = scale_by(add(V("g"), V("z")), I(64));
  CompileError e = error_of([&] {
    lower_with(f, {f32({64}), f32({64}), on_gpu(ElemSize::F32, "#3")},
               {f32({64}), f32({64}), zero_dim(ElemSize::F32, 2.0)}, cuda_opts({{"N", threads(64)}}));
  });
  EXPECT_EQ(e.kind(), ErrorKind::Name);
  EXPECT_TRUE(has(e.message(), "unknown variable z")) << e.message();
}

// ---------------------------------------------------------------------------------------------
// geometry: layers to threads, blocks and clusters

TEST(GpuGeometry, LayersToThreadsBlocksAndClusters) {
  GpuTarget none, clusters;
  clusters.max_cluster_blocks = 8;
  Geometry g = geometry({10, 5000}, 1024, none, sp());
  EXPECT_EQ(g.k, 1u);
  EXPECT_EQ(g.threads, 1024);
  EXPECT_EQ(g.inner_blocks, 5);  // 5000 threads in blocks of 1024
  EXPECT_EQ(g.outer, 10);
  EXPECT_EQ(g.grid_blocks(), 50);
  EXPECT_FALSE(g.cluster);
  EXPECT_EQ(g.cluster_blocks(), 1);
  Geometry c = geometry({10, 5000}, 1024, clusters, sp());
  EXPECT_TRUE(c.cluster);
  EXPECT_EQ(c.cluster_blocks(), 5);
  EXPECT_FALSE(geometry({10, 9000}, 1024, clusters, sp()).cluster);  // 9 blocks: more than a cluster holds
  Geometry narrow = geometry({33}, 1024, none, sp());
  EXPECT_EQ(narrow.threads, 64);  // whole warps
  EXPECT_EQ(narrow.grid_blocks(), 1);
  Geometry tpb = geometry({4, 300}, 128, none, sp());
  EXPECT_EQ(tpb.threads, 128);
  EXPECT_EQ(tpb.inner_blocks, 3);
  EXPECT_EQ(tpb.grid_blocks(), 12);
  CompileError e = error_of([&] { geometry({INT64_MAX / 2, 1 << 20}, 1024, none, sp()); });
  EXPECT_NE(e.message().find("thread blocks, more than a GPU grid can hold"), std::string::npos) << e.message();
}

TEST(GpuGeometry, RowsPackedIntoBlocks) {
  GpuTarget none;
  auto packed = [&](std::vector<int64_t> layers, int64_t tpb) { return pack_rows(geometry(layers, tpb, none, sp()), tpb); };
  Geometry g = packed({1003, 8}, 1024);  // 16 rows of 8 lanes per block of 128 threads (kPackedBlock)
  EXPECT_TRUE(g.packed());
  EXPECT_EQ(g.group, 8);
  EXPECT_EQ(g.rows, 16);
  EXPECT_EQ(g.threads, kPackedBlock);
  EXPECT_EQ(g.grid_blocks(), 63);  // ceil(1003 / 16)
  EXPECT_EQ(g.row_threads(), 8);
  Geometry odd = packed({1000, 24}, 1024);  // groups of whole powers of two
  EXPECT_EQ(odd.group, 32);
  EXPECT_EQ(odd.rows, 4);
  Geometry tpb = packed({1000, 16}, 256);  // the user's block size
  EXPECT_EQ(tpb.threads, 256);
  EXPECT_EQ(tpb.rows, 16);
  Geometry few = packed({3, 4}, 1024);  // the smallest block of whole warps that holds them
  EXPECT_EQ(few.threads, 32);
  EXPECT_EQ(few.rows, 8);
  EXPECT_EQ(few.grid_blocks(), 1);
  Geometry nest = packed({10, 20, 32}, 1024);  // the rows are the iterations of every outer layer
  EXPECT_EQ(nest.outer, 200);
  EXPECT_EQ(nest.grid_blocks(), 50);
  EXPECT_FALSE(packed({1000, 33}, 1024).packed());  // more than a warp: a block per row
  EXPECT_FALSE(packed({1, 32}, 1024).packed());     // one row
  EXPECT_FALSE(packed({32}, 1024).packed());        // no rows
  EXPECT_FALSE(packed({1000, 32}, 32).packed());    // one row per block anyway
}

TEST(GpuGeometry, RowsOfWholeWarpsPackedIntoTheBlocksAsked) {
  GpuTarget none;
  auto packed = [&](std::vector<int64_t> layers, int64_t tpb) { return pack_warps(geometry(layers, tpb, none, sp()), tpb); };
  Geometry g = packed({64, 510, 128}, 256);  // strips x rows, 128 columns: two rows per block of 256
  EXPECT_TRUE(g.packed_warps());
  EXPECT_EQ(g.group, 128);
  EXPECT_EQ(g.rows, 2);
  EXPECT_EQ(g.threads, 256);
  EXPECT_EQ(g.grid_blocks(), 64 * 510 / 2);
  EXPECT_EQ(g.row_threads(), 128);
  Geometry odd = packed({1001, 100}, 512);  // rows of whole warps (128 threads), the last block's rows cut
  EXPECT_EQ(odd.group, 128);
  EXPECT_EQ(odd.rows, 4);
  EXPECT_EQ(odd.grid_blocks(), 251);
  Geometry three = packed({10, 96}, 320);  // as many rows as fit, not a power of two
  EXPECT_EQ(three.rows, 3);
  EXPECT_EQ(three.threads, 288);
  EXPECT_EQ(packed({3, 64}, 1024).packed(), false);     // no block size asked
  EXPECT_EQ(packed({1000, 32}, 256).packed(), false);   // a warp or less: pack_rows
  EXPECT_EQ(packed({1000, 160}, 256).packed(), false);  // one row fills more than half a block
  EXPECT_EQ(packed({1, 64}, 256).packed(), false);      // one row
  EXPECT_EQ(packed({1000, 2048}, 256).packed(), false); // a row spans blocks
}

}  // namespace
}  // namespace parpy
