#include "codegen/c_printer.h"

#include <cmath>
#include <cstdio>

#include "ir/c_names.h"
#include "ir/intrinsics.h"

namespace parpy {

std::string CPrinter::type_str(const Type& t) const {
  if (t.kind == Type::Kind::Void) return "void";
  if (t.is_scalar()) return type_name(t.elem);
  return type_name(t.elem) + "*";
}

std::string CPrinter::float_literal(double v, ElemSize e) const {
  std::string s;
  if (std::isnan(v)) {
    return "((" + type_name(e) + ")NAN)";
  } else if (std::isinf(v)) {
    s = v > 0 ? "HUGE_VALF" : "(-HUGE_VALF)";
    if (e == ElemSize::F64) return v > 0 ? "HUGE_VAL" : "(-HUGE_VAL)";
  } else {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    s = buf;
    if (s.find_first_of(".en") == std::string::npos) s += ".0";
    if (e == ElemSize::F64) return s;
    s += "f";
  }
  if (e == ElemSize::F32) return s;
  return "((" + type_name(e) + ")" + s + ")";
}

std::string CPrinter::int_literal(int64_t v, ElemSize e) const {
  if (is_bool(e)) return v ? "true" : "false";
  if (is_float(e)) return float_literal(static_cast<double>(v), e);
  if (is_unsigned_int(e)) {
    std::string u = std::to_string(static_cast<uint64_t>(v));
    return e == ElemSize::U64 ? "UINT64_C(" + u + ")" : "((" + type_name(e) + ")" + u + "u)";
  }
  std::string s;
  if (v == INT64_MIN)
    s = "(-INT64_C(9223372036854775807) - 1)";
  else if (v >= -2147483647 && v <= 2147483647)
    s = std::to_string(v);
  else
    s = "INT64_C(" + std::to_string(v) + ")";
  if (e == ElemSize::I64 || e == ElemSize::I32) return s;
  return "((" + type_name(e) + ")" + s + ")";
}

void CPrinter::declarations(const Block& b, int indent) {
  std::set<std::string> seen;
  collect_decls(b, indent, seen);
}

void CPrinter::collect_decls(const Block& b, int indent, std::set<std::string>& seen) {
  for (const auto& s : b) {
    if (s->kind == StmtKind::Assign && s->defines && s->lhs->kind == ExprKind::Var &&
        seen.insert(s->lhs->name).second)
      os << pad(indent) << type_str(s->lhs->ty) << " " << c_ident(s->lhs->name) << ";\n";
    // The locals a chunk load defines (its arguments after the first).
    if (s->kind == StmtKind::Call && intrinsic_of(s->rhs) == Intrinsic::ChunkLoad)
      for (size_t i = 1; i < s->rhs->args.size(); ++i)
        if (seen.insert(s->rhs->args[i]->name).second)
          os << pad(indent) << type_str(s->rhs->args[i]->ty) << " " << c_ident(s->rhs->args[i]->name) << ";\n";
    if (s->kind == StmtKind::For) continue;
    collect_decls(s->body, indent, seen);
    collect_decls(s->orelse, indent, seen);
  }
}

void CPrinter::block(const Block& b, int indent) {
  for (const auto& s : b) stmt(s, indent);
}

void CPrinter::stmt(const Stmt& s, int indent) {
  std::string p = pad(indent);
  switch (s->kind) {
    case StmtKind::Assign:
      if (s->atomic)
        atomic_update(s, indent);
      else
        os << p << expr(s->lhs) << " = " << expr(s->rhs) << ";\n";
      break;
    case StmtKind::For: loop(s, indent); break;
    case StmtKind::While:
      os << p << "while (" << expr(s->cond) << ") {\n";
      block(s->body, indent + 1);
      os << p << "}\n";
      break;
    case StmtKind::If:
      os << p << "if (" << expr(s->cond) << ") {\n";
      block(s->body, indent + 1);
      if (!s->orelse.empty()) {
        os << p << "} else {\n";
        block(s->orelse, indent + 1);
      }
      os << p << "}\n";
      break;
    case StmtKind::WithGpu: block(s->body, indent); break;
    case StmtKind::Call: os << p << expr(s->rhs) << ";\n"; break;
    case StmtKind::Return: os << p << "return " << expr(s->rhs) << ";\n"; break;
    default: internal_fail("statement kind not supported by the C printer", s->span);
  }
}

std::string CPrinter::atomic_op_name(BinOp op) {
  switch (op) {
    case BinOp::Add: return "add";
    case BinOp::Sub: return "sub";
    case BinOp::Max: return "max";
    default: return "min";
  }
}

std::string CPrinter::loop_header(const Stmt& s) const {
  std::string v = c_ident(s->var);
  std::string cmp = s->step > 0 ? " < " : " > ";
  std::string inc = s->step == 1 ? "++" + v : v + " += " + int_literal(s->step, ElemSize::I64);
  CPrinter& self = const_cast<CPrinter&>(*this);
  return "for (int64_t " + v + " = " + self.expr(s->lo) + "; " + v + cmp + self.expr(s->hi) + "; " + inc + ")";
}

bool plain_loop_is_exact(const Stmt& s, bool canonical) {
  if (s->step == 1 || s->step == -1) return true;
  const Expr &lo = s->lo, &hi = s->hi;
  // A loop over the iteration numbers of another one (below kMaxTrips).
  bool counts_trips = intrinsic_of(hi) == Intrinsic::Trips;
  if (counts_trips && s->step > 0 && !canonical) return increment_stays_in_range(kMaxTrips, s->step);
  if (hi->kind != ExprKind::Int || !increment_stays_in_range(hi->ival, s->step)) return false;
  if (!canonical) return true;
  if (lo->kind != ExprKind::Int) return false;
  __int128 n = static_cast<__int128>(hi->ival) - lo->ival + s->step + (s->step > 0 ? -1 : 1);
  return n <= INT64_MAX && n >= INT64_MIN;
}

int CPrinter::open_loop(const Stmt& s, int indent, const std::string& pragma, bool canonical,
                        std::string& close) {
  std::string p = pad(indent);
  if (plain_loop_is_exact(s, canonical)) {
    if (!pragma.empty()) os << p << pragma << "\n";
    os << p << loop_header(s) << " {\n";
    close = p + "}\n";
    return indent + 1;
  }
  // The bounds are evaluated once, as Python's range does.
  std::string k = std::to_string(trip_loops_++);
  std::string lo = "parpy_range_lo" + k, n = "parpy_range_n" + k, t = "parpy_range_t" + k;
  std::string step = int_literal(s->step, ElemSize::I64);
  std::string q = pad(indent + 1);
  os << p << "{\n";
  os << q << "const int64_t " << lo << " = " << expr(s->lo) << ";\n";
  os << q << "const int64_t " << n << " = parpy_trips(" << lo << ", " << expr(s->hi) << ", " << step << ");\n";
  if (!pragma.empty()) os << q << pragma << "\n";
  os << q << "for (int64_t " << t << " = 0; " << t << " < " << n << "; ++" << t << ") {\n";
  os << pad(indent + 2) << "int64_t " << c_ident(s->var) << " = parpy_iter(" << lo << ", " << t << ", " << step
     << ");\n";
  close = q + "}\n" + p + "}\n";
  return indent + 2;
}

void CPrinter::print_loop(const Stmt& s, int indent, const std::string& pragma, bool canonical) {
  std::string close;
  int body = open_loop(s, indent, pragma, canonical, close);
  declarations(s->body, body);
  block(s->body, body);
  os << close;
}

void CPrinter::helper_function(const Function& f, const std::string& qualifiers) {
  os << qualifiers << " " << type_str(f.ret) << " " << f.name << "(";
  for (size_t i = 0; i < f.params.size(); ++i)
    os << (i ? ", " : "") << type_str(*f.params[i].annotation) << " " << c_ident(f.params[i].name);
  os << ") {\n";
  declarations(f.body, 1);
  block(f.body, 1);
  os << "}\n\n";
}

void CPrinter::loop(const Stmt& s, int indent) { print_loop(s, indent, "", false); }

std::string CPrinter::call_expr(const Expr& e) {
  // Compiler intrinsics are named with '$'; helpers and externals carry their C names.
  std::string out = (e->name[0] == '$' ? c_ident(e->name) : e->name) + "(";
  for (size_t i = 0; i < e->args.size(); ++i) out += (i ? ", " : "") + expr(e->args[i]);
  return out + ")";
}

std::string CPrinter::expr(const Expr& e) {
  switch (e->kind) {
    case ExprKind::Var: return c_ident(e->name);
    case ExprKind::Int: return int_literal(e->ival, e->ty.elem);
    case ExprKind::Float: return float_literal(e->fval, e->ty.elem);
    case ExprKind::Bool: return e->bval ? "true" : "false";
    case ExprKind::Access:
      // A non-scalar access is a row passed to a pointer parameter: its address.
      if (!e->ty.is_scalar()) return "(" + c_ident(e->name) + " + " + expr(e->args[0]) + ")";
      return c_ident(e->name) + "[" + expr(e->args[0]) + "]";
    case ExprKind::Convert: return "((" + type_name(e->ty.elem) + ")" + expr(e->args[0]) + ")";
    case ExprKind::IfExpr:
      return "(" + expr(e->args[0]) + " ? " + expr(e->args[1]) + " : " + expr(e->args[2]) + ")";
    case ExprKind::UnOp: return unary(e);
    case ExprKind::BinOp: return binary(e);
    case ExprKind::Call: return call_expr(e);
    default: internal_fail("expression kind not supported by the C printer: " + print_expr(e), e->span);
  }
}

std::string CPrinter::narrow(const Expr& e, const std::string& s) const {
  ElemSize t = e->ty.elem;
  if (elem_bytes(t) < 4 && !is_bool(t) && !is_float(t)) return "((" + type_name(t) + ")" + s + ")";
  return s;
}

std::string CPrinter::unary(const Expr& e) {
  std::string a = expr(e->args[0]);
  switch (e->unop) {
    case UnOp::Neg: return narrow(e, "(-" + a + ")");
    case UnOp::Not: return "(!" + a + ")";
    case UnOp::BitNot: return narrow(e, "(~" + a + ")");
    case UnOp::Abs: return "parpy_abs(" + a + ")";
    default: return std::string("parpy_") + unop_name(e->unop) + "(" + a + ")";
  }
}

std::string CPrinter::binary(const Expr& e) {
  std::string a = expr(e->args[0]), b = expr(e->args[1]);
  ElemSize t = e->args[0]->ty.elem;
  auto infix = [&](const char* op) { return "(" + a + " " + op + " " + b + ")"; };
  // Literals print as int or double: name the template argument for the helpers.
  auto fn = [&](const char* f) { return std::string(f) + "<" + type_name(t) + ">(" + a + ", " + b + ")"; };
  switch (e->binop) {
    case BinOp::Add: return narrow(e, infix("+"));
    case BinOp::Sub: return narrow(e, infix("-"));
    case BinOp::Mul: return narrow(e, infix("*"));
    case BinOp::Div: return is_float(t) ? infix("/") : fn("parpy_div");
    case BinOp::FloorDiv: return fn("parpy_floordiv");
    case BinOp::Mod: return fn("parpy_mod");
    case BinOp::Pow:
      return is_float(t) ? "parpy_pow(" + a + ", " + b + ")" : fn("parpy_pow");
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
    case BinOp::Max: return fn("parpy_max");
    case BinOp::Min: return fn("parpy_min");
    case BinOp::Atan2: return "parpy_atan2(" + a + ", " + b + ")";
  }
  return "?";
}

}  // namespace parpy
