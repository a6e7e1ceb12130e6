// The host code of a GPU program run without a host compiler: GpuProgram::host is prepared once
// into a flat list of operations over numbered slots, and run() walks it, handing each kernel
// launch to a backend (HostLauncher). It means what the host code printed as C++ by the Cuda
// printer means (codegen/cuda.cpp, codegen/c_printer.cpp): C++ types and conversions, the
// arithmetic of parpy_common.h, loops evaluated as printed, and the choice of a kernel's 128-bit
// variant by the alignment of its arrays.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gpu/gpu_ir.h"

namespace parpy {

// One kernel launch the host code asks for.
struct HostLaunch {
  size_t kernel;  // index in GpuProgram::kernels
  // Run the kernel's 128-bit variant (Kernel::vector_body): every array of Kernel::alignment is
  // aligned to its entry.
  bool vector;
  int64_t grid_blocks, block_threads, cluster_blocks;  // from the Kernel
  // cuLaunchKernel's kernelParams: params[i] points to the value of Kernel::params[i] in that
  // parameter's C type (an array or pointer: its 8-byte device address; a scalar: exactly its
  // type, int64_t, float, double, bool (1 byte), __half (2 bytes), ...). Valid during launch().
  void** params;
};

// What running host code needs from a backend.
class HostLauncher {
 public:
  virtual ~HostLauncher() = default;
  // Non-zero: the host code stops, and HostProgram::run returns this status.
  virtual int32_t launch(const HostLaunch& l) = 0;
};

// The host code of a GpuProgram, prepared once; run() may be called from many threads at once.
class HostProgram {
 public:
  // Throws std::runtime_error naming the construct it cannot run.
  explicit HostProgram(const GpuProgram& p);
  ~HostProgram();
  HostProgram(HostProgram&&) noexcept;
  HostProgram& operator=(HostProgram&&) noexcept;

  // args[i] points to entry parameter i's value as the entry convention passes it (an array: its
  // 8-byte device address; a scalar: its value in its type); scratch[j] is the device address of
  // GpuProgram::scratch[j]. Returns 0, or the first non-zero status of a launch.
  int32_t run(void* const* args, const uint64_t* scratch, HostLauncher& launcher) const;

  size_t slots() const;     // value slots run() uses (on the stack up to kStackSlots)
  size_t ops() const;       // prepared operations
  static constexpr size_t kStackSlots = 64;
  static constexpr size_t kStackParams = 32;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// What host code `p` contains, counted by construct ("stmt:Launch", "expr:BinOp:Sub",
// "param:F32", "launch:vector-variant", ...): the census of tools/host_program_corpus.py.
std::map<std::string, int64_t> host_code_constructs(const GpuProgram& p);

}  // namespace parpy
