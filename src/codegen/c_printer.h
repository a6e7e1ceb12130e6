// Printing of the loop IR as C-family code, shared by the C++ (Cpu) and CUDA printers. A
// backend overrides the spelling of types and literals and how loops are annotated.
#pragma once
#include <set>
#include <sstream>
#include <string>

#include "ir/ir.h"

namespace parpy {

// Whether loop s prints as `for (v = lo; v < hi; v += step)`: that form computes only values of
// range(lo, hi, step) and the one after the last, all within int64 (and, for `canonical`, OpenMP's
// trip count too). Otherwise it counts its iterations (parpy_trips, parpy_iter; see open_loop).
bool plain_loop_is_exact(const Stmt& s, bool canonical);

class CPrinter {
 public:
  virtual ~CPrinter() = default;
  std::ostringstream os;

  virtual std::string type_name(ElemSize e) const = 0;
  // Virtual: Metal spells pointers with their address space.
  virtual std::string type_str(const Type& t) const;
  virtual std::string float_literal(double v, ElemSize e) const;
  std::string int_literal(int64_t v, ElemSize e) const;

  std::string expr(const Expr& e);
  // Locals are declared at the top of the function or loop body that scopes them
  // (docs/language.md, Scoping).
  void declarations(const Block& b, int indent);
  void block(const Block& b, int indent);
  virtual void stmt(const Stmt& s, int indent);
  std::string loop_header(const Stmt& s) const;
  // Prints the head of loop s, with `pragma` (if any) right before the `for`, and returns the
  // indentation of its body; `close` receives the text that ends it. `canonical`: an OpenMP loop,
  // whose trip count the compiler computes as (hi - lo + step - 1) / step. A loop whose plain
  // form may step past the ends of int64 counts its iterations instead (parpy_trips).
  int open_loop(const Stmt& s, int indent, const std::string& pragma, bool canonical, std::string& close);
  // A helper called in expressions, `<qualifiers> T name(params) { body }`: sequential code of one
  // thread (docs/language.md, Functions). Its name is already a C name.
  void helper_function(const Function& f, const std::string& qualifiers);
  static std::string pad(int indent) { return std::string(indent * 2, ' '); }
  // add, sub, max or min: the operation of an atomic update.
  static std::string atomic_op_name(BinOp op);

 protected:
  virtual void loop(const Stmt& s, int indent);
  void print_loop(const Stmt& s, int indent, const std::string& pragma, bool canonical);
  // An atomic update `lhs = lhs op value` (StmtNode::atomic).
  virtual void atomic_update(const Stmt& s, int indent) = 0;
  virtual std::string call_expr(const Expr& e);
  std::string unary(const Expr& e);
  std::string binary(const Expr& e);
  // C promotes types narrower than int; keep the IR's type.
  std::string narrow(const Expr& e, const std::string& s) const;

 private:
  int trip_loops_ = 0;
  void collect_decls(const Block& b, int indent, std::set<std::string>& seen);
};

}  // namespace parpy
