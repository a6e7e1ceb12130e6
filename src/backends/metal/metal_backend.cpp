#include "backends/metal/metal_backend.h"

#include <cstdlib>
#include <stdexcept>

#include "codegen/metal.h"
#include "ir/c_names.h"
#include "jit/metal_build.h"

namespace parpy {
namespace {

// int32_t entry(void** args): arrays are host pointers, which the generated code copies into
// shared Metal buffers (and the written ones back).
using EntryFn = int32_t (*)(void**);

std::string metal_cpp_dir() {
  const char* d = std::getenv("METAL_CPP_HEADER_PATH");
  return d ? d : "";
}

class MetalBackend final : public Backend {
 public:
  CompileBackend id() const override { return CompileBackend::Metal; }

  const std::string& unavailable_reason() const override {
    static const std::string reason = []() -> std::string {
#ifndef __APPLE__
      return "Metal is only available on macOS";
#else
      if (metal_cpp_dir().empty())
        return "The METAL_CPP_HEADER_PATH environment variable is not set. It must point to the directory "
               "containing the metal-cpp headers (https://developer.apple.com/metal/cpp/), which are "
               "required to build the generated Metal code";
      return "";
#endif
    }();
    return reason;
  }

  bool gpu() const override { return true; }

  // No thread-block clusters and no graphs (CUDA features: asking for them is an error); host code
  // reads and writes arrays in place (Metal buffers in shared memory).
  GpuTarget gpu_target(const CompileOptions& opts) const override {
    if (opts.use_cuda_thread_block_clusters)
      fail("Thread block clusters are a CUDA feature, which the Metal backend does not have. Set "
           "use_cuda_thread_block_clusters to False to compile for Metal (reductions over several "
           "threadgroups then combine their partial results in device memory).");
    if (opts.use_cuda_graphs)
      fail("CUDA graphs are a CUDA feature, which the Metal backend does not have. Set use_cuda_graphs to False "
           "to compile for Metal (its kernels run on one command buffer per call).");
    GpuTarget t;
    t.host_array_access = true;
    t.fill_threads = 1 << 15;  // Apple GPUs have up to 40 cores of 1024 threads
    t.atomics64 = false;
    return t;
  }

  Lowered print_gpu(const GpuProgram& program, const CompileOptions& opts) const override {
    GpuProgram gpu = narrow_weak_doubles(program);
    check_metal_program(gpu);
    MetalProgram prog = print_metal(gpu, opts);
    return lowered_gpu(prog, gpu);
  }

  // Reached only where the backend is available (macOS with metal-cpp): the call path resolves
  // the backend strictly before building.
  std::shared_ptr<Entry> build(const Lowered& low, const CompileOptions& opts) const override {
    return load_entry(jit::build_metal_library(low.code, build_flags(opts), metal_cpp_dir()), low.entry_symbol,
                      low.error_symbol, &low);
  }

  // Hand-written code is Metal host C++ with the uniform entry, such as print_compiled's output.
  std::shared_ptr<Entry> build_user_code(const std::string& name, const std::string& code,
                                         const std::vector<AbiParam>&, const CompileOptions& opts) const override {
    if (code.find(entry_symbol(name) + "(") == std::string::npos)
      throw std::runtime_error("Metal code given to compile_string must define the entry of a generated program, "
                               "extern \"C\" int32_t " + entry_symbol(name) +
                               "(void** args), as print_compiled prints it for the Metal backend.");
    auto e = load_entry(jit::build_metal_library(code, build_flags(opts), metal_cpp_dir()), entry_symbol(name),
                        code.find(error_symbol(name) + "(") == std::string::npos ? "" : error_symbol(name));
    return e;
  }

  // The generated code waits for its kernels and copies written arrays back before it returns.
  CallResult call(const Entry& e, CallArgs& args) const override {
    CallResult r;
    r.status = reinterpret_cast<EntryFn>(e.fn)(args.argv.data());
    if (r.status != 0 && !(r.status == kIndexErrorStatus && e.bounds_fn) && e.error_fn) r.error = e.error_fn();
    return r;
  }

  std::string external_error(bool host, const LoopPar& par) const override {
    return host && par.is_parallel() ? "Host externals cannot be parallel" : "";
  }
};

}  // namespace

const Backend& metal_backend() {
  static const MetalBackend b;
  return b;
}

}  // namespace parpy
