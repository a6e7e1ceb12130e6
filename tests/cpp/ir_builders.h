// Builders for the C++ unit tests: IR nodes with distinct spans, functions, arguments, options,
// and error capture. Included by each test file (one translation unit each).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/ir.h"
#include "ir/options.h"
#include "passes/specialize.h"

namespace parpy::testing {

// Every node gets its own source line, so spans can be told apart (lower_slices tells subscripts
// apart by span; error tests check the line).
inline Span sp() {
  static auto file = std::make_shared<const std::string>("<test>");
  static int line = 1;
  Span s;
  s.file = file;
  s.line = line++;
  s.col = 0;
  s.end_line = s.line;
  s.end_col = 1;
  return s;
}

inline Expr V(const std::string& n) { return var(n, sp()); }
inline Expr I(int64_t x) { return int_lit(x, sp()); }
inline Expr F(double x) { return float_lit(x, sp()); }
inline Expr S(const std::string& n, std::vector<Expr> idx) { return subscript(V(n), std::move(idx), sp()); }
inline Expr all() { return slice(nullptr, nullptr, sp()); }
inline Expr sl(Expr lo, Expr hi) { return slice(std::move(lo), std::move(hi), sp()); }
inline Expr add(Expr a, Expr b) { return binop(BinOp::Add, std::move(a), std::move(b), sp()); }
inline Expr mul(Expr a, Expr b) { return binop(BinOp::Mul, std::move(a), std::move(b), sp()); }
inline Stmt A(Expr l, Expr r, std::vector<std::string> labels = {}) {
  return assign(std::move(l), std::move(r), sp(), std::move(labels));
}
inline Stmt For(const std::string& v, int64_t lo, int64_t hi, Block body, std::vector<std::string> labels = {},
                int64_t step = 1) {
  return for_loop(v, I(lo), I(hi), step, std::move(body), sp(), std::move(labels));
}

inline Function fn(const std::string& name, std::vector<std::string> params, Block body) {
  Function f;
  f.name = name;
  for (auto& p : params) f.params.push_back({p, std::nullopt, sp()});
  f.body = std::move(body);
  f.span = sp();
  return f;
}

// def f(x, out): label O; for i in range(rows): label R; for j in range(m): out[i] = out[i] + x[i, j]
inline Function row_sums(int64_t rows, int64_t m) {
  return fn("f", {"x", "out"},
            {For("i", 0, rows,
                 {For("j", 0, m, {A(S("out", {V("i")}), add(S("out", {V("i")}), S("x", {V("i"), V("j")})))},
                      {"R"})},
                 {"O"})});
}

inline ArgValue int_arg(int64_t v) {
  ArgValue a;
  a.kind = ArgValue::Kind::Int;
  a.ival = v;
  return a;
}
inline ArgValue float_arg(double v) {
  ArgValue a;
  a.kind = ArgValue::Kind::Float;
  a.fval = v;
  return a;
}
inline ArgValue array_arg(ElemSize e, std::vector<int64_t> shape) {
  ArgValue a;
  a.kind = ArgValue::Kind::Array;
  a.elem = e;
  a.shape = std::move(shape);
  return a;
}
inline ArgValue f32(std::vector<int64_t> shape) { return array_arg(ElemSize::F32, std::move(shape)); }

inline CompileOptions cuda_opts(std::map<std::string, LoopPar> par = {}) {
  CompileOptions o;
  o.backend = CompileBackend::Cuda;
  o.parallelize = std::move(par);
  return o;
}
inline LoopPar threads(int64_t n, int64_t tpb = 1024) { return LoopPar{n, false, tpb}; }
inline LoopPar reduce_threads(int64_t n, int64_t tpb = 1024) { return LoopPar{n, true, tpb}; }

// The CompileError that f throws (a test failure if it throws none).
template <class Fn>
CompileError error_of(Fn&& f) {
  try {
    f();
  } catch (const CompileError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a CompileError";
  return CompileError(ErrorKind::Internal, "<no error>");
}

inline bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace parpy::testing
