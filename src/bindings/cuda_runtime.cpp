// The CUDA runtime as parpy.buffer sees it (SPEC B 1.12, A11): device memory through parpy's own
// driver loader, never torch. Every CudaError reaches Python as RuntimeError with its message
// ("CUDA driver not available: ..." where there is no GPU).
//
// Addresses are Python ints. Copies and fills are synchronous: when one returns, the data is in
// place for work on any stream, since a buffer does not know which stream will use it next.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "bindings/bind.h"
#include "runtime/cuda_driver.h"

namespace nb = nanobind;

namespace parpy {
namespace {

// Runs `op` without the GIL after making sure a driver and context exist, so a zero-byte
// request fails without a GPU like any other.
template <typename Op> auto on_device(Op op) {
  nb::gil_scoped_release release;
  cuda::ensure_context();
  return op();
}

uint64_t alloc(size_t bytes) {
  return on_device([&]() -> uint64_t { return bytes == 0 ? 0 : cuda::alloc(bytes); });
}

void free_memory(uint64_t ptr) {
  on_device([&] {
    if (ptr == 0) return;
    // Kernels on any stream may still use the memory; cuMemFree does not promise to wait.
    cuda::device_synchronize();
    cuda::free(ptr);
  });
}

void copy_htod(uint64_t dst, uintptr_t src, size_t bytes) {
  on_device([&] {
    if (bytes == 0) return;
    cuda::copy_htod(dst, reinterpret_cast<const void*>(src), bytes, nullptr);
    // From pageable memory the copy returns once staged; wait until it has landed.
    cuda::stream_synchronize(nullptr);
  });
}

void copy_dtoh(uintptr_t dst, uint64_t src, size_t bytes) {
  on_device([&] {
    if (bytes != 0) cuda::copy_dtoh(reinterpret_cast<void*>(dst), src, bytes, nullptr);
  });
}

void copy_dtod(uint64_t dst, uint64_t src, size_t bytes) {
  on_device([&] {
    if (bytes == 0) return;
    cuda::copy_dtod(dst, src, bytes, nullptr);
    cuda::stream_synchronize(nullptr);
  });
}

void fill_bytes(uint64_t dst, unsigned char value, size_t bytes) {
  on_device([&] {
    if (bytes == 0) return;
    cuda::memset_d8(dst, value, bytes, nullptr);
    cuda::stream_synchronize(nullptr);
  });
}

}  // namespace

void bind_cuda_runtime(nb::module_& m) {
  m.def("_cuda_sync", [] {
    nb::gil_scoped_release release;
    cuda::device_synchronize();
  });
  m.def("_cuda_device", [] {
    const auto& d = cuda::device_info();
    nb::dict r;
    r["available"] = d.available;
    r["why"] = d.why_unavailable;
    r["name"] = d.name;
    r["major"] = d.major;
    r["minor"] = d.minor;
    return r;
  });
  m.def("_cuda_alloc", &alloc, nb::arg("bytes"),
        "Allocates device memory; returns its address (0 for 0 bytes).");
  m.def("_cuda_free", &free_memory, nb::arg("ptr"), "Waits for the device, then frees `ptr` (0: nothing).");
  m.def("_cuda_copy_htod", &copy_htod, nb::arg("dst"), nb::arg("src"), nb::arg("bytes"));
  m.def("_cuda_copy_dtoh", &copy_dtoh, nb::arg("dst"), nb::arg("src"), nb::arg("bytes"),
        "Copies after the work on the legacy default stream; other streams are not waited for.");
  m.def("_cuda_copy_dtod", &copy_dtod, nb::arg("dst"), nb::arg("src"), nb::arg("bytes"));
  m.def("_cuda_memset", &fill_bytes, nb::arg("ptr"), nb::arg("value"), nb::arg("bytes"));
}

}  // namespace parpy
