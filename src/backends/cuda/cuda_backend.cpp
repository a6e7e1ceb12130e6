#include "backends/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <utility>

#include "backends/cuda/driver_program.h"
#include "codegen/cuda.h"
#include "ir/c_names.h"
#include "jit/nvcc.h"
#include "jit/nvrtc.h"
#include "runtime/cuda_driver.h"

namespace parpy {
namespace {

// int32_t entry(void** args, void* stream, int32_t device)
using EntryFn = int32_t (*)(void**, void*, int32_t);

// Whether the NVRTC library can be loaded (a way to compile CUDA C++ without nvcc).
bool nvrtc_loadable() { return cuda::nvrtc().found; }

class CudaBackend final : public Backend {
  // Why not, fork aside: a driver with a device, and a compiler. Worked out once.
  static const std::string& machine_reason() {
    static const std::string reason = []() -> std::string {
#ifdef __APPLE__
      return "CUDA is not supported on macOS";
#endif
      const cuda::DeviceInfo& d = cuda::device_info();
      if (!d.available) return d.why_unavailable;
      if (!cuda::nvcc().found && !nvrtc_loadable())
        return "Could not find 'nvcc' in path or the NVRTC library - one of them is required to build the "
               "generated CUDA C++ code";
      return "";
    }();
    return reason;
  }

 public:
  CompileBackend id() const override { return CompileBackend::Cuda; }

  const std::string& unavailable_reason() const override {
    const std::string& why = machine_reason();
    return why.empty() ? blocked_reason() : why;
  }

  // A GPU this process would use but cannot, forked after its parent had initialised the driver.
  // Asked at every call: the parent's answers are inherited by fork.
  const std::string& blocked_reason() const override {
    static const std::string none;
    return cuda::forked_after_init() && machine_reason().empty() ? cuda::forked_message() : none;
  }

  bool device_memory() const override { return true; }
  bool gpu() const override { return true; }

  GpuTarget gpu_target(const CompileOptions& opts) const override {
    GpuTarget t;
    // A cluster has at most 8 blocks portably and 16 with the non-portable size, which parpy asks for.
    if (opts.use_cuda_thread_block_clusters) t.max_cluster_blocks = std::min<int64_t>(opts.max_thread_blocks_per_cluster, 16);
    t.graphs = opts.use_cuda_graphs;
    // Enough threads to keep every SM of a large GPU (132 SMs x 2048 threads on an H100/H200)
    // streaming memory.
    t.fill_threads = 1 << 18;
    // Warps' lanes synchronise and shuffle in groups in divergent code (__syncwarp and
    // __shfl_xor_sync with a mask of the group).
    t.pack_rows = true;
    return t;
  }

  Lowered print_gpu(const GpuProgram& gpu, const CompileOptions&) const override {
    CudaProgram prog = print_cuda(gpu);
    Lowered low = lowered_gpu(prog, gpu);
    low.device_code = std::move(prog.device_code);
    low.host_code = std::move(prog.host_code);
    return low;
  }

  // How a program is built (README, "Backends"): by default its kernels by NVRTC in this process
  // and its host code run by parpy (DriverProgram); with user flags or libraries (nvcc flags for
  // the whole program), or PARPY_CUDA_BUILD=nvcc, by nvcc as one source; with
  // PARPY_CUDA_BUILD=two-part, where NVRTC is missing, or for externals' headers where nvcc is, by
  // nvcc and the host compiler in two parts.
  std::shared_ptr<Entry> build(const Lowered& low, const CompileOptions& opts) const override {
    jit::BuildFlags flags = build_flags(opts);
    CudaBuild mode = cuda_build_mode(opts);
    // The headers of externals are C++ for nvcc (they may include any of the standard library,
    // of which NVRTC gets only parpy's stand-ins for <cstdint>, <cmath>, ...): where nvcc is, it
    // builds programs that include them, unless PARPY_CUDA_BUILD=nvrtc.
    if (mode == CudaBuild::Nvrtc && low.gpu && !low.gpu->headers.empty() && cuda::nvcc().found &&
        requested_cuda_build() != "nvrtc")
      mode = CudaBuild::TwoPart;
    if (mode == CudaBuild::Nvrtc && low.gpu) {
      std::optional<HostProgram> host;
      try {
        host.emplace(*low.gpu);
      } catch (const std::runtime_error&) {
        // Host code the interpreter cannot run (none is known) is compiled instead, where nvcc is.
        if (!cuda::nvcc().found) throw;
      }
      if (host) {
        const cuda::DeviceInfo& d = cuda::device_info();
        cuda::NvrtcImage image = cuda::nvrtc_compile(low.device_code, d.major, d.minor, flags);
        auto e = std::make_shared<Entry>();
        e->built = image.built.built;
        e->program = std::make_shared<DriverProgram>(*low.gpu, std::move(*host), d.major * 10 + d.minor,
                                                     image.bytes(), low.device_code, flags,
                                                     !low.bounds_symbol.empty());
        if (!low.bounds_symbol.empty()) {
          e->bounds_sites = low.bounds_sites;
          e->bounds_fn = &DriverProgram::last_bounds;
        }
        set_written(*e, low);
        return e;
      }
    }
    if (!cuda::nvcc().found && mode == CudaBuild::Whole)
      throw jit::BuildError("This Cuda program is built by nvcc (asked for by opts.extra_flags or opts.libs, "
                            "which are nvcc flags, or by PARPY_CUDA_BUILD=nvcc), which was not found (" +
                            cuda::nvcc().why_missing +
                            "). Install the CUDA toolkit, or leave those out to build with NVRTC.");
    std::optional<jit::BuildResult> fast;
    if (mode != CudaBuild::Whole)
      fast = cuda::build_two_part_cuda_library(low.device_code, low.host_code, flags, cuda::arch_flag());
    jit::BuildResult built = fast ? *fast : cuda::build_cuda_library(low.code, flags, cuda::arch_flag());
    auto e = load_entry(built, low.entry_symbol, low.error_symbol, &low);
    set_written(*e, low);
    return e;
  }

  static void set_written(Entry& e, const Lowered& low) {
    for (const auto& p : low.params)
      e.written.push_back(std::find(low.written.begin(), low.written.end(), p.name) != low.written.end());
  }

  // User code is CUDA C++ for nvcc (whatever it includes): the one-source build. Since it does not
  // say what it writes, every host array is copied back.
  std::shared_ptr<Entry> build_user_code(const std::string& name, const std::string& code,
                                         const std::vector<AbiParam>& params,
                                         const CompileOptions& opts) const override {
    if (!cuda::nvcc().found)
      throw jit::BuildError("CUDA code given to compile_string is built by nvcc (host code and kernels in one "
                            "source), which was not found (" + cuda::nvcc().why_missing +
                            "). Install the CUDA toolkit; jit functions need only NVRTC.");
    std::string src = code;
    if (code.find(entry_symbol(name) + "(") == std::string::npos) src += "\n" + print_cuda_user_entry(name, params);
    auto e = load_entry(cuda::build_cuda_library(src, build_flags(opts), cuda::arch_flag()), entry_symbol(name),
                        error_symbol(name));
    e->write_all = true;
    return e;
  }

  // Runs on the device of the CUDA array arguments (the current device where there are none):
  // host arrays are copied to the device and back only if written, on the stream of the CUDA
  // array arguments; nothing else is synchronised (docs/gpu.md, Data, streams and devices).
  CallResult call(const Entry& e, CallArgs& args) const override {
    CallResult r;
    // Host arrays that share memory (a row and its matrix) are copied as one span, so that on the
    // device they share it too and the call means what it means on the host.
    struct Span {
      uintptr_t lo, hi;
      uint64_t device = 0;
      bool written = false;
    };
    std::vector<Span> spans;
    std::vector<size_t> span_of(args.host_arrays.size());
    std::vector<size_t> order(args.host_arrays.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    auto lo_of = [&](size_t i) { return reinterpret_cast<uintptr_t>(args.host_arrays[i].host); };
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lo_of(a) < lo_of(b); });
    for (size_t i : order) {
      const auto& h = args.host_arrays[i];
      uintptr_t lo = lo_of(i), hi = lo + h.bytes;
      if (spans.empty() || lo >= spans.back().hi)
        spans.push_back({lo, hi});
      else
        spans.back().hi = std::max(spans.back().hi, hi);
      span_of[i] = spans.size() - 1;
      spans.back().written |= e.write_all || (h.index < e.written.size() && e.written[h.index]);
    }
    try {
      int ordinal = args.device >= 0 ? args.device : cuda::current_device();
      // Copies and stream-ordered allocations happen in the device's primary context, which the
      // entry's CUDA runtime shares.
      cuda::DeviceScope scope(ordinal);
      for (Span& s : spans) {
        s.device = cuda::alloc_async(s.hi - s.lo, args.stream);
        cuda::copy_htod(s.device, reinterpret_cast<void*>(s.lo), s.hi - s.lo, args.stream);
      }
      for (size_t i = 0; i < args.host_arrays.size(); ++i) {
        const Span& s = spans[span_of[i]];
        *static_cast<uint64_t*>(args.argv[args.host_arrays[i].index]) = s.device + (lo_of(i) - s.lo);
      }
      if (e.program) {
        r.status = static_cast<const DriverProgram&>(*e.program).call(args.argv.data(), args.stream, ordinal, &r.error);
      } else {
        r.status = reinterpret_cast<EntryFn>(e.fn)(args.argv.data(), args.stream, ordinal);
        if (r.status != 0 && !(r.status == kIndexErrorStatus && e.bounds_fn)) r.error = e.error_fn();
      }
      // A compiled entry restores the thread's device as its CUDA runtime saw it; the copies back
      // run in the call's device whatever that was (nothing to switch when it is current). A
      // driver program leaves the context as it found it.
      std::optional<cuda::DeviceScope> after;
      if (!e.program) after.emplace(ordinal);
      for (const Span& s : spans)
        if (r.status == 0 && s.written) cuda::copy_dtoh(reinterpret_cast<void*>(s.lo), s.device, s.hi - s.lo, args.stream);
      for (Span& s : spans)
        cuda::free_async(std::exchange(s.device, 0), args.stream);
      if (!spans.empty()) cuda::stream_synchronize(args.stream);
    } catch (const std::exception& ex) {
      r.error = ex.what();
      r.status = r.status ? r.status : 1;
      for (const Span& s : spans)
        if (s.device) try {
            cuda::free_async(s.device, args.stream);
          } catch (const std::exception&) {
          }
    }
    return r;
  }

  std::string external_error(bool host, const LoopPar&) const override {
    return host ? "Host externals are not supported in the CUDA backend" : "";
  }
};

}  // namespace

std::string requested_cuda_build() {
  const char* env = std::getenv("PARPY_CUDA_BUILD");
  return env ? env : "";
}

CudaBuild cuda_build_mode(const CompileOptions& opts) {
  std::string mode = requested_cuda_build();
  // User flags are nvcc flags for the whole program.
  if (mode == "nvcc" || !opts.extra_flags.empty() || !opts.libs.empty()) return CudaBuild::Whole;
  // Asked for NVRTC where there is none: its build says why.
  if (mode == "nvrtc") return CudaBuild::Nvrtc;
  if (mode == "two-part" || !cuda::nvrtc().found) return CudaBuild::TwoPart;
  return CudaBuild::Nvrtc;
}

bool whole_cuda_build_requested() { return requested_cuda_build() == "nvcc"; }

std::string describe_cuda_build() {
  if (cuda_build_mode(CompileOptions{}) == CudaBuild::Nvrtc)
    return "kernels by " + cuda::describe_nvrtc() +
           ", host code run by parpy through the driver API (user flags or libs: nvcc builds the whole program)";
  return cuda::describe_cuda_build(whole_cuda_build_requested());
}

const Backend& cuda_backend() {
  static const CudaBackend b;
  return b;
}

}  // namespace parpy
