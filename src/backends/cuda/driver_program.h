// A Cuda program run without compiled host code (README, "Backends"): its kernels' image (a
// cubin, or PTX the driver compiles), loaded into a device's primary context on the first call
// there; its host code interpreted (gpu/host_program.h), the kernels launched through the driver
// API; scratch buffers, the index-check record and CUDA graphs per device.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "gpu/gpu_ir.h"
#include "gpu/host_program.h"
#include "jit/cached_build.h"
#include "runtime/cuda_driver.h"

namespace parpy {

class DriverProgram final : public EntryProgram {
 public:
  // `host`: p's host code prepared; `image`: what NVRTC made of `device_code` (kernels named as the
  // Cuda printer names them) for compute capability `arch` (major * 10 + minor); a device of
  // another compute capability gets its own image, compiled with `flags` on its first call;
  // `checked`: the kernels record indices out of bounds in parpy_bounds_device.
  DriverProgram(const GpuProgram& p, HostProgram host, int arch, std::string image, std::string device_code,
                jit::BuildFlags flags, bool checked);
  ~DriverProgram() override;

  // Runs a call on `device` (current on the calling thread) and `stream`: args in the entry's
  // convention. Returns 0, kIndexErrorStatus (last_bounds() then holds the failure) or 1 with
  // *error set.
  int32_t call(void* const* args, void* stream, int device, std::string* error) const;
  // The calling thread's last index failure: site, index, extent.
  static const int64_t* last_bounds();
  // Programs alive in this process (each holds its modules and scratch memory).
  static int64_t live();

 private:
  struct Device {
    std::atomic<bool> ready{false};
    std::mutex setup;
    void* module = nullptr;
    std::vector<void*> functions;  // two per kernel: the kernel and its 128-bit variant (or null)
    std::vector<uint64_t> scratch;
    uint64_t bounds = 0;  // the module's parpy_bounds_device
    std::mutex graph_mutex;
    cuda::Graph graph;
    std::vector<unsigned char> graph_key;  // the argument values the graph was captured with
  };
  Device& device(int ordinal) const;
  int32_t run(Device& d, void* const* args, void* stream, std::string* error) const;

  const std::string& image_for(int arch) const;

  HostProgram host_;
  std::string device_code_;
  jit::BuildFlags flags_;
  mutable std::mutex images_mutex_;
  mutable std::map<int, std::string> images_;  // by compute capability
  std::vector<std::string> kernel_names_;  // as functions: two per kernel, "" where there is none
  std::vector<bool> wide_clusters_;  // per kernel: clusters of more than 8 blocks
  std::vector<Scratch> scratch_;
  std::vector<size_t> arg_bytes_;  // the size of each argument's value (the graph key)
  bool checked_;
  bool graphs_;
  std::unique_ptr<Device[]> devices_;
  int device_count_;
};

}  // namespace parpy
