// The whole compiler, read top to bottom: each pass is one line, followed by a debug dump.
#include "lower.h"

#include <cctype>
#include <chrono>
#include <set>

#include "backend/backend.h"
#include "gpu/cache_rows.h"
#include "gpu/check_host_code.h"
#include "gpu/device_calls.h"
#include "gpu/extract_kernels.h"
#include "gpu/fuse_map_reduce.h"
#include "gpu/split_rows.h"
#include "gpu/stream_rows.h"
#include "gpu/strip_rows.h"
#include "gpu/vectorize.h"
#include "passes/array_locals.h"
#include "passes/attach_labels.h"
#include "passes/check_bounds.h"
#include "passes/check_races.h"
#include "passes/array_reductions.h"
#include "passes/check_reductions.h"
#include "passes/constant_fold.h"
#include "passes/flatten_indices.h"
#include "passes/inline_calls.h"
#include "passes/lift_reductions.h"
#include "passes/lower_helpers.h"
#include "passes/lower_slices.h"
#include "passes/resolve_par.h"
#include "passes/specialize.h"
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

// The paths of the arguments left on the GPU, top level and dict fields.
std::vector<std::string> on_device_paths(const std::vector<ArgValue>& args) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    if (a.on_device) out.push_back(a.path);
    for (const auto& [k, v] : a.fields)
      if (v.on_device) out.push_back(v.path);
  }
  return out;
}

// `args` with the arguments on the GPU named in `read` replaced by their values from `values`
// (the same arguments described with every value read).
std::vector<ArgValue> with_values(const std::vector<ArgValue>& args, const std::vector<ArgValue>& values,
                                  const std::set<std::string>& read) {
  std::vector<ArgValue> out = args;
  auto use = [&](ArgValue& a, const ArgValue& v) {
    if (a.on_device && read.count(a.path)) a = v;
  };
  for (size_t i = 0; i < out.size() && i < values.size(); ++i) {
    use(out[i], values[i]);
    for (size_t j = 0; j < out[i].fields.size() && j < values[i].fields.size(); ++j)
      use(out[i].fields[j].second, values[i].fields[j].second);
  }
  return out;
}

// The arrays and pointers among a helper's annotated parameters.
std::map<std::string, Type> annotated_arrays(const Function& fn) {
  std::map<std::string, Type> arrays;
  for (const auto& p : fn.params)
    if (p.annotation && (p.annotation->is_pointer() || p.annotation->is_array())) arrays[p.name] = *p.annotation;
  return arrays;
}

// The passes over each helper called in expressions (docs/language.md, Functions), callees first.
Helpers helpers_of(const Function& f, const CompileOptions& opts, Stages& st) {
  return lower_helpers(f, opts, [&](const Function& h, const CallTargets& calls) {
    Function fn = h;
    fn.body = constant_fold(fn.body);
    st.dump("helper: constant_fold", h.name, fn.body);
    fn.body = type_array_locals(fn.body, annotated_arrays(fn));
    st.dump("helper: type_array_locals", h.name, fn.body);
    Type ret;
    fn.body = typecheck_helper(fn, opts, calls, ret);
    fn.ret = ret;
    st.dump("helper: typecheck", h.name, fn.body);
    fn.body = constant_fold(fn.body);
    st.dump("helper: constant_fold", h.name, fn.body);
    fn.body = flatten_indices(fn.body);
    st.dump("helper: flatten_indices", h.name, fn.body);
    return fn;
  });
}

bool lowers(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts) {
  try {
    lower(f, args, opts);
    return true;
  } catch (const CompileError&) {
    return false;
  }
}


// The target-independent passes: specialisation to the checked program.
Checked check(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts, Stages& st,
              std::vector<BoundsSite>& sites) {
  const std::string& name = f.name;
  ensure_parallelism(f, opts);
  Specialized sp = specialize(f, args, opts);
  Block ir = sp.fn.body;
  st.dump("specialize", name, ir);
  ir = constant_fold(ir);
  st.dump("constant_fold", name, ir);
  ir = type_array_locals(ir, array_types(sp.params));
  st.dump("type_array_locals", name, ir);
  ir = lift_reductions(ir);
  st.dump("lift_reductions", name, ir);
  ir = lower_slices(ir, array_shapes(sp.params));
  st.dump("lower_slices", name, ir);
  Helpers helpers = helpers_of(f, opts, st);
  std::map<std::string, Type> typed = array_types(sp.params);
  typed.insert(sp.runtime_scalars.begin(), sp.runtime_scalars.end());
  ir = typecheck(ir, typed, opts, name, helpers.main_calls);
  st.dump("typecheck", name, ir);
  ir = constant_fold(ir);
  st.dump("constant_fold", name, ir);
  ir = check_bounds(ir, opts.bounds_check, sites);
  st.dump("check_bounds", name, ir);
  ir = flatten_indices(ir);
  st.dump("flatten_indices", name, ir);
  ir = resolve_par(ir, opts);
  st.dump("resolve_par", name, ir);
  ir = lift_array_reductions(ir);
  st.dump("lift_array_reductions", name, ir);
  check_array_local_writes(ir, array_types(sp.params));
  ir = check_reductions(ir);
  st.dump("check_reductions", name, ir);
  ir = check_races(ir, array_types(sp.params));
  st.dump("check_races", name, ir);
  return {name, sp.params, std::move(ir), std::move(helpers)};
}

// What the GPU layer may use for this call: the backend's target, without the row splits (which
// read one array while atomically updating another) when array arguments share memory.
GpuTarget gpu_target(const Backend& b, const CompileOptions& opts, const std::vector<ArgValue>& args) {
  GpuTarget t = b.gpu_target(opts);
  for (const ArgValue& a : args)
    if (a.shares_memory) t.fill_threads = 0;
  return t;
}

// The GPU layer shared by the GPU backends (src/gpu/): host code and kernels.
GpuProgram gpu_layer(const Checked& c, const GpuTarget& target, Stages& st) {
  const std::string& name = c.name;
  if (!target.host_array_access) check_host_code(c.body);
  check_device_calls(c.body, c.helpers);
  Block ir = split_row_loops(c.body, target);
  st.dump("split_row_loops", name, ir);
  ir = strip_row_loops(ir, target);
  st.dump("strip_row_loops", name, ir);
  ir = stream_row_loops(ir, target);
  st.dump("stream_row_loops", name, ir);
  ir = fuse_map_reduce(ir);
  st.dump("fuse_map_reduce", name, ir);
  GpuProgram gpu = extract_kernels(name, c.params, ir, target, parallel_externals(c.helpers));
  // Array arguments that share memory are other names of the same elements to the kernel passes.
  for (const auto& p : c.params)
    if (p.shares_memory) gpu.aliased.insert(p.name);
  for (const auto& k : gpu.kernels) st.dump(("extract_kernels: " + k.name).c_str(), k.name, k.body);
  st.dump("extract_kernels: host", name, gpu.host);
  vectorize_kernels(gpu);
  for (const auto& k : gpu.kernels)
    if (!k.vector_body.empty()) st.dump(("vectorize_kernels: " + k.name + "_vec").c_str(), k.name, k.vector_body);
  cache_kernel_rows(gpu);
  for (const auto& k : gpu.kernels) {
    st.dump(("cache_kernel_rows: " + k.name).c_str(), k.name, k.body);
    if (!k.vector_body.empty()) st.dump(("cache_kernel_rows: " + k.name + "_vec").c_str(), k.name, k.vector_body);
  }
  attach_device_functions(gpu, ir, c.helpers);
  return gpu;
}

}  // namespace

// The passes, then the backend's printer (backend/backend.h): a GPU backend prints the GPU
// layer's program, a host backend the checked program.
Lowered lower(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts,
              const DebugSink& debug) {
  Stages st(opts, debug);
  const Backend& target = backend_of(opts.backend);
  std::vector<BoundsSite> sites;
  Checked c = check(f, args, opts, st, sites);
  Lowered low;
  if (target.gpu()) {
    auto gpu = std::make_shared<const GpuProgram>(gpu_layer(c, gpu_target(target, opts, args), st));
    low = target.print_gpu(*gpu, opts);
    low.gpu = std::move(gpu);
  } else {
    low = target.print_host(c, opts);
  }
  std::string stage = std::string("print_") + target.name();
  for (char& ch : stage) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  st.dump_code(stage.c_str(), low.code);
  low.bounds_sites = std::move(sites);
  return low;
}

GpuProgram lower_gpu_program(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts,
                             const DebugSink& debug) {
  Stages st(opts, debug);
  const Backend& target = backend_of(opts.backend);
  std::vector<BoundsSite> sites;
  return gpu_layer(check(f, args, opts, st, sites), gpu_target(target, opts, args), st);
}

std::shared_ptr<Function> decorate(const Parsed& parsed) {
  auto fn = std::make_shared<Function>(*parsed.fn);
  fn->body = attach_labels(fn->body);
  if (parsed.unbound) return nullptr;
  auto find_inlined = [&](const std::string& key) -> FunctionRef {
    auto it = parsed.inlined.find(key);
    return it == parsed.inlined.end() ? nullptr : it->second;
  };
  auto is_external = [&](const std::string& key) { return parsed.externals.count(key) > 0; };
  fn->body = inline_calls(fn->body, find_inlined, is_external);
  return fn;
}

Helpers lower_helpers_of(const Function& f, const CompileOptions& opts, const DebugSink& debug) {
  Stages st(opts, debug);
  return helpers_of(f, opts, st);
}

Lowered lower_call(const Function& f, const std::vector<ArgValue>& args,
                   const std::function<std::vector<ArgValue>()>& read_all, std::vector<std::string>& reads,
                   const CompileOptions& opts, const DebugSink& debug) {
  std::vector<std::string> on_device = on_device_paths(args);
  if (on_device.empty()) return lower(f, args, opts, debug);
  try {
    return lower(f, args, opts, debug);
  } catch (const CompileError&) {
    // Some value decides code (or the program is wrong whatever the values: then the lowering
    // with every value read below reports the error it has).
  }
  std::vector<ArgValue> values = read_all();
  std::set<std::string> read(on_device.begin(), on_device.end());
  lower(f, with_values(args, values, read), opts);
  // Leave each value on the GPU where the lowering succeeds without it.
  for (const auto& p : on_device) {
    read.erase(p);
    if (!lowers(f, with_values(args, values, read), opts)) read.insert(p);
  }
  for (const auto& p : on_device)
    if (read.count(p)) reads.push_back(p);
  return lower(f, with_values(args, values, read), opts, debug);
}

}  // namespace parpy
