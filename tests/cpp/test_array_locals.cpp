// Unit tests of locals that name arrays (passes/array_locals.h): their types through lower_slices
// and typecheck, the aliases the GPU lowering follows (copy-back of arrays written through an
// alias, no vectorisation, row caching or map-reduce fusion across names that may share memory),
// and the errors. No GPU is needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/ir.h"
#include "ir/options.h"
#include "ir_builders.h"
#include "lower.h"
#include "passes/array_locals.h"
#include "passes/lower_helpers.h"
#include "passes/specialize.h"

namespace parpy {
namespace {

using namespace parpy::testing;

bool contains(const std::vector<std::string> &v, const std::string &s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

Stmt If(Expr c, Block body) { return if_stmt(std::move(c), std::move(body), {}, sp()); }

// def f(x, a, b): d = a; for i in range(n) (N): d[i] = x[i] * 2
// or, choosing in host code: for k in range(2): d = a; if k == 1: d = b; for i ...
Function write_through(bool branch, int64_t n) {
  Block body{A(V("d"), V("a"))};
  if (branch)
    body.push_back(If(binop(BinOp::Eq, V("k"), I(1), sp()), {A(V("d"), V("b"))}));
  body.push_back(For("i", 0, n, {A(S("d", {V("i")}), mul(S("x", {V("i")}), F(2.0)))}, {"N"}));
  if (branch)
    body = {For("k", 0, 2, body)};
  return fn("f", {"x", "a", "b"}, std::move(body));
}

TEST(ArrayLocals, SlicesOfALocalUseTheShapeOfItsArrays) {
  // d = a; for i (N): out[i] = sum(d[i, :])
  Function f =
      fn("f", {"a", "out"},
         {A(V("d"), V("a")),
          For("i", 0, 4,
              {A(S("out", {V("i")}), reduce(ReduceOp::Sum, S("d", {V("i"), all()}), std::nullopt, sp()))},
              {"N"})});
  CompileOptions o;
  o.backend = CompileBackend::Cpu;
  o.parallelize = {{"N", threads(4)}};
  Lowered l = lower(f, {f32({4, 6}), f32({4})}, o);
  EXPECT_TRUE(has(l.code, "float* v_d;")) << l.code;
  EXPECT_TRUE(has(l.code, "v_d = v_a;")) << l.code;
  EXPECT_TRUE(has(l.code, "v_d[((v_i * 6) + parpy_slice_dim")) << l.code;
}

TEST(ArrayLocals, ArraysWrittenThroughALocalAreCopiedBack) {
  auto o = cuda_opts({{"N", threads(64)}});
  Lowered one = lower(write_through(false, 64), {f32({64}), f32({64}), f32({64})}, o);
  EXPECT_TRUE(contains(one.written, "a")) << one.code;
  EXPECT_FALSE(contains(one.written, "x"));
  // Chosen at run time in a kernel: either array may be written.
  Function chosen = write_through(true, 64);
  Block par{A(V("d"), V("a")), If(binop(BinOp::Gt, S("x", {V("i")}), F(0.0), sp()), {A(V("d"), V("b"))}),
            A(S("d", {V("i")}), S("x", {V("i")}))};
  chosen.body = {For("i", 0, 64, par, {"N"})};
  Lowered two = lower(chosen, {f32({64}), f32({64}), f32({64})}, o);
  EXPECT_TRUE(contains(two.written, "a")) << two.code;
  EXPECT_TRUE(contains(two.written, "b")) << two.code;
}

TEST(ArrayLocals, AccessesThroughAliasesAreNotVectorized) {
  auto o = cuda_opts({{"N", threads(1024)}});
  // Without the local the same loop is vectorised.
  Function plain = fn("f", {"x", "a", "b"},
                      {For("i", 0, 1024, {A(S("a", {V("i")}), mul(S("x", {V("i")}), F(2.0)))}, {"N"})});
  EXPECT_TRUE(has(lower(plain, {f32({1024}), f32({1024}), f32({1024})}, o).code, "f_k0_vec"));
  Lowered l = lower(write_through(true, 1024), {f32({1024}), f32({1024}), f32({1024})}, o);
  EXPECT_FALSE(has(l.code, "_vec")) << l.code;
  EXPECT_TRUE(has(l.code, "float* v_d;")) << l.code;
  EXPECT_TRUE(has(l.code, "<<<dim3(1), dim3(1024), 0, parpy_stream>>>(v_x, v_d)")) << l.code;
}

TEST(ArrayLocals, MapAndReductionThroughDifferentNamesAreNotFused) {
  // d = a; for i (N): { for j (M): a[i, j] = x[i, j]; s = 0; for j (R): s += d[i, (j + 1) % 8]; out[i] = s }
  auto o = cuda_opts({{"N", threads(4)}, {"M", threads(8)}, {"R", reduce_threads(8)}});
  Expr shifted = binop(BinOp::Mod, add(V("j"), I(1)), I(8), sp());
  auto reduction = [&](const std::string &array) {
    return with_gpu(
        {A(V("s"), F(0.0)), For("j", 0, 8, {A(V("s"), add(V("s"), S(array, {V("i"), shifted})))}, {"R"})},
        sp());
  };
  Block body{For("j", 0, 8, {A(S("a", {V("i"), V("j")}), S("x", {V("i"), V("j")}))}, {"M"}), reduction("d"),
             A(S("out", {V("i")}), V("s"))};
  Function f = fn("f", {"x", "a", "out"}, {A(V("d"), V("a")), For("i", 0, 4, body, {"N"})});
  std::vector<ArgValue> args{f32({4, 8}), f32({4, 8}), f32({4})};
  Lowered l = lower(f, args, o);
  EXPECT_FALSE(has(l.code, "fused")) << l.code;
  // Without the local, reading another array at the shifted index, the loops are fused.
  body[1] = reduction("x");
  Function other = fn("f", {"x", "a", "out"}, {For("i", 0, 4, body, {"N"})});
  EXPECT_TRUE(has(lower(other, args, o).code, "fused")) << lower(other, args, o).code;
}

TEST(ArrayLocals, HelperWritingThroughALocalWritesItsParameter) {
  // def h(r: pointer(F32)): q = r; q[0] = 1.0; return 0.0
  auto h = std::make_shared<Function>();
  h->name = "h";
  h->params = {{"r", Type::pointer(ElemSize::F32), sp()}};
  h->body = {A(V("q"), V("r")), A(S("q", {I(0)}), F(1.0)), return_stmt(F(0.0), sp())};
  h->span = sp();
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 8, {A(S("y", {V("i")}), call("h", {S("x", {V("i")})}, sp()))}, {"N"})});
  f.helpers["h"] = h;
  Helpers hs = lower_helpers_of(f, cuda_opts({{"N", threads(8)}}));
  EXPECT_EQ(hs.callees.at("parpy_helper_h").writes, std::vector<bool>{true});
  Lowered l = lower(f, {f32({8, 3}), f32({8})}, cuda_opts({{"N", threads(8)}}));
  EXPECT_TRUE(contains(l.written, "x")) << l.code;
  EXPECT_TRUE(has(l.code, "float* v_q;")) << l.code;
}

TEST(ArrayLocals, AliasesFollowLocalsAssignedFromLocals) {
  Block b{A(with_type(V("p"), Type::tensor(ElemSize::F32, {4})),
            with_type(V("a"), Type::tensor(ElemSize::F32, {4}))),
          A(with_type(V("q"), Type::tensor(ElemSize::F32, {4})),
            with_type(V("p"), Type::tensor(ElemSize::F32, {4}))),
          A(with_type(V("p"), Type::tensor(ElemSize::F32, {4})),
            with_type(V("b"), Type::tensor(ElemSize::F32, {4})))};
  ArrayAliases al = array_aliases(b);
  EXPECT_EQ(al.at("q"), (std::set<std::string>{"p", "a", "b"}));
  EXPECT_EQ(al.at("p"), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(with_aliased({"q", "x"}, al), (std::set<std::string>{"q", "x", "p", "a", "b"}));
}

TEST(ArrayLocals, MismatchedArraysAreATypeError) {
  Function f = write_through(true, 4);
  CompileError e =
      error_of([&] { lower(f, {f32({4}), f32({4}), f32({5})}, cuda_opts({{"N", threads(4)}})); });
  EXPECT_EQ(e.kind(), ErrorKind::Type);
  EXPECT_TRUE(has(e.message(), "all arrays that d may name must have the same element type and shape"))
      << e.message();
}

}  // namespace
}  // namespace parpy
