#include <gtest/gtest.h>

#include <string>

#include "jit/occupancy.h"

namespace parpy::cuda {
namespace {

// What NVRTC 13.0 logs with -Xptxas=-v for the layer norm of benchmarks/kernels.py (a device
// function's properties in between, which are not the kernel's).
const char* kLog =
    "ptxas info    : 2 bytes gmem\n"
    "ptxas info    : Compiling entry function '_Z30parpy_kernel_layer_norm_k0_vecPfS_S_S_' for 'sm_90'\n"
    "ptxas info    : Function properties for _Z30parpy_kernel_layer_norm_k0_vecPfS_S_S_\n"
    "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
    "ptxas info    : Function properties for _Z10parpy_helpf\n"
    "ptxas         .     24 bytes stack frame, 24 bytes spill stores, 24 bytes spill loads\n"
    "ptxas info    : Used 40 registers, used 1 barriers, 128 bytes smem\n"
    "ptxas info    : Compile time = 24.309 ms\n"
    "ptxas info    : Compiling entry function 'parpy_kernel_layer_norm_k0' for 'sm_90'\n"
    "ptxas info    : Function properties for parpy_kernel_layer_norm_k0\n"
    "ptxas         .     8 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads\n"
    "ptxas info    : Used 31 registers, used 1 barriers, 128 bytes smem\n";

TEST(Occupancy, ParsesPtxasUsagePerKernel) {
  auto usage = parse_ptxas_usage(kLog);
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage["parpy_kernel_layer_norm_k0_vec"].registers, 40);
  EXPECT_EQ(usage["parpy_kernel_layer_norm_k0_vec"].spill_bytes, 0);
  EXPECT_EQ(usage["parpy_kernel_layer_norm_k0"].registers, 31);
  EXPECT_EQ(usage["parpy_kernel_layer_norm_k0"].spill_bytes, 8);
}

TEST(Occupancy, StepsOnlyKernelsJustOverARegisterStep) {
  // 1024 threads: 40 registers fit one block per SM, 32 two.
  EXPECT_EQ(occupancy_step(40, 1024, 90), 2);
  EXPECT_EQ(occupancy_step(32, 1024, 90), 0);  // two blocks already: all an SM's 2048 threads
  EXPECT_EQ(occupancy_step(64, 1024, 90), 0);  // 32 fewer registers: ptxas would spill
  // 256 threads: 72 registers give 3 blocks, 64 give 4.
  EXPECT_EQ(occupancy_step(72, 256, 90), 4);
  EXPECT_EQ(occupancy_step(128, 256, 90), 0);
  // An SM of 1536 threads holds one 1024-thread block whatever its registers.
  EXPECT_EQ(occupancy_step(40, 1024, 89), 0);
  EXPECT_EQ(occupancy_step(0, 1024, 90), 0);
}

TEST(Occupancy, RewritesTheLaunchBoundsOfTheNamedKernelsOnly) {
  const std::string code =
      "extern \"C\" __global__ void __launch_bounds__(1024) parpy_kernel_f_k0(float* x) {}\n"
      "extern \"C\" __global__ void __launch_bounds__(1024) parpy_kernel_f_k0_vec(float* x) {}\n";
  auto bounds = launch_bounds(code);
  ASSERT_EQ(bounds.size(), 2u);
  EXPECT_EQ(bounds["parpy_kernel_f_k0"], 1024);
  EXPECT_EQ(with_min_blocks(code, {{"parpy_kernel_f_k0_vec", 2}}),
            "extern \"C\" __global__ void __launch_bounds__(1024) parpy_kernel_f_k0(float* x) {}\n"
            "extern \"C\" __global__ void __launch_bounds__(1024, 2) parpy_kernel_f_k0_vec(float* x) {}\n");
}

} // namespace
} // namespace parpy::cuda
