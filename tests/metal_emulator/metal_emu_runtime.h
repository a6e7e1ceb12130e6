// The interface between the parts of the Metal CPU emulator (tests/metal_emulator, used by
// tests/python/test_metal_emulator.py): the kernels' translation unit (metal_stdlib), the fake
// metal-cpp of the host code (Metal/Metal.hpp) and the scheduler (metal_emu_runtime.cpp).
//
// C++14 without doubles: the kernels' translation unit includes it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace parpy_emu {

struct uint3_ {
  unsigned x, y, z;
};

// A kernel argument as the encoder bound it: a buffer's memory at its offset (bytes == 0, `avail`
// bytes from there to the end of the buffer) or a copy of setBytes' bytes.
struct Binding {
  void* ptr = nullptr;
  size_t bytes = 0;
  size_t avail = 0;
  bool set = false;
};

// Runs (or, with validate, only checks the arguments of) one thread of a kernel; returns an error
// message or nullptr.
typedef const char* (*Launcher)(const Binding* b, size_t nb, uint3_ tid, uint3_ gid, bool validate);

struct KernelEntry {
  const char* name;
  Launcher launch;
  unsigned max_threads;  // [[max_total_threads_per_threadgroup(n)]]
};

// Kernels of one MSL program, found by the program's text (newLibrary's source).
void register_library(const char* source, const KernelEntry* kernels, size_t n);
const KernelEntry* find_kernel(const char* source, const char* name);
bool has_library(const char* source);

// Runs `grid` threadgroups of `threads` threads; returns "" or what went wrong.
const char* dispatch(const KernelEntry* k, const Binding* b, size_t nb, uint64_t grid, uint64_t threads);

// ---- For the kernels: the current thread and its threadgroup ----
unsigned thread_index();    // in its threadgroup
unsigned group_threads();   // threads of the threadgroup
// threadgroup_barrier: every thread of the threadgroup, at one call (`site`) of threadgroup_barrier.
void group_barrier(long site);
// A SIMD-group exchange: the calling lane deposits `bits`; returns once every active lane of its
// SIMD group has deposited, with the 32 values (lane order) and the mask of lanes that took part.
const uint64_t* simd_exchange(uint64_t bits, uint32_t* mask);
// The k-th threadgroup array a thread declares: one per threadgroup, shared by its threads.
void* threadgroup_array(size_t bytes, size_t align);
// Reports a fault of the kernel (ends the dispatch with an error).
void kernel_fault(const char* what);

}  // namespace parpy_emu
