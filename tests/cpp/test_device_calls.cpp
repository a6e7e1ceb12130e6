// Unit tests of jit helpers and externals on the Cuda backend (docs/language.md, Functions):
// lower_helpers' callee facts, check_device_calls' errors, the arrays written through calls,
// and the __device__ functions and headers in the printed CUDA. No GPU is needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/ir.h"
#include "ir/options.h"
#include "lower.h"
#include "passes/lower_helpers.h"
#include "passes/specialize.h"
#include "ir_builders.h"

namespace parpy {
namespace {

using namespace parpy::testing;

Param annotated(const std::string& name, Type t) { return {name, std::move(t), sp()}; }

// def setrow(r: pointer(F32), n: I64, v: F32): for j in range(n): r[j] = v; return v
FunctionRef setrow() {
  auto h = std::make_shared<Function>();
  h->name = "setrow";
  h->params = {annotated("r", Type::pointer(ElemSize::F32)), annotated("n", Type::scalar(ElemSize::I64)),
               annotated("v", Type::scalar(ElemSize::F32))};
  h->body = {for_loop("j", I(0), V("n"), 1, {A(S("r", {V("j")}), V("v"))}, sp()), return_stmt(V("v"), sp())};
  h->span = sp();
  return h;
}

// def twice(a: F32): return a * 2
FunctionRef twice() {
  auto h = std::make_shared<Function>();
  h->name = "twice";
  h->params = {annotated("a", Type::scalar(ElemSize::F32))};
  h->body = {return_stmt(binop(BinOp::Mul, V("a"), I(2), sp()), sp())};
  h->span = sp();
  return h;
}

ExternalRef device_external(const std::string& name, LoopPar par = {}) {
  auto d = std::make_shared<ExternalDecl>();
  d->name = name;
  d->ext_name = "my_" + name;
  d->backend = CompileBackend::Cuda;
  d->header = "my.h";
  d->params = {annotated("p", Type::pointer(ElemSize::F32)), annotated("n", Type::scalar(ElemSize::I64))};
  d->ret = Type::scalar(ElemSize::F32);
  d->par = par;
  return d;
}

Function main_fn(Block body) {
  Function f;
  f.name = "f";
  f.params = {{"x", std::nullopt, sp()}, {"y", std::nullopt, sp()}};
  f.body = std::move(body);
  f.span = sp();
  f.helpers["setrow"] = setrow();
  f.helpers["twice"] = twice();
  f.externals["rowmax"] = {device_external("rowmax")};
  f.externals["wide"] = {device_external("wide", LoopPar{32, false, 1024})};
  return f;
}

const std::vector<ArgValue> kArgs = {f32({8, 5}), f32({8})};

TEST(DeviceCalls, CalleesKnowWhichPointersTheyWrite) {
  Function f = main_fn({For("i", 0, 8, {A(S("y", {V("i")}), call("setrow", {S("x", {V("i")}), I(5), F(2.0)}, sp()))},
                            {"N"})});
  Helpers h = lower_helpers_of(f, cuda_opts({{"N", LoopPar{8, false, 1024}}}));
  ASSERT_EQ(h.callees.count("parpy_helper_setrow"), 1u);
  EXPECT_EQ(h.callees.at("parpy_helper_setrow").writes, (std::vector<bool>{true, false, false}));
  EXPECT_FALSE(h.callees.at("parpy_helper_setrow").external);
  // An external may write any pointer it gets.
  EXPECT_EQ(h.callees.at("my_rowmax").writes, (std::vector<bool>{true, false}));
  EXPECT_TRUE(h.callees.at("my_rowmax").external);
  EXPECT_EQ(h.headers, std::vector<std::string>{"my.h"});
}

TEST(DeviceCalls, HelpersBecomeDeviceFunctionsAndTheirWritesAreCopiedBack) {
  // x is written only through the helper's pointer parameter.
  Function f = main_fn({For("i", 0, 8, {A(S("y", {V("i")}), call("setrow", {S("x", {V("i")}), I(5), F(2.0)}, sp()))},
                            {"N"})});
  Lowered low = lower(f, kArgs, cuda_opts({{"N", LoopPar{8, false, 1024}}}));
  EXPECT_TRUE(has(low.code, "static __device__ inline float parpy_helper_setrow(float* v_r, int64_t v_n, float v_v) {"))
      << low.code;
  EXPECT_LT(low.code.find("helper_setrow("), low.code.find("__global__"));
  EXPECT_TRUE(has(low.code, "parpy_helper_setrow((v_x + (v_i * 5)), 5, 2.0f)")) << low.code;
  EXPECT_NE(std::find(low.written.begin(), low.written.end(), "x"), low.written.end());
  EXPECT_NE(std::find(low.written.begin(), low.written.end(), "y"), low.written.end());
}

TEST(DeviceCalls, ExternalHeaderAndNameInTheKernel) {
  Function f = main_fn({For("i", 0, 8, {A(S("y", {V("i")}), call("rowmax", {S("x", {V("i")}), I(5)}, sp()))}, {"N"})});
  Lowered low = lower(f, kArgs, cuda_opts({{"N", LoopPar{8, false, 1024}}}));
  EXPECT_TRUE(has(low.code, "#include \"parpy_cuda.h\"\n#include \"my.h\"\n")) << low.code;
  EXPECT_TRUE(has(low.code, "v_y[v_i] = my_rowmax((v_x + (v_i * 5)), 5);")) << low.code;
}

TEST(DeviceCalls, PureHelperCallsNeedNoCopyBackOfTheirArguments) {
  Function f = main_fn({For("i", 0, 8, {A(S("y", {V("i")}), call("twice", {S("x", {V("i"), I(0)})}, sp()))}, {"N"})});
  Lowered low = lower(f, kArgs, cuda_opts({{"N", LoopPar{8, false, 1024}}}));
  EXPECT_EQ(low.written, std::vector<std::string>{"y"});
  EXPECT_TRUE(has(low.code, "static __device__ inline float parpy_helper_twice(float v_a) {")) << low.code;
}

TEST(DeviceCalls, LoopsPassingRowsToCallsAreNotVectorized) {
  auto opts = cuda_opts({{"N", LoopPar{8, false, 1024}}});
  Expr y_i = S("y", {V("i")});
  Function plain = main_fn({For("i", 0, 8, {A(y_i, binop(BinOp::Mul, y_i, F(2.0), sp()))}, {"N"})});
  EXPECT_TRUE(has(lower(plain, kArgs, opts).code, "f_k0_vec")) << lower(plain, kArgs, opts).code;
  // A row argument would be hoisted as if it were an element load.
  Expr row = call("rowmax", {S("x", {I(0)}), I(5)}, sp());
  Function f = main_fn({For("i", 0, 8, {A(y_i, binop(BinOp::Add, row, y_i, sp()))}, {"N"})});
  std::string code = lower(f, kArgs, opts).code;
  EXPECT_FALSE(has(code, "_vec")) << code;
  EXPECT_TRUE(has(code, "my_rowmax((v_x + 0), 5)")) << code;
}

TEST(DeviceCalls, HelperCallInHostCodeIsRejectedWithItsSpan) {
  Expr c = call("twice", {F(1.0)}, sp());
  Function f = main_fn({A(V("s"), c), For("i", 0, 8, {A(S("y", {V("i")}), V("s"))}, {"N"})});
  CompileError e = error_of([&] { lower(f, kArgs, cuda_opts({{"N", LoopPar{8, false, 1024}}})); });
  EXPECT_EQ(e.message(), "The jit function twice runs on the GPU, so it cannot be called outside parallel code.");
  EXPECT_EQ(e.span().line, c->span.line);
  // The Cpu backend runs host code on the CPU: the same program is fine there.
  CompileOptions cpu = cuda_opts({{"N", LoopPar{8, false, 1024}}});
  cpu.backend = CompileBackend::Cpu;
  EXPECT_NO_THROW(lower(f, kArgs, cpu));
}

TEST(DeviceCalls, ExternalCallInHostLoopBoundIsRejected) {
  Expr c = call("rowmax", {V("x"), I(5)}, sp());
  Function f = main_fn({for_loop("k", I(0), convert(c, Type::scalar(ElemSize::I64)), 1,
                                 {For("i", 0, 8, {A(S("y", {V("i")}), F(1.0))}, {"N"})}, sp())});
  CompileError e = error_of([&] { lower(f, kArgs, cuda_opts({{"N", LoopPar{8, false, 1024}}})); });
  EXPECT_EQ(e.message(), "The external function rowmax runs on the GPU, so it cannot be called outside parallel code.");
  EXPECT_EQ(e.span().line, c->span.line);
}

TEST(DeviceCalls, WritingHelperRunByEveryThreadOfABlockIsRejected) {
  // t = setrow(x[i], ...) sits between two parallel layers: every thread of the block runs it.
  Expr c = call("setrow", {S("x", {V("i")}), I(5), F(2.0)}, sp());
  Function f = main_fn({For("i", 0, 8,
                            {A(V("t"), c), For("j", 0, 5, {A(S("x", {V("i"), V("j")}), F(1.0))}, {"M"})},
                            {"N"})});
  auto opts = cuda_opts({{"N", LoopPar{8, false, 1024}}, {"M", LoopPar{32, false, 1024}}});
  CompileError e = error_of([&] { lower(f, kArgs, opts); });
  EXPECT_TRUE(has(e.message(), "The jit function setrow writes through a pointer parameter")) << e.message();
  EXPECT_EQ(e.span().line, c->span.line);
  // Stored to an array element it runs in one thread, and in the innermost loop once per iteration.
  Function ok = main_fn({For("i", 0, 8,
                             {A(S("y", {V("i")}), c), For("j", 0, 5, {A(S("x", {V("i"), V("j")}), F(1.0))}, {"M"})},
                             {"N"})});
  EXPECT_NO_THROW(lower(ok, kArgs, opts));
}

// A parallel external is an innermost layer of its threads: one row per block of 32 threads, all
// of which call it; one of them stores the result.
TEST(DeviceCalls, ParallelExternalAddsALayer) {
  Expr c = call("wide", {S("x", {V("i")}), I(5)}, sp());
  Function f = main_fn({For("i", 0, 8, {A(S("y", {V("i")}), c)}, {"N"})});
  Lowered low = lower(f, kArgs, cuda_opts({{"N", LoopPar{8, false, 1024}}}));
  EXPECT_TRUE(has(low.code, "__launch_bounds__(32)")) << low.code;
  EXPECT_TRUE(has(low.code, "<<<dim3(8), dim3(32), 0, parpy_stream>>>")) << low.code;
  size_t at = low.code.find("parpy_ext0 = my_wide((v_x + (v_i * 5)), 5);");
  ASSERT_NE(at, std::string::npos) << low.code;
  EXPECT_LT(at, low.code.find("if ((parpy_tid == 0)) {", at)) << low.code;
  EXPECT_TRUE(has(low.code, "v_y[v_i] = parpy_ext0;")) << low.code;
}

TEST(DeviceCalls, ParallelExternalInAHelperIsRejected) {
  auto h = std::make_shared<Function>();
  h->name = "sum_row";
  h->params = {annotated("r", Type::pointer(ElemSize::F32))};
  Expr c = call("wide", {V("r"), I(5)}, sp());
  h->body = {return_stmt(c, sp())};
  h->span = sp();
  h->externals["wide"] = {device_external("wide", LoopPar{32, false, 1024})};
  Function f = main_fn({For("i", 0, 8, {A(S("y", {V("i")}), call("sum_row", {S("x", {V("i")})}, sp()))}, {"N"})});
  f.helpers["sum_row"] = h;
  CompileError e = error_of([&] { lower(f, kArgs, cuda_opts({{"N", LoopPar{8, false, 1024}}})); });
  EXPECT_EQ(e.message(),
            "The external function wide is declared with parallelize=threads(32), so the threads of a parallel loop "
            "call it together; the jit function sum_row runs in one thread and cannot call it. Call it in the "
            "parallel code of the main function instead.");
  EXPECT_EQ(e.span().line, c->span.line);
}

}  // namespace
}  // namespace parpy
