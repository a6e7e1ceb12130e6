#include "codegen/metal.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "codegen/c_printer.h"
#include "codegen/metal_prelude.h"
#include "ir/bounds.h"
#include "ir/c_names.h"
#include "ir/intrinsics.h"

namespace parpy {
namespace {

// ---- Checks ----

const char* kNoDouble =
    "Metal does not support double-precision floating-point numbers. Use float32 in code that runs "
    "on the GPU: float32 arrays (np.float32), parpy.float32(...) conversions, and no force_float_size=F64 "
    "(Python floats and float literals are float32 on Metal).";

bool has_double(const Type& t) { return t.kind != Type::Kind::Void && t.elem == ElemSize::F64; }

// The first expression of b (pre-order) whose type is a double, or a statement defining one.
void check_block_doubles(const Block& b, const Span& fallback) {
  visit_block(b, [&](const Stmt& s) {
    visit_stmt_exprs(s, [&](const Expr& x) {
      if (x && has_double(x->ty)) type_fail(kNoDouble, x->span.known() ? x->span : s->span.known() ? s->span : fallback);
    });
  });
}

// The span of the first use of `name` in b, or `fallback`.
Span first_use(const Block& b, const std::string& name, const Span& fallback) {
  Span found;
  visit_block(b, [&](const Stmt& s) {
    visit_stmt_exprs(s, [&](const Expr& x) {
      if (!found.known() && x && (x->kind == ExprKind::Var || x->kind == ExprKind::Access) && x->name == name &&
          x->span.known())
        found = x->span;
    });
  });
  return found.known() ? found : fallback;
}

// The span of the first statement of b with a known location.
Span first_span(const Block& b) {
  Span found;
  visit_block(b, [&](const Stmt& s) {
    if (!found.known() && s->span.known()) found = s->span;
  });
  return found;
}

// Whether e is computed from number literals alone.
bool constant_expr(const Expr& e) {
  bool ok = true;
  visit_expr(e, [&](const Expr& x) {
    ok = ok && x && (x->kind == ExprKind::Int || x->kind == ExprKind::Float || x->kind == ExprKind::Bool ||
                     x->kind == ExprKind::UnOp || x->kind == ExprKind::BinOp || x->kind == ExprKind::IfExpr);
  });
  return ok;
}

// e, a double computed from Python numbers alone, computed in `t` instead.
Expr retyped(const Expr& e, ElemSize t) {
  auto n = copy(e);
  if (n->ty.elem == ElemSize::F64) n->ty.elem = t;
  for (auto& a : n->args) a = retyped(a, t);
  return n;
}

Block narrow_block(const Block& b) {
  return map_block_exprs(b, [](const Expr& e) {
    return map_expr(e, [](const Expr& x) -> Expr {
      if (x->kind != ExprKind::Convert || !is_float(x->ty.elem) || x->ty.elem == ElemSize::F64) return x;
      const Expr& a = x->args[0];
      if (a->ty.elem != ElemSize::F64 || !constant_expr(a)) return x;
      return retyped(a, x->ty.elem);
    });
  });
}

}  // namespace

GpuProgram narrow_weak_doubles(const GpuProgram& p) {
  GpuProgram out = p;
  for (auto& k : out.kernels) {
    k.body = narrow_block(k.body);
    k.vector_body = narrow_block(k.vector_body);
  }
  for (auto& f : out.functions) f.body = narrow_block(f.body);
  return out;
}

void check_metal_program(const GpuProgram& p) {
  for (const auto& k : p.kernels) {
    Span where = first_span(k.body);
    // A double parameter is reported where the kernel uses it (an array read, a scalar).
    for (const auto& a : k.params)
      if (has_double(a.type)) type_fail(kNoDouble, first_use(k.body, a.name, where));
    check_block_doubles(k.body, where);
    visit_block(k.body, [&](const Stmt& s) {
      if (s->kind == StmtKind::Assign && s->atomic && elem_bytes(s->lhs->ty.elem) == 8)
        type_fail("Metal has no 64-bit atomic operations, which this update needs: iterations of the parallel "
                  "loop may update the same element at once. Use a 32-bit element type (int32, uint32, float32) "
                  "for the array, or a reduction (parpy.sum, .reduce()) instead of concurrent updates.",
                  s->span);
    });
  }
  for (const auto& f : p.functions) {
    Span where = first_span(f.body);
    if (has_double(f.ret)) type_fail(kNoDouble, where);
    for (const auto& a : f.params)
      if (a.annotation && has_double(*a.annotation)) type_fail(kNoDouble, first_use(f.body, a.name, where));
    check_block_doubles(f.body, where);
    if (has_bounds_checks(f.body))
      fail("Run-time index checks (bounds_check) inside jit functions called from GPU code are not supported "
           "on the Metal backend. Turn bounds_check off for this call, or use the Cuda or Cpu backend.",
           where);
  }
  for (const auto& h : p.headers)
    if (h.rfind("<metal_", 0) != 0)
      fail("On the Metal backend, the kernels are Metal Shading Language compiled when the program first runs, "
           "where only the Metal standard library is found, so a device external cannot use the header " + h +
           ". Declare Metal externals with a function of the Metal standard library and no header (or a "
           "<metal_...> header), such as parpy.external(\"metal::fma\", CompileBackend.Metal, Target.Device).");
}

namespace {

const char* msl_type(ElemSize e) { return c_elem_type(e, "half"); }

std::string kernel_ident(const std::string& kernel) { return "parpy_kernel_" + c_chars(kernel); }

bool calls_reduction(const Block& b) {
  return block_calls_intrinsic(b, Intrinsic::BlockReduce) || block_calls_intrinsic(b, Intrinsic::MultiblockReduce);
}

// ---- The MSL (device code) ----
class MslPrinter : public CPrinter {
 public:
  std::string type_name(ElemSize e) const override { return msl_type(e); }

  // Arrays and pointers in device code live in device memory.
  std::string type_str(const Type& t) const override {
    if (t.kind != Type::Kind::Void && !t.is_scalar()) return "device " + type_name(t.elem) + "*";
    return CPrinter::type_str(t);
  }

  void kernel(const Kernel& k) {
    threads_ = k.block_threads;
    bool checked = has_bounds_checks(k.body);
    os << "[[max_total_threads_per_threadgroup(" << k.block_threads << ")]] kernel void " << kernel_ident(k.name)
       << "(";
    size_t i = 0;
    for (; i < k.params.size(); ++i) {
      const auto& p = k.params[i];
      // Scalars are set with setBytes: constant memory, read by reference.
      std::string t = p.type.is_scalar() ? "constant " + type_name(p.type.elem) + "&" : type_str(p.type);
      os << t << " " << c_ident(p.name) << " [[buffer(" << i << ")]], ";
    }
    if (checked) os << "device atomic_uint* parpy_bounds [[buffer(" << i << ")]], ";
    os << "uint3 thread_idx [[thread_position_in_threadgroup]], uint3 block_idx [[threadgroup_position_in_grid]]) {\n";
    os << "  const int64_t " << c_ident(kThreadIdx) << " = thread_idx.x;\n";
    os << "  const int64_t " << c_ident(kBlockIdx) << " = block_idx.x;\n";
    // The threadgroup scratch of block reductions: 32 values of up to 8 bytes and a flag.
    if (calls_reduction(k.body)) os << "  threadgroup uint64_t parpy_tg[33];\n";
    declarations(k.body, 1);
    block(k.body, 1);
    os << "}\n\n";
  }

  void helper(const Function& f) { helper_function(f, "inline"); }

 protected:
  std::string call_expr(const Expr& e) override {
    Intrinsic in = intrinsic_of(e);
    auto args = [&] {
      std::string out;
      for (size_t i = 0; i < e->args.size(); ++i) out += (i ? ", " : "") + expr(e->args[i]);
      return out;
    };
    std::string group = "parpy_tg, uint(" + c_ident(kThreadIdx) + "), " + std::to_string(threads_) + "u";
    switch (in) {
      case Intrinsic::SyncThreads: return "threadgroup_barrier(mem_flags::mem_threadgroup)";
      case Intrinsic::BlockReduce:
      case Intrinsic::MultiblockReduce: return c_ident(e->name) + "(" + args() + ", " + group + ")";
      case Intrinsic::BoundsCheck: return "parpy_bounds_check(parpy_bounds, " + args() + ")";
      case Intrinsic::ClusterReduce:
      case Intrinsic::ClusterSync: internal_fail("thread-block clusters on the Metal backend", e->span);
      case Intrinsic::GroupReduce:
      case Intrinsic::GroupSync: internal_fail("rows packed into threadgroups on the Metal backend", e->span);
      default: return CPrinter::call_expr(e);
    }
  }

  // parpy_atomic_<op>(array, index, value): see the MSL support code.
  void atomic_update(const Stmt& s, int indent) override {
    const Expr& lhs = s->lhs;
    if (lhs->kind != ExprKind::Access) internal_fail("atomic update of a non-element", s->span);
    os << pad(indent) << "parpy_atomic_" << atomic_op_name(s->rhs->binop) << "(" << c_ident(lhs->name) << ", "
       << expr(lhs->args[0]) << ", (" << type_name(lhs->ty.elem) << ")" << expr(s->rhs->args[1]) << ");\n";
  }

 private:
  int64_t threads_ = 32;
};

// ---- The host code (C++ with metal-cpp, parpy_metal.h) ----
bool accesses_arrays(const Expr& e) {
  bool found = false;
  visit_expr(e, [&](const Expr& x) { found = found || (x && x->kind == ExprKind::Access); });
  return found;
}

bool stmt_accesses_arrays(const Stmt& s) {
  for (const Expr* e : {&s->lhs, &s->rhs, &s->cond, &s->lo, &s->hi})
    if (*e && accesses_arrays(*e)) return true;
  return false;
}

class HostPrinter : public CPrinter {
 public:
  HostPrinter(const GpuProgram& p) : prog_(p) {
    for (size_t i = 0; i < p.kernels.size(); ++i) kernel_index_[p.kernels[i].name] = i;
  }
  std::string type_name(ElemSize e) const override { return c_elem_type(e, "parpy_f16"); }

 protected:
  void atomic_update(const Stmt& s, int) override { internal_fail("atomic update in host code", s->span); }

  void stmt(const Stmt& s, int indent) override {
    std::string p = pad(indent);
    if (s->kind == StmtKind::Launch) {
      const Kernel& k = prog_.kernels[kernel_index_.at(s->rhs->name)];
      os << p << "PARPY_METAL_CHECK(parpy_call.launch(" << kernel_index_.at(s->rhs->name) << ", " << k.grid_blocks
         << ", " << k.block_threads << ", {";
      // A scalar is passed in the type of the kernel's parameter (setBytes gives the kernel exactly
      // its bytes): a host loop variable is an int64_t where the kernel may take an int32_t.
      for (size_t i = 0; i < s->rhs->args.size(); ++i) {
        os << (i ? ", " : "") << "parpy_metal::arg(";
        if (i < k.params.size() && k.params[i].type.is_scalar())
          os << "(" << type_name(k.params[i].type.elem) << ")(" << expr(s->rhs->args[i]) << ")";
        else
          os << expr(s->rhs->args[i]);
        os << ")";
      }
      if (has_bounds_checks(k.body)) os << (s->rhs->args.empty() ? "" : ", ") << "parpy_metal::arg(parpy_bounds)";
      os << "}));\n";
      return;
    }
    // Host code reads and writes arrays in place (shared memory), once the kernels launched
    // before have finished; a loop condition that reads arrays waits before every test.
    if (s->kind == StmtKind::While && accesses_arrays(s->cond)) {
      os << p << "while (true) {\n";
      os << p << "  PARPY_METAL_CHECK(parpy_call.wait());\n";
      os << p << "  if (!(" << expr(s->cond) << ")) break;\n";
      block(s->body, indent + 1);
      os << p << "}\n";
      return;
    }
    if (stmt_accesses_arrays(s)) os << p << "PARPY_METAL_CHECK(parpy_call.wait());\n";
    CPrinter::stmt(s, indent);
  }

 private:
  const GpuProgram& prog_;
  std::map<std::string, size_t> kernel_index_;
};

// The arrays host code may write: those it stores to, or all where it stores through a local
// naming arrays.
std::set<std::string> host_written(const GpuProgram& p) {
  std::set<std::string> params, out;
  for (const auto& a : p.params)
    if (a.type.is_array()) params.insert(a.name);
  visit_block(p.host, [&](const Stmt& s) {
    if (s->kind != StmtKind::Assign || s->lhs->kind != ExprKind::Access) return;
    if (params.count(s->lhs->name))
      out.insert(s->lhs->name);
    else
      out.insert(params.begin(), params.end());
  });
  return out;
}

// `text` as the body of a C++ raw string literal with delimiter PARPY_MSL.
std::string raw_string(const std::string& text) { return "R\"PARPY_MSL(" + text + ")PARPY_MSL\""; }

}  // namespace

MetalProgram print_metal(const GpuProgram& p, const CompileOptions& opts) {
  MetalProgram out;
  bool checked = false;
  for (const auto& k : p.kernels) checked = checked || has_bounds_checks(k.body);

  // The MSL: support code, externals' headers, jit helpers (run by one thread), kernels. The
  // 128-bit variants of kernels (Kernel::vector_body) are CUDA's; Metal launches `body`.
  MslPrinter msl;
  msl.os << kMetalPrelude << "\n";
  for (const auto& h : p.headers) msl.os << "#include " << h << "\n";
  msl.os << "// ---- Generated by parpy (Metal backend) ----\n\n";
  for (const auto& f : p.functions) msl.helper(f);
  for (const auto& k : p.kernels) msl.kernel(k);
  out.msl = msl.os.str();

  HostPrinter host(p);
  std::ostringstream& os = host.os;
  os << "// Generated by parpy (Metal backend): host code for clang++ with metal-cpp; the kernels are the\n"
     << "// Metal Shading Language in parpy_msl, compiled when the program first runs.\n";
  if (checked) os << "#define PARPY_BOUNDS_CHECK\n";
  os << "#include \"parpy_metal.h\"\n";
  // The headers of the host externals the host code calls (C++ for the host compiler).
  for (const auto& h : p.host_headers) os << "#include " << h << "\n";
  os << "\n";
  os << "static const char parpy_msl[] = " << raw_string(out.msl) << ";\n\n";
  // The module: the library, one pipeline per kernel (made once, on first use), scratch buffers.
  os << "static parpy_metal::Module parpy_module(parpy_msl, {";
  for (size_t i = 0; i < p.kernels.size(); ++i)
    os << (i ? ", " : "") << "{\"" << kernel_ident(p.kernels[i].name) << "\", " << p.kernels[i].block_threads << "}";
  os << "}, {";
  for (size_t i = 0; i < p.scratch.size(); ++i) {
    const Scratch& s = p.scratch[i];
    os << (i ? ", " : "") << "{" << s.count << " * sizeof(" << host.type_name(s.elem) << "), "
       << (s.zeroed ? "true" : "false") << "}";
  }
  os << "}, " << (opts.fast_math ? "true" : "false") << ");\n\n";

  std::set<std::string> written(p.written.begin(), p.written.end());
  for (const auto& n : host_written(p)) written.insert(n);
  std::string fname = c_ident(p.name);
  os << "static int32_t " << fname << "(";
  for (size_t i = 0; i < p.params.size(); ++i)
    os << (i ? ", " : "") << host.type_str(p.params[i].type) << " " << c_ident(p.params[i].name);
  os << ") {\n";
  for (const auto& a : p.params)
    if (a.type.is_scalar()) os << "  (void)" << c_ident(a.name) << ";\n";
  os << "  parpy_metal::Call parpy_call(parpy_module);\n";
  os << "  PARPY_METAL_CHECK(parpy_call.begin());\n";
  // Each array is copied into a shared buffer (one for arrays that share memory), and back after
  // the call if the program may write it; from here on its name is the buffer's memory.
  for (const auto& a : p.params) {
    if (!a.type.is_array()) continue;
    std::string n = c_ident(a.name);
    os << "  parpy_call.array((void**)&" << n << ", " << a.type.numel() << " * sizeof("
       << host.type_name(a.type.elem) << "), " << (written.count(a.name) ? "true" : "false") << ");\n";
  }
  os << "  PARPY_METAL_CHECK(parpy_call.place());\n";
  for (size_t i = 0; i < p.scratch.size(); ++i)
    os << "  " << host.type_name(p.scratch[i].elem) << "* " << c_ident(p.scratch[i].name) << " = ("
       << host.type_name(p.scratch[i].elem) << "*)parpy_call.scratch(" << i << ");\n";
  if (checked) os << "  uint32_t* parpy_bounds = parpy_call.bounds_record();\n";
  host.declarations(p.host, 1);
  host.block(p.host, 1);
  os << "  return parpy_call.finish();\n}\n\n";

  out.entry_symbol = entry_symbol(p.name);
  os << "extern \"C\" int32_t " << out.entry_symbol << "(void** args) {\n  return " << fname << "(";
  for (size_t i = 0; i < p.params.size(); ++i)
    os << (i ? ", " : "") << "*(" << host.type_str(p.params[i].type) << "*)args[" << i << "]";
  os << ");\n}\n\n";
  out.error_symbol = error_symbol(p.name);
  os << "extern \"C\" const char* " << out.error_symbol << "() { return parpy_metal::error_buf; }\n";
  if (checked) {
    out.bounds_symbol = bounds_symbol(p.name);
    os << "extern \"C\" const int64_t* " << out.bounds_symbol << "() { return parpy_bounds_last; }\n";
  }
  out.code = os.str();
  return out;
}

}  // namespace parpy
