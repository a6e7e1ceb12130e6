// check_races on hand-built IR (after flatten_indices and resolve_par): which updates become
// atomic and their canonical form. The errors and the results of atomic programs are tested from
// Python (tests/python/test_races.py).
#include "ir_builders.h"
#include "passes/check_races.h"

namespace parpy {
namespace {

using namespace parpy::testing;

Type i64() { return Type::scalar(ElemSize::I64); }
Type f32() { return Type::scalar(ElemSize::F32); }
Expr iv(const std::string& n) { return var(n, sp(), i64()); }
Expr lit(int64_t v) { return int_lit(v, sp(), true, ElemSize::I64); }
Expr at(const std::string& a, Expr idx, ElemSize e = ElemSize::F32) {
  return access(a, std::move(idx), e, sp());
}
Expr op(BinOp o, Expr a, Expr b, Type t) { return binop(o, std::move(a), std::move(b), sp(), std::move(t)); }

Stmt par_loop(const std::string& v, int64_t n, Block body) {
  auto l = copy(For(v, 0, n, std::move(body), {"N"}));
  l->par = LoopPar{64, false, 1024};
  return l;
}

const std::map<std::string, Type> kArrays = {{"h", Type::tensor(ElemSize::F32, {16})},
                                             {"y", Type::tensor(ElemSize::F32, {100, 8})}};

TEST(CheckRaces, DataDependentUpdateBecomesAtomic) {
  // h[b[i]] = x[i] + h[b[i]]: the canonical form puts the element first.
  Expr bin = at("b", iv("i"), ElemSize::I64);
  Stmt upd = A(at("h", bin), op(BinOp::Add, at("x", iv("i")), at("h", bin), f32()));
  Block r = check_races({par_loop("i", 100, {upd})}, kArrays);
  const Stmt& s = r[0]->body.at(0);
  EXPECT_TRUE(s->atomic);
  EXPECT_EQ(print_block({s}), "atomic h[b[i]] = (h[b[i]] + x[i])\n");
}

TEST(CheckRaces, DistinctIndicesStayPlainStores) {
  // y[i, j] += x[j] with a sequential j: row i belongs to iteration i.
  Expr idx = op(BinOp::Add, op(BinOp::Mul, iv("i"), lit(8), i64()), iv("j"), i64());
  Stmt upd = A(at("y", idx), op(BinOp::Add, at("y", idx), at("x", iv("j")), f32()));
  Block r = check_races({par_loop("i", 100, {For("j", 0, 8, {upd})})}, kArrays);
  EXPECT_FALSE(r[0]->body.at(0)->body.at(0)->atomic);
  // A store that is not an update is never atomic.
  Stmt scatter = A(at("h", at("b", iv("i"), ElemSize::I64)), at("x", iv("i")));
  EXPECT_FALSE(check_races({par_loop("i", 100, {scatter})}, kArrays)[0]->body.at(0)->atomic);
}

TEST(CheckRaces, SequentialAndOneIterationLoopsAreNotChecked) {
  Stmt st = A(at("h", lit(0)), at("x", iv("i")));
  EXPECT_NO_THROW(check_races({For("i", 0, 100, {st})}, kArrays));
  EXPECT_NO_THROW(check_races({par_loop("i", 1, {st})}, kArrays));
  EXPECT_THROW(check_races({par_loop("i", 100, {st})}, kArrays), CompileError);
}

}  // namespace
}  // namespace parpy
