#include "codegen/cuda.h"

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ir/c_names.h"
#include "codegen/c_printer.h"
#include "ir/bounds.h"
#include "gpu/strip_rows.h"
#include "ir/intrinsics.h"
#include "ir/reductions.h"

namespace parpy {
namespace {

const char* cuda_type(ElemSize e) { return c_elem_type(e, "__half"); }

Type param_type(const Kernel& k, const std::string& name) {
  for (const auto& p : k.params)
    if (p.name == name) return p.type;
  return {};
}

class CudaPrinter : public CPrinter {
 public:
  CudaPrinter(const GpuProgram& p, bool two_part) : two_part_(two_part), prog_(p) {
    for (const auto& k : p.kernels) kernels_[k.name] = &k;
    checked_ = bounds_checked(p);
  }

  // Whether the kernels check indices at run time (opts.bounds_check).
  static bool bounds_checked(const GpuProgram& p) {
    for (const auto& k : p.kernels)
      if (has_bounds_checks(k.body) || has_bounds_checks(k.vector_body)) return true;
    return false;
  }

  std::string type_name(ElemSize e) const override { return cuda_type(e); }

  void kernel(const Kernel& k) {
    kernel(k, k.name, k.body, {});
    if (!k.vector_body.empty()) kernel(k, variants(k)[1], k.vector_body, k.alignment);
  }

  void kernel(const Kernel& k, const std::string& name, const Block& body,
              const std::map<std::string, int64_t>& alignment) {
    // The host part of a two-part program finds each kernel by its unmangled name.
    if (two_part_) os << "extern \"C\" ";
    os << "__global__ void __launch_bounds__(" << k.block_threads << ") ";
    if (k.cluster_blocks > 1) os << "__cluster_dims__(" << k.cluster_blocks << ", 1, 1) ";
    os << kernel_ident(name) << "(";
    // Kernels with rows in strips: their arrays share no memory, and marked so their loads take
    // the read-only path.
    bool restrict = runs_strips(body);
    for (size_t i = 0; i < k.params.size(); ++i) {
      const Type& t = k.params[i].type;
      os << (i ? ", " : "") << type_str(t) << (restrict && !t.is_scalar() ? " __restrict__ " : " ")
         << c_ident(k.params[i].name);
    }
    os << ") {\n";
    os << "  const int64_t " << c_ident(kThreadIdx) << " = threadIdx.x;\n";
    os << "  const int64_t " << c_ident(kBlockIdx) << " = blockIdx.x;\n";
    if (!k.note.empty()) os << "  // " << k.note << "\n";
    // The host launched this variant because these hold: the compiler may merge accesses.
    for (const auto& [array, bytes] : alignment) {
      std::string n = c_ident(array), t = type_str(param_type(k, array));
      os << "  " << n << " = (" << t << ")__builtin_assume_aligned(" << n << ", " << bytes << ");\n";
    }
    declarations(body, 1);
    in_kernel_ = true;
    block(body, 1);
    in_kernel_ = false;
    os << "}\n\n";
  }

  void entry() {
    // Scratch memory is per device (see parpy_cuda_host.h): the host code reads its device's.
    for (const auto& s : prog_.scratch)
      os << "static " << type_name(s.elem) << "* " << per_device(s.name) << "[PARPY_MAX_DEVICES];\n";
    if (per_device_state()) os << "static parpy_once<PARPY_MAX_DEVICES> parpy_setup;\n";
    if (!prog_.scratch.empty() || per_device_state()) os << "\n";
    std::string fname = c_ident(prog_.name);
    auto param_list = [&] {
      std::string l;
      for (const auto& p : prog_.params) l += type_str(p.type) + " " + c_ident(p.name) + ", ";
      return l + "cudaStream_t parpy_stream";
    };
    auto arg_names = [&] {
      std::string l;
      for (const auto& p : prog_.params) l += c_ident(p.name) + ", ";
      return l;
    };
    // With CUDA graphs the host code becomes a function that the graph cache captures, told the
    // device by its caller.
    // Only the entry and error functions are exported; the rest is internal to the library.
    std::string host_fn = prog_.use_graphs ? "parpy_host" : fname;
    os << "static int32_t " << host_fn << "(" << param_list()
       << (prog_.use_graphs ? ", int parpy_device" : "") << ") {\n";
    for (const auto& p : prog_.params)
      if (p.type.is_scalar()) os << "  (void)" << c_ident(p.name) << ";\n";
    if (prog_.use_graphs) {
      os << "  (void)parpy_device;\n";
    } else {
      if (per_device_state()) current_device();
      setup();
      bounds_begin();
    }
    for (const auto& s : prog_.scratch)
      os << "  " << type_name(s.elem) << "* " << c_ident(s.name) << " = " << per_device(s.name)
         << "[parpy_device];\n";
    declarations(prog_.host, 1);
    block(prog_.host, 1);
    bool finish = checked_ && !prog_.use_graphs;
    os << "  return " << (finish ? "parpy_bounds_finish(parpy_bounds_rec, parpy_stream)" : "0") << ";\n}\n\n";
    if (prog_.use_graphs) {
      std::string types;
      for (size_t i = 0; i < prog_.params.size(); ++i) types += (i ? ", " : "") + type_str(prog_.params[i].type);
      os << "static parpy_graph_cache<" << types << "> parpy_graph;\n\n";
      os << "static int32_t " << fname << "(" << param_list() << ") {\n";
      current_device();
      setup();
      bounds_begin();
      std::string args = arg_names();
      // The record is cleared and read outside the captured graph, at every call.
      os << (checked_ ? "  if (int32_t parpy_rc = " : "  return ")
         << "parpy_graph.run(parpy_device, parpy_stream, [&](cudaStream_t parpy_capture) {\n"
         << "    return " << host_fn << "(" << args << "parpy_capture, parpy_device);\n  }"
         << (args.empty() ? "" : ", " + args.substr(0, args.size() - 2)) << (checked_ ? "))\n    return parpy_rc;\n" : ");\n");
      if (checked_) os << "  return parpy_bounds_finish(parpy_bounds_rec, parpy_stream);\n";
      os << "}\n\n";
    }
    // The entry runs the call on the device that holds its arrays.
    entry_symbol = parpy::entry_symbol(prog_.name);
    os << "extern \"C\" int32_t " << entry_symbol << "(void** args, void* stream, int32_t device) {\n"
       << "  parpy_device_scope parpy_scope(device);\n"
       << "  if (parpy_scope.status != 0) return parpy_scope.status;\n"
       << "  return " << fname << "(";
    for (size_t i = 0; i < prog_.params.size(); ++i)
      os << "*(" << type_str(prog_.params[i].type) << "*)args[" << i << "], ";
    os << "(cudaStream_t)stream);\n}\n\n";
    error_symbol = parpy::error_symbol(prog_.name);
    os << "extern \"C\" const char* " << error_symbol << "() { return parpy_error_buf; }\n";
    if (checked_) {
      bounds_symbol = parpy::bounds_symbol(prog_.name);
      os << "extern \"C\" const int64_t* " << bounds_symbol << "() { return parpy_bounds_last; }\n";
    }
  }

  // With index checks, `parpy_bounds_rec` is the device's record of failures (parpy_cuda.h),
  // cleared on the call's stream before its kernels.
  void bounds_begin() {
    if (!checked_) return;
    os << "  void* parpy_bounds_rec = nullptr;\n";
    if (two_part_)
      os << "  size_t parpy_bounds_bytes = 0;\n"
         << "  PARPY_CHECK(cudaLibraryGetGlobal(&parpy_bounds_rec, &parpy_bounds_bytes, parpy_library, "
            "\"parpy_bounds_device\"), \"cudaLibraryGetGlobal\");\n";
    else
      os << "  PARPY_CHECK(cudaGetSymbolAddress(&parpy_bounds_rec, parpy_bounds_device), \"cudaGetSymbolAddress\");\n";
    os << "  if (int32_t parpy_rc = parpy_bounds_begin(parpy_bounds_rec, parpy_stream)) return parpy_rc;\n";
  }

  // `int parpy_device`: the calling thread's current device, which the entry has made the call's.
  void current_device() {
    os << "  int parpy_device = 0;\n"
       << "  if (int32_t parpy_rc = parpy_current_device(&parpy_device)) return parpy_rc;\n";
  }

  // What a call needs before the host code runs: the kernels of a two-part program (once per
  // module: a CUDA library is loaded for every device), and per device the scratch buffers and
  // the attribute that allows clusters above 8 blocks.
  void setup() {
    if (two_part_) {
      os << "  if (int32_t parpy_rc = parpy_library_once.run(0, []() -> int32_t {\n"
         << "        cudaLibrary_t parpy_lib;\n"
         << "        PARPY_CHECK(cudaLibraryLoadData(&parpy_lib, parpy_cubin, nullptr, nullptr, 0, nullptr, "
            "nullptr, 0), \"cudaLibraryLoadData\");\n";
      for (const auto& k : prog_.kernels)
        for (const auto& n : variants(k))
          os << "        PARPY_CHECK(cudaLibraryGetKernel(&" << handle(n) << ", parpy_lib, \"" << kernel_ident(n)
             << "\"), \"cudaLibraryGetKernel\");\n";
      os << "        parpy_library = parpy_lib;\n        return 0;\n      }))\n    return parpy_rc;\n";
    }
    if (!per_device_state()) return;
    os << "  if (int32_t parpy_rc = parpy_setup.run(parpy_device, [&]() -> int32_t {\n";
    for (const auto& s : prog_.scratch) {
      std::string n = per_device(s.name) + "[parpy_device]";
      std::string bytes = std::to_string(s.count) + " * sizeof(" + type_name(s.elem) + ")";
      os << "        if (!" << n << ") {\n";
      os << "          PARPY_CHECK(cudaMalloc((void**)&" << n << ", " << bytes << "), \"cudaMalloc\");\n";
      if (s.zeroed) os << "          PARPY_CHECK(cudaMemset(" << n << ", 0, " << bytes << "), \"cudaMemset\");\n";
      os << "        }\n";
    }
    for (const auto& k : prog_.kernels) {
      if (k.cluster_blocks <= 8) continue;
      for (const auto& n : variants(k))
        os << "        PARPY_CHECK(cudaFuncSetAttribute("
           << (two_part_ ? "(const void*)" + handle(n) : kernel_ident(n))
           << ", cudaFuncAttributeNonPortableClusterSizeAllowed, 1), \"cudaFuncSetAttribute\");\n";
    }
    os << "        return 0;\n      }))\n    return parpy_rc;\n";
  }

  bool wide_clusters() const {
    for (const auto& k : prog_.kernels)
      if (k.cluster_blocks > 8) return true;
    return false;
  }
  bool per_device_state() const { return !prog_.scratch.empty() || wide_clusters(); }
  static std::string per_device(const std::string& scratch) { return c_ident(scratch) + "__parpy_per_device"; }

  // The host part of a two-part program: the library its device part is loaded into, and per kernel a
  // handle and a launcher with the kernel's parameters (cudaLaunchKernel reads them by address).
  void launchers() {
    os << "extern \"C\" __attribute__((visibility(\"hidden\"))) const unsigned char parpy_cubin[];\n";
    os << "static cudaLibrary_t parpy_library = nullptr;\n";
    os << "static parpy_once<1> parpy_library_once;\n";
    for (const auto& k : prog_.kernels) {
      for (const auto& n : variants(k)) {
        os << "static cudaKernel_t " << handle(n) << " = nullptr;\n";
        os << "static void " << kernel_ident(n) << "(dim3 parpy_grid, dim3 parpy_block, cudaStream_t parpy_stream";
        std::string addresses;
        for (size_t i = 0; i < k.params.size(); ++i) {
          os << ", " << type_str(k.params[i].type) << " " << c_ident(k.params[i].name);
          addresses += (i ? ", &" : "&") + c_ident(k.params[i].name);
        }
        // A failed launch is what cudaGetLastError reports after it.
        os << ") {\n  void* parpy_args[] = {" << (addresses.empty() ? "nullptr" : addresses) << "};\n"
           << "  cudaLaunchKernel((const void*)" << handle(n)
           << ", parpy_grid, parpy_block, parpy_args, 0, parpy_stream);\n}\n\n";
      }
    }
  }

  std::string entry_symbol, error_symbol, bounds_symbol;  // see CudaProgram

 protected:
  // `$chunk_load(x[i], a, b, ...)`: parpy_ldg_chunk(&x[i], a, b, ...) (parpy_cuda.h).
  // `$stream_reduce_<op>(a[j], rows, k, value, T, RB, CAP, P)`: parpy_stream_reduce<T, RB, CAP,
  // P>(&a[j], rows, neutral, parpy_op_<op>(), [&](K k) { return value; }) (parpy_cuda.h).
  std::string call_expr(const Expr& e) override {
    if (intrinsic_of(e) == Intrinsic::StreamReduce) {
      std::string type = type_name(e->ty.elem), k = type_name(e->args[2]->ty.elem) + " " + expr(e->args[2]);
      ReduceOp op = *intrinsic_reduce_op(e);
      return "parpy_stream_reduce<" + expr(e->args[4]) + ", " + expr(e->args[5]) + ", " + expr(e->args[6]) + ", " +
             expr(e->args[7]) + ">(&" + expr(e->args[0]) + ", " + expr(e->args[1]) + ", (" + type + ")" +
             expr(neutral_literal(op, e->ty.elem, e->span)) + ", parpy_op_" + combine_name(op) + "(), [&](" + k +
             ") -> " + type + " { return " + expr(e->args[3]) + "; })";
    }
    if (intrinsic_of(e) != Intrinsic::ChunkLoad) return CPrinter::call_expr(e);
    std::string out = "parpy_ldg_chunk(&" + expr(e->args[0]);
    for (size_t i = 1; i < e->args.size(); ++i) out += ", " + expr(e->args[i]);
    return out + ")";
  }

  // Unrolled innermost loops keep several independent loads in flight per thread.
  void loop(const Stmt& s, int indent) override {
    bool innermost = true;
    visit_block(s->body, [&](const Stmt& x) {
      if (x->kind == StmtKind::For || x->kind == StmtKind::While) innermost = false;
    });
    if (in_kernel_ && innermost && guarded_unroll_applies(s))
      guarded_unroll(s, indent);
    else
      print_loop(s, indent, in_kernel_ && innermost ? "#pragma unroll 4" : "", false);
  }

  // Loops that only compute values in registers (a CSR row's lanes accumulating `data[k] *
  // x[indices[k]]`) run kGuardedUnroll iterations at a time, each under its own guard:
  //
  //   for (v = lo; v < hi; v += 4 * step)
  //     #pragma unroll
  //     for (u = 0; u < 4; ++u) { w = v + u * step; if (w < hi) { body(w) } }
  //
  // the same iterations in the same order, but the loads of all four issued together (the
  // compiler predicates the guarded bodies), where `#pragma unroll 4` runs a loop of one to three
  // iterations (a short row) one branch after another (docs/gpu.md, Optimisations). Only for bodies of
  // assignments to local variables and conditionals, whose calls are index arithmetic and bounds
  // checks: no stores, no barriers or other collective operations that must not be guarded.
  static constexpr int64_t kGuardedUnroll = 4;

  static bool guarded_unroll_applies(const Stmt& s) {
    if (s->kind != StmtKind::For || s->step <= 0 || !plain_loop_is_exact(s, false)) return false;
    bool ok = true;
    auto pure = [&](const Expr& e) {
      if (!e) return;
      visit_expr(e, [&](const Expr& x) {
        if (x->kind != ExprKind::Call) return;
        Intrinsic i = intrinsic_of(x);
        if (i != Intrinsic::Trips && i != Intrinsic::Iter && i != Intrinsic::BoundsCheck &&
            i != Intrinsic::SliceIndex)
          ok = false;
      });
    };
    visit_block(s->body, [&](const Stmt& x) {
      if (x->kind == StmtKind::Assign && !x->atomic && x->lhs->kind == ExprKind::Var) {
        pure(x->rhs);
      } else if (x->kind == StmtKind::If) {
        pure(x->cond);
      } else {
        ok = false;
      }
    });
    return ok && !s->body.empty();
  }

  // Where `v += 4 * step` may pass INT64_MAX (an upper bound not known to be far below it), the
  // loop counts its iterations instead (parpy_trips, parpy_iter; bounds evaluated once, as range's).
  void guarded_unroll(const Stmt& s, int indent) {
    int64_t stride = s->step * kGuardedUnroll;
    const Expr& hi = s->hi;
    bool fits = intrinsic_of(hi) == Intrinsic::Trips ? increment_stays_in_range(kMaxTrips, stride)
                : hi->kind == ExprKind::Int        ? increment_stays_in_range(hi->ival, stride)
                                                   : false;
    std::string k = std::to_string(guarded_loops_++);
    std::string v = "parpy_g" + k, u = "parpy_u" + k, w = c_ident(s->var);
    std::string step = int_literal(s->step, ElemSize::I64);
    std::string p = pad(indent), lo = expr(s->lo), bound = expr(hi);
    if (!fits) {  // v counts iterations 0, 1, ... < n; the variable is parpy_iter(lo, v, step)
      os << p << "{\n";
      ++indent;
      p = pad(indent);
      std::string l = "parpy_glo" + k, n = "parpy_gn" + k;
      os << p << "const int64_t " << l << " = " << lo << ";\n";
      os << p << "const int64_t " << n << " = parpy_trips(" << l << ", " << bound << ", " << step << ");\n";
      lo = "0";
      bound = n;
      step = "1";
      stride = kGuardedUnroll;
    }
    std::string q = pad(indent + 1), r = pad(indent + 2);
    os << p << "for (int64_t " << v << " = " << lo << "; " << v << " < " << bound << "; " << v
       << " += " << int_literal(stride, ElemSize::I64) << ") {\n";
    os << q << "#pragma unroll\n";
    os << q << "for (int64_t " << u << " = 0; " << u << " < " << kGuardedUnroll << "; ++" << u << ") {\n";
    std::string t = fits ? w : "parpy_gt" + k;
    os << r << "int64_t " << t << " = " << v << " + " << u << " * " << step << ";\n";
    os << r << "if (" << t << " < " << bound << ") {\n";
    if (!fits)
      os << pad(indent + 3) << "int64_t " << w << " = parpy_iter(parpy_glo" << k << ", " << t << ", "
         << int_literal(s->step, ElemSize::I64) << ");\n";
    declarations(s->body, indent + 3);
    block(s->body, indent + 3);
    os << r << "}\n" << q << "}\n" << p << "}\n";
    if (!fits) os << pad(indent - 1) << "}\n";
  }
  int guarded_loops_ = 0;

  // parpy_cuda.h: the hardware's atomics, else a compare-and-swap loop.
  void atomic_update(const Stmt& s, int indent) override {
    ElemSize t = s->lhs->ty.elem;
    os << pad(indent) << "parpy_atomic_" << atomic_op_name(s->rhs->binop) << "(&" << expr(s->lhs) << ", ("
       << cuda_type(t) << ")" << expr(s->rhs->args[1]) << ");\n";
  }

  void stmt(const Stmt& s, int indent) override {
    if (s->kind == StmtKind::Launch) {
      const Kernel& k = *kernels_.at(s->rhs->name);
      std::string p = pad(indent);
      std::string args;
      for (size_t i = 0; i < s->rhs->args.size(); ++i) args += (i ? ", " : "") + expr(s->rhs->args[i]);
      auto launch = [&](const std::string& name, const std::string& p2) {
        std::string grid = "dim3(" + std::to_string(k.grid_blocks) + ")";
        std::string block = "dim3(" + std::to_string(k.block_threads) + ")";
        if (two_part_)  // the kernel's launcher (see launchers())
          os << p2 << kernel_ident(name) << "(" << grid << ", " << block << ", parpy_stream"
             << (args.empty() ? "" : ", " + args) << ");\n";
        else
          os << p2 << kernel_ident(name) << "<<<" << grid << ", " << block << ", 0, parpy_stream>>>(" << args
             << ");\n";
      };
      if (k.vector_body.empty()) {
        launch(k.name, p);
      } else {
        std::string cond;
        for (const auto& [array, bytes] : k.alignment)
          cond += (cond.empty() ? "" : " && ") + std::string("parpy_aligned(") + c_ident(array) + ", " +
                  std::to_string(bytes) + ")";
        os << p << "if (" << cond << ") {\n";
        launch(k.name + "_vec", p + "  ");
        os << p << "} else {\n";
        launch(k.name, p + "  ");
        os << p << "}\n";
      }
      os << p << "PARPY_CHECK(cudaGetLastError(), \"launch of " << k.name << "\");\n";
      return;
    }
    CPrinter::stmt(s, indent);
  }

 private:
  static std::vector<std::string> variants(const Kernel& k) {
    if (k.vector_body.empty()) return {k.name};
    return {k.name, k.name + "_vec"};
  }
  static std::string handle(const std::string& kernel) { return kernel_ident(kernel) + "_handle"; }
  // Kernels are named by parpy, after the function ("f_k0"): a name no user identifier has.
  static std::string kernel_ident(const std::string& kernel) { return cuda_kernel_symbol(kernel); }

  bool two_part_;  // host and device code in separate sources (CudaProgram::device_code, host_code)
  bool checked_ = false;
  bool in_kernel_ = false;
  const GpuProgram& prog_;
  std::map<std::string, const Kernel*> kernels_;
};

bool uses_f16(const GpuProgram& p) {
  bool found = false;
  auto check_type = [&](const Type& t) {
    if ((t.is_tensor() || t.is_pointer()) && t.elem == ElemSize::F16) found = true;
  };
  for (const auto& a : p.params) check_type(a.type);
  for (const auto& f : p.functions) {
    check_type(f.ret);
    for (const auto& a : f.params) check_type(*a.annotation);
  }
  auto scan = [&](const Block& b) {
    visit_block(b, [&](const Stmt& s) {
      visit_stmt_exprs(s, [&](const Expr& x) { check_type(x->ty); });
    });
  };
  scan(p.host);
  for (const auto& k : p.kernels) scan(k.body);
  for (const auto& f : p.functions) scan(f.body);
  return found;
}

enum class Part { Whole, Device, Host };

// The comment and includes at the top of a source that holds `part` of the program.
void preamble(CudaPrinter& pr, const GpuProgram& p, Part part) {
  const char* what[] = {"", ", device part", ", host part"};
  pr.os << "// Generated by parpy (Cuda backend" << what[int(part)] << ").\n";
  // cuda_fp16.h costs nvcc time: only when half precision is used.
  if (uses_f16(p)) pr.os << "#include <cuda_fp16.h>\n";
  // Cluster and graph support (and their headers) only where used
  // (docs/differences.md, Generated code and runtime).
  bool clusters = false;
  for (const auto& k : p.kernels) clusters = clusters || k.cluster_blocks > 1;
  if (clusters && part != Part::Host) pr.os << "#define PARPY_USE_CLUSTERS\n";
  if (p.use_graphs && part != Part::Device) pr.os << "#define PARPY_USE_GRAPHS\n";
  if (CudaPrinter::bounds_checked(p)) pr.os << "#define PARPY_BOUNDS_CHECK\n";
  pr.os << (part == Part::Host ? "#include \"parpy_cuda_host.h\"\n" : "#include \"parpy_cuda.h\"\n");
  // Externals are device functions of these headers, called by their C names.
  if (part != Part::Host) {
    for (const auto& h : p.headers) {
      bool delimited = h[0] == '<' || h[0] == '"';
      pr.os << "#include " << (delimited ? h : "\"" + h + "\"") << "\n";
    }
  }
  pr.os << "\n";
}

void device_code(CudaPrinter& pr, const GpuProgram& p) {
  // Jit helpers run in the calling thread (docs/language.md, Functions).
  for (const auto& f : p.functions) pr.helper_function(f, "static __device__ inline");
  for (const auto& k : p.kernels) pr.kernel(k);
}

}  // namespace

std::string cuda_kernel_symbol(const std::string& kernel) { return "parpy_kernel_" + c_chars(kernel); }

std::string print_cuda_user_entry(const std::string& fname, const std::vector<AbiParam>& params) {
  std::ostringstream os;
  for (const auto& p : params)
    if (p.type.elem == ElemSize::F16) {
      os << "#include <cuda_fp16.h>\n";
      break;
    }
  os << "#include \"parpy_cuda_host.h\"\n\n";
  os << "extern \"C\" int32_t " << entry_symbol(fname) << "(void** args, void* stream, int32_t device) {\n"
     << "  parpy_error_buf[0] = 0;\n"
     << "  parpy_device_scope parpy_scope(device);\n"
     << "  if (parpy_scope.status != 0) return parpy_scope.status;\n"
     << "  return parpy_call_user(" << fname << ", (cudaStream_t)stream";
  for (size_t i = 0; i < params.size(); ++i) {
    const Type& t = params[i].type;
    std::string type = std::string(cuda_type(t.elem)) + (t.is_scalar() ? "" : "*");
    os << ", *(" << type << "*)args[" << i << "]";
  }
  os << ");\n}\n\n";
  os << "extern \"C\" const char* " << error_symbol(fname) << "() { return parpy_error_buf; }\n";
  return os.str();
}

CudaProgram print_cuda(const GpuProgram& p) {
  CudaProgram out;
  CudaPrinter whole(p, false);
  preamble(whole, p, Part::Whole);
  device_code(whole, p);
  whole.entry();
  out.code = whole.os.str();
  out.entry_symbol = whole.entry_symbol;
  out.error_symbol = whole.error_symbol;
  out.bounds_symbol = whole.bounds_symbol;

  CudaPrinter device(p, true);
  preamble(device, p, Part::Device);
  device_code(device, p);
  out.device_code = device.os.str();

  CudaPrinter host(p, true);
  preamble(host, p, Part::Host);
  host.launchers();
  host.entry();
  out.host_code = host.os.str();
  return out;
}

}  // namespace parpy
