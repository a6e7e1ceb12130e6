// A recording stand-in for the CUDA runtime, linked with the host part of a Cuda program
// (CudaProgram::host_code) instead of libcudart, so that the launches the printed host code makes
// can be compared with those of the interpreter (src/gpu/host_program.h) on a machine without a
// GPU. Built by tools/host_program_corpus.py and tests/python/test_host_program.py against the
// real cuda_runtime.h (the signatures must match); read by src/bindings/host_launches.cpp:
//
//   parpy_fake_reset(scratch, n)         the addresses cudaMalloc hands out, in order; clears the log
//   parpy_fake_register(kernel, n, sz)   the byte sizes of a kernel's parameters (its C name)
//   parpy_fake_launches(&records)        the launches since the reset
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>

extern "C" __attribute__((visibility("hidden"))) const unsigned char parpy_cubin[] = {0};

namespace {

struct Record {
  const char* kernel;
  uint32_t grid, block;
  const unsigned char* bytes;
  size_t nbytes;
};

std::map<std::string, std::vector<size_t>> g_kernels;
std::deque<std::string> g_names;  // the handles cudaLibraryGetKernel gives: stable addresses
std::deque<std::vector<unsigned char>> g_bytes;
std::vector<Record> g_records;
std::vector<uint64_t> g_scratch;
size_t g_next_scratch = 0;
unsigned char g_global[4096];  // cudaLibraryGetGlobal's memory (the bounds record)

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void parpy_fake_reset(const uint64_t* scratch, size_t n) {
  g_scratch.assign(scratch, scratch + n);
  g_next_scratch = 0;
  g_records.clear();
  g_bytes.clear();
}

__attribute__((visibility("default"))) void parpy_fake_register(const char* kernel, size_t n, const size_t* sizes) {
  g_kernels[kernel] = std::vector<size_t>(sizes, sizes + n);
}

__attribute__((visibility("default"))) size_t parpy_fake_launches(const Record** out) {
  *out = g_records.data();
  return g_records.size();
}

const char* CUDARTAPI cudaGetErrorString(cudaError_t) { return "fake CUDA error"; }
cudaError_t CUDARTAPI cudaGetLastError(void) { return cudaSuccess; }
cudaError_t CUDARTAPI cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaSetDevice(int) { return cudaSuccess; }

cudaError_t CUDARTAPI cudaLibraryLoadData(cudaLibrary_t* library, const void*, enum cudaJitOption*, void**, unsigned int,
                                          enum cudaLibraryOption*, void**, unsigned int) {
  *library = reinterpret_cast<cudaLibrary_t>(&g_kernels);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaLibraryGetKernel(cudaKernel_t* kernel, cudaLibrary_t, const char* name) {
  g_names.emplace_back(name);
  *kernel = reinterpret_cast<cudaKernel_t>(&g_names.back());
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaLibraryGetGlobal(void** dptr, size_t* bytes, cudaLibrary_t, const char*) {
  *dptr = g_global;
  *bytes = sizeof g_global;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaLaunchKernel(const void* func, dim3 grid, dim3 block, void** args, size_t, cudaStream_t) {
  const std::string& name = *static_cast<const std::string*>(func);
  auto it = g_kernels.find(name);
  if (it == g_kernels.end()) return cudaErrorInvalidDeviceFunction;
  std::vector<unsigned char> bytes;
  for (size_t i = 0; i < it->second.size(); ++i) {
    const auto* p = static_cast<const unsigned char*>(args[i]);
    bytes.insert(bytes.end(), p, p + it->second[i]);
  }
  g_bytes.push_back(std::move(bytes));
  g_records.push_back({name.c_str(), grid.x, block.x, g_bytes.back().data(), g_bytes.back().size()});
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMalloc(void** ptr, size_t) {
  if (g_next_scratch >= g_scratch.size()) return cudaErrorMemoryAllocation;
  *ptr = reinterpret_cast<void*>(g_scratch[g_next_scratch++]);
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaMemset(void*, int, size_t) { return cudaSuccess; }
cudaError_t CUDARTAPI cudaFuncSetAttribute(const void*, enum cudaFuncAttribute, int) { return cudaSuccess; }
cudaError_t CUDARTAPI cudaMemsetAsync(void* p, int value, size_t count, cudaStream_t) {
  if (p == g_global) std::memset(p, value, count);
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind, cudaStream_t) {
  std::memcpy(dst, src, count);
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

// CUDA graphs: the launches are recorded when the host code is captured.
static int g_stream;
cudaError_t CUDARTAPI cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  *s = reinterpret_cast<cudaStream_t>(&g_stream);
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaStreamBeginCapture(cudaStream_t, enum cudaStreamCaptureMode) { return cudaSuccess; }
cudaError_t CUDARTAPI cudaStreamEndCapture(cudaStream_t, cudaGraph_t* graph) {
  *graph = reinterpret_cast<cudaGraph_t>(&g_stream);
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t CUDARTAPI cudaGraphDestroy(cudaGraph_t) { return cudaSuccess; }
cudaError_t CUDARTAPI cudaGraphExecUpdate(cudaGraphExec_t, cudaGraph_t, cudaGraphExecUpdateResultInfo*) {
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaGraphExecDestroy(cudaGraphExec_t) { return cudaSuccess; }
cudaError_t CUDARTAPI cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t, unsigned long long) {
  *exec = reinterpret_cast<cudaGraphExec_t>(&g_stream);
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaGraphLaunch(cudaGraphExec_t, cudaStream_t) { return cudaSuccess; }

}  // extern "C"
