// The CUDA runtime as parpy.buffer sees it (docs/language.md, Arguments): device memory through
// parpy's own driver loader, never torch. Every CudaError reaches Python as RuntimeError with its
// message ("CUDA driver not available: ..." where there is no GPU).
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

// Runs `op` without the GIL in the primary context of the device that holds `ptr` (a buffer
// may live on a device other than the current one).
template <typename Op> void on_device_of(uint64_t ptr, Op op) {
  nb::gil_scoped_release release;
  cuda::ensure_context();
  if (ptr == 0) return op();
  cuda::DeviceScope scope(cuda::pointer_device(ptr));
  op();
}

uint64_t alloc(size_t bytes, int device) {
  return on_device([&]() -> uint64_t {
    if (bytes == 0) return 0;
    if (device < 0) return cuda::alloc(bytes);
    cuda::DeviceScope scope(device);
    return cuda::alloc(bytes);
  });
}

void free_memory(uint64_t ptr) {
  if (ptr == 0) return on_device([] {});
  on_device_of(ptr, [&] {
    // Kernels on any stream may still use the memory; cuMemFree does not promise to wait.
    cuda::device_synchronize();
    cuda::free(ptr);
  });
}

void copy_htod(uint64_t dst, uintptr_t src, size_t bytes) {
  if (bytes == 0) return on_device([] {});
  on_device_of(dst, [&] {
    cuda::copy_htod(dst, reinterpret_cast<const void*>(src), bytes, nullptr);
    // From pageable memory the copy returns once staged; wait until it has landed.
    cuda::stream_synchronize(nullptr);
  });
}

void copy_dtoh(uintptr_t dst, uint64_t src, size_t bytes) {
  if (bytes == 0) return on_device([] {});
  on_device_of(src, [&] { cuda::copy_dtoh(reinterpret_cast<void*>(dst), src, bytes, nullptr); });
}

void copy_dtod(uint64_t dst, uint64_t src, size_t bytes) {
  if (bytes == 0) return on_device([] {});
  on_device_of(dst, [&] {
    cuda::copy_dtod(dst, src, bytes, nullptr);
    cuda::stream_synchronize(nullptr);
  });
}

void fill_bytes(uint64_t dst, unsigned char value, size_t bytes) {
  if (bytes == 0) return on_device([] {});
  on_device_of(dst, [&] {
    cuda::memset_d8(dst, value, bytes, nullptr);
    cuda::stream_synchronize(nullptr);
  });
}

}  // namespace

void bind_cuda_runtime(nb::module_& m) {
  m.def(
      "_cuda_sync",
      [](int device) {
        nb::gil_scoped_release release;
        cuda::ensure_context();
        if (device < 0) return cuda::device_synchronize();
        cuda::DeviceScope scope(device);
        cuda::device_synchronize();
      },
      nb::arg("device") = -1, "Waits for the device (-1: the current one).");
  m.def(
      "_cuda_current_device",
      [] {
        nb::gil_scoped_release release;
        return cuda::current_device();
      },
      "The calling thread's current CUDA device (the device of its current context).");
  m.def(
      "_cuda_pointer_device",
      [](uint64_t ptr) {
        nb::gil_scoped_release release;
        return cuda::pointer_device(ptr);
      },
      nb::arg("ptr"), "The CUDA device that holds device memory at `ptr`.");
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
  m.def("_cuda_alloc", &alloc, nb::arg("bytes"), nb::arg("device") = -1,
        "Allocates device memory on `device` (-1: the current one); returns its address (0 for 0 bytes).");
  m.def("_cuda_free", &free_memory, nb::arg("ptr"), "Waits for the device, then frees `ptr` (0: nothing).");
  m.def("_cuda_copy_htod", &copy_htod, nb::arg("dst"), nb::arg("src"), nb::arg("bytes"));
  m.def("_cuda_copy_dtoh", &copy_dtoh, nb::arg("dst"), nb::arg("src"), nb::arg("bytes"),
        "Copies after the work on the legacy default stream; other streams are not waited for.");
  m.def("_cuda_copy_dtod", &copy_dtod, nb::arg("dst"), nb::arg("src"), nb::arg("bytes"));
  m.def("_cuda_memset", &fill_bytes, nb::arg("ptr"), nb::arg("value"), nb::arg("bytes"));
}

}  // namespace parpy
