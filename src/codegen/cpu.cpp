#include "codegen/cpu.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "codegen/c_names.h"

namespace parpy {

const char* cpu_type(ElemSize e) {
  switch (e) {
    case ElemSize::Bool: return "bool";
    case ElemSize::I8: return "int8_t";
    case ElemSize::I16: return "int16_t";
    case ElemSize::I32: return "int32_t";
    case ElemSize::I64: return "int64_t";
    case ElemSize::U8: return "uint8_t";
    case ElemSize::U16: return "uint16_t";
    case ElemSize::U32: return "uint32_t";
    case ElemSize::U64: return "uint64_t";
    case ElemSize::F16: return "parpy_f16";
    case ElemSize::F32: return "float";
    case ElemSize::F64: return "double";
  }
  return "int64_t";
}

namespace {

std::string type_str(const Type& t) {
  if (t.kind == Type::Kind::Void) return "void";
  if (t.is_scalar()) return cpu_type(t.elem);
  return std::string(cpu_type(t.elem)) + "*";
}

std::string float_literal(double v, ElemSize e) {
  if (std::isnan(v)) return e == ElemSize::F64 ? "((double)NAN)" : "((float)NAN)";
  if (std::isinf(v)) {
    std::string s = e == ElemSize::F64 ? "HUGE_VAL" : "HUGE_VALF";
    if (v < 0) s = "(-" + s + ")";
    return e == ElemSize::F16 ? "((parpy_f16)" + s + ")" : s;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  if (e == ElemSize::F32) return s + "f";
  if (e == ElemSize::F16) return "((parpy_f16)" + s + "f)";
  return s;
}

std::string int_literal(int64_t v, ElemSize e) {
  if (is_bool(e)) return v ? "true" : "false";
  if (is_float(e)) return float_literal(static_cast<double>(v), e);
  if (is_unsigned_int(e)) {
    std::string u = std::to_string(static_cast<uint64_t>(v));
    return e == ElemSize::U64 ? "UINT64_C(" + u + ")" : "((" + std::string(cpu_type(e)) + ")" + u + "u)";
  }
  std::string s;
  if (v == INT64_MIN) s = "(-INT64_C(9223372036854775807) - 1)";
  else if (v >= -2147483647 && v <= 2147483647) s = std::to_string(v);
  else s = "INT64_C(" + std::to_string(v) + ")";
  if (e == ElemSize::I64 || e == ElemSize::I32) return s;
  return "((" + std::string(cpu_type(e)) + ")" + s + ")";
}

bool contains_loop(const Block& b) {
  bool found = false;
  visit_block(b, [&](const Stmt& s) {
    if (s->kind == StmtKind::For || s->kind == StmtKind::While) found = true;
  });
  return found;
}

class CpuPrinter {
 public:
  std::ostringstream os;

  void function(const std::string& name, const std::vector<AbiParam>& params, const Block& body) {
    std::string fname = c_ident(name);
    os << "extern \"C\" int32_t " << fname << "(";
    for (size_t i = 0; i < params.size(); ++i)
      os << (i ? ", " : "") << type_str(params[i].type) << " " << c_ident(params[i].name);
    os << ") {\n";
    for (const auto& p : params)
      if (p.type.is_scalar()) os << "  (void)" << c_ident(p.name) << ";\n";
    declarations(body, 1);
    block(body, 1, false);
    os << "  return 0;\n}\n\n";
    entry = fname + "__parpy_entry";
    os << print_cpu_entry(fname, params);
  }

  std::string entry;

  // A helper called in expressions: sequential code of one thread (SPEC B 2.9).
  void helper(const Function& f) {
    os << "static inline " << type_str(f.ret) << " " << f.name << "(";
    for (size_t i = 0; i < f.params.size(); ++i)
      os << (i ? ", " : "") << type_str(*f.params[i].annotation) << " " << c_ident(f.params[i].name);
    os << ") {\n";
    declarations(f.body, 1);
    block(f.body, 1, true);
    os << "}\n\n";
  }

 private:
  int acc_counter_ = 0;

  static std::string pad(int indent) { return std::string(indent * 2, ' '); }

  // Locals are declared at the top of the function or loop body that scopes them (SPEC B 2.11).
  void declarations(const Block& b, int indent) {
    std::set<std::string> seen;
    collect_decls(b, indent, seen);
  }

  void collect_decls(const Block& b, int indent, std::set<std::string>& seen) {
    for (const auto& s : b) {
      if (s->kind == StmtKind::Assign && s->defines && s->lhs->kind == ExprKind::Var &&
          seen.insert(s->lhs->name).second)
        os << pad(indent) << type_str(s->lhs->ty) << " " << c_ident(s->lhs->name) << ";\n";
      if (s->kind == StmtKind::For) continue;
      collect_decls(s->body, indent, seen);
      collect_decls(s->orelse, indent, seen);
    }
  }

  void block(const Block& b, int indent, bool in_parallel) {
    for (const auto& s : b) stmt(s, indent, in_parallel);
  }

  void stmt(const Stmt& s, int indent, bool in_parallel) {
    std::string p = pad(indent);
    switch (s->kind) {
      case StmtKind::Assign:
        os << p << expr(s->lhs) << " = " << expr(s->rhs) << ";\n";
        break;
      case StmtKind::For: loop(s, indent, in_parallel); break;
      case StmtKind::While:
        os << p << "while (" << expr(s->cond) << ") {\n";
        block(s->body, indent + 1, in_parallel);
        os << p << "}\n";
        break;
      case StmtKind::If:
        os << p << "if (" << expr(s->cond) << ") {\n";
        block(s->body, indent + 1, in_parallel);
        if (!s->orelse.empty()) {
          os << p << "} else {\n";
          block(s->orelse, indent + 1, in_parallel);
        }
        os << p << "}\n";
        break;
      case StmtKind::WithGpu:
        block(s->body, indent, in_parallel);
        break;
      case StmtKind::Return:
        os << p << "return " << expr(s->rhs) << ";\n";
        break;
      default:
        internal_fail("statement kind not supported by the Cpu printer", s->span);
    }
  }

  std::string loop_header(const Stmt& s, const std::string& v) {
    std::string cmp = s->step > 0 ? " < " : " > ";
    std::string inc = s->step == 1 ? "++" + v : v + " += " + std::to_string(s->step);
    return "for (int64_t " + v + " = " + expr(s->lo) + "; " + v + cmp + expr(s->hi) + "; " + inc + ")";
  }

  void loop(const Stmt& s, int indent, bool in_parallel) {
    std::string p = pad(indent);
    std::string v = c_ident(s->var);
    bool parallel = s->par.nthreads > 1;
    bool outer = parallel && !in_parallel;
    // A declared reduction may be reassociated, so even a sequential one is vectorised.
    bool simd = (parallel ? in_parallel : s->par.reduction) && !contains_loop(s->body);
    std::string pragma;
    if (outer)
      pragma = "#pragma omp parallel for num_threads(parpy_num_threads(" +
               std::to_string(s->par.nthreads) + ")) schedule(static)";
    else if (simd)
      pragma = "#pragma omp simd";
    if (s->par.reduction && !pragma.empty()) {
      reduction_loop(s, indent, pragma, v);
      return;
    }
    if (!pragma.empty()) os << p << pragma << "\n";
    os << p << loop_header(s, v) << " {\n";
    declarations(s->body, indent + 1);
    block(s->body, indent + 1, in_parallel || outer);
    os << p << "}\n";
  }

  // dst = dst op e over the loop becomes a private accumulator combined by OpenMP.
  void reduction_loop(const Stmt& s, int indent, const std::string& pragma, const std::string& v) {
    std::string p = pad(indent);
    const Stmt& st = s->body[0];
    ElemSize t = st->lhs->ty.elem;
    // Half precision accumulates in float.
    ElemSize acc_t = t == ElemSize::F16 ? ElemSize::F32 : t;
    std::string acc = "parpy_acc" + std::to_string(acc_counter_++);
    const char* clause = "+";
    std::string ne = is_float(acc_t) ? float_literal(0.0, acc_t) : int_literal(0, acc_t);
    std::string combine;
    std::string value = "(" + std::string(cpu_type(acc_t)) + ")" + expr(st->rhs->args[1]);
    switch (s->red_op) {
      case BinOp::Add: combine = acc + " + " + value; break;
      case BinOp::Mul:
        clause = "*";
        ne = is_float(acc_t) ? float_literal(1.0, acc_t) : int_literal(1, acc_t);
        combine = acc + " * " + value;
        break;
      case BinOp::Max:
        clause = "max";
        ne = is_float(acc_t) ? float_literal(-HUGE_VAL, acc_t) : std::string("std::numeric_limits<") + cpu_type(acc_t) + ">::lowest()";
        combine = "parpy_max(" + acc + ", " + value + ")";
        break;
      case BinOp::Min:
        clause = "min";
        ne = is_float(acc_t) ? float_literal(HUGE_VAL, acc_t) : std::string("std::numeric_limits<") + cpu_type(acc_t) + ">::max()";
        combine = "parpy_min(" + acc + ", " + value + ")";
        break;
      default: internal_fail("unexpected reduction operator", s->span);
    }
    os << p << "{\n";
    os << p << "  " << cpu_type(acc_t) << " " << acc << " = " << ne << ";\n";
    os << p << "  " << pragma << " reduction(" << clause << ":" << acc << ")\n";
    os << p << "  " << loop_header(s, v) << " {\n";
    os << p << "    " << acc << " = " << combine << ";\n";
    os << p << "  }\n";
    std::string dst = expr(st->lhs);
    std::string accv = "(" + std::string(cpu_type(t)) + ")" + acc;
    switch (s->red_op) {
      case BinOp::Add: os << p << "  " << dst << " = " << dst << " + " << accv << ";\n"; break;
      case BinOp::Mul: os << p << "  " << dst << " = " << dst << " * " << accv << ";\n"; break;
      case BinOp::Max: os << p << "  " << dst << " = parpy_max(" << dst << ", " << accv << ");\n"; break;
      default: os << p << "  " << dst << " = parpy_min(" << dst << ", " << accv << ");\n"; break;
    }
    os << p << "}\n";
  }

  std::string expr(const Expr& e) {
    switch (e->kind) {
      case ExprKind::Var: return c_ident(e->name);
      case ExprKind::Int: return int_literal(e->ival, e->ty.elem);
      case ExprKind::Float: return float_literal(e->fval, e->ty.elem);
      case ExprKind::Bool: return e->bval ? "true" : "false";
      case ExprKind::Access:
        // A non-scalar access is a row passed to a pointer parameter: its address.
        if (!e->ty.is_scalar()) return "(" + c_ident(e->name) + " + " + expr(e->args[0]) + ")";
        return c_ident(e->name) + "[" + expr(e->args[0]) + "]";
      case ExprKind::Call: {
        std::string s = e->name + "(";
        for (size_t i = 0; i < e->args.size(); ++i) s += (i ? ", " : "") + expr(e->args[i]);
        return s + ")";
      }
      case ExprKind::Convert:
        return "((" + std::string(cpu_type(e->ty.elem)) + ")" + expr(e->args[0]) + ")";
      case ExprKind::IfExpr:
        return "(" + expr(e->args[0]) + " ? " + expr(e->args[1]) + " : " + expr(e->args[2]) + ")";
      case ExprKind::UnOp: return unary(e);
      case ExprKind::BinOp: return binary(e);
      default: internal_fail("expression kind not supported by the Cpu printer: " + print_expr(e), e->span);
    }
  }

  std::string narrow(const Expr& e, const std::string& s) {
    // C promotes types narrower than int; keep the IR's type.
    ElemSize t = e->ty.elem;
    if (elem_bytes(t) < 4 && !is_bool(t)) return "((" + std::string(cpu_type(t)) + ")" + s + ")";
    return s;
  }

  std::string unary(const Expr& e) {
    std::string a = expr(e->args[0]);
    switch (e->unop) {
      case UnOp::Neg: return narrow(e, "(-" + a + ")");
      case UnOp::Not: return "(!" + a + ")";
      case UnOp::BitNot: return narrow(e, "(~" + a + ")");
      case UnOp::Abs: return "parpy_abs(" + a + ")";
      default: return std::string("parpy_") + unop_name(e->unop) + "(" + a + ")";
    }
  }

  std::string binary(const Expr& e) {
    std::string a = expr(e->args[0]), b = expr(e->args[1]);
    ElemSize t = e->args[0]->ty.elem;
    auto infix = [&](const char* op) { return "(" + a + " " + op + " " + b + ")"; };
    auto fn = [&](const char* f) { return std::string(f) + "(" + a + ", " + b + ")"; };
    // Name the template argument: a literal operand (e.g. `3` for an I64) need not have the
    // other operand's C++ type, which would make deduction fail.
    auto tfn = [&](const char* f) {
      return std::string(f) + "<" + cpu_type(t) + ">(" + a + ", " + b + ")";
    };
    switch (e->binop) {
      case BinOp::Add: return narrow(e, infix("+"));
      case BinOp::Sub: return narrow(e, infix("-"));
      case BinOp::Mul: return narrow(e, infix("*"));
      case BinOp::Div: return is_float(t) ? infix("/") : tfn("parpy_div");
      case BinOp::FloorDiv: return tfn("parpy_floordiv");
      case BinOp::Mod: return tfn("parpy_mod");
      case BinOp::Pow: return is_float(t) ? fn("parpy_pow") : tfn("parpy_pow");
      case BinOp::BitAnd: return narrow(e, infix("&"));
      case BinOp::BitOr: return narrow(e, infix("|"));
      case BinOp::BitXor: return narrow(e, infix("^"));
      case BinOp::Shl: return narrow(e, infix("<<"));
      case BinOp::Shr: return narrow(e, infix(">>"));
      case BinOp::And: return infix("&&");
      case BinOp::Or: return infix("||");
      case BinOp::Eq: return infix("==");
      case BinOp::Neq: return infix("!=");
      case BinOp::Lt: return infix("<");
      case BinOp::Le: return infix("<=");
      case BinOp::Gt: return infix(">");
      case BinOp::Ge: return infix(">=");
      case BinOp::Max: return tfn("parpy_max");
      case BinOp::Min: return tfn("parpy_min");
      case BinOp::Atan2: return fn("parpy_atan2");
    }
    return "?";
  }
};

}  // namespace

std::string print_cpu_entry(const std::string& fname, const std::vector<AbiParam>& params) {
  std::ostringstream os;
  os << "extern \"C\" int32_t " << fname << "__parpy_entry(void** args) {\n  return " << fname << "(";
  for (size_t i = 0; i < params.size(); ++i)
    os << (i ? ", " : "") << "*(" << type_str(params[i].type) << "*)args[" << i << "]";
  os << ");\n}\n";
  return os.str();
}

CpuProgram print_cpu(const std::string& name, const std::vector<AbiParam>& params, const Block& body,
                     const Helpers& helpers) {
  CpuPrinter p;
  p.os << "// Generated by parpy (Cpu backend).\n#include \"parpy_cpu.h\"\n#include <limits>\n";
  for (const auto& h : helpers.headers) {
    bool delimited = !h.empty() && (h[0] == '<' || h[0] == '"');
    p.os << "#include " << (delimited ? h : "\"" + h + "\"") << "\n";
  }
  p.os << "\n";
  for (const auto& f : helpers.functions) p.helper(f);
  p.function(name, params, body);
  return {p.os.str(), p.entry};
}

}  // namespace parpy
