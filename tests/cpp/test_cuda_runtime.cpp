#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>

#include "jit/disk_cache.h"
#include "jit/host_compiler.h"
#include "jit/nvcc.h"
#include "jit/process.h"
#include "jit/shared_library.h"
#include "runtime/cuda_driver.h"
#include "scoped_cache_dir.h"

namespace parpy::cuda {
namespace {

namespace fs = std::filesystem;

// Runs `fn` and returns the CudaError's message, or nullopt if it did not throw one.
template <typename Fn> std::optional<std::string> cuda_error_of(Fn fn) {
  try {
    fn();
  } catch (const CudaError& error) {
    return std::string(error.what());
  }
  return std::nullopt;
}

// Every memory/stream operation, for checks that they all fail the same way.
std::vector<std::pair<const char*, std::function<void()>>> all_operations() {
  static int host = 0;
  return {
      {"ensure_context", [] { ensure_context(); }},
      {"arch_flag", [] { arch_flag(); }},
      {"alloc", [] { alloc(16); }},
      {"free", [] { cuda::free(1); }},
      {"alloc_async", [] { alloc_async(16, nullptr); }},
      {"free_async", [] { free_async(1, nullptr); }},
      {"copy_htod", [] { copy_htod(1, &host, sizeof(host), nullptr); }},
      {"copy_dtoh", [] { copy_dtoh(&host, 1, sizeof(host), nullptr); }},
      {"copy_dtod", [] { copy_dtod(1, 2, 4, nullptr); }},
      {"memset_d8", [] { memset_d8(1, 0, 4, nullptr); }},
      {"stream_synchronize", [] { stream_synchronize(nullptr); }},
      {"device_synchronize", [] { device_synchronize(); }},
      {"pointer_device", [] { pointer_device(1); }},
      {"current_device", [] { current_device(); }},
      {"DeviceScope", [] { DeviceScope scope(0); }},
  };
}

// The driver state is cached per process, so tests that load a different libcuda run in a
// fresh process: a "threadsafe" death test re-executes this binary for just that test.
// `checks` returns an empty string on success, else the failure, printed for EXPECT_EXIT.
template <typename Fn> void run_in_fresh_process(const std::string& libcuda, Fn checks) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("PARPY_LIBCUDA", libcuda.c_str(), 1);
        std::string failure;
        try {
          failure = checks();
        } catch (const std::exception& error) {
          failure = std::string("unexpected exception: ") + error.what();
        }
        std::cerr << (failure.empty() ? "CHECKS PASSED" : "CHECK FAILED: " + failure)
                  << std::endl;
        std::_Exit(failure.empty() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "CHECKS PASSED");
}

TEST(CudaDriver, MissingLibraryDegradesCleanly) {
  run_in_fresh_process("/nonexistent/libcuda.so.1", []() -> std::string {
    const DeviceInfo& info = device_info();
    if (info.available) return "available with a missing library";
    if (info.why_unavailable.find("/nonexistent/libcuda.so.1 could not be loaded") ==
        std::string::npos)
      return "why_unavailable: " + info.why_unavailable;
    if (info.device_count != 0 || info.major != 0) return "device fields set";
    for (auto& [name, operation] : all_operations()) {
      std::optional<std::string> error = cuda_error_of(operation);
      if (!error || error->rfind("CUDA driver not available: ", 0) != 0)
        return std::string(name) + ": " + error.value_or("did not throw CudaError");
    }
    return "";
  });
}

// Whatever this machine has: with no driver (CI, dev machines) everything reports why; with a
// GPU the same calls work and describe the device.
TEST(CudaDriver, DeviceInfoMatchesThisMachine) {
  const DeviceInfo& info = device_info();
  EXPECT_EQ(&info, &device_info()); // cached
  if (!info.available) {
    EXPECT_FALSE(info.why_unavailable.empty());
    EXPECT_EQ(info.device_count, 0);
    for (auto& [name, operation] : all_operations()) {
      std::optional<std::string> error = cuda_error_of(operation);
      ASSERT_TRUE(error.has_value()) << name;
      EXPECT_EQ(error->rfind("CUDA driver not available: " + info.why_unavailable, 0), 0u)
          << name << ": " << *error;
    }
    return;
  }
  EXPECT_TRUE(info.why_unavailable.empty());
  EXPECT_GE(info.device_count, 1);
  EXPECT_FALSE(info.name.empty());
  EXPECT_GE(info.major, 3);
  EXPECT_EQ(arch_flag(), "sm_" + std::to_string(info.major) + std::to_string(info.minor));
}

TEST(CudaDriver, MemoryRoundTripOnRealDevice) {
  if (!device_info().available) {
    GTEST_SKIP() << "no CUDA device: " << device_info().why_unavailable;
  }
  std::vector<int> in(1000), out(1000, -1);
  for (int i = 0; i < 1000; ++i) in[i] = i * 3;
  uint64_t a = alloc(sizeof(int) * 1000);
  uint64_t b = alloc_async(sizeof(int) * 1000, nullptr);
  EXPECT_EQ(pointer_device(a), 0);
  copy_htod(a, in.data(), sizeof(int) * 1000, nullptr);
  copy_dtod(b, a, sizeof(int) * 1000, nullptr);
  copy_dtoh(out.data(), b, sizeof(int) * 1000, nullptr);
  EXPECT_EQ(out, in);
  memset_d8(b, 0xff, sizeof(int) * 1000, nullptr);
  device_synchronize();
  copy_dtoh(out.data(), b, sizeof(int) * 1000, nullptr);
  EXPECT_EQ(out, std::vector<int>(1000, -1));
  free_async(b, nullptr);
  cuda::free(a);
  // A fresh thread gets the primary context made current by the first call.
  std::thread([] {
    uint64_t p = alloc(64);
    memset_d8(p, 1, 64, nullptr);
    stream_synchronize(nullptr);
    cuda::free(p);
  }).join();
  std::optional<std::string> oom = cuda_error_of([] { alloc(size_t(1) << 60); });
  ASSERT_TRUE(oom.has_value());
  EXPECT_EQ(*oom, "cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY: out of memory");
}

// A stand-in libcuda.so.1 backed by host memory: exercises loading, context handling, the
// stream/no-stream dispatch and error formatting on machines without a GPU. Memory calls fail
// with CUDA_ERROR_INVALID_CONTEXT when no context is current, as the real driver does. It has two
// devices, whose primary contexts are the addresses primary + 0 and primary + 1.
constexpr const char* fake_driver_source = R"(
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>
extern "C" {
typedef int R;
static thread_local void* current = nullptr;
static char* const primary = (char*)0x1234;
int retains = 0, async_calls = 0, pool_threshold_set = 0;
#define CTX if (current == nullptr) return 201
R cuGetErrorName(R e, const char** s) {
  if (e == 2) { *s = "CUDA_ERROR_OUT_OF_MEMORY"; return 0; }
  if (e == 201) { *s = "CUDA_ERROR_INVALID_CONTEXT"; return 0; }
  return 1;
}
R cuGetErrorString(R e, const char** s) {
  if (e == 2) { *s = "out of memory"; return 0; }
  if (e == 201) { *s = "invalid device context"; return 0; }
  return 1;
}
R cuInit(unsigned) { return 0; }
R cuDriverGetVersion(int* v) { *v = 13000; return 0; }
R cuDeviceGetCount(int* n) { *n = 2; return 0; }
R cuDeviceGet(int* d, int i) { *d = i; return 0; }
R cuDeviceGetName(char* s, int n, int) { std::strncpy(s, "Fake GPU", n); return 0; }
R cuDeviceGetAttribute(int* v, int a, int) {
  *v = a == 75 ? 9 : a == 76 ? 0 : a == 115 ? 1 : 0; return 0;
}
R cuDevicePrimaryCtxRetain(void** c, int d) { ++retains; *c = primary + d; return 0; }
R cuCtxGetCurrent(void** c) { *c = current; return 0; }
R cuCtxSetCurrent(void* c) { current = c; return 0; }
R cuCtxGetDevice(int* d) { CTX; *d = (int)((char*)current - primary); return 0; }
R cuCtxSynchronize() { CTX; return 0; }
R cuMemAlloc_v2(unsigned long long* p, size_t n) {
  CTX; if (n > (size_t(1) << 40)) return 2; *p = (unsigned long long)std::malloc(n); return 0;
}
R cuMemFree_v2(unsigned long long p) { CTX; std::free((void*)p); return 0; }
R cuMemAllocAsync(unsigned long long* p, size_t n, void*) {
  ++async_calls; return cuMemAlloc_v2(p, n);
}
R cuMemFreeAsync(unsigned long long p, void*) { ++async_calls; return cuMemFree_v2(p); }
R cuDeviceGetDefaultMemPool(void** pool, int) { *pool = (void*)0x99; return 0; }
R cuMemPoolSetAttribute(void*, int a, void* v) {
  if (a == 4 && *(unsigned long long*)v == ~0ull) pool_threshold_set = 1; return 0;
}
R cuMemcpyHtoD_v2(unsigned long long d, const void* s, size_t n) {
  CTX; std::memcpy((void*)d, s, n); return 0;
}
R cuMemcpyDtoH_v2(void* d, unsigned long long s, size_t n) {
  CTX; std::memcpy(d, (void*)s, n); return 0;
}
R cuMemcpyDtoD_v2(unsigned long long d, unsigned long long s, size_t n) {
  CTX; std::memcpy((void*)d, (void*)s, n); return 0;
}
R cuMemcpyHtoDAsync_v2(unsigned long long d, const void* s, size_t n, void*) {
  ++async_calls; return cuMemcpyHtoD_v2(d, s, n);
}
R cuMemcpyDtoHAsync_v2(void* d, unsigned long long s, size_t n, void*) {
  ++async_calls; return cuMemcpyDtoH_v2(d, s, n);
}
R cuMemcpyDtoDAsync_v2(unsigned long long d, unsigned long long s, size_t n, void*) {
  ++async_calls; return cuMemcpyDtoD_v2(d, s, n);
}
R cuMemsetD8_v2(unsigned long long d, unsigned char v, size_t n) {
  CTX; std::memset((void*)d, v, n); return 0;
}
R cuMemsetD8Async(unsigned long long d, unsigned char v, size_t n, void*) {
  ++async_calls; return cuMemsetD8_v2(d, v, n);
}
R cuStreamSynchronize(void*) { CTX; return 0; }
R cuPointerGetAttribute(void* v, int a, unsigned long long) {
  CTX; if (a != 9) return 1; *(int*)v = 0; return 0;
}
}
)";

// Builds the fake driver with the host compiler; nullopt (and a skip) if there is none.
std::optional<fs::path> build_fake_driver(const fs::path& dir, std::string* why) {
  const jit::Toolchain& cxx = jit::host_cxx();
  if (!cxx.found) {
    *why = cxx.why_missing;
    return std::nullopt;
  }
  fs::create_directories(dir);
  fs::path source = dir / "fake_cuda.cpp";
  fs::path library = dir / "libcuda.so.1";
  jit::atomic_write(source, fake_driver_source);
  jit::ProcessResult result = jit::run_process(
      {cxx.path, "-shared", "-fPIC", "-O1", source.string(), "-o", library.string()});
  if (result.exit_code != 0) {
    *why = result.err;
    return std::nullopt;
  }
  return library;
}

int fake_counter(const char* name) {
  // The fake driver is the only library defining these counters; dlopen with NOLOAD finds it.
  void* handle = dlopen(std::getenv("PARPY_LIBCUDA"), RTLD_NOW | RTLD_NOLOAD);
  return handle != nullptr ? *static_cast<int*>(dlsym(handle, name)) : -1;
}

TEST(CudaDriver, FakeDriverEndToEnd) {
  testing::ScopedCacheDir cache;
  std::string why;
  std::optional<fs::path> fake = build_fake_driver(cache.dir(), &why);
  if (!fake) {
    GTEST_SKIP() << "cannot build the fake driver: " << why;
  }
  run_in_fresh_process(fake->string(), []() -> std::string {
    const DeviceInfo& info = device_info();
    if (!info.available) return "unavailable: " + info.why_unavailable;
    if (info.name != "Fake GPU" || info.device_count != 2 || info.driver_version != 13000)
      return "device info: " + info.name;
    if (arch_flag() != "sm_90") return "arch_flag " + arch_flag();

    // No stream: synchronous entry points; a stream: the Async ones.
    std::vector<int> in = {1, 2, 3, 4}, out(4, 0);
    uint64_t a = alloc(sizeof(int) * 4);
    copy_htod(a, in.data(), sizeof(int) * 4, nullptr);
    copy_dtoh(out.data(), a, sizeof(int) * 4, nullptr);
    if (out != in) return "sync round trip";
    if (fake_counter("async_calls") != 0) return "sync calls used Async entry points";
    void* stream = reinterpret_cast<void*>(0x42);
    uint64_t b = alloc_async(sizeof(int) * 4, stream);
    copy_dtod(b, a, sizeof(int) * 4, stream);
    memset_d8(a, 0, sizeof(int) * 4, stream);
    copy_dtoh(out.data(), b, sizeof(int) * 4, stream);
    if (out != in) return "async round trip";
    copy_dtoh(out.data(), a, sizeof(int) * 4, stream);
    if (out != std::vector<int>(4, 0)) return "memset";
    free_async(b, stream);
    stream_synchronize(stream);
    device_synchronize();
    cuda::free(a);
    if (fake_counter("async_calls") != 6) return "async calls: " +
                                                    std::to_string(fake_counter("async_calls"));
    if (fake_counter("pool_threshold_set") != 1) return "pool release threshold not raised";

    // Another thread starts with no current context; the first call there makes it current.
    std::string thread_failure;
    std::thread([&] {
      try {
        uint64_t p = alloc(8);
        cuda::free(p);
      } catch (const std::exception& error) {
        thread_failure = error.what();
      }
    }).join();
    if (!thread_failure.empty()) return "second thread: " + thread_failure;
    if (fake_counter("retains") != 1) return "primary context retained more than once";

    // Devices: the current one is the current context's; a DeviceScope switches and restores.
    if (current_device() != 0) return "current device " + std::to_string(current_device());
    {
      DeviceScope on_one(1);
      if (current_device() != 1) return "in scope of device 1: " + std::to_string(current_device());
      DeviceScope again(1);  // already current: nothing to switch
    }
    if (current_device() != 0) return "not restored: " + std::to_string(current_device());
    std::optional<std::string> missing = cuda_error_of([] { DeviceScope s(2); });
    if (missing != "CUDA device 2 does not exist (the driver reports 2)")
      return "device 2: " + missing.value_or("no error");
    std::thread([&] {
      try {
        DeviceScope on_one(1);
        uint64_t p = alloc(8);
        cuda::free(p);
        if (current_device() != 1) thread_failure = "thread in scope of device 1";
      } catch (const std::exception& error) {
        thread_failure = error.what();
      }
    }).join();
    if (!thread_failure.empty()) return "second thread, device 1: " + thread_failure;
    if (fake_counter("retains") != 2) return "retains: " + std::to_string(fake_counter("retains"));

    std::optional<std::string> oom = cuda_error_of([] { alloc(size_t(1) << 50); });
    if (oom != "cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY: out of memory")
      return "oom message: " + oom.value_or("none");
    std::optional<std::string> unknown = cuda_error_of([] { pointer_device(0); });
    if (unknown) return "pointer_device: " + *unknown;
    return "";
  });
}

// ---- nvcc ---------------------------------------------------------------------------------

#define SKIP_WITHOUT_NVCC()                                                                        \
  if (!nvcc().found) {                                                                             \
    GTEST_SKIP() << "nvcc not found: " << nvcc().why_missing;                                      \
  }

constexpr const char* tiny_cuda_source = R"(
__global__ void fill(int* out, int value) { out[threadIdx.x] = value; }
extern "C" int f() { return 7; }
// Launches through the CUDA runtime on the primary context: only called when a GPU exists.
extern "C" int fill_device(unsigned long long ptr, int n, int value) {
  fill<<<1, n>>>(reinterpret_cast<int*>(ptr), value);
  return static_cast<int>(cudaDeviceSynchronize());
}
)";

TEST(CudaNvcc, FoundWithVersion) {
  SKIP_WITHOUT_NVCC();
  EXPECT_TRUE(fs::path(nvcc().path).is_absolute()) << nvcc().path;
  EXPECT_NE(nvcc().version.find("release"), std::string::npos) << nvcc().version;
  EXPECT_TRUE(nvcc().why_missing.empty());
}

TEST(CudaNvcc, BuildsLoadsAndCachesALibrary) {
  SKIP_WITHOUT_NVCC();
  testing::ScopedCacheDir cache;
  uint64_t builds_before = jit::build_count();
  jit::BuildResult first = build_cuda_library(tiny_cuda_source, jit::BuildFlags{}, "sm_90");
  EXPECT_TRUE(first.built);
  EXPECT_EQ(first.library.parent_path(), cache.dir());
  EXPECT_EQ(first.library.filename().string(), first.key + "-cuda.so");
  EXPECT_TRUE(fs::exists(first.library));

  // Static cudart initialises lazily, so the library loads and runs host code without a GPU.
  std::shared_ptr<jit::SharedLibrary> library = jit::load_library(first.library);
  auto f = reinterpret_cast<int (*)()>(library->symbol("f"));
  EXPECT_EQ(f(), 7);

  jit::BuildResult second = build_cuda_library(tiny_cuda_source, jit::BuildFlags{}, "sm_90");
  EXPECT_FALSE(second.built);
  EXPECT_EQ(second.key, first.key);
  EXPECT_EQ(jit::build_count(), builds_before + 1);

  // The architecture and the flags are part of the key.
  jit::BuildFlags flags;
  flags.extra_flags = {"-DPARPY_TEST_FLAG=1"};
  EXPECT_NE(build_cuda_library(tiny_cuda_source, flags, "sm_90").key, first.key);
  EXPECT_NE(build_cuda_library(tiny_cuda_source, jit::BuildFlags{}, "sm_80").key, first.key);

  // No temporary files are left behind in the cache directory.
  for (const fs::directory_entry& entry : fs::directory_iterator(cache.dir())) {
    EXPECT_EQ(entry.path().filename().string().rfind(".tmp", 0), std::string::npos)
        << entry.path();
  }

  // With a GPU, memory from the driver API is what the runtime API in the library sees.
  if (device_info().available) {
    jit::BuildResult native = build_cuda_library(tiny_cuda_source, jit::BuildFlags{}, arch_flag());
    auto fill = reinterpret_cast<int (*)(unsigned long long, int, int)>(
        jit::load_library(native.library)->symbol("fill_device"));
    uint64_t device = alloc(sizeof(int) * 32);
    ASSERT_EQ(fill(device, 32, 5), 0);
    std::vector<int> out(32);
    copy_dtoh(out.data(), device, sizeof(int) * 32, nullptr);
    cuda::free(device);
    EXPECT_EQ(out, std::vector<int>(32, 5));
  }
}

TEST(CudaNvcc, SyntaxErrorThrowsBuildError) {
  SKIP_WITHOUT_NVCC();
  testing::ScopedCacheDir cache;
  try {
    build_cuda_library("__global__ void broken( { }\n", jit::BuildFlags{}, "sm_90");
    FAIL() << "expected BuildError";
  } catch (const jit::BuildError& error) {
    std::string message = error.what();
    EXPECT_EQ(message.rfind("Compilation of generated CUDA code failed with exit code ", 0), 0u)
        << message;
    EXPECT_NE(message.find("Standard error:"), std::string::npos);
    EXPECT_NE(message.find("error"), std::string::npos);
  }
  for (const fs::directory_entry& entry : fs::directory_iterator(cache.dir())) {
    ADD_FAILURE() << "left behind: " << entry.path();
  }
}

TEST(CudaNvcc, CompileOnlyCheck) {
  SKIP_WITHOUT_NVCC();
  testing::ScopedCacheDir cache;
  std::string log;
  EXPECT_TRUE(nvcc_compiles(tiny_cuda_source, "sm_90", {}, &log)) << log;
  EXPECT_FALSE(nvcc_compiles("__global__ void k() { undefined_name = 1; }\n", "sm_90", {}, &log));
  EXPECT_NE(log.find("undefined_name"), std::string::npos) << log;
  // Include directories reach the compiler.
  fs::create_directories(cache.dir() / "inc");
  jit::atomic_write(cache.dir() / "inc" / "parpy_test_header.cuh", "#define PARPY_SEVEN 7\n");
  EXPECT_FALSE(nvcc_compiles("#include \"parpy_test_header.cuh\"\n", "sm_90", {}, &log));
  EXPECT_TRUE(nvcc_compiles("#include \"parpy_test_header.cuh\"\n"
                            "static_assert(PARPY_SEVEN == 7);\n",
                            "sm_90", {(cache.dir() / "inc").string()}, &log))
      << log;
  // The temporary source is removed.
  for (const fs::directory_entry& entry : fs::directory_iterator(cache.dir())) {
    EXPECT_EQ(entry.path().filename(), "inc") << entry.path();
  }
}

} // namespace
} // namespace parpy::cuda
