// The whole compiler, read top to bottom: each pass is one line, followed by a debug dump.
#include "lower.h"

#include <chrono>

#include "codegen/cpu.h"
#include "codegen/cuda.h"
#include "gpu/check_host_code.h"
#include "gpu/device_calls.h"
#include "gpu/extract_kernels.h"
#include "gpu/fuse_loops.h"
#include "passes/array_locals.h"
#include "passes/check_reductions.h"
#include "passes/constant_fold.h"
#include "passes/flatten_indices.h"
#include "passes/lower_helpers.h"
#include "passes/lower_slices.h"
#include "passes/resolve_par.h"
#include "passes/typecheck.h"

namespace parpy {

namespace {

class Stages {
 public:
  Stages(const CompileOptions& opts, const DebugSink& sink) : on_(opts.debug_print && sink), sink_(sink) {}

  void dump(const char* stage, const std::string& name, const Block& body) {
    auto now = std::chrono::steady_clock::now();
    if (on_) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - last_).count();
      Function f{name, {}, body, {}, Type::void_()};
      sink_(std::string("===== ") + stage + " (time: " + std::to_string(us) + " us) =====\n" +
            print_function(f));
    }
    last_ = std::chrono::steady_clock::now();
  }

  void dump_code(const char* stage, const std::string& code) {
    auto now = std::chrono::steady_clock::now();
    if (on_) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - last_).count();
      sink_(std::string("===== ") + stage + " (time: " + std::to_string(us) + " us) =====\n" + code);
    }
    last_ = now;
  }

 private:
  bool on_;
  const DebugSink& sink_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

std::map<std::string, std::vector<int64_t>> array_shapes(const std::vector<AbiParam>& params) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : params)
    if (p.type.is_array()) shapes[p.name] = p.type.shape;
  return shapes;
}

std::map<std::string, Type> array_types(const std::vector<AbiParam>& params) {
  std::map<std::string, Type> types;
  for (const auto& p : params)
    if (p.type.is_array()) types[p.name] = p.type;
  return types;
}

}  // namespace

Lowered lower(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts,
              const DebugSink& debug) {
  Stages st(opts, debug);
  const std::string& name = f.name;
  ensure_parallelism(f, opts);
  Specialized sp = specialize(f, args, opts);
  Block ir = sp.fn.body;
  st.dump("specialize", name, ir);
  ir = constant_fold(ir);
  st.dump("constant_fold", name, ir);
  ir = type_array_locals(ir, array_types(sp.params));
  st.dump("type_array_locals", name, ir);
  ir = lower_slices(ir, array_shapes(sp.params));
  st.dump("lower_slices", name, ir);
  Helpers helpers = lower_helpers(f, opts);
  for (const auto& h : helpers.functions) st.dump("lower_helpers", h.name, h.body);
  ir = typecheck(ir, array_types(sp.params), opts, name, helpers.main_calls);
  st.dump("typecheck", name, ir);
  ir = constant_fold(ir);
  st.dump("constant_fold", name, ir);
  ir = flatten_indices(ir);
  st.dump("flatten_indices", name, ir);
  ir = resolve_par(ir, opts);
  st.dump("resolve_par", name, ir);
  check_array_local_writes(ir, array_types(sp.params));
  ir = check_reductions(ir);
  st.dump("check_reductions", name, ir);
  if (opts.backend == CompileBackend::Cuda) {
    check_host_code(ir);
    check_device_calls(ir, helpers);
    ir = fuse_map_reduce(ir);
    st.dump("fuse_map_reduce", name, ir);
    GpuProgram gpu = extract_kernels(name, sp.params, ir, opts, parallel_externals(helpers));
    for (const auto& k : gpu.kernels) st.dump(("extract_kernels: " + k.name).c_str(), k.name, k.body);
    st.dump("extract_kernels: host", name, gpu.host);
    attach_device_functions(gpu, ir, helpers);
    CudaProgram prog = print_cuda(gpu);
    st.dump_code("print_cuda", prog.code);
    return {prog.code,        prog.entry_symbol, sp.params, prog.error_symbol, gpu.written,
            prog.device_code, prog.host_code};
  }
  CpuProgram prog = print_cpu(name, sp.params, ir, helpers);
  st.dump_code("print_cpu", prog.code);
  return {prog.code, prog.entry_symbol, sp.params, "", {}, "", ""};
}

}  // namespace parpy
