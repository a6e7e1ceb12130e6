// The floor under any Python launcher's per-call time: host microseconds per launch of the
// 1024-element add-one kernel from C++, through the driver API (cuLaunchKernel, what parpy's
// driver programs call) and through the runtime (<<<...>>>), `calls` launches then one sync.
// Built and run by tools/call_overhead.py where nvcc is found: nvcc -O2 launch_floor.cu -ldl
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <cuda.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

extern "C" __global__ void add1(float* x, long long n) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) x[i] = x[i] + 1.0f;
}

template <class F>
double per_call_us(F launch, int calls) {
  for (int i = 0; i < 100; ++i) launch();
  cudaDeviceSynchronize();
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) launch();
  cudaDeviceSynchronize();
  std::chrono::duration<double, std::micro> t = std::chrono::steady_clock::now() - start;
  return t.count() / calls;
}

int main(int argc, char** argv) {
  int calls = argc > 1 ? std::atoi(argv[1]) : 20000;
  long long n = 1024;
  float* x = nullptr;
  if (cudaMalloc(&x, n * sizeof(float)) != cudaSuccess) return 1;
  cudaFunction_t rt_fn;
  if (cudaGetFuncBySymbol(&rt_fn, reinterpret_cast<const void*>(add1)) != cudaSuccess) return 1;
  CUfunction fn = reinterpret_cast<CUfunction>(rt_fn);
  // The driver's entry point as parpy finds it (dlopen, no link against libcuda).
  void* libcuda = dlopen("libcuda.so.1", RTLD_NOW);
  auto launch = libcuda ? reinterpret_cast<decltype(&cuLaunchKernel)>(dlsym(libcuda, "cuLaunchKernel")) : nullptr;
  if (!launch) return 1;
  void* args[] = {&x, &n};
  double driver = per_call_us([&] { launch(fn, 1, 1, 1, 1024, 1, 1, 0, nullptr, args, nullptr); }, calls);
  double runtime = per_call_us([&] { add1<<<1, 1024>>>(x, n); }, calls);
  if (cudaGetLastError() != cudaSuccess) return 1;
  std::printf("%.2f %.2f\n", driver, runtime);
  return 0;
}
