#include "backends/cuda/driver_program.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "codegen/cuda.h"
#include "jit/nvrtc.h"
#include "ir/types.h"

namespace parpy {

namespace {

// The index-check record of the kernels (parpy_common.h's parpy_bounds_record).
struct BoundsRecord {
  int64_t site, index, extent;
};
thread_local int64_t last_failure[3];
std::atomic<int64_t> live_programs{0};

// The host code's launches, made through the driver on one device and stream.
class Launcher final : public HostLauncher {
 public:
  Launcher(const std::vector<void*>& functions, const std::vector<std::string>& names, void* stream,
           std::string* error)
      : functions_(functions), names_(names), stream_(stream), error_(error) {}

  int32_t launch(const HostLaunch& l) override {
    size_t i = 2 * l.kernel + (l.vector ? 1 : 0);
    int r = cuda::launch(functions_[i], static_cast<uint32_t>(l.grid_blocks), static_cast<uint32_t>(l.block_threads),
                         stream_, l.params);
    if (r == 0) return 0;
    if (error_) *error_ = "launch of " + names_[i] + ": " + cuda::error_string(r);
    return 1;
  }

 private:
  const std::vector<void*>& functions_;
  const std::vector<std::string>& names_;
  void* stream_;
  std::string* error_;
};

}  // namespace

DriverProgram::DriverProgram(const GpuProgram& p, HostProgram host, int arch, std::string image,
                             std::string device_code, jit::BuildFlags flags, bool checked)
    : host_(std::move(host)), device_code_(std::move(device_code)), flags_(std::move(flags)), scratch_(p.scratch), checked_(checked), graphs_(p.use_graphs) {
  for (const Kernel& k : p.kernels) {
    wide_clusters_.push_back(k.cluster_blocks > 8);
    kernel_names_.push_back(cuda_kernel_symbol(k.name));
    kernel_names_.push_back(k.vector_body.empty() ? "" : cuda_kernel_symbol(k.name + "_vec"));
  }
  for (const AbiParam& a : p.params)
    arg_bytes_.push_back(a.type.is_scalar() ? static_cast<size_t>(elem_bytes(a.type.elem)) : sizeof(uint64_t));
  images_[arch] = std::move(image);
  device_count_ = std::max(cuda::device_info().device_count, 1);
  ++live_programs;
  devices_.reset(new Device[static_cast<size_t>(device_count_)]);
}

DriverProgram::~DriverProgram() {
  --live_programs;
  for (int i = 0; i < device_count_; ++i) {
    Device& d = devices_[i];
    if (!d.ready.load()) continue;
    try {
      cuda::DeviceScope scope(i);
      // Kernels of this program may still be running on some stream: wait for them before their
      // module and scratch memory go.
      cuda::device_synchronize();
      for (uint64_t s : d.scratch) cuda::free(s);
      cuda::module_unload(d.module);
    } catch (const std::exception&) {
      // The process is ending, or the device is gone: nothing to give back.
    }
  }
}

const int64_t* DriverProgram::last_bounds() { return last_failure; }

int64_t DriverProgram::live() { return live_programs.load(); }

// The first call on a device loads the module there, finds the kernels and allocates the
// scratch buffers; later calls cost one atomic load.
DriverProgram::Device& DriverProgram::device(int ordinal) const {
  if (ordinal < 0 || ordinal >= device_count_)
    throw cuda::CudaError("CUDA device " + std::to_string(ordinal) + " does not exist");
  Device& d = devices_[ordinal];
  if (d.ready.load(std::memory_order_acquire)) return d;
  std::lock_guard<std::mutex> lock(d.setup);
  if (d.ready.load(std::memory_order_relaxed)) return d;
  void* module = cuda::module_load(image_for(cuda::compute_capability(ordinal)));
  try {
    std::vector<void*> functions;
    for (size_t i = 0; i < kernel_names_.size(); ++i)
      functions.push_back(kernel_names_[i].empty() ? nullptr : cuda::module_function(module, kernel_names_[i]));
    for (size_t i = 0; i < functions.size(); ++i)
      if (functions[i] && wide_clusters_[i / 2]) cuda::allow_wide_clusters(functions[i]);
    uint64_t bounds = checked_ ? cuda::module_global(module, "parpy_bounds_device") : 0;
    std::vector<uint64_t> scratch;
    try {
      for (const Scratch& s : scratch_) {
        size_t bytes = static_cast<size_t>(s.count) * static_cast<size_t>(elem_bytes(s.elem));
        scratch.push_back(cuda::alloc(std::max<size_t>(bytes, 1)));
        if (s.zeroed) cuda::memset_d8(scratch.back(), 0, bytes, nullptr);
      }
    } catch (...) {
      for (uint64_t s : scratch) cuda::free(s);
      throw;
    }
    d.module = module;
    d.functions = std::move(functions);
    d.scratch = std::move(scratch);
    d.bounds = bounds;
  } catch (...) {
    cuda::module_unload(module);
    throw;
  }
  d.ready.store(true, std::memory_order_release);
  return d;
}

// The image for devices of compute capability `arch`: compiled by NVRTC (or found in the disk
// cache) the first time a device of that capability runs the program.
const std::string& DriverProgram::image_for(int arch) const {
  std::lock_guard<std::mutex> lock(images_mutex_);
  auto it = images_.find(arch);
  if (it == images_.end())
    it = images_.emplace(arch, cuda::nvrtc_compile(device_code_, arch / 10, arch % 10, flags_).bytes()).first;
  return it->second;
}

int32_t DriverProgram::run(Device& d, void* const* args, void* stream, std::string* error) const {
  Launcher launcher(d.functions, kernel_names_, stream, error);
  return host_.run(args, d.scratch.data(), launcher);
}

int32_t DriverProgram::call(void* const* args, void* stream, int device_ordinal, std::string* error) const {
  Device& d = device(device_ordinal);
  if (checked_) cuda::memset_d8(d.bounds, 0, sizeof(BoundsRecord), stream);
  int32_t status = 0;
  if (!graphs_) {
    status = run(d, args, stream, error);
  } else {
    // The graph of the host code's launches is captured again only when an argument value (the
    // pointers and scalars baked into the launches) differs from the last capture's.
    std::lock_guard<std::mutex> lock(d.graph_mutex);
    // Compared in place: a replay allocates nothing.
    bool same = d.graph.ready();
    for (size_t i = 0, off = 0; same && i < arg_bytes_.size(); off += arg_bytes_[i++])
      same = std::memcmp(d.graph_key.data() + off, args[i], arg_bytes_[i]) == 0;
    if (!same) {
      d.graph.capture([&](void* s) { return run(d, args, s, error); }, status);
      if (status == 0) {
        d.graph_key.clear();
        for (size_t i = 0; i < arg_bytes_.size(); ++i) {
          auto* v = static_cast<const unsigned char*>(args[i]);
          d.graph_key.insert(d.graph_key.end(), v, v + arg_bytes_[i]);
        }
      }
    }
    if (status == 0) d.graph.launch(stream);
  }
  if (status != 0) return status;
  if (checked_) {
    BoundsRecord r{};
    cuda::copy_dtoh(&r, d.bounds, sizeof r, stream);
    cuda::stream_synchronize(stream);
    last_failure[0] = r.site;
    last_failure[1] = r.index;
    last_failure[2] = r.extent;
    if (r.site != 0) return kIndexErrorStatus;
  }
  return 0;
}

}  // namespace parpy
