// The two-part CUDA build (build_two_part_cuda_library: `nvcc -cubin` for the kernels, the host C++
// compiler for the host part): programs with 128-bit variants, multi-block scratch, clusters of 16,
// CUDA graphs and half precision build and load anywhere nvcc is, and report a CUDA error (never
// crash) without a GPU; with a GPU they run and match a sequential reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "ir_builders.h"
#include "jit/cache_entry.h"
#include "jit/disk_cache.h"
#include "jit/host_compiler.h"
#include "jit/nvcc.h"
#include "jit/shared_library.h"
#include "lower.h"
#include "runtime/cuda_driver.h"
#include "scoped_cache_dir.h"

#ifndef PARPY_INCLUDE_DIR
#error "PARPY_INCLUDE_DIR (python/parpy/include) must be defined by the build"
#endif

namespace parpy {
namespace {

using namespace parpy::testing;
namespace fs = std::filesystem;

using EntryFn = int32_t (*)(void**, void*, int32_t);
using ErrorFn = const char* (*)();

// def f(x, y): label N; for i in range(n): y[i] = x[i] + 1.0
Function add_one(int64_t n) {
  return fn("f", {"x", "y"}, {For("i", 0, n, {A(S("y", {V("i")}), add(S("x", {V("i")}), F(1.0)))}, {"N"})});
}

struct Case {
  std::string name;
  Lowered low;
  int64_t rows, cols;  // x is rows x cols; y has rows elements (cols for add_one, rows = 1)
  bool is_sum;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  out.push_back({"add_one (128-bit variant)", lower(add_one(5000), {f32({5000}), f32({5000})},
                                                    cuda_opts({{"N", threads(4096)}})),
                 1, 5000, false});
  out.push_back({"row sums over 4096 threads (multi-block scratch)",
                 lower(row_sums(3, 70000), {f32({3, 70000}), f32({3})},
                       cuda_opts({{"O", threads(3)}, {"R", reduce_threads(4096, 512)}})),
                 3, 70000, true});
  CompileOptions cluster = cuda_opts({{"O", threads(2)}, {"R", reduce_threads(16384)}});
  cluster.use_cuda_thread_block_clusters = true;
  cluster.max_thread_blocks_per_cluster = 16;
  cluster.use_cuda_graphs = true;
  out.push_back({"row sums in clusters of 16 with CUDA graphs",
                 lower(row_sums(2, 50000), {f32({2, 50000}), f32({2})}, cluster), 2, 50000, true});
  CompileOptions half = cuda_opts({{"N", threads(256)}});
  half.force_float_size = ElemSize::F16;
  out.push_back({"add_one in half precision (text only)",
                 lower(add_one(300), {array_arg(ElemSize::F16, {300}), array_arg(ElemSize::F16, {300})},
                       half),
                 0, 0, false});
  // def g(x, k, y): label N; for i in range(n): y[i] = x[k[i]], with run-time index checks.
  CompileOptions checked = cuda_opts({{"N", threads(256)}});
  checked.bounds_check = true;
  Function gather = fn("g", {"x", "k", "y"},
                       {For("i", 0, 300, {A(S("y", {V("i")}), S("x", {S("k", {V("i")})}))}, {"N"})});
  out.push_back({"gather with run-time index checks (text and build only)",
                 lower(gather, {f32({300}), array_arg(ElemSize::I64, {300}), f32({300})}, checked), 0, 0, false});
  return out;
}

jit::BuildResult build(const Lowered& l) {
  jit::BuildFlags flags;
  flags.include_dirs = {PARPY_INCLUDE_DIR};
  std::optional<jit::BuildResult> built =
      cuda::build_two_part_cuda_library(l.device_code, l.host_code, flags, "sm_90");
  if (!built) throw std::runtime_error("the two-part build is not available on this machine");
  return *built;
}

TEST(CudaTwoPartText, DeviceAndHostParts) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Lowered& l = c.low;
    EXPECT_TRUE(has(l.device_code, "extern \"C\" __global__ void")) << l.device_code;
    EXPECT_TRUE(has(l.device_code, "#include \"parpy_cuda.h\"")) << l.device_code;
    EXPECT_FALSE(has(l.device_code, l.entry_symbol)) << l.device_code;
    EXPECT_FALSE(has(l.host_code, "__global__")) << l.host_code;
    EXPECT_FALSE(has(l.host_code, "<<<")) << l.host_code;
    EXPECT_TRUE(has(l.host_code, "#include \"parpy_cuda_host.h\"")) << l.host_code;
    EXPECT_TRUE(has(l.host_code, "cudaLibraryLoadData(&parpy_lib, parpy_cubin")) << l.host_code;
    EXPECT_TRUE(has(l.host_code, "extern \"C\" int32_t " + l.entry_symbol + "(void** args, void* stream, int32_t device)"))
        << l.host_code;
    // The one-source form is still printed (print_compiled, and the build with user flags).
    EXPECT_TRUE(has(l.code, "<<<")) << l.code;
  }
  const std::vector<Case> all = cases();
  EXPECT_TRUE(
      has(all[0].low.host_code, "cudaLibraryGetKernel(&parpy_kernel_f_k0_vec_handle, parpy_lib, \"parpy_kernel_f_k0_vec\")"))
      << all[0].low.host_code;
  EXPECT_TRUE(has(all[2].low.host_code, "cudaFuncSetAttribute((const void*)")) << all[2].low.host_code;
  EXPECT_TRUE(has(all[2].low.host_code, "#define PARPY_USE_GRAPHS")) << all[2].low.host_code;
  EXPECT_FALSE(has(all[2].low.host_code, "PARPY_USE_CLUSTERS")) << all[2].low.host_code;
  EXPECT_TRUE(has(all[2].low.device_code, "__cluster_dims__(16, 1, 1)")) << all[2].low.device_code;
  EXPECT_TRUE(has(all[3].low.host_code, "#include <cuda_fp16.h>")) << all[3].low.host_code;
  // The kernels record index failures in a device variable that the host part finds by name.
  EXPECT_TRUE(has(all[4].low.device_code, "parpy_bounds_check(v_k[")) << all[4].low.device_code;
  EXPECT_TRUE(has(all[4].low.host_code, "cudaLibraryGetGlobal(&parpy_bounds_rec")) << all[4].low.host_code;
  EXPECT_TRUE(has(all[4].low.host_code, "return parpy_bounds_finish(")) << all[4].low.host_code;
  EXPECT_EQ(all[4].low.bounds_sites.size(), 1u);
  EXPECT_FALSE(has(all[0].low.code, "PARPY_BOUNDS_CHECK")) << all[0].low.code;
}

TEST(CudaTwoPartBuild, BuildsLoadsAndRunsOrReportsTheMissingGpu) {
  if (!cuda::nvcc().found || !jit::host_cxx().found) GTEST_SKIP() << "nvcc or a host C++ compiler is missing";
  ScopedCacheDir cache;
  const bool gpu = cuda::device_info().available;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    jit::BuildResult built = build(c.low);
    EXPECT_TRUE(built.built);
    EXPECT_FALSE(build(c.low).built);  // both parts come from the disk cache the second time
    auto library = jit::load_library(built.library);
    auto entry = reinterpret_cast<EntryFn>(library->symbol(c.low.entry_symbol));
    auto error = reinterpret_cast<ErrorFn>(library->symbol(c.low.error_symbol));
    if (!gpu) {
      // Every parameter is a pointer or a scalar of at most 8 bytes: zeros are valid values.
      std::vector<uint64_t> zeros(c.low.params.size(), 0);
      std::vector<void*> args;
      for (uint64_t& z : zeros) args.push_back(&z);
      EXPECT_EQ(entry(args.data(), nullptr, 0), 1);
      // The first CUDA runtime call fails: switching devices, or loading the kernels.
      EXPECT_TRUE(has(error(), "cudaGetDevice: ") || has(error(), "cudaSetDevice: ") ||
                  has(error(), "cudaLibraryLoadData: "))
          << error();
      continue;
    }
    if (c.rows == 0) continue;
    cuda::ensure_context();
    std::vector<float> x(c.rows * c.cols);
    for (float& v : x) v = dist(rng);
    size_t ny = c.is_sum ? c.rows : c.cols;
    uint64_t dx = cuda::alloc(x.size() * 4), dy = cuda::alloc(ny * 4);
    cuda::copy_htod(dx, x.data(), x.size() * 4, nullptr);
    // Twice: the second call reuses the loaded kernels and scratch (and replays the graph).
    for (int call = 0; call < 2; ++call) {
      std::vector<float> zero(ny, 0.0f);
      cuda::copy_htod(dy, zero.data(), ny * 4, nullptr);
      void* args[] = {&dx, &dy};
      ASSERT_EQ(entry(args, nullptr, 0), 0) << error();
      std::vector<float> y(ny);
      cuda::copy_dtoh(y.data(), dy, ny * 4, nullptr);
      for (size_t i = 0; i < ny; ++i) {
        double want = 0.0;
        if (c.is_sum)
          for (int64_t j = 0; j < c.cols; ++j) want += x[i * c.cols + j];
        else
          want = x[i] + 1.0;
        ASSERT_NEAR(y[i], want, 1e-3 * (1.0 + std::fabs(want))) << "element " << i << ", call " << call;
      }
    }
    cuda::free(dx);
    cuda::free(dy);
  }
}

TEST(CudaTwoPartBuild, KernelsLinkedFromACacheDirWithQuotesAndSpaces) {
  if (!cuda::nvcc().found || !jit::host_cxx().found) GTEST_SKIP() << "nvcc or a host C++ compiler is missing";
  ScopedCacheDir cache;
  fs::path odd = cache.dir() / "a \"quoted\" dir\\x";
  setenv("PARPY_CACHE_DIR", odd.c_str(), 1);  // ScopedCacheDir restores the variable
  jit::BuildResult built = build(cases()[0].low);
  ASSERT_EQ(built.library.parent_path(), odd);
  auto read = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  std::string cubin;
  for (const auto& entry : fs::directory_iterator(odd)) {
    std::string name = entry.path().filename().string();
    if (name.size() > 11 && name.compare(name.size() - 11, 11, "-cuda.cubin") == 0)
      cubin = jit::read_entry(entry.path()).value_or("");
  }
  ASSERT_GT(cubin.size(), 64u);
  // The library carries the kernels' bytes (the link read them from a directory that needs quoting).
  EXPECT_NE(read(built.library).find(cubin), std::string::npos);
  EXPECT_NO_THROW(jit::load_library(built.library));
}

// A user header in its own directory, included by the kernels and the host part.
struct UserHeader {
  ScopedCacheDir cache;
  fs::path dir = cache.dir().parent_path() / jit::unique_file_name("parpy-test-headers-", "");
  explicit UserHeader(int k) {
    fs::create_directories(dir);
    set(k);
  }
  ~UserHeader() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  void set(int k) const { std::ofstream(dir / "k.h", std::ios::trunc) << "#define K " << k << "\n"; }
  jit::BuildFlags flags() const {
    jit::BuildFlags flags;
    flags.include_dirs = {dir.string(), PARPY_INCLUDE_DIR};
    flags.untracked_dirs = {PARPY_INCLUDE_DIR};
    return flags;
  }
};

int call_k(const jit::BuildResult& built) {
  return reinterpret_cast<int (*)()>(jit::load_library(built.library, built.payload)->symbol("k"))();
}

// Without a GPU nothing runs on the device, but the host part of the library does.
TEST(CudaHeaderDependencies, AnEditedHeaderRebuildsTheWholeProgram) {
  if (!cuda::nvcc().found) GTEST_SKIP() << "nvcc is missing";
  UserHeader header(3);
  const std::string code =
      "#include \"k.h\"\n__global__ void kern(int* x) { *x = K; }\nextern \"C\" int k() { return K; }\n";
  jit::BuildResult first = cuda::build_cuda_library(code, header.flags(), "sm_90");
  EXPECT_TRUE(first.built);
  EXPECT_EQ(call_k(first), 3);
  // Only the user's header: not the toolkit's, nor parpy's.
  ASSERT_EQ(first.dependencies.size(), 1u);
  EXPECT_EQ(first.dependencies[0].path, (header.dir / "k.h").string());
  EXPECT_FALSE(cuda::build_cuda_library(code, header.flags(), "sm_90").built);
  header.set(5);
  jit::BuildResult second = cuda::build_cuda_library(code, header.flags(), "sm_90");
  EXPECT_TRUE(second.built);
  EXPECT_EQ(second.library, first.library);
  EXPECT_EQ(call_k(second), 5);
  EXPECT_FALSE(cuda::build_cuda_library(code, header.flags(), "sm_90").built);
}

TEST(CudaHeaderDependencies, AnEditedHeaderRebuildsBothPartsAndTheLink) {
  if (!cuda::nvcc().found || !jit::host_cxx().found) GTEST_SKIP() << "nvcc or a host C++ compiler is missing";
  UserHeader header(3);
  const std::string device = "#include \"k.h\"\nextern \"C\" __global__ void kern(int* x) { *x = K; }\n";
  const std::string host = "#include \"k.h\"\nextern \"C\" int k() { return K; }\n";
  auto build = [&] {
    std::optional<jit::BuildResult> built =
        cuda::build_two_part_cuda_library(device, host, header.flags(), "sm_90");
    if (!built) throw std::runtime_error("the two-part build is not available on this machine");
    return *built;
  };
  // The kernels' entry, read from the cache directory.
  auto cubin = [&] {
    for (const auto& entry : fs::directory_iterator(header.cache.dir())) {
      std::string name = entry.path().filename().string();
      if (name.size() > 11 && name.compare(name.size() - 11, 11, "-cuda.cubin") == 0)
        return jit::read_entry(entry.path()).value_or("");
    }
    return std::string();
  };
  jit::BuildResult first = build();
  EXPECT_TRUE(first.built);
  EXPECT_EQ(call_k(first), 3);
  ASSERT_EQ(first.dependencies.size(), 1u);  // the header, recorded by both parts, once
  EXPECT_EQ(first.dependencies[0].path, (header.dir / "k.h").string());
  const std::string old_kernels = cubin();
  ASSERT_GT(old_kernels.size(), 64u);
  EXPECT_NE(first.payload->find(old_kernels), std::string::npos);
  EXPECT_FALSE(build().built);

  header.set(5);
  uint64_t builds_before = jit::build_count();
  jit::BuildResult second = build();
  EXPECT_TRUE(second.built);
  EXPECT_EQ(jit::build_count(), builds_before + 3);  // kernels, host part and link
  EXPECT_EQ(second.library, first.library);
  EXPECT_EQ(call_k(second), 5);
  const std::string new_kernels = cubin();
  EXPECT_NE(new_kernels, old_kernels);
  EXPECT_NE(second.payload->find(new_kernels), std::string::npos);
  EXPECT_FALSE(build().built);
}

}  // namespace
}  // namespace parpy
