#include "ir/ir.h"

#include <cmath>
#include <sstream>

namespace parpy {

const char* unop_name(UnOp op) {
  switch (op) {
    case UnOp::Neg: return "-";
    case UnOp::Not: return "not";
    case UnOp::BitNot: return "~";
    case UnOp::Exp: return "exp";
    case UnOp::Log: return "log";
    case UnOp::Cos: return "cos";
    case UnOp::Sin: return "sin";
    case UnOp::Sqrt: return "sqrt";
    case UnOp::Tanh: return "tanh";
    case UnOp::Abs: return "abs";
  }
  return "?";
}

const char* binop_name(BinOp op) {
  static const char* names[] = {"+",  "-",  "*",  "/",  "//", "%",  "**", "&",
                                "|",  "^",  "<<", ">>", "and", "or", "==", "!=",
                                "<",  "<=", ">",  ">=", "max", "min", "atan2"};
  return names[static_cast<int>(op)];
}

bool is_comparison(BinOp op) { return op >= BinOp::Eq && op <= BinOp::Ge; }

std::shared_ptr<ExprNode> copy(const Expr& e) { return std::make_shared<ExprNode>(*e); }

Expr with_args(const Expr& e, std::vector<Expr> args) {
  auto n = copy(e);
  n->args = std::move(args);
  return n;
}

Expr with_type(const Expr& e, Type ty) {
  auto n = copy(e);
  n->ty = std::move(ty);
  return n;
}

static std::shared_ptr<ExprNode> node(ExprKind k, Span span, Type ty = {}) {
  auto n = std::make_shared<ExprNode>();
  n->kind = k;
  n->span = std::move(span);
  n->ty = std::move(ty);
  return n;
}

Expr var(std::string name, Span span, Type ty) {
  auto n = node(ExprKind::Var, std::move(span), std::move(ty));
  n->name = std::move(name);
  return n;
}

Expr int_lit(int64_t v, Span span, bool weak, ElemSize sz) {
  auto n = node(ExprKind::Int, std::move(span), Type::scalar(sz));
  n->ival = v;
  n->weak = weak;
  return n;
}

Expr float_lit(double v, Span span, bool weak, ElemSize sz) {
  auto n = node(ExprKind::Float, std::move(span), Type::scalar(sz));
  n->fval = v;
  n->weak = weak;
  return n;
}

Expr bool_lit(bool v, Span span) {
  auto n = node(ExprKind::Bool, std::move(span), Type::scalar(ElemSize::Bool));
  n->bval = v;
  return n;
}

Expr string_lit(std::string v, Span span) {
  auto n = node(ExprKind::String, std::move(span), Type::string());
  n->name = std::move(v);
  return n;
}

Expr unop(UnOp op, Expr a, Span span, Type ty) {
  auto n = node(ExprKind::UnOp, std::move(span), std::move(ty));
  n->unop = op;
  n->args = {std::move(a)};
  return n;
}

Expr binop(BinOp op, Expr a, Expr b, Span span, Type ty) {
  auto n = node(ExprKind::BinOp, std::move(span), std::move(ty));
  n->binop = op;
  n->args = {std::move(a), std::move(b)};
  return n;
}

Expr if_expr(Expr c, Expr a, Expr b, Span span) {
  auto n = node(ExprKind::IfExpr, std::move(span));
  n->args = {std::move(c), std::move(a), std::move(b)};
  return n;
}

Expr subscript(Expr target, std::vector<Expr> idx, Span span) {
  auto n = node(ExprKind::Subscript, std::move(span));
  n->args.push_back(std::move(target));
  for (auto& i : idx) n->args.push_back(std::move(i));
  return n;
}

Expr slice(Expr lo, Expr hi, Span span) {
  auto n = node(ExprKind::Slice, std::move(span));
  n->args = {std::move(lo), std::move(hi)};
  return n;
}

Expr tuple(std::vector<Expr> elems, Span span) {
  auto n = node(ExprKind::Tuple, std::move(span));
  n->args = std::move(elems);
  return n;
}

Expr call(std::string name, std::vector<Expr> args, Span span) {
  auto n = node(ExprKind::Call, std::move(span));
  n->name = std::move(name);
  n->args = std::move(args);
  return n;
}

Expr reduce(ReduceOp op, Expr arg, std::optional<int64_t> axis, Span span) {
  auto n = node(ExprKind::Reduce, std::move(span));
  n->reduce = op;
  n->args = {std::move(arg)};
  n->has_axis = axis.has_value();
  n->axis = axis.value_or(0);
  return n;
}

Expr convert(Expr a, Type ty) {
  auto n = node(ExprKind::Convert, a->span, std::move(ty));
  n->args = {std::move(a)};
  return n;
}

Expr access(std::string name, Expr flat_index, ElemSize elem, Span span) {
  auto n = node(ExprKind::Access, std::move(span), Type::scalar(elem));
  n->name = std::move(name);
  n->args = {std::move(flat_index)};
  return n;
}

Expr neutral(ReduceOp op, Expr typed_like, Span span) {
  auto n = node(ExprKind::Neutral, std::move(span));
  n->reduce = op;
  n->args = {std::move(typed_like)};
  return n;
}

void visit_stmt_exprs(const Stmt& s, const std::function<void(const Expr&)>& f) {
  for (const Expr* e : {&s->lhs, &s->rhs, &s->cond, &s->lo, &s->hi}) visit_expr(*e, f);
}

bool mentions(const Expr& e, const std::string& name) {
  bool found = false;
  visit_expr(e, [&](const Expr& x) {
    if ((x->kind == ExprKind::Var || x->kind == ExprKind::Access) && x->name == name) found = true;
  });
  return found;
}

bool refers_to_arrays(const Expr& e) {
  bool found = false;
  visit_expr(e, [&](const Expr& x) {
    if (x && (x->kind == ExprKind::Var || x->kind == ExprKind::Access) && (x->ty.is_array() || x->ty.is_pointer()))
      found = true;
  });
  return found;
}

bool is_literal(const Expr& e) {
  return e && (e->kind == ExprKind::Int || e->kind == ExprKind::Float || e->kind == ExprKind::Bool);
}

Expr map_expr(const Expr& e, const std::function<Expr(const Expr&)>& f) {
  if (!e) return e;
  bool changed = false;
  std::vector<Expr> args;
  args.reserve(e->args.size());
  for (const auto& a : e->args) {
    args.push_back(map_expr(a, f));
    changed |= args.back() != a;
  }
  return f(changed ? with_args(e, std::move(args)) : e);
}

void visit_expr(const Expr& e, const std::function<void(const Expr&)>& f) {
  if (!e) return;
  f(e);
  for (const auto& a : e->args) visit_expr(a, f);
}

std::shared_ptr<StmtNode> copy(const Stmt& s) { return std::make_shared<StmtNode>(*s); }

static std::shared_ptr<StmtNode> snode(StmtKind k, Span span) {
  auto n = std::make_shared<StmtNode>();
  n->kind = k;
  n->span = std::move(span);
  return n;
}

Stmt assign(Expr lhs, Expr rhs, Span span, std::vector<std::string> labels) {
  auto n = snode(StmtKind::Assign, std::move(span));
  n->lhs = std::move(lhs);
  n->rhs = std::move(rhs);
  n->labels = std::move(labels);
  return n;
}

Stmt for_loop(std::string v, Expr lo, Expr hi, int64_t step, Block body, Span span,
              std::vector<std::string> labels) {
  auto n = snode(StmtKind::For, std::move(span));
  n->var = std::move(v);
  n->lo = std::move(lo);
  n->hi = std::move(hi);
  n->step = step;
  n->body = std::move(body);
  n->labels = std::move(labels);
  return n;
}

int64_t range_trips(int64_t lo, int64_t hi, int64_t step) {
  if (step > 0 ? lo >= hi : lo <= hi) return 0;
  uint64_t span = step > 0 ? static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo)
                           : static_cast<uint64_t>(lo) - static_cast<uint64_t>(hi);
  uint64_t mag = step > 0 ? static_cast<uint64_t>(step) : 0 - static_cast<uint64_t>(step);
  uint64_t n = (span - 1) / mag + 1;
  return n > static_cast<uint64_t>(kMaxTrips) ? kMaxTrips : static_cast<int64_t>(n);
}

bool increment_stays_in_range(int64_t hi_bound, int64_t step) {
  // The last value is at most hi - 1 (at least hi + 1), the value after it hi - 1 + step.
  __int128 next = static_cast<__int128>(hi_bound) + (step > 0 ? -1 : 1) + step;
  return next <= INT64_MAX && next >= INT64_MIN;
}

Stmt while_loop(Expr cond, Block body, Span span) {
  auto n = snode(StmtKind::While, std::move(span));
  n->cond = std::move(cond);
  n->body = std::move(body);
  return n;
}

Stmt if_stmt(Expr cond, Block body, Block orelse, Span span) {
  auto n = snode(StmtKind::If, std::move(span));
  n->cond = std::move(cond);
  n->body = std::move(body);
  n->orelse = std::move(orelse);
  return n;
}

Stmt return_stmt(Expr value, Span span) {
  auto n = snode(StmtKind::Return, std::move(span));
  n->rhs = std::move(value);
  return n;
}

Stmt with_gpu(Block body, Span span) {
  auto n = snode(StmtKind::WithGpu, std::move(span));
  n->body = std::move(body);
  return n;
}

Stmt call_stmt(Expr c, Span span) {
  auto n = snode(StmtKind::Call, std::move(span));
  n->rhs = std::move(c);
  return n;
}

Stmt launch_stmt(std::string kernel, std::vector<Expr> args, Span span) {
  auto n = snode(StmtKind::Launch, span);
  n->rhs = call(std::move(kernel), std::move(args), std::move(span));
  return n;
}

Stmt label_stmt(std::string name, Span span) {
  auto n = snode(StmtKind::Label, std::move(span));
  n->labels = {std::move(name)};
  return n;
}

Block map_block_exprs(const Block& b, const std::function<Expr(const Expr&)>& f) {
  Block out;
  out.reserve(b.size());
  for (const auto& s : b) {
    auto n = copy(s);
    if (n->lhs) n->lhs = f(n->lhs);
    if (n->rhs) n->rhs = f(n->rhs);
    if (n->cond) n->cond = f(n->cond);
    if (n->lo) n->lo = f(n->lo);
    if (n->hi) n->hi = f(n->hi);
    n->body = map_block_exprs(n->body, f);
    n->orelse = map_block_exprs(n->orelse, f);
    out.push_back(n);
  }
  return out;
}

std::shared_ptr<StmtNode> with_blocks(const Stmt& s, const std::function<Block(const Block&)>& f) {
  auto n = copy(s);
  n->body = f(s->body);
  n->orelse = f(s->orelse);
  return n;
}

Block map_block(const Block& b, const std::function<Block(const Stmt&)>& f) {
  Block out;
  out.reserve(b.size());
  for (const auto& s : b) {
    Block r = f(with_blocks(s, [&](const Block& x) { return map_block(x, f); }));
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

void visit_block(const Block& b, const std::function<void(const Stmt&)>& f) {
  for (const auto& s : b) {
    f(s);
    visit_block(s->body, f);
    visit_block(s->orelse, f);
  }
}

bool contains_parallel(const Block& b) {
  bool found = false;
  visit_block(b, [&](const Stmt& s) {
    if (s->kind == StmtKind::For && s->par.is_parallel()) found = true;
  });
  return found;
}

static std::string fmt_float(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  std::ostringstream os;
  os.precision(17);
  os << v;
  std::string s = os.str();
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

std::string print_expr(const Expr& e) {
  if (!e) return "";
  std::ostringstream os;
  switch (e->kind) {
    case ExprKind::Var: return e->name;
    case ExprKind::Int: return std::to_string(e->ival);
    case ExprKind::Float: return fmt_float(e->fval);
    case ExprKind::Bool: return e->bval ? "True" : "False";
    case ExprKind::String: return "\"" + e->name + "\"";
    case ExprKind::UnOp:
      if (e->unop == UnOp::Neg || e->unop == UnOp::BitNot)
        return std::string(unop_name(e->unop)) + "(" + print_expr(e->args[0]) + ")";
      if (e->unop == UnOp::Not) return "not (" + print_expr(e->args[0]) + ")";
      return std::string(unop_name(e->unop)) + "(" + print_expr(e->args[0]) + ")";
    case ExprKind::BinOp:
      if (e->binop == BinOp::Max || e->binop == BinOp::Min || e->binop == BinOp::Atan2)
        return std::string(binop_name(e->binop)) + "(" + print_expr(e->args[0]) + ", " +
               print_expr(e->args[1]) + ")";
      return "(" + print_expr(e->args[0]) + " " + binop_name(e->binop) + " " +
             print_expr(e->args[1]) + ")";
    case ExprKind::IfExpr:
      return "(" + print_expr(e->args[1]) + " if " + print_expr(e->args[0]) + " else " +
             print_expr(e->args[2]) + ")";
    case ExprKind::Subscript:
      os << print_expr(e->args[0]) << "[";
      for (size_t i = 1; i < e->args.size(); ++i) os << (i > 1 ? ", " : "") << print_expr(e->args[i]);
      os << "]";
      return os.str();
    case ExprKind::Slice: return print_expr(e->args[0]) + ":" + print_expr(e->args[1]);
    case ExprKind::Tuple:
      for (size_t i = 0; i < e->args.size(); ++i) os << (i ? ", " : "") << print_expr(e->args[i]);
      return os.str();
    case ExprKind::Call:
      os << e->name << "(";
      for (size_t i = 0; i < e->args.size(); ++i) os << (i ? ", " : "") << print_expr(e->args[i]);
      os << ")";
      return os.str();
    case ExprKind::Reduce:
      os << reduce_name(e->reduce) << "(" << print_expr(e->args[0]);
      if (e->has_axis) os << ", axis=" << e->axis;
      os << ")";
      return os.str();
    case ExprKind::Convert:
      return std::string(elem_long_name(e->ty.elem)) + "(" + print_expr(e->args[0]) + ")";
    case ExprKind::Access: return e->name + "[" + print_expr(e->args[0]) + "]";
    case ExprKind::Neutral: return std::string("neutral_") + reduce_name(e->reduce);
  }
  return "?";
}

std::string print_block(const Block& b, int indent) {
  std::ostringstream os;
  std::string pad(indent * 2, ' ');
  for (const auto& s : b) {
    for (const auto& l : s->labels)
      if (s->kind != StmtKind::Label) os << pad << "label('" << l << "')\n";
    switch (s->kind) {
      case StmtKind::Assign:
        os << pad << (s->atomic ? "atomic " : "") << print_expr(s->lhs) << " = " << print_expr(s->rhs);
        if (s->lhs->ty.kind != Type::Kind::Unknown && s->defines) os << "  # " << s->lhs->ty.str();
        os << "\n";
        break;
      case StmtKind::For:
        os << pad << "for " << s->var << " in range(" << print_expr(s->lo) << ", "
           << print_expr(s->hi) << ", " << s->step << "):";
        if (s->par.is_parallel() || s->par.reduction) os << "  # " << s->par.str();
        os << "\n" << print_block(s->body, indent + 1);
        break;
      case StmtKind::While:
        os << pad << "while " << print_expr(s->cond) << ":\n" << print_block(s->body, indent + 1);
        break;
      case StmtKind::If:
        os << pad << "if " << print_expr(s->cond) << ":\n" << print_block(s->body, indent + 1);
        if (!s->orelse.empty()) os << pad << "else:\n" << print_block(s->orelse, indent + 1);
        break;
      case StmtKind::Return: os << pad << "return " << print_expr(s->rhs) << "\n"; break;
      case StmtKind::WithGpu:
        os << pad << "with parpy.gpu:\n" << print_block(s->body, indent + 1);
        break;
      case StmtKind::Call: os << pad << print_expr(s->rhs) << "\n"; break;
      case StmtKind::Launch: os << pad << "launch " << print_expr(s->rhs) << "\n"; break;
      case StmtKind::Label: os << pad << "label('" << s->labels[0] << "')\n"; break;
    }
  }
  return os.str();
}

std::string print_function(const Function& f) {
  std::ostringstream os;
  os << "def " << f.name << "(";
  for (size_t i = 0; i < f.params.size(); ++i) {
    os << (i ? ", " : "") << f.params[i].name;
    if (f.params[i].annotation) os << ": " << f.params[i].annotation->str();
  }
  os << "):\n" << print_block(f.body, 1);
  return os.str();
}

}  // namespace parpy
