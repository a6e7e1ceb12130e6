// Unit tests of the IR: constructors, printers, rewriting helpers, types and error rendering.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "ir/affine.h"
#include "ir/error.h"
#include "ir/intrinsics.h"
#include "ir/ir.h"
#include "ir/types.h"

namespace parpy {
namespace {

namespace fs = std::filesystem;

Span at(int line, int col, int end_line, int end_col, const std::string& file = "t.py") {
  Span s;
  s.file = std::make_shared<const std::string>(file);
  s.line = line;
  s.col = col;
  s.end_line = end_line;
  s.end_col = end_col;
  return s;
}

Expr v(const std::string& n) { return var(n, {}); }
Expr i64(int64_t x) { return int_lit(x, {}); }

// ---------------------------------------------------------------------------------------------
// print_expr

TEST(PrintExpr, Literals) {
  EXPECT_EQ(print_expr(i64(42)), "42");
  EXPECT_EQ(print_expr(i64(-3)), "-3");
  EXPECT_EQ(print_expr(float_lit(1.0, {})), "1.0");
  EXPECT_EQ(print_expr(float_lit(2.5, {})), "2.5");
  EXPECT_EQ(print_expr(float_lit(HUGE_VAL, {})), "inf");
  EXPECT_EQ(print_expr(float_lit(-HUGE_VAL, {})), "-inf");
  EXPECT_EQ(print_expr(bool_lit(true, {})), "True");
  EXPECT_EQ(print_expr(bool_lit(false, {})), "False");
  EXPECT_EQ(print_expr(string_lit("key", {})), "\"key\"");
  EXPECT_EQ(print_expr(nullptr), "");
}

TEST(PrintExpr, Operators) {
  EXPECT_EQ(print_expr(binop(BinOp::Add, v("x"), i64(2), {})), "(x + 2)");
  EXPECT_EQ(print_expr(binop(BinOp::FloorDiv, v("a"), v("b"), {})), "(a // b)");
  EXPECT_EQ(print_expr(binop(BinOp::Max, v("a"), v("b"), {})), "max(a, b)");
  EXPECT_EQ(print_expr(binop(BinOp::Atan2, v("a"), v("b"), {})), "atan2(a, b)");
  EXPECT_EQ(print_expr(unop(UnOp::Neg, v("x"), {})), "-(x)");
  EXPECT_EQ(print_expr(unop(UnOp::Not, v("c"), {})), "not (c)");
  EXPECT_EQ(print_expr(unop(UnOp::Exp, v("x"), {})), "exp(x)");
  EXPECT_EQ(print_expr(if_expr(v("c"), v("a"), v("b"), {})), "(a if c else b)");
  EXPECT_EQ(print_expr(convert(v("x"), Type::scalar(ElemSize::F32))), "float32(x)");
  EXPECT_EQ(print_expr(call("f", {v("x"), i64(1)}, {})), "f(x, 1)");
  EXPECT_EQ(print_expr(neutral(ReduceOp::Max, v("x"), {})), "neutral_max");
  EXPECT_EQ(print_expr(access("x", v("i"), ElemSize::F32, {})), "x[i]");
}

TEST(PrintExpr, SubscriptsSlicesReductions) {
  EXPECT_EQ(print_expr(subscript(v("x"), {v("i"), v("j")}, {})), "x[i, j]");
  EXPECT_EQ(print_expr(subscript(v("x"), {slice(nullptr, nullptr, {})}, {})), "x[:]");
  EXPECT_EQ(print_expr(subscript(v("x"), {slice(i64(1), nullptr, {}), slice(nullptr, i64(3), {})}, {})),
            "x[1:, :3]");
  EXPECT_EQ(print_expr(reduce(ReduceOp::Sum, subscript(v("x"), {slice(nullptr, nullptr, {})}, {}),
                              std::nullopt, {})),
            "sum(x[:])");
  EXPECT_EQ(print_expr(reduce(ReduceOp::Prod, v("x"), 1, {})), "prod(x, axis=1)");
  EXPECT_EQ(print_expr(tuple({v("a"), v("b")}, {})), "a, b");
}

// ---------------------------------------------------------------------------------------------
// print_block / print_function

TEST(PrintBlock, LoopsAndLabels) {
  Block b{for_loop("i", i64(0), i64(10), 1, {assign(subscript(v("y"), {v("i")}, {}), v("x"), {})}, {},
                   {"N"})};
  EXPECT_EQ(print_block(b), "label('N')\nfor i in range(0, 10, 1):\n  y[i] = x\n");
  EXPECT_EQ(print_block(b, 1), "  label('N')\n  for i in range(0, 10, 1):\n    y[i] = x\n");

  auto par = copy(b[0]);
  par->labels.clear();
  par->par.nthreads = 4;
  EXPECT_EQ(print_block({par}),
            "for i in range(0, 10, 1):  # LoopPar { nthreads: 4, reduction: false, tpb: 1024 }\n"
            "  y[i] = x\n");
}

TEST(PrintBlock, OtherStatements) {
  Block b{
      label_stmt("A", {}),
      if_stmt(v("c"), {assign(v("a"), i64(1), {})}, {assign(v("a"), i64(2), {})}, {}),
      while_loop(v("c"), {call_stmt(call("g", {v("a")}, {}), {})}, {}),
      with_gpu({return_stmt(v("a"), {})}, {}),
  };
  EXPECT_EQ(print_block(b),
            "label('A')\n"
            "if c:\n  a = 1\nelse:\n  a = 2\n"
            "while c:\n  g(a)\n"
            "with parpy.gpu:\n  return a\n");
}

TEST(PrintBlock, DefiningAssignmentShowsType) {
  auto s = copy(assign(var("t", {}, Type::scalar(ElemSize::F32)), v("x"), {}));
  EXPECT_EQ(print_block({s}), "t = x\n");  // not defining: no type comment
  s->defines = true;
  EXPECT_EQ(print_block({s}), "t = x  # float32\n");
}

TEST(PrintFunction, Header) {
  Function f;
  f.name = "f";
  f.params = {{"x", std::nullopt, {}}, {"n", Type::scalar(ElemSize::I64), {}}};
  f.body = {assign(v("a"), v("n"), {})};
  EXPECT_EQ(print_function(f), "def f(x, n: int64):\n  a = n\n");
}

// ---------------------------------------------------------------------------------------------
// map_expr / visit_expr / map_block_exprs / visit_block

TEST(MapExpr, IdentityKeepsNodes) {
  Expr e = binop(BinOp::Add, binop(BinOp::Mul, v("a"), v("b"), {}), v("c"), {});
  Expr r = map_expr(e, [](const Expr& x) { return x; });
  EXPECT_EQ(r.get(), e.get());
}

TEST(MapExpr, RebuildsOnlyChangedPath) {
  Expr left = binop(BinOp::Mul, v("a"), v("b"), {});
  Expr right = binop(BinOp::Sub, v("c"), v("d"), {});
  Expr e = binop(BinOp::Add, left, right, {});
  Expr r = map_expr(e, [](const Expr& x) -> Expr {
    if (x->kind == ExprKind::Var && x->name == "c") return var("z", x->span);
    return x;
  });
  EXPECT_NE(r.get(), e.get());
  EXPECT_EQ(r->args[0].get(), left.get());   // untouched subtree shared
  EXPECT_NE(r->args[1].get(), right.get());  // changed subtree rebuilt
  EXPECT_EQ(r->args[1]->args[1].get(), right->args[1].get());
  EXPECT_EQ(print_expr(r), "((a * b) + (z - d))");
  EXPECT_EQ(print_expr(e), "((a * b) + (c - d))");  // the original is unchanged
}

TEST(MapExpr, PostOrderSeesRewrittenChildren) {
  Expr e = binop(BinOp::Add, i64(1), i64(2), {});
  std::vector<std::string> seen;
  map_expr(e, [&](const Expr& x) {
    seen.push_back(print_expr(x));
    return x;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"1", "2", "(1 + 2)"}));
  EXPECT_EQ(map_expr(nullptr, [](const Expr& x) { return x; }), nullptr);
}

TEST(VisitExpr, PreOrder) {
  Expr e = binop(BinOp::Add, v("a"), unop(UnOp::Neg, v("b"), {}), {});
  std::vector<std::string> seen;
  visit_expr(e, [&](const Expr& x) { seen.push_back(print_expr(x)); });
  EXPECT_EQ(seen, (std::vector<std::string>{"(a + -(b))", "a", "-(b)", "b"}));
}

TEST(MapBlockExprs, RewritesAllPositions) {
  Block b{for_loop("i", v("lo"), v("hi"), 1,
                   {if_stmt(v("c"), {assign(v("a"), v("b"), {})}, {assign(v("a"), v("e"), {})}, {})},
                   {})};
  Block r = map_block_exprs(b, [](const Expr& e) { return var(e->name + "_", e->span); });
  EXPECT_EQ(print_block(r), "for i in range(lo_, hi_, 1):\n  if c_:\n    a_ = b_\n  else:\n    a_ = e_\n");
  std::vector<StmtKind> kinds;
  visit_block(r, [&](const Stmt& s) { kinds.push_back(s->kind); });
  EXPECT_EQ(kinds, (std::vector<StmtKind>{StmtKind::For, StmtKind::If, StmtKind::Assign, StmtKind::Assign}));
}

TEST(Constructors, Basics) {
  Expr l = int_lit(5, {}, false, ElemSize::I32);
  EXPECT_EQ(l->kind, ExprKind::Int);
  EXPECT_FALSE(l->weak);
  EXPECT_EQ(l->ty, Type::scalar(ElemSize::I32));
  EXPECT_TRUE(int_lit(5, {})->weak);
  EXPECT_EQ(float_lit(1.0, {})->ty, Type::scalar(ElemSize::F64));
  EXPECT_TRUE(is_literal(l));
  EXPECT_TRUE(is_literal(bool_lit(true, {})));
  EXPECT_FALSE(is_literal(v("x")));
  EXPECT_FALSE(is_literal(nullptr));
  Expr r = reduce(ReduceOp::Sum, v("x"), std::nullopt, {});
  EXPECT_FALSE(r->has_axis);
  Expr ra = reduce(ReduceOp::Sum, v("x"), -1, {});
  EXPECT_TRUE(ra->has_axis);
  EXPECT_EQ(ra->axis, -1);
  Expr w = with_type(v("x"), Type::scalar(ElemSize::F32));
  EXPECT_EQ(w->ty.elem, ElemSize::F32);
  Stmt s = for_loop("i", i64(0), i64(3), 2, {}, {}, {"a", "b"});
  EXPECT_EQ(s->step, 2);
  EXPECT_EQ(s->labels, (std::vector<std::string>{"a", "b"}));
  EXPECT_STREQ(binop_name(BinOp::Atan2), "atan2");
  EXPECT_STREQ(reduce_name(ReduceOp::Min), "min");
  EXPECT_TRUE(is_comparison(BinOp::Ge));
  EXPECT_FALSE(is_comparison(BinOp::Or));
  EXPECT_FALSE(is_comparison(BinOp::Max));
}

TEST(LoopParTest, StrAndEquality) {
  LoopPar p;
  EXPECT_FALSE(p.is_parallel());
  EXPECT_EQ(p.str(), "LoopPar { nthreads: 0, reduction: false, tpb: 1024 }");
  LoopPar q{64, true, 128};
  EXPECT_TRUE(q.is_parallel());
  EXPECT_EQ(q.str(), "LoopPar { nthreads: 64, reduction: true, tpb: 128 }");
  EXPECT_FALSE(p == q);
  EXPECT_TRUE(q == (LoopPar{64, true, 128}));
}

// ---------------------------------------------------------------------------------------------
// Types

TEST(TypeTest, Str) {
  EXPECT_EQ(Type::scalar(ElemSize::F32).str(), "float32");
  EXPECT_EQ(Type::tensor(ElemSize::I64, {2, 3}).str(), "int64 array of shape (2, 3)");
  EXPECT_EQ(Type::pointer(ElemSize::U8).str(), "pointer to uint8");
  EXPECT_EQ(Type::tensor(ElemSize::F64, {10}).str(), "float64 array of shape (10,)");
  EXPECT_EQ(Type::unknown().str(), "unknown type");
  EXPECT_EQ(Type::void_().str(), "None");
  EXPECT_EQ(Type::string().str(), "str");
  Type d;
  d.kind = Type::Kind::Dict;
  d.fields = {{"a", Type::scalar(ElemSize::I64)}, {"b", Type::tensor(ElemSize::F32, {4})}};
  EXPECT_EQ(d.str(),
            "dict {'a': int64, 'b': float32 array of shape (4,)}");
  ASSERT_NE(d.field("b"), nullptr);
  EXPECT_EQ(*d.field("b"), Type::tensor(ElemSize::F32, {4}));
  EXPECT_EQ(d.field("c"), nullptr);
}

TEST(TypeTest, PredicatesAndEquality) {
  Type s = Type::scalar(ElemSize::F32), a = Type::tensor(ElemSize::F32, {3});
  EXPECT_TRUE(s.is_scalar());
  EXPECT_TRUE(s.is_tensor());
  EXPECT_FALSE(s.is_array());
  EXPECT_TRUE(a.is_array());
  EXPECT_FALSE(a.is_scalar());
  EXPECT_TRUE(Type::unknown().is_unknown());
  EXPECT_TRUE(Type::pointer(ElemSize::F32).is_pointer());
  EXPECT_NE(s, a);
  EXPECT_NE(a, Type::tensor(ElemSize::F64, {3}));
  EXPECT_NE(a, Type::tensor(ElemSize::F32, {4}));
  EXPECT_EQ(a, Type::tensor(ElemSize::F32, {3}));
  EXPECT_EQ(Type::pointer(ElemSize::F32), Type::pointer(ElemSize::F32));
  EXPECT_NE(Type::pointer(ElemSize::F32), Type::pointer(ElemSize::F64));
  EXPECT_NE(Type::pointer(ElemSize::F32), s);
  EXPECT_EQ(Type::void_(), Type::void_());
  EXPECT_EQ(Type::tensor(ElemSize::I8, {2, 3, 4}).numel(), 24);
  EXPECT_EQ(s.numel(), 1);
}

TEST(ElemTest, Helpers) {
  EXPECT_TRUE(is_bool(ElemSize::Bool));
  EXPECT_FALSE(is_int(ElemSize::Bool));
  EXPECT_FALSE(is_float(ElemSize::Bool));
  for (ElemSize e : {ElemSize::I8, ElemSize::I16, ElemSize::I32, ElemSize::I64}) {
    EXPECT_TRUE(is_signed_int(e));
    EXPECT_FALSE(is_unsigned_int(e));
    EXPECT_TRUE(is_int(e));
    EXPECT_FALSE(is_float(e));
  }
  for (ElemSize e : {ElemSize::U8, ElemSize::U16, ElemSize::U32, ElemSize::U64}) {
    EXPECT_FALSE(is_signed_int(e));
    EXPECT_TRUE(is_unsigned_int(e));
    EXPECT_TRUE(is_int(e));
  }
  for (ElemSize e : {ElemSize::F16, ElemSize::F32, ElemSize::F64}) {
    EXPECT_TRUE(is_float(e));
    EXPECT_FALSE(is_int(e));
  }
  EXPECT_EQ(elem_bytes(ElemSize::Bool), 1);
  EXPECT_EQ(elem_bytes(ElemSize::U16), 2);
  EXPECT_EQ(elem_bytes(ElemSize::F16), 2);
  EXPECT_EQ(elem_bytes(ElemSize::I32), 4);
  EXPECT_EQ(elem_bytes(ElemSize::F64), 8);
  EXPECT_STREQ(elem_name(ElemSize::F32), "F32");
  EXPECT_STREQ(elem_name(ElemSize::Bool), "Bool");
  EXPECT_STREQ(elem_name(ElemSize::U64), "U64");
  EXPECT_STREQ(elem_code(ElemSize::F32), "f4");
  EXPECT_STREQ(elem_code(ElemSize::I64), "i8");
  EXPECT_STREQ(elem_code(ElemSize::Bool), "b1");
  EXPECT_STREQ(elem_long_name(ElemSize::F32), "float32");
  EXPECT_STREQ(elem_long_name(ElemSize::U8), "uint8");
  EXPECT_STREQ(elem_long_name(ElemSize::Bool), "bool");
}

TEST(ElemTest, FromCodeRoundTrips) {
  for (int i = 0; i <= static_cast<int>(ElemSize::F64); ++i) {
    auto e = static_cast<ElemSize>(i);
    ElemSize out = ElemSize::Bool;
    const char* c = elem_code(e);
    ASSERT_TRUE(elem_from_code(c[0], c[1] - '0', out)) << c;
    EXPECT_EQ(out, e);
  }
  ElemSize out;
  EXPECT_FALSE(elem_from_code('f', 3, out));
  EXPECT_FALSE(elem_from_code('x', 4, out));
  EXPECT_FALSE(elem_from_code('c', 8, out));
}

// ---------------------------------------------------------------------------------------------
// Spans and errors

TEST(SpanTest, MergeAndKnown) {
  EXPECT_FALSE(Span{}.known());
  Span a = at(3, 4, 3, 10), b = at(5, 2, 6, 1);
  EXPECT_TRUE(a.known());
  Span m = merge(a, b);
  EXPECT_EQ(m.line, 3);
  EXPECT_EQ(m.col, 4);
  EXPECT_EQ(m.end_line, 6);
  EXPECT_EQ(m.end_col, 1);
  Span m2 = merge(b, a);
  EXPECT_EQ(m2.line, 3);
  EXPECT_EQ(m2.col, 4);
  EXPECT_EQ(m2.end_line, 6);
  EXPECT_EQ(merge(Span{}, a).line, 3);
  EXPECT_EQ(merge(a, Span{}).end_col, 10);
}

class RenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             ("parpy_render_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".py"))
                .string();
    std::ofstream out(path_);
    out << "import parpy\n"
        << "def f(x):\n"
        << "    y = x[0] + z\n"
        << "    for i in range(10):\n"
        << "        x[i] = i\n";
  }
  void TearDown() override { fs::remove(path_); }
  std::string path_;
};

TEST_F(RenderTest, SingleLine) {
  CompileError err(ErrorKind::Name, "Found reference to unknown variable z", at(3, 16, 3, 17, path_));
  EXPECT_EQ(err.render(), "Found reference to unknown variable z\n\nOn line 3 of file " + path_ +
                              ":\n    y = x[0] + z\n                ^\n");
  EXPECT_EQ(err.kind(), ErrorKind::Name);
  EXPECT_EQ(err.message(), "Found reference to unknown variable z");
  EXPECT_STREQ(err.what(), "Found reference to unknown variable z");
}

TEST_F(RenderTest, SingleLineWideSpan) {
  CompileError err(ErrorKind::Runtime, "msg", at(3, 4, 3, 16, path_));
  EXPECT_EQ(err.render(), "msg\n\nOn line 3 of file " + path_ + ":\n    y = x[0] + z\n    ^^^^^^^^^^^^\n");
}

TEST_F(RenderTest, MultiLineSpan) {
  CompileError err(ErrorKind::Runtime, "Bad loop", at(4, 4, 5, 16, path_));
  EXPECT_EQ(err.render(), "Bad loop\n\nOn lines 4-5 of file " + path_ +
                              ":\n    for i in range(10):\n        x[i] = i\n    ^^^^^^^^^^^^\n");
}

TEST_F(RenderTest, MultiLineSpanUsesAbsoluteColumnDifference) {
  // As the original library renders errors: |end.col - start.col| carets, columns of different
  // lines compared.
  CompileError err(ErrorKind::Runtime, "m", at(2, 10, 3, 4, path_));
  EXPECT_EQ(err.render(), "m\n\nOn lines 2-3 of file " + path_ + ":\ndef f(x):\n    y = x[0] + z\n" +
                              std::string(10, ' ') + "^^^^^^\n");
  CompileError same(ErrorKind::Runtime, "m", at(2, 4, 3, 4, path_));
  EXPECT_EQ(same.render(), "m\n\nOn lines 2-3 of file " + path_ + ":\ndef f(x):\n    y = x[0] + z\n    \n");
}

TEST_F(RenderTest, MissingFileGivesMessageOnly) {
  CompileError err(ErrorKind::Runtime, "Nope", at(1, 0, 1, 3, path_ + ".does_not_exist"));
  EXPECT_EQ(err.render(), "Nope");
  CompileError unknown(ErrorKind::Runtime, "Nope", Span{});
  EXPECT_EQ(unknown.render(), "Nope");
  CompileError whole(ErrorKind::Runtime, "Nope", at(1, 0, 1, 3, "<unknown>"));
  EXPECT_EQ(whole.render(), "Nope");
}

TEST_F(RenderTest, LineBeyondFileGivesMessageOnly) {
  CompileError err(ErrorKind::Runtime, "Nope", at(40, 0, 40, 3, path_));
  EXPECT_EQ(err.render(), "Nope");
  CompileError end(ErrorKind::Runtime, "Nope", at(5, 0, 9, 3, path_));
  EXPECT_EQ(end.render(), "Nope");
}

TEST(ErrorTest, HelpersSetKinds) {
  try {
    fail("a");
  } catch (const CompileError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Runtime);
    EXPECT_EQ(e.message(), "a");
  }
  try {
    type_fail("b");
  } catch (const CompileError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Type);
  }
  try {
    name_fail("c");
  } catch (const CompileError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Name);
  }
  try {
    internal_fail("d", at(1, 0, 1, 1));
  } catch (const CompileError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Internal);
    EXPECT_EQ(e.message(), "Internal error: d");
    EXPECT_EQ(e.span().line, 1);
  }
  EXPECT_THROW(fail("x"), std::runtime_error);
}

// One table of intrinsics: what intrinsic() makes, intrinsic_of() recognises, with the IR names the
// printers spell as parpy_<name>.
TEST(Intrinsics, MadeAndRecognisedThroughTheTable) {
  Expr v = var("v", {}, Type::scalar(ElemSize::F32));
  Expr b = intrinsic(Intrinsic::BlockReduce, {v}, {}, {}, ReduceOp::Max);
  EXPECT_EQ(b->name, "$block_reduce_max");
  EXPECT_EQ(intrinsic_of(b), Intrinsic::BlockReduce);
  Expr m = intrinsic(Intrinsic::MultiblockReduce, {v}, {}, Type::scalar(ElemSize::Bool), ReduceOp::Sum);
  EXPECT_EQ(m->name, "$multiblock_reduce_add");
  EXPECT_EQ(m->ty, Type::scalar(ElemSize::Bool));
  EXPECT_EQ(intrinsic_of(m), Intrinsic::MultiblockReduce);
  Expr t = intrinsic(Intrinsic::Trips, {v, v, v}, {}, Type::scalar(ElemSize::I64));
  EXPECT_EQ(t->name, "$trips");
  EXPECT_EQ(intrinsic_of(t), Intrinsic::Trips);
  EXPECT_TRUE(calls_intrinsic(call_stmt(intrinsic(Intrinsic::SyncThreads, {}, {}), {}), Intrinsic::SyncThreads));
  EXPECT_TRUE(block_calls_intrinsic({assign(v, intrinsic(Intrinsic::BoundsCheck, {v, v, v}, {}), {})},
                                    Intrinsic::BoundsCheck));
  // Not intrinsics: user calls, unknown '$' names, a reduction intrinsic with an unknown operator.
  EXPECT_EQ(intrinsic_of(call("trips", {}, {})), Intrinsic::None);
  EXPECT_EQ(intrinsic_of(call("$tripsx", {}, {})), Intrinsic::None);
  EXPECT_EQ(intrinsic_of(call("$block_reduce_xor", {}, {})), Intrinsic::None);
  EXPECT_EQ(intrinsic_of(v), Intrinsic::None);
  // A reduction intrinsic needs its operator; the others take none.
  EXPECT_THROW(intrinsic(Intrinsic::BlockReduce, {v}, {}), CompileError);
  EXPECT_THROW(intrinsic(Intrinsic::Trips, {v}, {}, {}, ReduceOp::Sum), CompileError);
}

TEST(Affine, ExpandsSumsAndConstantProducts) {
  Span sp;
  auto v = [&](const std::string& n) { return var(n, sp); };
  auto i = [&](int64_t x) { return int_lit(x, sp); };
  auto atom = [](const Expr& e) -> std::optional<Affine> { return affine_atom(print_expr(e)); };
  // 2 * (i + 3) - i + -(j * 4)  ->  i - 4 j + 6
  Expr e = binop(BinOp::Add,
                 binop(BinOp::Sub, binop(BinOp::Mul, i(2), binop(BinOp::Add, v("i"), i(3), sp), sp), v("i"), sp),
                 unop(UnOp::Neg, binop(BinOp::Mul, v("j"), i(4), sp), sp), sp);
  auto a = affine(e, atom);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->coef("i"), 1);
  EXPECT_EQ(a->coef("j"), -4);
  EXPECT_EQ(a->constant, 6);
  EXPECT_FALSE(a->is_constant());
  // i - i is constant; a product of two variables is an atom of its own.
  auto d = affine(binop(BinOp::Sub, v("i"), v("i"), sp), atom);
  ASSERT_TRUE(d && d->is_constant());
  auto p = affine(binop(BinOp::Mul, v("i"), v("j"), sp), atom);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->terms.size(), 1u);
  EXPECT_EQ(p->coef(print_expr(binop(BinOp::Mul, v("i"), v("j"), sp))), 1);
  // A leaf that is not affine makes the whole expression not affine.
  auto none = [](const Expr&) -> std::optional<Affine> { return std::nullopt; };
  EXPECT_FALSE(affine(binop(BinOp::Add, v("i"), i(1), sp), none));
}

TEST(Affine, OverflowIsNotAffine) {
  Affine a = affine_atom("i");
  a.constant = INT64_MAX;
  EXPECT_FALSE(scaled(a, 2));
  EXPECT_FALSE(combined(a, a, 1));
  Affine b = affine_atom("i");
  auto c = combined(b, b, -1);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->is_constant());
}

}  // namespace
}  // namespace parpy
