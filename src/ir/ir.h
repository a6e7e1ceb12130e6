// The parpy IR: one tree of expressions and statements used from the front end to the printers.
// Nodes are immutable once built; passes build new nodes (see `copy`).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/types.h"

namespace parpy {

enum class UnOp : uint8_t { Neg, Not, BitNot, Exp, Log, Cos, Sin, Sqrt, Tanh, Abs };
enum class BinOp : uint8_t {
  Add, Sub, Mul, Div, FloorDiv, Mod, Pow, BitAnd, BitOr, BitXor, Shl, Shr,
  And, Or, Eq, Neq, Lt, Le, Gt, Ge, Max, Min, Atan2
};
enum class ReduceOp : uint8_t { Sum, Prod, Max, Min };

const char* unop_name(UnOp op);    // "exp", "-", ...
const char* binop_name(BinOp op);  // "+", "max", ...
// The name the user writes (sum, prod, max, min); the other properties are in ir/reductions.h.
const char* reduce_name(ReduceOp op);
bool is_comparison(BinOp op);

// How a labelled loop runs: `threads(n)`, `reduce()`, `tpb(n)`. nthreads == 0 means sequential.
struct LoopPar {
  int64_t nthreads = 0;
  bool reduction = false;
  int64_t tpb = 1024;
  bool is_parallel() const { return nthreads > 0; }
  bool operator==(const LoopPar& o) const {
    return nthreads == o.nthreads && reduction == o.reduction && tpb == o.tpb;
  }
  std::string str() const;
};

enum class ExprKind : uint8_t {
  Var,        // name
  Int,        // ival; weak when it came from a Python literal or int argument
  Float,      // fval; weak likewise
  Bool,       // bval
  String,     // sval (only as a dict key)
  UnOp,       // unop(args[0])
  BinOp,      // args[0] binop args[1]
  IfExpr,     // args[1] if args[0] else args[2]
  Subscript,  // args[0][args[1], args[2], ...]; an index may be a Slice or a String key
  Slice,      // args[0]:args[1], either may be null
  Tuple,      // only as an index
  Call,       // name(args...): a jit helper or an external
  Reduce,     // reduce(args[0]) along `axis` (all axes when !has_axis)
  Convert,    // (ty) args[0]
  Access,     // name[args[0]] with a flat row-major index; the element type is ty
  Neutral,    // neutral element of `reduce` for the type of args[0] (args[0] is only typed)
};

struct ExprNode;
using Expr = std::shared_ptr<const ExprNode>;

struct ExprNode {
  ExprKind kind;
  Span span;
  Type ty;  // Unknown until typed
  std::string name;
  int64_t ival = 0;
  double fval = 0.0;
  bool bval = false;
  bool weak = false;
  UnOp unop = UnOp::Neg;
  BinOp binop = BinOp::Add;
  ReduceOp reduce = ReduceOp::Sum;
  bool has_axis = false;
  int64_t axis = 0;
  std::vector<Expr> args;
};

std::shared_ptr<ExprNode> copy(const Expr& e);
Expr with_args(const Expr& e, std::vector<Expr> args);
Expr with_type(const Expr& e, Type ty);

Expr var(std::string name, Span span, Type ty = {});
Expr int_lit(int64_t v, Span span, bool weak = true, ElemSize sz = ElemSize::I64);
Expr float_lit(double v, Span span, bool weak = true, ElemSize sz = ElemSize::F64);
Expr bool_lit(bool v, Span span);
Expr string_lit(std::string v, Span span);
Expr unop(UnOp op, Expr a, Span span, Type ty = {});
Expr binop(BinOp op, Expr a, Expr b, Span span, Type ty = {});
Expr if_expr(Expr c, Expr a, Expr b, Span span);
Expr subscript(Expr target, std::vector<Expr> idx, Span span);
Expr slice(Expr lo, Expr hi, Span span);
Expr tuple(std::vector<Expr> elems, Span span);
Expr call(std::string name, std::vector<Expr> args, Span span);
Expr reduce(ReduceOp op, Expr arg, std::optional<int64_t> axis, Span span);
Expr convert(Expr a, Type ty);
Expr access(std::string name, Expr flat_index, ElemSize elem, Span span);
Expr neutral(ReduceOp op, Expr typed_like, Span span);

bool is_literal(const Expr& e);  // Int, Float or Bool
// Whether e reads the local or the array `name` (a Var or an Access of that name).
bool mentions(const Expr& e, const std::string& name);
// Whether e mentions a whole array or a row (a variable or access that is not a scalar): such an
// argument lets a callee read or write memory the expression does not show.
bool refers_to_arrays(const Expr& e);

// Post-order rewrite: f sees each node after its children were rewritten.
Expr map_expr(const Expr& e, const std::function<Expr(const Expr&)>& f);
// Pre-order visit of every node in e.
void visit_expr(const Expr& e, const std::function<void(const Expr&)>& f);

enum class StmtKind : uint8_t {
  Assign,   // lhs = rhs (defines a new local when `defines`)
  For,      // for var in range(lo, hi, step): body
  While,    // while cond: body
  If,       // if cond: body else: orelse
  Return,   // return rhs
  WithGpu,  // with parpy.gpu: body
  Call,     // rhs is a Call expression (statement-level call)
  Launch,   // GPU host code: runs the kernel rhs->name (a Call expression) with rhs->args (gpu/gpu_ir.h)
  Label,    // labels[0]; only between the front end and attach_labels
};

struct StmtNode;
using Stmt = std::shared_ptr<const StmtNode>;
using Block = std::vector<Stmt>;

struct StmtNode {
  StmtKind kind;
  Span span;
  Expr lhs, rhs, cond;
  std::string var;
  Expr lo, hi;
  int64_t step = 1;
  Block body, orelse;
  std::vector<std::string> labels;
  LoopPar par;
  bool defines = false;
  // Reduction loops (par.reduction) after check_reductions: the operator and accumulated target.
  BinOp red_op = BinOp::Add;
  // An Assign to an array element that check_races made atomic: rhs is `lhs op value` with op one
  // of +, -, max, min and value of lhs's type, done as one atomic read-modify-write.
  bool atomic = false;
};

std::shared_ptr<StmtNode> copy(const Stmt& s);
Stmt assign(Expr lhs, Expr rhs, Span span, std::vector<std::string> labels = {});
Stmt for_loop(std::string var, Expr lo, Expr hi, int64_t step, Block body, Span span,
              std::vector<std::string> labels = {});
// The number of iterations of range(lo, hi, step), computed without overflow (at most
// kMaxTrips: a longer loop never ends in practice, and the cap keeps `t + workers` in range).
constexpr int64_t kMaxTrips = INT64_MAX / 2;
int64_t range_trips(int64_t lo, int64_t hi, int64_t step);
// Whether `for (v = lo; v < hi; v += step)` (or `>` for a negative step) never computes a value
// beyond int64, given that hi is at most (at least, for a negative step) `hi_bound`.
bool increment_stays_in_range(int64_t hi_bound, int64_t step);
Stmt while_loop(Expr cond, Block body, Span span);
Stmt if_stmt(Expr cond, Block body, Block orelse, Span span);
Stmt return_stmt(Expr value, Span span);
Stmt with_gpu(Block body, Span span);
Stmt call_stmt(Expr call, Span span);
Stmt launch_stmt(std::string kernel, std::vector<Expr> args, Span span);
Stmt label_stmt(std::string name, Span span);

// Rewrites every expression of a statement tree (lhs, rhs, cond, lo, hi) with f, keeping shape.
Block map_block_exprs(const Block& b, const std::function<Expr(const Expr&)>& f);
// A copy of s with its body and else branch rewritten by f (its own fields kept): the step of a
// pass that recurses by hand into the statements it does not rewrite.
std::shared_ptr<StmtNode> with_blocks(const Stmt& s, const std::function<Block(const Block&)>& f);
// Rewrites every statement bottom-up: f sees each statement with its body and else branch already
// rewritten, and returns the statements that replace it.
Block map_block(const Block& b, const std::function<Block(const Stmt&)>& f);
// Visits every statement, pre-order.
void visit_block(const Block& b, const std::function<void(const Stmt&)>& f);
// Visits every node of the statement's own expressions (lhs, rhs, cond, lo, hi), not its body.
void visit_stmt_exprs(const Stmt& s, const std::function<void(const Expr&)>& f);
// Whether a parallel loop is among the statements of b, at any depth.
bool contains_parallel(const Block& b);

struct Param {
  std::string name;
  std::optional<Type> annotation;  // parpy.types annotation, if any
  Span span;
};

enum class CompileBackend : uint8_t;  // ir/options.h

// A function declared with parpy.external (docs/language.md, Functions): called by its Python
// name in jit expressions, printed as a call to `ext_name`.
struct ExternalDecl {
  std::string name;      // Python name
  std::string ext_name;  // symbol called by the generated code
  CompileBackend backend;
  bool device = true;    // Target.Device (else Target.Host)
  std::string header;    // included by the generated code when non-empty
  std::vector<Param> params;
  Type ret;
  LoopPar par;
};

struct Function;
using FunctionRef = std::shared_ptr<const Function>;
using ExternalRef = std::shared_ptr<const ExternalDecl>;

struct Function {
  std::string name;
  std::vector<Param> params;
  Block body;
  Span span;  // the def line
  Type ret = Type::void_();
  // Callees of expression-level calls, resolved when this function was decorated, so that
  // redefining a helper later does not change it (README, "Helper functions and externals").
  // Externals: one per backend. Keyed by the calls' names: the callee's source text (`step`,
  // `mod.step`), unique per callee.
  std::map<std::string, FunctionRef> helpers = {};
  std::map<std::string, std::vector<ExternalRef>> externals = {};
};

// Readable text of the IR, used by debug_print and as part of cache keys.
// "[2, 3]": an array shape as messages show it.
std::string shape_str(const std::vector<int64_t>& s);
std::string print_expr(const Expr& e);
std::string print_block(const Block& b, int indent = 0);
std::string print_function(const Function& f);

}  // namespace parpy
