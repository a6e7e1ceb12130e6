#include "frontend/python_to_ir.h"

#include <map>
#include <set>


namespace nb = nanobind;

namespace parpy {
namespace {

// The parpy.operators objects that name builtins, matched by `==` (docs/language.md, Names).
enum class Builtin {
  None, Exp, Inf, Log, Min, Max, Abs, Cos, Sin, Sqrt, Tanh, Atan2, Sum, Prod,
  F16, F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, Label, Gpu
};

struct BuiltinEntry {
  const char* name;
  Builtin b;
};
const BuiltinEntry kBuiltins[] = {
    {"exp", Builtin::Exp},       {"inf", Builtin::Inf},       {"log", Builtin::Log},
    {"min", Builtin::Min},       {"max", Builtin::Max},       {"abs", Builtin::Abs},
    {"cos", Builtin::Cos},       {"sin", Builtin::Sin},       {"sqrt", Builtin::Sqrt},
    {"tanh", Builtin::Tanh},     {"atan2", Builtin::Atan2},   {"sum", Builtin::Sum},
    {"prod", Builtin::Prod},     {"float16", Builtin::F16},   {"float32", Builtin::F32},
    {"float64", Builtin::F64},   {"int8", Builtin::I8},       {"int16", Builtin::I16},
    {"int32", Builtin::I32},     {"int64", Builtin::I64},     {"uint8", Builtin::U8},
    {"uint16", Builtin::U16},    {"uint32", Builtin::U32},    {"uint64", Builtin::U64},
    {"label", Builtin::Label},   {"gpu", Builtin::Gpu},
};

const char* kAnnotationHint =
    "Annotate parameters with types from parpy.types: parpy.types.F32, parpy.types.I64, ... for "
    "scalars and parpy.types.pointer(parpy.types.F32) for arrays.";

const char* builtin_name(Builtin b) {
  for (const auto& e : kBuiltins)
    if (e.b == b) return e.name;
  return "?";
}

class Converter {
 public:
  explicit Converter(const FrontendInput& in)
      : in_(in), file_(std::make_shared<const std::string>(in.file)) {
    ast_ = nb::module_::import_("ast");
    builtins_ = nb::module_::import_("builtins");
    operators_ = nb::module_::import_("parpy.operators");
  }

  Parsed convert() {
    nb::handle f = in_.fdef;
    if (kind(f) != "FunctionDef")
      fail("Unexpected shape of the AST definition. Expected a function definition (def), found " +
               kind(f) + ".",
           span(f));
    auto fn = std::make_shared<Function>();
    fn->name = nb::cast<std::string>(f.attr("name"));
    fn->span = def_span(f);
    for (nb::handle a : f.attr("args").attr("args")) {
      Param p;
      p.name = nb::cast<std::string>(a.attr("arg"));
      p.span = span(a);
      nb::object ann = a.attr("annotation");
      if (!ann.is_none()) p.annotation = annotation_type(ann);
      locals_.insert(p.name);
      fn->params.push_back(std::move(p));
    }
    collect_locals(f.attr("body"));
    nb::object ret = f.attr("returns");
    if (!ret.is_none()) fn->ret = annotation_type(ret);
    fn->body = block(f.attr("body"), /*top=*/true);
    Parsed out;
    out.fn = fn;
    out.unbound = unbound_;
    if (unbound_) return out;
    fn->helpers = helpers_;
    fn->externals = externals_;
    out.inlined = inlined_;
    for (const auto& [key, c] : callees_)
      if (!c.fn) out.externals.insert(key);
    return out;
  }

 private:
  const FrontendInput& in_;
  std::shared_ptr<const std::string> file_;
  nb::object ast_, builtins_, operators_;
  std::set<std::string> locals_;  // parameters and names assigned in the body
  // Every callee of this function's body (inlined bodies included), by call key. A key is the
  // callee's source text (`step`, `mod.step`); another callee met under a taken key (through an
  // inlined body from another module) gets `step_1`, ... Helpers and externals share the keys.
  struct Callee {
    FunctionRef fn;  // a jit function, else an external with these declarations
    std::vector<ExternalRef> exts;
  };
  std::map<std::string, Callee> callees_;
  std::map<std::string, FunctionRef> helpers_;                // expression-level callees
  std::map<std::string, std::vector<ExternalRef>> externals_;
  std::map<std::string, FunctionRef> inlined_;  // statement-level callees, calls renamed to our keys
  bool unbound_ = false;                        // a callee name is not bound yet (deferred)

  static size_t count(nb::handle h) {
    Py_ssize_t n = PyObject_Length(h.ptr());
    if (n < 0) throw nb::python_error();
    return static_cast<size_t>(n);
  }

  static std::string kind(nb::handle n) { return nb::cast<std::string>(n.type().attr("__name__")); }

  int attr_int(nb::handle n, const char* a) {
    nb::object v = nb::getattr(n, a, nb::none());
    return v.is_none() ? 0 : nb::cast<int>(v);
  }

  Span span(nb::handle n) {
    Span s;
    if (!nb::hasattr(n, "lineno")) return s;
    s.file = file_;
    s.line = attr_int(n, "lineno") + in_.line_offset;
    s.col = attr_int(n, "col_offset") + in_.col_offset;
    s.end_line = attr_int(n, "end_lineno") + in_.line_offset;
    s.end_col = attr_int(n, "end_col_offset") + in_.col_offset;
    return s;
  }

  // Whole-function errors point at the `def` line (docs/differences.md, Messages).
  Span def_span(nb::handle f) {
    Span s = span(f);
    s.end_line = s.line;
    s.end_col = s.col + 3;
    return s;
  }

  std::string unparse(nb::handle n) { return nb::cast<std::string>(ast_.attr("unparse")(n)); }

  void collect_locals(nb::handle stmts) {
    for (nb::handle s : stmts) {
      nb::object walk = ast_.attr("walk")(s);
      for (nb::handle n : walk) {
        std::string k = kind(n);
        if (k == "Name") {
          std::string ctx = kind(n.attr("ctx"));
          if (ctx == "Store") locals_.insert(nb::cast<std::string>(n.attr("id")));
        }
      }
    }
  }

  // Evaluates a Name/Attribute in the decorating frame; nullopt when that fails.
  std::optional<nb::object> evaluate(nb::handle n) {
    try {
      return builtins_.attr("eval")(unparse(n), in_.globals, in_.locals);
    } catch (nb::python_error&) {
      return std::nullopt;
    }
  }

  Builtin match_builtin(const nb::object& v) {
    for (const auto& e : kBuiltins) {
      nb::object op = operators_.attr(e.name);
      try {
        if (v.is(op) || v.equal(op)) return e.b;
      } catch (nb::python_error&) {
      }
    }
    return Builtin::None;
  }

  Builtin builtin_of(nb::handle n) {
    std::string k = kind(n);
    if (k == "Name" && locals_.count(nb::cast<std::string>(n.attr("id")))) return Builtin::None;
    if (k != "Name" && k != "Attribute") return Builtin::None;
    auto v = evaluate(n);
    if (!v) return Builtin::None;
    return match_builtin(*v);
  }

  Type annotation_type(nb::handle ann) {
    auto v = evaluate(ann);
    nb::module_ native = nb::module_::import_("parpy.parpy");
    if (v) {
      if (nb::isinstance(*v, native.attr("ElemSize"))) {
        return Type::scalar(static_cast<ElemSize>(nb::cast<int>(v->attr("value"))));
      }
      if (nb::isinstance(*v, native.attr("ExtType")))
        return Type::pointer(static_cast<ElemSize>(nb::cast<int>(v->attr("elem").attr("value"))));
    }
    fail(std::string("Unsupported parameter type annotation\n") + kAnnotationHint, span(ann));
  }

  Block block(nb::handle stmts, bool top = false) {
    Block out;
    bool first = true;
    for (nb::handle s : stmts) {
      // A docstring is not code.
      if (top && first && kind(s) == "Expr" && kind(s.attr("value")) == "Constant" &&
          nb::isinstance<nb::str>(s.attr("value").attr("value"))) {
        first = false;
        continue;
      }
      first = false;
      stmt(s, out);
    }
    return out;
  }

  void stmt(nb::handle s, Block& out) {
    std::string k = kind(s);
    Span sp = span(s);
    if (k == "For") {
      nb::handle target = s.attr("target");
      if (kind(target) != "Name") fail("For-loops must assign to a single variable", span(target));
      if (count(s.attr("orelse")) > 0) fail("For-loops with an else-clause are not supported", sp);
      nb::handle it = s.attr("iter");
      bool is_range = false;
      if (kind(it) == "Call") {
        auto v = evaluate(it.attr("func"));
        is_range = v && v->is(builtins_.attr("range"));
      }
      if (!is_range) fail("For-loop must iterate using the range builtin", span(it));
      nb::handle args = it.attr("args");
      size_t n = count(args);
      if (n < 1 || n > 3 || count(it.attr("keywords")) > 0)
        fail("Invalid number of arguments passed to range", span(it));
      Expr lo = n == 1 ? int_lit(0, span(it)) : expr(args[0]);
      Expr hi = expr(args[n == 1 ? 0 : 1]);
      int64_t step = 1;
      if (n == 3) step = range_step(args[2]);
      out.push_back(for_loop(nb::cast<std::string>(target.attr("id")), lo, hi, step,
                             block(s.attr("body")), sp));
    } else if (k == "While") {
      if (count(s.attr("orelse")) > 0)
        fail("While-loops with an else-clause are not supported", sp);
      out.push_back(while_loop(expr(s.attr("test")), block(s.attr("body")), sp));
    } else if (k == "If") {
      out.push_back(if_stmt(expr(s.attr("test")), block(s.attr("body")), block(s.attr("orelse")), sp));
    } else if (k == "Assign") {
      if (count(s.attr("targets")) != 1) fail("Cannot have more than one target of assignment", sp);
      nb::handle t = s.attr("targets")[0];
      out.push_back(assign(target(t), expr(s.attr("value")), sp));
    } else if (k == "AugAssign") {
      nb::handle t = s.attr("target");
      Expr lhs = target(t);
      BinOp op = binary_op(s.attr("op"), sp);
      out.push_back(assign(lhs, binop(op, lhs, expr(s.attr("value")), sp), sp));
    } else if (k == "Expr") {
      nb::handle v = s.attr("value");
      if (kind(v) != "Call") fail("Unsupported expression statement", sp);
      nb::handle func = v.attr("func");
      Builtin b = builtin_of(func);
      if (b == Builtin::Label) {
        nb::handle args = v.attr("args");
        if (count(args) != 1 || count(v.attr("keywords")) != 0)
          fail("Label statement expects one argument", sp);
        nb::handle a = args[0];
        if (kind(a) != "Constant" || !nb::isinstance<nb::str>(a.attr("value")))
          fail("First argument of parpy.label should be a string literal representing the label name",
               span(a));
        out.push_back(label_stmt(nb::cast<std::string>(a.attr("value")), sp));
        return;
      }
      if (b != Builtin::None) fail("Unsupported expression statement", sp);
      std::string key = callee_key(func, span(v));
      if (count(v.attr("keywords")) > 0)
        fail("Unsupported keyword argument in call: " +
                 nb::cast<std::string>(v.attr("keywords")[0].attr("arg")),
             sp);
      std::vector<Expr> args;
      for (nb::handle a : v.attr("args")) args.push_back(expr(a));
      auto it = callees_.find(key);
      if (!unbound_ && it != callees_.end() && it->second.fn && !inlined_.count(key))
        inlined_[key] = with_our_keys(it->second.fn);
      out.push_back(call_stmt(call(key, std::move(args), span(v)), sp));
    } else if (k == "With") {
      nb::handle items = s.attr("items");
      if (count(items) != 1) fail("With statements using multiple items is not supported", sp);
      nb::handle item = items[0];
      if (!item.attr("optional_vars").is_none())
        fail("With statements using the 'as' keyword are not supported", sp);
      if (builtin_of(item.attr("context_expr")) != Builtin::Gpu)
        fail("With statements are only supported for 'parpy.gpu'", sp);
      out.push_back(with_gpu(block(s.attr("body")), sp));
    } else if (k == "Return") {
      if (s.attr("value").is_none()) fail("Empty return statements are not supported", sp);
      out.push_back(return_stmt(expr(s.attr("value")), sp));
    } else {
      fail("Unsupported statement: " + k, sp);
    }
  }

  int64_t range_step(nb::handle a) {
    int64_t sign = 1;
    nb::handle v = a;
    if (kind(v) == "UnaryOp" && kind(v.attr("op")) == "USub") {
      sign = -1;
      v = v.attr("operand");
    }
    if (kind(v) != "Constant" || !nb::isinstance<nb::int_>(v.attr("value")) ||
        nb::isinstance<nb::bool_>(v.attr("value")))
      fail("Range step size must be an integer literal", span(a));
    int64_t step = signed_literal(v.attr("value"), sign, "Range step size", span(a));
    if (step == 0) fail("Range step size must be non-zero", span(a));
    return step;
  }

  // sign * value of an integer literal (-9223372036854775808 included), or an error at sp.
  static int64_t signed_literal(nb::handle value, int64_t sign, const char* what, const Span& sp) {
    nb::object v = sign < 0 ? nb::steal(PyNumber_Negative(value.ptr())) : nb::borrow(value);
    int64_t out = 0;
    if (!v.is_valid() || !nb::try_cast<int64_t>(v, out)) {
      PyErr_Clear();
      fail(std::string(what) + " " + nb::cast<std::string>(nb::str(v.is_valid() ? v : nb::borrow(value))) +
               " does not fit in 64 bits: use a value from -2**63 to 2**63 - 1",
           sp);
    }
    return out;
  }

  Expr target(nb::handle t) {
    std::string k = kind(t);
    if (k == "Name") return var(nb::cast<std::string>(t.attr("id")), span(t));
    if (k == "Subscript") return expr(t);
    fail("Unsupported form of assignment", span(t));
  }

  BinOp binary_op(nb::handle op, const Span& sp) {
    std::string k = kind(op);
    static const std::pair<const char*, BinOp> ops[] = {
        {"Add", BinOp::Add},       {"Sub", BinOp::Sub},       {"Mult", BinOp::Mul},
        {"Div", BinOp::Div},       {"FloorDiv", BinOp::FloorDiv}, {"Mod", BinOp::Mod},
        {"Pow", BinOp::Pow},       {"BitAnd", BinOp::BitAnd}, {"BitOr", BinOp::BitOr},
        {"BitXor", BinOp::BitXor}, {"LShift", BinOp::Shl},    {"RShift", BinOp::Shr}};
    for (const auto& [n, o] : ops)
      if (k == n) return o;
    fail("Unsupported binary operation: " + k, sp);
  }

  Expr expr(nb::handle n) {
    std::string k = kind(n);
    Span sp = span(n);
    if (k == "Name" || k == "Attribute") return name_or_attribute(n, k, sp);
    if (k == "Constant") {
      nb::object v = n.attr("value");
      if (nb::isinstance<nb::bool_>(v)) return bool_lit(nb::cast<bool>(v), sp);
      if (nb::isinstance<nb::int_>(v)) {
        try {
          return int_lit(nb::cast<int64_t>(v), sp);
        } catch (...) {
          fail("Integer literal " + nb::cast<std::string>(nb::str(v)) + " does not fit in 64 bits", sp);
        }
      }
      if (nb::isinstance<nb::float_>(v)) return float_lit(nb::cast<double>(v), sp);
      if (nb::isinstance<nb::str>(v)) return string_lit(nb::cast<std::string>(v), sp);
      fail("Unsupported literal value " + nb::cast<std::string>(nb::repr(v)), sp);
    }
    if (k == "UnaryOp") {
      std::string op = kind(n.attr("op"));
      Expr a = expr(n.attr("operand"));
      if (op == "USub") return unop(UnOp::Neg, a, sp);
      if (op == "Not") return unop(UnOp::Not, a, sp);
      if (op == "Invert") return unop(UnOp::BitNot, a, sp);
      fail("Unsupported unary expression " + op, sp);
    }
    if (k == "BinOp") {
      BinOp op = binary_op(n.attr("op"), sp);
      return binop(op, expr(n.attr("left")), expr(n.attr("right")), sp);
    }
    if (k == "BoolOp") {
      std::string op = kind(n.attr("op"));
      BinOp bop = op == "And" ? BinOp::And : BinOp::Or;
      nb::handle vals = n.attr("values");
      Expr acc = expr(vals[0]);
      for (size_t i = 1; i < count(vals); ++i) acc = binop(bop, acc, expr(vals[i]), sp);
      return acc;
    }
    if (k == "Compare") {
      if (count(n.attr("ops")) != 1) fail("Sequences of comparisons are not supported", sp);
      std::string op = kind(n.attr("ops")[0]);
      static const std::pair<const char*, BinOp> cmps[] = {
          {"Eq", BinOp::Eq}, {"NotEq", BinOp::Neq}, {"Lt", BinOp::Lt},
          {"LtE", BinOp::Le}, {"Gt", BinOp::Gt},    {"GtE", BinOp::Ge}};
      for (const auto& [name, o] : cmps)
        if (op == name) return binop(o, expr(n.attr("left")), expr(n.attr("comparators")[0]), sp);
      fail("Unsupported binary operation: " + op, sp);
    }
    if (k == "IfExp")
      return if_expr(expr(n.attr("test")), expr(n.attr("body")), expr(n.attr("orelse")), sp);
    if (k == "Subscript") {
      Expr target = expr(n.attr("value"));
      nb::handle sl = n.attr("slice");
      std::vector<Expr> idx;
      if (kind(sl) == "Tuple") {
        for (nb::handle e : sl.attr("elts")) idx.push_back(index(e));
      } else {
        idx.push_back(index(sl));
      }
      // x[i][j] is x[i, j].
      if (target->kind == ExprKind::Subscript) {
        std::vector<Expr> all(target->args.begin() + 1, target->args.end());
        all.insert(all.end(), idx.begin(), idx.end());
        return subscript(target->args[0], std::move(all), sp);
      }
      return subscript(target, std::move(idx), sp);
    }
    if (k == "Slice") fail("Slices are not allowed outside of indexing", sp);
    if (k == "Call") return call_expr(n, sp);
    if (k == "Tuple") {
      std::vector<Expr> elems;
      for (nb::handle e : n.attr("elts")) elems.push_back(expr(e));
      return tuple(std::move(elems), sp);
    }
    fail("Unsupported expression: " + unparse(n), sp);
  }

  Expr index(nb::handle e) {
    if (kind(e) != "Slice") return expr(e);
    if (!e.attr("step").is_none()) fail("Slices with a step size are not supported", span(e));
    Expr lo = e.attr("lower").is_none() ? nullptr : expr(e.attr("lower"));
    Expr hi = e.attr("upper").is_none() ? nullptr : expr(e.attr("upper"));
    return slice(lo, hi, span(e));
  }

  Expr name_or_attribute(nb::handle n, const std::string& k, const Span& sp) {
    if (k == "Name") {
      std::string id = nb::cast<std::string>(n.attr("id"));
      if (locals_.count(id)) return var(id, sp);
    }
    auto v = evaluate(n);
    if (v) {
      Builtin b = match_builtin(*v);
      if (b == Builtin::Inf) return float_lit(HUGE_VAL, sp);
      if (b != Builtin::None)
        fail(std::string("Unsupported use of builtin ") + builtin_name(b), sp);
      // Global int, float and bool constants are captured at decoration (docs/language.md, Names).
      if (k == "Name") {
        if (nb::isinstance<nb::bool_>(*v)) return bool_lit(nb::cast<bool>(*v), sp);
        if (nb::isinstance<nb::int_>(*v)) {
          try {
            return int_lit(nb::cast<int64_t>(*v), sp);
          } catch (...) {
          }
        }
        if (nb::isinstance<nb::float_>(*v)) return float_lit(nb::cast<double>(*v), sp);
      }
    }
    if (k == "Name") return var(nb::cast<std::string>(n.attr("id")), sp);
    fail("Unsupported expression: " + unparse(n) + attribute_hint(n), sp);
  }

  // ---- Hints: what a new user should write instead of a call or attribute we reject ----

  // The text after "Call to unknown function f" / "Unsupported call target type": the parpy
  // builtin that does what the called function does, or what else to do. Starts with ".\n".
  std::string call_hint(nb::handle func) {
    if (std::string hint = operator_hint(func); !hint.empty()) return hint;
    auto v = evaluate(func);
    std::string shown = unparse(func);
    if (v && nb::hasattr(*v, "__code__") && !nb::hasattr(*v, "_parpy_external"))
      return ".\nDecorate " + shown + " with @parpy.jit (before the functions that call it) to "
             "call it from a jit function.";
    return ".\nA jit function can call the builtins of parpy.operators (exp, log, sin, cos, sqrt, tanh, "
           "atan2, abs, min, max, sum, prod and conversions such as float32), other @parpy.jit "
           "functions, and C functions declared with @parpy.external.";
  }

  // The parpy builtin to use instead of the called function (len, np.sum, math.exp, Python's
  // max), starting with ".\n"; empty when there is none.
  std::string operator_hint(nb::handle func) {
    std::vector<std::string> names;
    if (kind(func) == "Name") names.push_back(nb::cast<std::string>(func.attr("id")));
    if (kind(func) == "Attribute") names.push_back(nb::cast<std::string>(func.attr("attr")));
    auto v = evaluate(func);
    if (v) {
      nb::object qual = nb::getattr(*v, "__name__", nb::none());
      if (nb::isinstance<nb::str>(qual)) names.push_back(nb::cast<std::string>(qual));
    }
    std::string shown = unparse(func);
    for (const std::string& n : names) {
      if (n == "len")
        return ".\nThe length of an array is not available inside a jit function: pass it as an "
               "argument (def f(x, N): ..., called as f(x, len(x))).";
      if (const char* op = operator_for(n)) {
        std::string use = std::string("parpy.operators.") + op;
        std::string hint = ".\nUse " + use + " instead: inside a jit function only parpy.operators " +
                           "builtins are compiled, not " + shown + ".";
        if (std::string(op) == "sum" || std::string(op) == "prod")
          hint += " Reductions take a slice, as in s = " + use + "(x[i, :]) or y[:] = " + use +
                  "(x[:, :], axis=1).";
        return hint;
      }
    }
    return "";
  }

  // The parpy.operators builtin named `n`, or its numpy/math spelling (np.maximum, math.fabs).
  static const char* operator_for(const std::string& n) {
    for (const auto& e : kBuiltins)
      if (n == e.name && e.b != Builtin::Label && e.b != Builtin::Gpu && e.b != Builtin::Inf) return e.name;
    static const std::pair<const char*, const char*> aliases[] = {
        {"arctan2", "atan2"}, {"fabs", "abs"},     {"absolute", "abs"}, {"amax", "max"},
        {"maximum", "max"},   {"fmax", "max"},     {"amin", "min"},     {"minimum", "min"},
        {"fmin", "min"},      {"float", "float64"}, {"int", "int64"},   {"nansum", "sum"}};
    for (const auto& [a, op] : aliases)
      if (n == a) return op;
    return nullptr;
  }

  // The text after "Unsupported expression: x.shape": array properties are not available.
  static std::string attribute_hint(nb::handle n) {
    std::string attr = nb::cast<std::string>(n.attr("attr"));
    if (attr == "shape" || attr == "size" || attr == "ndim")
      return ".\nThe shape of an array is not available inside a jit function: pass the size as an "
             "argument (def f(x, N): ..., called as f(x, x.shape[0])).";
    return "";
  }

  // Resolves the call target `func` in the decorating frame, as Python would, and returns its
  // key. A name that is not bound yet is deferred (python_to_ir then returns nullptr) or unknown.
  std::string callee_key(nb::handle func, const Span& call_span) {
    std::string k = kind(func);
    if (k != "Name" && k != "Attribute") fail("Unsupported call target type" + call_hint(func), span(func));
    std::string text = unparse(func);
    nb::handle root = func;
    while (kind(root) == "Attribute") root = root.attr("value");
    bool local = kind(root) == "Name" && locals_.count(nb::cast<std::string>(root.attr("id")));
    if (local && k == "Attribute") fail("Unsupported call target type" + call_hint(func), span(func));  // x.fill(0)
    auto v = local ? std::nullopt : evaluate(func);
    if (!v) {
      if (local || !in_.defer_unbound) fail("Call to unknown function " + text + call_hint(func), call_span);
      unbound_ = true;
      return text;
    }
    ResolvedCall r = in_.resolve_call(*v);
    switch (r.kind) {
      case ResolvedCall::Jit: return intern(text, {r.fn, {}});
      case ResolvedCall::External: return intern(text, {nullptr, r.exts});
      case ResolvedCall::Unbound:
        if (!in_.defer_unbound) fail("Call to unknown function " + text + call_hint(func), call_span);
        unbound_ = true;
        return text;
      case ResolvedCall::Recursive:
        fail("Recursive call to " + text + ", which is not supported: jit functions cannot call "
             "themselves, directly or through other functions",
             call_span);
      case ResolvedCall::Other: break;
    }
    // numpy's and math's functions (np.sum, math.exp) have parpy builtins that do their job.
    if (std::string hint = operator_hint(func); !hint.empty())
      fail((k == "Attribute" ? "Unsupported call target type" : "Call to unknown function " + text) + hint,
           k == "Attribute" ? span(func) : call_span);
    nb::module_ inspect = nb::module_::import_("inspect");
    if (nb::cast<bool>(inspect.attr("isfunction")(*v)) || nb::cast<bool>(inspect.attr("ismethod")(*v)))
      fail("Cannot call " + text + " from jit code: it is a plain Python function. Decorate it with "
           "@parpy.jit (or declare it with @parpy.external)",
           call_span);
    if (k == "Attribute") fail("Unsupported call target type" + call_hint(func), span(func));
    fail("Call to unknown function " + text + call_hint(func), call_span);
  }

  static bool same_callee(const Callee& a, const Callee& b) {
    return a.fn == b.fn && a.exts == b.exts;
  }

  // The key of callee c, first met as `text`.
  std::string intern(const std::string& text, const Callee& c) {
    for (const auto& [key, known] : callees_)
      if (same_callee(known, c)) return key;
    std::string key = text;
    for (int i = 1; callees_.count(key); ++i) key = text + "_" + std::to_string(i);
    callees_[key] = c;
    return key;
  }

  // A copy of statement-level callee f whose calls use this function's keys, so that after
  // inlining they still call what they resolved to when f was decorated.
  FunctionRef with_our_keys(const FunctionRef& f) {
    std::map<std::string, std::string> rename;
    for (const auto& [k, h] : f->helpers) {
      std::string key = intern(k, {h, {}});
      helpers_[key] = h;
      rename[k] = key;
    }
    for (const auto& [k, e] : f->externals) {
      std::string key = intern(k, {nullptr, e});
      externals_[key] = e;
      rename[k] = key;
    }
    auto g = std::make_shared<Function>(*f);
    g->body = map_block_exprs(f->body, [&](const Expr& e) {
      return map_expr(e, [&](const Expr& x) -> Expr {
        if (x->kind != ExprKind::Call) return x;
        auto it = rename.find(x->name);
        if (it == rename.end() || it->second == x->name) return x;
        auto n = copy(x);
        n->name = it->second;
        return n;
      });
    });
    return g;
  }

  std::optional<int64_t> axis_kw(nb::handle call, const Span& sp, bool allowed) {
    std::optional<int64_t> axis;
    for (nb::handle kw : call.attr("keywords")) {
      nb::object arg = kw.attr("arg");
      std::string name = arg.is_none() ? "**" : nb::cast<std::string>(arg);
      if (name != "axis" || !allowed || axis)
        fail("Unsupported keyword argument in call: " + name, sp);
      nb::handle v = kw.attr("value");
      int64_t sign = 1;
      if (kind(v) == "UnaryOp" && kind(v.attr("op")) == "USub") {
        sign = -1;
        v = v.attr("operand");
      }
      if (kind(v) != "Constant" || !nb::isinstance<nb::int_>(v.attr("value")) ||
          nb::isinstance<nb::bool_>(v.attr("value")))
        fail("Expected integer literal value for 'axis' keyword argument", span(kw.attr("value")));
      axis = signed_literal(v.attr("value"), sign, "Axis", span(kw.attr("value")));
    }
    return axis;
  }

  [[noreturn]] static void bad_args(Builtin b, size_t na, const Span& sp) {
    fail(std::string("Unsupported use of builtin ") + builtin_name(b) + " with " + std::to_string(na) +
             " args.",
         sp);
  }

  Expr call_expr(nb::handle n, const Span& sp) {
    nb::handle func = n.attr("func");
    std::vector<Expr> args;
    for (nb::handle a : n.attr("args")) args.push_back(expr(a));
    Builtin b = builtin_of(func);
    if (b == Builtin::None) {
      axis_kw(n, sp, false);
      std::string key = callee_key(func, sp);
      auto it = callees_.find(key);
      if (!unbound_ && it != callees_.end()) {
        if (it->second.fn)
          helpers_[key] = it->second.fn;
        else
          externals_[key] = it->second.exts;
      }
      return call(key, std::move(args), sp);
    }
    std::optional<int64_t> axis = axis_kw(n, sp, true);
    size_t na = args.size();
    auto no_axis = [&]() {
      if (axis) fail("Unsupported keyword argument in call: axis", sp);
    };
    switch (b) {
      case Builtin::Exp: case Builtin::Log: case Builtin::Cos: case Builtin::Sin:
      case Builtin::Sqrt: case Builtin::Tanh: case Builtin::Abs: {
        no_axis();
        if (na != 1) bad_args(b, na, sp);
        static const std::pair<Builtin, UnOp> m[] = {
            {Builtin::Exp, UnOp::Exp},   {Builtin::Log, UnOp::Log},   {Builtin::Cos, UnOp::Cos},
            {Builtin::Sin, UnOp::Sin},   {Builtin::Sqrt, UnOp::Sqrt}, {Builtin::Tanh, UnOp::Tanh},
            {Builtin::Abs, UnOp::Abs}};
        for (const auto& [bb, op] : m)
          if (bb == b) return unop(op, args[0], sp);
        bad_args(b, na, sp);
      }
      case Builtin::Min: case Builtin::Max:
        if (na == 1) return reduce(b == Builtin::Min ? ReduceOp::Min : ReduceOp::Max, args[0], axis, sp);
        if (na == 2) {
          no_axis();
          return binop(b == Builtin::Min ? BinOp::Min : BinOp::Max, args[0], args[1], sp);
        }
        bad_args(b, na, sp);
      case Builtin::Sum: case Builtin::Prod:
        if (na != 1) bad_args(b, na, sp);
        return reduce(b == Builtin::Sum ? ReduceOp::Sum : ReduceOp::Prod, args[0], axis, sp);
      case Builtin::Atan2:
        no_axis();
        if (na != 2) bad_args(b, na, sp);
        return binop(BinOp::Atan2, args[0], args[1], sp);
      case Builtin::F16: case Builtin::F32: case Builtin::F64: case Builtin::I8: case Builtin::I16:
      case Builtin::I32: case Builtin::I64: case Builtin::U8: case Builtin::U16: case Builtin::U32:
      case Builtin::U64: {
        no_axis();
        if (na != 1) bad_args(b, na, sp);
        static const std::pair<Builtin, ElemSize> m[] = {
            {Builtin::F16, ElemSize::F16}, {Builtin::F32, ElemSize::F32}, {Builtin::F64, ElemSize::F64},
            {Builtin::I8, ElemSize::I8},   {Builtin::I16, ElemSize::I16}, {Builtin::I32, ElemSize::I32},
            {Builtin::I64, ElemSize::I64}, {Builtin::U8, ElemSize::U8},   {Builtin::U16, ElemSize::U16},
            {Builtin::U32, ElemSize::U32}, {Builtin::U64, ElemSize::U64}};
        for (const auto& [bb, sz] : m)
          if (bb == b) {
            auto c = copy(parpy::convert(args[0], Type::scalar(sz)));
            c->span = sp;
            return c;
          }
        bad_args(b, na, sp);
      }
      default:
        fail(std::string("Unsupported use of builtin ") + builtin_name(b), sp);
    }
  }
};

}  // namespace

Parsed python_to_ir(const FrontendInput& in) {
  return Converter(in).convert();
}

}  // namespace parpy
