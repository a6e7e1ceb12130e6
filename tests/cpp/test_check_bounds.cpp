// check_bounds through lower(): indices proved in range are left alone, indices proved out of
// range for an iteration that runs are an Index error, and with bounds_check the rest are wrapped
// in $bounds_check (docs/language.md, Index bounds).
#include <gtest/gtest.h>

#include "ir_builders.h"
#include "lower.h"

namespace parpy {
namespace {

using namespace parpy::testing;

CompileOptions cpu_opts(bool bounds_check = false) {
  CompileOptions o;
  o.backend = CompileBackend::Cpu;
  o.parallelize = {{"N", threads(4)}};
  o.bounds_check = bounds_check;
  return o;
}

Expr sub(Expr a, Expr b) { return binop(BinOp::Sub, std::move(a), std::move(b), sp()); }
Expr lt(Expr a, Expr b) { return binop(BinOp::Lt, std::move(a), std::move(b), sp()); }

// for i in range(n): y[i] = x[index]
Function copy_with(Expr index, int64_t n) {
  return fn("f", {"x", "y"}, {For("i", 0, n, {A(S("y", {V("i")}), S("x", {std::move(index)}))}, {"N"})});
}

TEST(CheckBounds, ShiftedIndexPastTheEndIsAnIndexError) {
  CompileError e = error_of([] { lower(copy_with(add(V("i"), I(1)), 10), {f32({10}), f32({10})}, cpu_opts()); });
  EXPECT_EQ(e.kind(), ErrorKind::Index);
  EXPECT_TRUE(has(e.message(), "takes the values 1 to 10, but dimension 0 of x has extent 10")) << e.message();
}

TEST(CheckBounds, ProvedIndicesHaveNoChecks) {
  for (Expr ix : {add(V("i"), I(1)), sub(I(10), V("i")), binop(BinOp::Mod, add(V("i"), I(7)), I(11), sp())}) {
    Lowered l = lower(copy_with(ix, 10), {f32({11}), f32({10})}, cpu_opts(true));
    EXPECT_TRUE(l.bounds_sites.empty()) << l.code;
    EXPECT_FALSE(has(l.code, "parpy_bounds")) << l.code;
  }
}

TEST(CheckBounds, GuardedIndexIsProved) {
  // for i in range(10): if i + 1 < 10: y[i] = x[i + 1]
  Function f = fn("f", {"x", "y"},
                  {For("i", 0, 10,
                       {if_stmt(lt(add(V("i"), I(1)), I(10)), {A(S("y", {V("i")}), S("x", {add(V("i"), I(1))}))}, {},
                                sp())},
                       {"N"})});
  Lowered l = lower(f, {f32({10}), f32({10})}, cpu_opts(true));
  EXPECT_TRUE(l.bounds_sites.empty()) << l.code;
}

TEST(CheckBounds, EmptyLoopIsNotAnError) {
  Lowered l = lower(copy_with(add(V("i"), I(100)), 0), {f32({10}), f32({10})}, cpu_opts(true));
  EXPECT_TRUE(l.bounds_sites.empty()) << l.code;
}

TEST(CheckBounds, DataDependentIndexIsCheckedOnlyWhenAsked) {
  Function f = copy_with(S("k", {V("i")}), 10);
  f.params.push_back({"k", std::nullopt, sp()});
  std::vector<ArgValue> args{f32({10}), f32({10}), array_arg(ElemSize::I64, {10})};
  Lowered plain = lower(f, args, cpu_opts());
  EXPECT_FALSE(has(plain.code, "parpy_bounds")) << plain.code;
  Lowered checked = lower(f, args, cpu_opts(true));
  ASSERT_EQ(checked.bounds_sites.size(), 1u);
  EXPECT_EQ(checked.bounds_sites[0].extent, 10);
  EXPECT_TRUE(has(checked.code, "v_x[parpy_bounds_check(parpy_bounds, v_k[v_i], 10, 1)]")) << checked.code;
  EXPECT_TRUE(has(checked.code, "return parpy_bounds_report(parpy_bounds);")) << checked.code;
  EXPECT_EQ(checked.bounds_symbol, "parpy_bounds_f");
}

}  // namespace
}  // namespace parpy
