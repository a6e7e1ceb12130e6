#include "runtime/cuda_driver.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string_view>

#include <dlfcn.h>
#include <pthread.h>

namespace parpy::cuda {

namespace {

// The few driver API types we use, declared here so no cuda.h is needed (ABI per cuda.h).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st*;
using CUstream = struct CUstream_st*;
using CUmemoryPool = struct CUmemPoolHandle_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
using CUgraph = struct CUgraph_st*;
using CUgraphExec = struct CUgraphExec_st*;
struct CUgraphExecUpdateResultInfo {
  int result;
  void* error_node;
  void* error_from_node;
};

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_NOT_INITIALIZED = 3;
// launch()'s result in a process that cannot use CUDA since it was forked (never a driver code).
constexpr int kForkedResult = -2;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED = 115;
constexpr int CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9;
constexpr int CU_MEMPOOL_ATTR_RELEASE_THRESHOLD = 4;
constexpr int CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED = 14;
constexpr int CU_STREAM_NON_BLOCKING = 1;
constexpr int CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;

// One entry per driver function: the exported symbol name and a typed pointer. The _v2 names
// are the ones cuda.h maps the plain names to since CUDA 3.2 (64-bit sizes and pointers).
struct DriverApi {
  CUresult (*cuGetErrorName)(CUresult, const char**) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char**) = nullptr;
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDriverGetVersion)(int*) = nullptr;
  CUresult (*cuDeviceGetCount)(int*) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice*, int) = nullptr;
  CUresult (*cuDeviceGetName)(char*, int, CUdevice) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*cuCtxGetCurrent)(CUcontext*) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*cuCtxGetDevice)(CUdevice*) = nullptr;
  CUresult (*cuCtxSynchronize)() = nullptr;
  CUresult (*cuMemAlloc)(CUdeviceptr*, size_t) = nullptr;
  CUresult (*cuMemFree)(CUdeviceptr) = nullptr;
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void*, size_t) = nullptr;
  CUresult (*cuMemcpyDtoH)(void*, CUdeviceptr, size_t) = nullptr;
  CUresult (*cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t) = nullptr;
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void*, size_t, CUstream) = nullptr;
  CUresult (*cuMemcpyDtoHAsync)(void*, CUdeviceptr, size_t, CUstream) = nullptr;
  CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream) = nullptr;
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t) = nullptr;
  CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream) = nullptr;
  CUresult (*cuStreamSynchronize)(CUstream) = nullptr;
  CUresult (*cuPointerGetAttribute)(void*, int, CUdeviceptr) = nullptr;
  // Optional (CUDA 11.2+): without them stream-ordered allocation falls back to cuMemAlloc.
  CUresult (*cuMemAllocAsync)(CUdeviceptr*, size_t, CUstream) = nullptr;
  CUresult (*cuMemFreeAsync)(CUdeviceptr, CUstream) = nullptr;
  CUresult (*cuDeviceGetDefaultMemPool)(CUmemoryPool*, CUdevice) = nullptr;
  CUresult (*cuMemPoolSetAttribute)(CUmemoryPool, int, void*) = nullptr;
  // Kernels loaded from an image and launched by parpy itself (Cuda programs built without a host
  // compiler); missing only from drivers older than any parpy supports.
  CUresult (*cuModuleLoadData)(CUmodule*, const void*) = nullptr;
  CUresult (*cuModuleUnload)(CUmodule) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*) = nullptr;
  CUresult (*cuModuleGetGlobal)(CUdeviceptr*, size_t*, CUmodule, const char*) = nullptr;
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void**, void**) = nullptr;
  CUresult (*cuStreamCreate)(CUstream*, unsigned) = nullptr;
  CUresult (*cuStreamDestroy)(CUstream) = nullptr;
  CUresult (*cuStreamBeginCapture)(CUstream, int) = nullptr;
  CUresult (*cuStreamEndCapture)(CUstream, CUgraph*) = nullptr;
  CUresult (*cuGraphInstantiate)(CUgraphExec*, CUgraph, unsigned long long) = nullptr;
  CUresult (*cuGraphExecUpdate)(CUgraphExec, CUgraph, CUgraphExecUpdateResultInfo*) = nullptr;
  CUresult (*cuGraphLaunch)(CUgraphExec, CUstream) = nullptr;
  CUresult (*cuGraphDestroy)(CUgraph) = nullptr;
  CUresult (*cuGraphExecDestroy)(CUgraphExec) = nullptr;
};

struct Driver {
  DriverApi api;
  DeviceInfo info;
  CUdevice device = 0;
  bool memory_pools = false;
  // The retained primary context of each device, made on first use (primary()); retained once
  // per process and never released, because the CUDA runtime inside generated libraries keeps
  // using them until process exit.
  std::unique_ptr<std::atomic<CUcontext>[]> primaries;
  std::mutex primaries_mutex;
};

// Fork (see cuda_driver.h): whether this process's driver ran cuInit successfully, and whether
// it is a child forked after that (set by the atfork handler, which may only do what is safe
// between fork and exec: store to a lock-free atomic). Both are inherited by later forks.
std::atomic<bool> g_initialised{false};
std::atomic<bool> g_forked{false};

void mark_forked_child() {
  if (g_initialised.load(std::memory_order_relaxed)) g_forked.store(true, std::memory_order_relaxed);
}

template <typename Fn> bool bind(void* handle, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  return fn != nullptr;
}

std::string error_text(const DriverApi& api, CUresult result) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (api.cuGetErrorName == nullptr || api.cuGetErrorName(result, &name) != CUDA_SUCCESS ||
      name == nullptr) {
    name = nullptr;
  }
  if (api.cuGetErrorString == nullptr || api.cuGetErrorString(result, &text) != CUDA_SUCCESS ||
      text == nullptr) {
    text = nullptr;
  }
  std::string code = "CUDA error " + std::to_string(result);
  return std::string(name != nullptr ? name : code) + ": " +
         (text != nullptr ? text : "unrecognized error code");
}

// Fills driver.api and driver.info; on any failure leaves info.available false with the reason.
void load(Driver& driver) {
  DeviceInfo& info = driver.info;
  DriverApi& api = driver.api;
  const char* override_path = std::getenv("PARPY_LIBCUDA");
  std::string path =
      override_path != nullptr && *override_path != '\0' ? override_path : "libcuda.so.1";
  // RTLD_NODELETE: the driver stays for the life of the process, like every CUDA client expects.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* why = dlerror();
    info.why_unavailable =
        path + " could not be loaded (no NVIDIA driver installed?): " + (why ? why : "");
    return;
  }

  bool all = true;
  std::string missing;
  auto need = [&](const char* name, auto& fn) {
    if (!bind(handle, name, fn)) {
      all = false;
      missing += missing.empty() ? name : std::string(", ") + name;
    }
  };
  need("cuGetErrorName", api.cuGetErrorName);
  need("cuGetErrorString", api.cuGetErrorString);
  need("cuInit", api.cuInit);
  need("cuDriverGetVersion", api.cuDriverGetVersion);
  need("cuDeviceGetCount", api.cuDeviceGetCount);
  need("cuDeviceGet", api.cuDeviceGet);
  need("cuDeviceGetName", api.cuDeviceGetName);
  need("cuDeviceGetAttribute", api.cuDeviceGetAttribute);
  need("cuDevicePrimaryCtxRetain", api.cuDevicePrimaryCtxRetain);
  need("cuCtxGetCurrent", api.cuCtxGetCurrent);
  need("cuCtxSetCurrent", api.cuCtxSetCurrent);
  need("cuCtxGetDevice", api.cuCtxGetDevice);
  need("cuCtxSynchronize", api.cuCtxSynchronize);
  need("cuMemAlloc_v2", api.cuMemAlloc);
  need("cuMemFree_v2", api.cuMemFree);
  need("cuMemcpyHtoD_v2", api.cuMemcpyHtoD);
  need("cuMemcpyDtoH_v2", api.cuMemcpyDtoH);
  need("cuMemcpyDtoD_v2", api.cuMemcpyDtoD);
  need("cuMemcpyHtoDAsync_v2", api.cuMemcpyHtoDAsync);
  need("cuMemcpyDtoHAsync_v2", api.cuMemcpyDtoHAsync);
  need("cuMemcpyDtoDAsync_v2", api.cuMemcpyDtoDAsync);
  need("cuMemsetD8_v2", api.cuMemsetD8);
  need("cuMemsetD8Async", api.cuMemsetD8Async);
  need("cuStreamSynchronize", api.cuStreamSynchronize);
  need("cuPointerGetAttribute", api.cuPointerGetAttribute);
  if (!all) {
    info.why_unavailable = path + " lacks " + missing + " (driver too old?)";
    return;
  }
  bind(handle, "cuMemAllocAsync", api.cuMemAllocAsync);
  bind(handle, "cuMemFreeAsync", api.cuMemFreeAsync);
  bind(handle, "cuDeviceGetDefaultMemPool", api.cuDeviceGetDefaultMemPool);
  bind(handle, "cuMemPoolSetAttribute", api.cuMemPoolSetAttribute);
  bind(handle, "cuModuleLoadData", api.cuModuleLoadData);
  bind(handle, "cuModuleUnload", api.cuModuleUnload);
  bind(handle, "cuModuleGetFunction", api.cuModuleGetFunction);
  bind(handle, "cuModuleGetGlobal_v2", api.cuModuleGetGlobal);
  bind(handle, "cuFuncSetAttribute", api.cuFuncSetAttribute);
  bind(handle, "cuLaunchKernel", api.cuLaunchKernel);
  bind(handle, "cuStreamCreate", api.cuStreamCreate);
  bind(handle, "cuStreamDestroy_v2", api.cuStreamDestroy);
  bind(handle, "cuStreamBeginCapture_v2", api.cuStreamBeginCapture);
  bind(handle, "cuStreamEndCapture", api.cuStreamEndCapture);
  bind(handle, "cuGraphInstantiateWithFlags", api.cuGraphInstantiate);
  bind(handle, "cuGraphExecUpdate_v2", api.cuGraphExecUpdate);
  bind(handle, "cuGraphLaunch", api.cuGraphLaunch);
  bind(handle, "cuGraphDestroy", api.cuGraphDestroy);
  bind(handle, "cuGraphExecDestroy", api.cuGraphExecDestroy);

  auto failed = [&](const char* operation, CUresult result) {
    if (result == CUDA_SUCCESS) {
      return false;
    }
    info.why_unavailable = std::string(operation) + ": " + error_text(api, result);
    return true;
  };
  // Registered before cuInit, so no fork can come between the two unseen.
  pthread_atfork(nullptr, nullptr, &mark_forked_child);
  CUresult init = api.cuInit(0);
  if (failed("cuInit", init)) {
    // The driver's answer in a process forked after some other library (torch, CuPy) had
    // initialised CUDA in the parent, which parpy cannot see.
    if (init == CUDA_ERROR_NOT_INITIALIZED)
      info.why_unavailable +=
          " (a process forked from one that had already used CUDA, through any library, cannot use "
          "it: start worker processes with multiprocessing's 'spawn' or 'forkserver' method)";
    return;
  }
  g_initialised.store(true, std::memory_order_relaxed);
  if (failed("cuDriverGetVersion", api.cuDriverGetVersion(&info.driver_version)) ||
      failed("cuDeviceGetCount", api.cuDeviceGetCount(&info.device_count))) {
    return;
  }
  if (info.device_count <= 0) {
    info.why_unavailable = "the CUDA driver reports no devices";
    return;
  }
  char name[256] = {};
  if (failed("cuDeviceGet", api.cuDeviceGet(&driver.device, 0)) ||
      failed("cuDeviceGetName", api.cuDeviceGetName(name, sizeof(name) - 1, driver.device)) ||
      failed("cuDeviceGetAttribute",
             api.cuDeviceGetAttribute(&info.major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                      driver.device)) ||
      failed("cuDeviceGetAttribute",
             api.cuDeviceGetAttribute(&info.minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                      driver.device))) {
    return;
  }
  info.name = name;
  int pools = 0;
  driver.memory_pools =
      api.cuMemAllocAsync != nullptr && api.cuMemFreeAsync != nullptr &&
      api.cuDeviceGetAttribute(&pools, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED,
                               driver.device) == CUDA_SUCCESS &&
      pools != 0;
  info.available = true;
}

Driver& driver_state() {
  static Driver* driver = [] {
    // Made in place (it holds a mutex) and never destroyed, so no CUDA call made while the
    // process exits finds it gone.
    auto* loaded = new Driver();
    load(*loaded);
    if (loaded->info.available) {
      loaded->primaries.reset(new std::atomic<CUcontext>[loaded->info.device_count]);
      for (int i = 0; i < loaded->info.device_count; ++i) loaded->primaries[i] = nullptr;
    }
    return loaded;
  }();
  return *driver;
}

[[noreturn]] void throw_error(const DriverApi& api, const char* operation, CUresult result) {
  throw CudaError(std::string(operation) + ": " + error_text(api, result));
}

void check(const DriverApi& api, const char* operation, CUresult result) {
  if (result != CUDA_SUCCESS) {
    throw_error(api, operation, result);
  }
}

const DriverApi& loaded() {
  Driver& driver = driver_state();
  if (!driver.info.available) {
    throw CudaError("CUDA driver not available: " + driver.info.why_unavailable);
  }
  if (forked_after_init()) {
    throw CudaError(forked_message());
  }
  return driver.api;
}

// Device `ordinal`'s primary context, retained on first use.
CUcontext primary(int ordinal) {
  Driver& driver = driver_state();
  const DriverApi& api = loaded();
  if (ordinal < 0 || ordinal >= driver.info.device_count) {
    throw CudaError("CUDA device " + std::to_string(ordinal) + " does not exist (the driver reports " +
                    std::to_string(driver.info.device_count) + ")");
  }
  CUcontext context = driver.primaries[ordinal].load(std::memory_order_acquire);
  if (context != nullptr) {
    return context;
  }
  std::lock_guard<std::mutex> lock(driver.primaries_mutex);
  context = driver.primaries[ordinal].load(std::memory_order_relaxed);
  if (context != nullptr) {
    return context;
  }
  CUdevice device = 0;
  check(api, "cuDeviceGet", api.cuDeviceGet(&device, ordinal));
  check(api, "cuDevicePrimaryCtxRetain", api.cuDevicePrimaryCtxRetain(&context, device));
  // Keep freed pool memory for reuse instead of returning it to the OS at every
  // synchronisation (the pool's default), so per-call temporaries cost no cuMemAlloc; the same
  // policy as torch's caching allocator. Failure only costs speed.
  CUmemoryPool pool = nullptr;
  if (driver.memory_pools && api.cuDeviceGetDefaultMemPool != nullptr &&
      api.cuMemPoolSetAttribute != nullptr &&
      api.cuDeviceGetDefaultMemPool(&pool, device) == CUDA_SUCCESS) {
    uint64_t threshold = UINT64_MAX;
    api.cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &threshold);
  }
  driver.primaries[ordinal].store(context, std::memory_order_release);
  return context;
}

// The loaded driver with a current context on this thread, or a CudaError explaining why not.
const DriverApi& ready() {
  const DriverApi& api = loaded();
  CUcontext current = nullptr;
  check(api, "cuCtxGetCurrent", api.cuCtxGetCurrent(&current));
  if (current != nullptr) {
    return api;
  }
  check(api, "cuCtxSetCurrent", api.cuCtxSetCurrent(primary(0)));
  return api;
}

CUstream as_stream(void* stream) { return static_cast<CUstream>(stream); }

} // namespace

const DeviceInfo& device_info() { return driver_state().info; }

bool forked_after_init() { return g_forked.load(std::memory_order_relaxed); }

const std::string& forked_message() {
  static const std::string message =
      "CUDA was initialised in the parent process before it forked this one; a forked process "
      "cannot use CUDA. Start worker processes with multiprocessing's 'spawn' or 'forkserver' "
      "method (multiprocessing.get_context('spawn').Pool(...)), or fork them before the parent's "
      "first CUDA call.";
  return message;
}

std::string arch_flag() {
  const DeviceInfo& info = device_info();
  if (!info.available) {
    throw CudaError("CUDA driver not available: " + info.why_unavailable);
  }
  return "sm_" + std::to_string(info.major) + std::to_string(info.minor);
}

int compute_capability(int ordinal) {
  Driver& driver = driver_state();
  const DriverApi& api = loaded();
  if (ordinal < 0 || ordinal >= driver.info.device_count) {
    throw CudaError("CUDA device " + std::to_string(ordinal) + " does not exist (the driver reports " +
                    std::to_string(driver.info.device_count) + ")");
  }
  CUdevice device = 0;
  int major = 0, minor = 0;
  check(api, "cuDeviceGet", api.cuDeviceGet(&device, ordinal));
  check(api, "cuDeviceGetAttribute",
        api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device));
  check(api, "cuDeviceGetAttribute",
        api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device));
  return major * 10 + minor;
}

void ensure_context() { ready(); }

int current_device() {
  const DriverApi& api = ready();
  CUdevice device = 0;
  check(api, "cuCtxGetDevice", api.cuCtxGetDevice(&device));
  return device;
}

DeviceScope::DeviceScope(int device) {
  const DriverApi& api = loaded();
  CUcontext current = nullptr;
  check(api, "cuCtxGetCurrent", api.cuCtxGetCurrent(&current));
  CUcontext wanted = primary(device);
  if (current == wanted) {
    return;
  }
  // A context of the caller's own on the right device is kept, as ensure_context keeps it.
  CUdevice current_device = -1;
  if (current != nullptr && api.cuCtxGetDevice(&current_device) == CUDA_SUCCESS &&
      current_device == device) {
    return;
  }
  check(api, "cuCtxSetCurrent", api.cuCtxSetCurrent(wanted));
  // Where no context was current, device 0's stays, as ensure_context would have left it.
  restore_ = current != nullptr || device != 0;
  previous_ = current;
}

DeviceScope::~DeviceScope() {
  if (restore_ && !forked_after_init()) {
    driver_state().api.cuCtxSetCurrent(static_cast<CUcontext>(previous_));
  }
}

uint64_t alloc(size_t bytes) {
  const DriverApi& api = ready();
  CUdeviceptr ptr = 0;
  check(api, "cuMemAlloc", api.cuMemAlloc(&ptr, bytes));
  return ptr;
}

void free(uint64_t ptr) {
  const DriverApi& api = ready();
  check(api, "cuMemFree", api.cuMemFree(ptr));
}

uint64_t alloc_async(size_t bytes, void* stream) {
  const DriverApi& api = ready();
  if (!driver_state().memory_pools) {
    return alloc(bytes);
  }
  CUdeviceptr ptr = 0;
  check(api, "cuMemAllocAsync", api.cuMemAllocAsync(&ptr, bytes, as_stream(stream)));
  return ptr;
}

void free_async(uint64_t ptr, void* stream) {
  const DriverApi& api = ready();
  if (!driver_state().memory_pools) {
    // cuMemAlloc memory: wait for the stream's pending uses before freeing it.
    stream_synchronize(stream);
    free(ptr);
    return;
  }
  check(api, "cuMemFreeAsync", api.cuMemFreeAsync(ptr, as_stream(stream)));
}

void copy_htod(uint64_t dst, const void* src, size_t bytes, void* stream) {
  const DriverApi& api = ready();
  if (stream != nullptr) {
    check(api, "cuMemcpyHtoDAsync",
          api.cuMemcpyHtoDAsync(dst, src, bytes, as_stream(stream)));
  } else {
    check(api, "cuMemcpyHtoD", api.cuMemcpyHtoD(dst, src, bytes));
  }
}

void copy_dtoh(void* dst, uint64_t src, size_t bytes, void* stream) {
  const DriverApi& api = ready();
  if (stream != nullptr) {
    check(api, "cuMemcpyDtoHAsync",
          api.cuMemcpyDtoHAsync(dst, src, bytes, as_stream(stream)));
  } else {
    check(api, "cuMemcpyDtoH", api.cuMemcpyDtoH(dst, src, bytes));
  }
}

void copy_dtod(uint64_t dst, uint64_t src, size_t bytes, void* stream) {
  const DriverApi& api = ready();
  if (stream != nullptr) {
    check(api, "cuMemcpyDtoDAsync",
          api.cuMemcpyDtoDAsync(dst, src, bytes, as_stream(stream)));
  } else {
    check(api, "cuMemcpyDtoD", api.cuMemcpyDtoD(dst, src, bytes));
  }
}

void memset_d8(uint64_t dst, unsigned char value, size_t bytes, void* stream) {
  const DriverApi& api = ready();
  if (stream != nullptr) {
    check(api, "cuMemsetD8Async", api.cuMemsetD8Async(dst, value, bytes, as_stream(stream)));
  } else {
    check(api, "cuMemsetD8", api.cuMemsetD8(dst, value, bytes));
  }
}

void stream_synchronize(void* stream) {
  const DriverApi& api = ready();
  check(api, "cuStreamSynchronize", api.cuStreamSynchronize(as_stream(stream)));
}

void device_synchronize() {
  const DriverApi& api = ready();
  check(api, "cuCtxSynchronize", api.cuCtxSynchronize());
}

int pointer_device(uint64_t ptr) {
  const DriverApi& api = ready();
  int ordinal = -1;
  check(api, "cuPointerGetAttribute",
        api.cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, ptr));
  return ordinal;
}

// ---- Modules, launches and graphs ----

namespace {

// The loaded driver with `fn` bound, or a CudaError naming the missing function.
template <typename Fn> const DriverApi& with(Fn DriverApi::*fn, const char* name) {
  const DriverApi& api = ready();
  if (api.*fn == nullptr) {
    throw CudaError(std::string("The CUDA driver lacks ") + name + " (driver too old?)");
  }
  return api;
}

} // namespace

void* module_load(const std::string& image) {
  const DriverApi& api = with(&DriverApi::cuModuleLoadData, "cuModuleLoadData");
  CUmodule module = nullptr;
  check(api, "cuModuleLoadData", api.cuModuleLoadData(&module, image.data()));
  return module;
}

void module_unload(void* module) noexcept {
  const DriverApi& api = driver_state().api;
  // In a forked child the module belongs to the parent's driver: nothing to unload here.
  if (module != nullptr && api.cuModuleUnload != nullptr && !forked_after_init()) {
    api.cuModuleUnload(static_cast<CUmodule>(module));
  }
}

void* module_function(void* module, const std::string& name) {
  const DriverApi& api = with(&DriverApi::cuModuleGetFunction, "cuModuleGetFunction");
  CUfunction fn = nullptr;
  check(api, ("cuModuleGetFunction(" + name + ")").c_str(),
        api.cuModuleGetFunction(&fn, static_cast<CUmodule>(module), name.c_str()));
  return fn;
}

uint64_t module_global(void* module, const std::string& name, size_t* bytes) {
  const DriverApi& api = with(&DriverApi::cuModuleGetGlobal, "cuModuleGetGlobal");
  CUdeviceptr ptr = 0;
  size_t size = 0;
  check(api, ("cuModuleGetGlobal(" + name + ")").c_str(),
        api.cuModuleGetGlobal(&ptr, &size, static_cast<CUmodule>(module), name.c_str()));
  if (bytes != nullptr) {
    *bytes = size;
  }
  return ptr;
}

void allow_wide_clusters(void* function) {
  const DriverApi& api = with(&DriverApi::cuFuncSetAttribute, "cuFuncSetAttribute");
  check(api, "cuFuncSetAttribute",
        api.cuFuncSetAttribute(static_cast<CUfunction>(function),
                               CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1));
}

int launch(void* function, uint32_t grid, uint32_t block, void* stream, void** params) noexcept {
  const DriverApi& api = driver_state().api;
  if (api.cuLaunchKernel == nullptr) {
    return -1;
  }
  if (forked_after_init()) {
    return kForkedResult;
  }
  return api.cuLaunchKernel(static_cast<CUfunction>(function), grid, 1, 1, block, 1, 1, 0,
                            as_stream(stream), params, nullptr);
}

std::string error_string(int result) {
  if (result == -1) {
    return "the CUDA driver lacks cuLaunchKernel";
  }
  if (result == kForkedResult) {
    return forked_message();
  }
  return error_text(driver_state().api, result);
}

Graph::~Graph() {
  const DriverApi& api = driver_state().api;
  if (exec_ != nullptr && api.cuGraphExecDestroy != nullptr && !forked_after_init()) {
    api.cuGraphExecDestroy(static_cast<CUgraphExec>(exec_));
  }
}

void Graph::capture(const std::function<int32_t(void*)>& body, int32_t& status) {
  const DriverApi& api = with(&DriverApi::cuGraphExecUpdate, "cuGraphExecUpdate");
  for (auto fn : {api.cuStreamCreate != nullptr, api.cuStreamBeginCapture != nullptr,
                  api.cuStreamEndCapture != nullptr, api.cuGraphInstantiate != nullptr,
                  api.cuGraphLaunch != nullptr, api.cuGraphDestroy != nullptr,
                  api.cuGraphExecDestroy != nullptr, api.cuStreamDestroy != nullptr}) {
    if (!fn) {
      throw CudaError("The CUDA driver lacks the graph API (driver too old?)");
    }
  }
  CUstream s = nullptr;
  check(api, "cuStreamCreate", api.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUresult r = api.cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
  if (r != CUDA_SUCCESS) {
    api.cuStreamDestroy(s);
    throw_error(api, "cuStreamBeginCapture", r);
  }
  status = body(s);
  CUgraph graph = nullptr;
  r = api.cuStreamEndCapture(s, &graph); // always ends the capture, even after a failed launch
  api.cuStreamDestroy(s);
  if (status != 0 || r != CUDA_SUCCESS) {
    if (graph != nullptr) {
      api.cuGraphDestroy(graph);
    }
    if (status != 0) {
      return;
    }
    throw_error(api, "cuStreamEndCapture", r);
  }
  if (exec_ != nullptr) {
    CUgraphExecUpdateResultInfo info{};
    if (api.cuGraphExecUpdate(static_cast<CUgraphExec>(exec_), graph, &info) != CUDA_SUCCESS) {
      // A refused update is not an error: instantiate instead.
      api.cuGraphExecDestroy(static_cast<CUgraphExec>(exec_));
      exec_ = nullptr;
    }
  }
  if (exec_ == nullptr) {
    CUgraphExec exec = nullptr;
    r = api.cuGraphInstantiate(&exec, graph, 0);
    api.cuGraphDestroy(graph);
    check(api, "cuGraphInstantiate", r);
    exec_ = exec;
    return;
  }
  api.cuGraphDestroy(graph);
}

void Graph::launch(void* stream) {
  const DriverApi& api = with(&DriverApi::cuGraphLaunch, "cuGraphLaunch");
  check(api, "cuGraphLaunch", api.cuGraphLaunch(static_cast<CUgraphExec>(exec_), as_stream(stream)));
}

} // namespace parpy::cuda
