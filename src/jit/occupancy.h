#pragma once

#include <map>
#include <string>
#include <vector>

// Occupancy steps for kernels compiled by NVRTC (src/jit/nvrtc.cpp).
//
// A kernel's register count decides how many of its blocks an SM holds at once. It varies by a
// few registers between compilers (NVRTC and nvcc of the same CUDA version give the same kernel
// 40 and 32 registers), and a few registers can halve the blocks per SM: 1024-thread blocks of
// 40 registers fit once in an SM's 65,536 registers, of 32 twice. When a kernel is just over
// such a step, it is compiled again with __launch_bounds__(threads, blocks) for the next step,
// and kept so if ptxas needed (almost) no spills to get there.
namespace parpy::cuda {

// Registers and spilled bytes of one kernel, as ptxas reports them with -v.
struct KernelUsage {
  int registers = 0;
  int spill_bytes = 0;  // spill stores
};

// The kernels in a ptxas -v log (NVRTC's log with -Xptxas=-v), by unmangled name: for
// "_Z30parpy_kernel_layer_norm_k0_vecPfS_S_S_" the key is "parpy_kernel_layer_norm_k0_vec".
std::map<std::string, KernelUsage> parse_ptxas_usage(const std::string& log);

// Each kernel's threads per block, from "__launch_bounds__(threads) name(" in generated code.
std::map<std::string, int> launch_bounds(const std::string& code);

// Blocks per SM to ask for (__launch_bounds__'s second argument) for a kernel of `threads` per
// block and `registers` per thread on a device of compute capability `sm` (e.g. 90), or 0 when
// none: the kernel is not limited by registers, or the next step needs more than 8 fewer
// registers (ptxas would spill).
int occupancy_step(int registers, int threads, int sm);

// `code` with __launch_bounds__(threads, blocks) for each kernel of `blocks`; kernels whose
// declaration is not found are left alone.
std::string with_min_blocks(const std::string& code, const std::map<std::string, int>& blocks);

} // namespace parpy::cuda
