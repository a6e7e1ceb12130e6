#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

// The CUDA driver API, loaded at run time with dlopen("libcuda.so.1") so that parpy builds and
// imports on machines without CUDA (README, "Backends"). No cuda.h is needed to build this.
//
// Context rule: every call below first makes device 0's primary context current on the calling
// thread if no context is current there (see ensure_context), so memory from alloc() is the same
// memory the CUDA runtime API inside generated code sees. The device of the context current on a
// thread is that thread's current device (current_device; torch.cuda.device(i) and
// cudaSetDevice(i) make device i's primary context current); DeviceScope switches it for a call.
//
// Every failure throws CudaError; nothing here aborts. Without a usable driver or device, every
// operation throws CudaError("CUDA driver not available: <why>").
//
// Fork: the driver's state does not survive fork(), so a process forked after this one ran cuInit
// cannot use CUDA. A pthread_atfork child handler (registered when the driver is first loaded)
// marks such a child, and every operation there throws CudaError(forked_message()) instead of the
// driver's own "initialization error". Loading the driver is the only thing that runs cuInit:
// nothing here runs before the first call below.
namespace parpy::cuda {

class CudaError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct DeviceInfo {
  bool available = false;      // a driver loaded, cuInit succeeded and device 0 exists
  std::string why_unavailable; // set when !available, e.g. "libcuda.so.1 could not be loaded: ..."
  std::string name;            // device 0
  int major = 0, minor = 0;    // compute capability of device 0
  int device_count = 0;
  int driver_version = 0;      // cuDriverGetVersion, e.g. 13000; 0 when no driver
};

// Loads the driver and queries device 0 once per process; later calls return the cached result.
// Never throws. $PARPY_LIBCUDA, if set, names the library to load instead of libcuda.so.1. In a
// process forked after the driver was initialised, this is the parent's result (no driver call).
const DeviceInfo& device_info();

// Whether this process was forked from one whose driver parpy had initialised (cuInit ran and
// succeeded there): CUDA cannot be used here, and every operation throws
// CudaError(forked_message()). Never loads the driver.
bool forked_after_init();
// What a process forked after CUDA was initialised is told, with the way out.
const std::string& forked_message();

// The compute capability of device `ordinal` (major * 10 + minor, e.g. 90); throws CudaError.
int compute_capability(int ordinal);

// "sm_<major><minor>" of device 0, e.g. "sm_90"; throws CudaError when no device is available.
std::string arch_flag();

// Retains device 0's primary context (once per process) and makes it current on the calling
// thread unless a context is already current there. The CUDA runtime in generated libraries uses
// the primary context, so this keeps driver-API memory and runtime-API launches in one context.
// Cheap after the first call on a thread: one cuCtxGetCurrent.
void ensure_context();

// The device of the context current on the calling thread (device 0 where none was current).
int current_device();

// Makes device `device`'s primary context current on the calling thread for the scope's lifetime
// and restores the previous context after, unless a context of that device is current already.
// Throws CudaError for a device that does not exist.
class DeviceScope {
public:
  explicit DeviceScope(int device);
  ~DeviceScope();
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

private:
  void* previous_ = nullptr;
  bool restore_ = false;
};

// Device memory. `stream` is a CUstream (cudaStream_t) or nullptr for the legacy default stream.
// With a stream, copies are asynchronous (cu*Async); host memory may be pageable, in which case
// the driver stages it (host-to-device returns once the source has been read; device-to-host
// returns once the data has arrived).
uint64_t alloc(size_t bytes);
void free(uint64_t ptr);
// Stream-ordered allocation (cuMemAllocAsync/cuMemFreeAsync) so temporaries of one call need no
// device-wide synchronisation; falls back to alloc()/synchronise+free() where the driver or
// device has no memory pools.
uint64_t alloc_async(size_t bytes, void* stream);
void free_async(uint64_t ptr, void* stream);

void copy_htod(uint64_t dst, const void* src, size_t bytes, void* stream);
void copy_dtoh(void* dst, uint64_t src, size_t bytes, void* stream);
void copy_dtod(uint64_t dst, uint64_t src, size_t bytes, void* stream);
void memset_d8(uint64_t dst, unsigned char value, size_t bytes, void* stream);

void stream_synchronize(void* stream);
void device_synchronize(); // cuCtxSynchronize on the current (primary) context

// The device ordinal that owns `ptr` (cuPointerGetAttribute DEVICE_ORDINAL); throws CudaError
// for host pointers and unknown addresses.
int pointer_device(uint64_t ptr);

// Kernels in a module loaded into the current context from a cubin or PTX image (the driver
// compiles PTX for the device), for programs launched by parpy itself rather than by compiled
// host code. A module lives until module_unload.
void* module_load(const std::string& image);
void module_unload(void* module) noexcept;
void* module_function(void* module, const std::string& name);
// The device address of a __device__ variable of the module, and its size in *bytes.
uint64_t module_global(void* module, const std::string& name, size_t* bytes = nullptr);
// Lets a kernel run in thread-block clusters of more than 8 blocks (where the GPU allows it).
void allow_wide_clusters(void* function);
// Launches `function` on `grid` blocks of `block` threads (cluster dimensions are the kernel's
// own); `params` points to each parameter's value. Returns the driver's result (0: queued) without
// throwing: the call path's hot loop; error_string says what a non-zero result means.
int launch(void* function, uint32_t grid, uint32_t block, void* stream, void** params) noexcept;
std::string error_string(int result);

// A CUDA graph of launches, captured from a stream and replayed. capture() runs `body` with a new
// capturing stream (body's non-zero status ends the capture and is returned in `status`, leaving
// the graph as it was); the graph is updated in place where the driver accepts the update, and
// instantiated anew otherwise.
class Graph {
public:
  Graph() = default;
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  void capture(const std::function<int32_t(void*)>& body, int32_t& status);
  bool ready() const { return exec_ != nullptr; }
  void launch(void* stream);

private:
  void* exec_ = nullptr;
};

} // namespace parpy::cuda
