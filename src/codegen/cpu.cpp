#include "codegen/cpu.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "ir/c_names.h"
#include "codegen/c_printer.h"
#include "ir/affine.h"
#include "ir/bounds.h"
#include "ir/intrinsics.h"

namespace parpy {

const char* cpu_type(ElemSize e) { return c_elem_type(e, "parpy_f16"); }

namespace {

// An array written with streaming stores is at least this large: larger than the last-level
// caches of common CPUs (docs/performance.md, Cpu).
constexpr int64_t kStreamBytes = int64_t{32} << 20;
// ... and the loop that streams it runs at least this many iterations: each row ends with a store
// fence, and rows of 254 floats (a 7-point stencil on 256^3) ran 20 % slower streamed.
constexpr int64_t kStreamRow = 1024;

bool contains_loop(const Block& b) {
  bool found = false;
  visit_block(b, [&](const Stmt& s) {
    if (s->kind == StmtKind::For || s->kind == StmtKind::While) found = true;
  });
  return found;
}

bool contains_atomic(const Block& b) {
  bool found = false;
  visit_block(b, [&](const Stmt& s) { found = found || s->atomic; });
  return found;
}

class CpuPrinter : public CPrinter {
 public:
  std::string type_name(ElemSize e) const override { return cpu_type(e); }

  void function(const std::string& name, const std::vector<AbiParam>& params, const Block& body) {
    // The function itself is internal to the library: only the entry is exported.
    std::string fname = c_ident(name);
    os << "static int32_t " << fname << "(";
    for (size_t i = 0; i < params.size(); ++i)
      os << (i ? ", " : "") << type_str(params[i].type) << " " << c_ident(params[i].name);
    os << ") {\n";
    for (const auto& p : params)
      if (p.type.is_scalar()) os << "  (void)" << c_ident(p.name) << ";\n";
    note_arrays(params, body);
    // Index checks record the call's first failure here (docs/language.md, Index bounds).
    bool checked = has_bounds_checks(body);
    if (checked) os << "  parpy_bounds_record parpy_bounds = {0, 0, 0};\n";
    declarations(body, 1);
    block(body, 1);
    os << "  return " << (checked ? "parpy_bounds_report(parpy_bounds)" : "0") << ";\n}\n\n";
    entry = entry_symbol(name);
    os << print_cpu_entry(entry, fname, params);
    if (checked) {
      bounds = bounds_symbol(name);
      os << "\nextern \"C\" const int64_t* " << bounds << "() { return parpy_bounds_last; }\n";
    }
  }

  std::string entry, bounds;

  // A helper called in expressions: sequential code of one thread
  // (docs/language.md, Functions).
  void helper(const Function& f) {
    bool saved = in_parallel_;
    in_parallel_ = true;  // its loops are sequential: no OpenMP pragmas
    helper_function(f, "static inline");
    in_parallel_ = saved;
  }

 protected:
  std::string call_expr(const Expr& e) override {
    if (intrinsic_of(e) != Intrinsic::BoundsCheck) return CPrinter::call_expr(e);
    return "parpy_bounds_check(parpy_bounds, " + expr(e->args[0]) + ", " + expr(e->args[1]) + ", " +
           expr(e->args[2]) + ")";
  }

  void loop(const Stmt& s, int indent) override {
    std::string p = pad(indent);
    bool parallel = s->par.nthreads > 1;
    bool outer = parallel && !in_parallel_;
    // A declared reduction may be reassociated, so even a sequential one is vectorised.
    // SIMD lanes would update one element at once: no simd around atomic updates.
    bool simd = (parallel ? in_parallel_ : s->par.reduction) && !contains_loop(s->body) &&
                !contains_atomic(s->body);
    std::string pragma;
    if (outer)
      pragma = "#pragma omp parallel for num_threads(parpy_num_threads(" +
               std::to_string(s->par.nthreads) + ")) schedule(static)";
    else if (simd)
      pragma = "#pragma omp simd";
    if (s->par.reduction && !pragma.empty()) {
      reduction_loop(s, indent, pragma);
      return;
    }
    if (simd && parallel && streamable(s)) {
      streaming_loop(s, indent);
      return;
    }
    bool saved = in_parallel_;
    in_parallel_ = in_parallel_ || outer;
    print_loop(s, indent, pragma, !pragma.empty());
    in_parallel_ = saved;
  }

  // OpenMP's atomic += and -=; max, min and half precision through a compare-and-swap loop
  // (parpy_cpu.h).
  void atomic_update(const Stmt& s, int indent) override {
    std::string p = pad(indent), dst = expr(s->lhs), value = expr(s->rhs->args[1]);
    BinOp op = s->rhs->binop;
    ElemSize t = s->lhs->ty.elem;
    if ((op == BinOp::Add || op == BinOp::Sub) && t != ElemSize::F16) {
      os << p << "#pragma omp atomic\n";
      os << p << dst << (op == BinOp::Add ? " += " : " -= ") << value << ";\n";
      return;
    }
    os << p << "parpy_atomic_" << atomic_op_name(op) << "(&" << dst << ", (" << cpu_type(t) << ")" << value
       << ");\n";
  }

 private:
  int acc_counter_ = 0;
  int stream_loops_ = 0;
  bool in_parallel_ = false;
  std::map<std::string, int64_t> array_bytes_;  // array parameters' sizes
  std::set<std::string> read_arrays_;           // arrays the function reads anywhere

  void note_arrays(const std::vector<AbiParam>& params, const Block& body) {
    array_bytes_.clear();
    read_arrays_.clear();
    for (const auto& p : params) {
      if (p.type.kind != Type::Kind::Tensor || p.type.is_scalar()) continue;
      int64_t n = elem_bytes(p.type.elem);
      for (int64_t d : p.type.shape) n = d > 0 && n <= INT64_MAX / d ? n * d : 0;
      array_bytes_[p.name] = n;
    }
    auto reads = [&](const Expr& e) {
      if (e)
        visit_expr(e, [&](const Expr& x) {
          if (x->kind == ExprKind::Access || x->kind == ExprKind::Var) read_arrays_.insert(x->name);
        });
    };
    visit_block(body, [&](const Stmt& st) {
      reads(st->rhs);
      reads(st->cond);
      reads(st->lo);
      reads(st->hi);
      if (st->lhs && st->lhs->kind == ExprKind::Access)
        for (const auto& i : st->lhs->args) reads(i);
      else
        reads(st->lhs);
    });
  }

  // The innermost parallel loop `for j: y[a + j] = e` (step 1, kStreamRow iterations or more)
  // that only writes y, an array of
  // float or double of kStreamBytes or more that the function reads nowhere (so that keeping its
  // lines in the caches gains nothing), e made of + - * / and negation over reads at unit stride
  // in j, loop-invariant scalars and literals of y's type: streaming_loop prints it.
  bool streamable(const Stmt& s) {
    if (s->step != 1 || s->body.size() != 1 || s->par.reduction) return false;
    if (s->lo->kind != ExprKind::Int || s->hi->kind != ExprKind::Int || s->hi->ival - s->lo->ival < kStreamRow)
      return false;
    const Stmt& st = s->body[0];
    if (st->kind != StmtKind::Assign || st->defines || st->atomic || st->lhs->kind != ExprKind::Access ||
        st->lhs->args.size() != 1)
      return false;
    ElemSize t = st->lhs->ty.elem;
    if (t != ElemSize::F32 && t != ElemSize::F64) return false;
    auto size = array_bytes_.find(st->lhs->name);
    if (size == array_bytes_.end() || size->second < kStreamBytes || read_arrays_.count(st->lhs->name) ||
        has_bounds_checks(s->body))
      return false;
    return unit_stride(st->lhs, s->var) && vector_expr(st->rhs, s->var, t);
  }

  static bool unit_stride(const Expr& access, const std::string& j) {
    if (access->args.size() != 1) return false;
    auto a = affine(access->args[0], [](const Expr& e) -> std::optional<Affine> {
      if (e->kind == ExprKind::Var) return affine_atom(e->name);
      return std::nullopt;
    });
    return a && a->coef(j) == 1;
  }

  // e as vectors of W consecutive iterations of the loop over j (W = PARPY_VBYTES / element):
  // reads at unit stride load vectors, parts that do not depend on j stay scalars (GCC broadcasts
  // them in the operations). Nullopt where e has another form.
  std::optional<std::string> vector_expr(const Expr& e, const std::string& j, ElemSize t) {
    if (e->ty.elem != t) return std::nullopt;
    if (!mentions(e, j)) {
      bool scalar = true;
      visit_expr(e, [&](const Expr& x) { scalar = scalar && x->kind != ExprKind::Call; });
      if (scalar) return expr(e);
    }
    switch (e->kind) {
      case ExprKind::Access:
        if (!unit_stride(e, j)) return std::nullopt;
        return "parpy_vload(&" + expr(e) + ")";
      case ExprKind::UnOp:
        if (e->unop != UnOp::Neg) return std::nullopt;
        if (auto a = vector_expr(e->args[0], j, t)) return "(-" + *a + ")";
        return std::nullopt;
      case ExprKind::BinOp: {
        const char* op = e->binop == BinOp::Add ? " + " : e->binop == BinOp::Sub ? " - "
                       : e->binop == BinOp::Mul ? " * " : e->binop == BinOp::Div ? " / " : nullptr;
        if (!op) return std::nullopt;
        auto a = vector_expr(e->args[0], j, t), b = vector_expr(e->args[1], j, t);
        if (!a || !b) return std::nullopt;
        return "(" + *a + op + *b + ")";
      }
      default: return std::nullopt;
    }
  }

  // Scalar iterations until y's element is aligned to a vector, whole vectors computed as
  // vectors and stored with non-temporal stores (parpy_cpu.h, parpy_vstream: y's lines are not
  // read into the caches first), scalar iterations for the rest; the plain loop where the
  // compiler has no streaming stores.
  void streaming_loop(const Stmt& s, int indent) {
    const Stmt& st = s->body[0];
    ElemSize t = st->lhs->ty.elem;
    std::string k = std::to_string(stream_loops_++);
    std::string hi = "parpy_shi" + k, j = c_ident(s->var), T = cpu_type(t);
    std::string w = "(PARPY_VBYTES / " + std::to_string(elem_bytes(t)) + ")";
    std::string p = pad(indent), q = pad(indent + 1), r = pad(indent + 2);
    std::string lhs = expr(st->lhs), rhs = expr(st->rhs), vec = *vector_expr(st->rhs, s->var, t);
    os << "#if PARPY_STREAM_STORES\n";
    os << p << "{\n";
    os << q << "const int64_t " << hi << " = " << expr(s->hi) << ";\n";
    os << q << "int64_t " << j << " = " << expr(s->lo) << ";\n";
    os << q << "for (; " << j << " < " << hi << " && reinterpret_cast<uintptr_t>(&" << lhs << ") % PARPY_VBYTES; ++" << j
       << ") " << lhs << " = " << rhs << ";\n";
    os << q << "for (; " << j << " + " << w << " <= " << hi << "; " << j << " += " << w << ")\n";
    os << r << "parpy_vstream(&" << lhs << ", " << vec << ");\n";
    os << q << "for (; " << j << " < " << hi << "; ++" << j << ") " << lhs << " = " << rhs << ";\n";
    os << q << "parpy_stream_fence();\n";
    os << p << "}\n";
    os << "#else\n";
    print_loop(s, indent, "#pragma omp simd", true);
    os << "#endif\n";
  }

  // dst = dst op e over the loop becomes a private accumulator combined by OpenMP.
  void reduction_loop(const Stmt& s, int indent, const std::string& pragma) {
    std::string p = pad(indent);
    const Stmt& st = s->body[0];
    ElemSize t = st->lhs->ty.elem;
    // Half precision accumulates in float.
    ElemSize acc_t = t == ElemSize::F16 ? ElemSize::F32 : t;
    std::string at = cpu_type(acc_t);
    std::string k = std::to_string(acc_counter_++);
    std::string acc = "parpy_acc" + k;
    std::string value = "(" + at + ")" + expr(st->rhs->args[1]);
    bool is_max = s->red_op == BinOp::Max;
    // Float max/min propagate NaN (docs/language.md, Reductions) and still vectorise: the lanes
    // take plain max/min (maxps/minps, which skip a NaN operand), and an OR of `v != v` beside
    // them says whether any element was NaN, which then is the result.
    bool nan_aware = is_float(acc_t) && (is_max || s->red_op == BinOp::Min);
    std::string nan = "parpy_nan" + k, v = "parpy_v" + k;
    std::string clause, ne;
    std::vector<std::string> body_lines;
    switch (s->red_op) {
      case BinOp::Add:
        clause = "+";
        ne = int_literal(0, acc_t);
        body_lines = {acc + " = " + acc + " + " + value + ";"};
        break;
      case BinOp::Mul:
        clause = "*";
        ne = int_literal(1, acc_t);
        body_lines = {acc + " = " + acc + " * " + value + ";"};
        break;
      case BinOp::Max: case BinOp::Min: {
        clause = is_max ? "max" : "min";
        if (is_float(acc_t))
          ne = float_literal(is_max ? -HUGE_VAL : HUGE_VAL, acc_t);
        else
          ne = "std::numeric_limits<" + at + ">::" + (is_max ? "lowest()" : "max()");
        if (nan_aware) {
          body_lines = {"const " + at + " " + v + " = " + value + ";",
                        acc + " = " + acc + (is_max ? " < " : " > ") + v + " ? " + v + " : " + acc + ";",
                        nan + " |= " + v + " != " + v + ";"};
        } else {
          body_lines = {acc + " = " + (is_max ? "parpy_max(" : "parpy_min(") + acc + ", " + value + ");"};
        }
        break;
      }
      default: internal_fail("unexpected reduction operator", s->span);
    }
    os << p << "{\n";
    os << p << "  " << at << " " << acc << " = " << ne << ";\n";
    std::string clauses = " reduction(" + clause + ":" + acc + ")";
    if (nan_aware) {
      os << p << "  int " << nan << " = 0;\n";
      clauses += " reduction(|:" + nan + ")";
    }
    std::string close;
    int body = open_loop(s, indent + 1, pragma + clauses, true, close);
    for (const auto& line : body_lines) os << pad(body) << line << "\n";
    os << close;
    std::string dst = expr(st->lhs);
    std::string total = nan_aware ? "(" + nan + " ? (" + at + ")NAN : " + acc + ")" : acc;
    std::string accv = "(" + std::string(cpu_type(t)) + ")" + total;
    switch (s->red_op) {
      case BinOp::Add: os << p << "  " << dst << " = " << dst << " + " << accv << ";\n"; break;
      case BinOp::Mul: os << p << "  " << dst << " = " << dst << " * " << accv << ";\n"; break;
      case BinOp::Max: os << p << "  " << dst << " = parpy_max(" << dst << ", " << accv << ");\n"; break;
      default: os << p << "  " << dst << " = parpy_min(" << dst << ", " << accv << ");\n"; break;
    }
    os << p << "}\n";
  }
};

std::string type_str(const Type& t) {
  if (t.is_scalar()) return cpu_type(t.elem);
  return std::string(cpu_type(t.elem)) + "*";
}

}  // namespace

std::string print_cpu_entry(const std::string& entry, const std::string& fname,
                            const std::vector<AbiParam>& params) {
  std::ostringstream os;
  os << "extern \"C\" int32_t " << entry << "(void** args) {\n  return " << fname << "(";
  for (size_t i = 0; i < params.size(); ++i)
    os << (i ? ", " : "") << "*(" << type_str(params[i].type) << "*)args[" << i << "]";
  os << ");\n}\n";
  return os.str();
}

CpuProgram print_cpu(const std::string& name, const std::vector<AbiParam>& params, const Block& body,
                     const Helpers& helpers) {
  CpuPrinter p;
  p.os << "// Generated by parpy (Cpu backend).\n";
  if (has_bounds_checks(body)) p.os << "#define PARPY_BOUNDS_CHECK\n";
  p.os << "#include \"parpy_cpu.h\"\n#include <limits>\n";
  for (const auto& h : helpers.headers) {
    bool delimited = !h.empty() && (h[0] == '<' || h[0] == '"');
    p.os << "#include " << (delimited ? h : "\"" + h + "\"") << "\n";
  }
  p.os << "\n";
  for (const auto& f : helpers.functions) p.helper(f);
  p.function(name, params, body);
  return {p.os.str(), p.entry, p.bounds};
}

}  // namespace parpy
