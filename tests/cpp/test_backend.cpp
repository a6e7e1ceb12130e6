// The backend seam (backend/backend.h): the registry, the resolution rules, and what each backend
// tells the shared layers.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "backend/backend.h"

namespace parpy {
namespace {

using CB = CompileBackend;

std::string message_of(CB requested, bool strict, const std::vector<CB>& available) {
  try {
    resolve_backend(requested, strict, available);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Backend, RegistryInAutoOrder) {
  ASSERT_EQ(backends().size(), 3u);
  EXPECT_EQ(backends()[0]->id(), CB::Cuda);
  EXPECT_EQ(backends()[1]->id(), CB::Metal);
  EXPECT_EQ(backends()[2]->id(), CB::Cpu);
  for (const Backend* b : backends()) EXPECT_EQ(&backend_of(b->id()), b);
  EXPECT_THROW(backend_of(CB::Auto), std::runtime_error);
  EXPECT_STREQ(backend_of(CB::Cuda).name(), "Cuda");
}

TEST(Backend, AutoPicksTheFirstAvailableThatGeneratesCode) {
  EXPECT_EQ(resolve_backend(CB::Auto, true, {CB::Cuda, CB::Cpu}), CB::Cuda);
  EXPECT_EQ(resolve_backend(CB::Auto, true, {CB::Cpu, CB::Cuda}), CB::Cuda);  // the registry's order
  EXPECT_EQ(resolve_backend(CB::Auto, true, {CB::Metal, CB::Cpu}), CB::Metal);
  EXPECT_EQ(resolve_backend(CB::Auto, true, {CB::Cpu, CB::Metal, CB::Cuda}), CB::Cuda);
  EXPECT_EQ(message_of(CB::Auto, false, {}),
            "Found no enabled GPU backends. For detailed information on why this is, enable the "
            "'verbose_backend_resolution' flag in the compiler options.");
}

TEST(Backend, NamedBackendsStrictAndNot) {
  EXPECT_EQ(resolve_backend(CB::Cuda, false, {CB::Cpu}), CB::Cuda);  // printing for another machine
  EXPECT_EQ(message_of(CB::Cuda, true, {CB::Cpu}),
            "Specified backend CompileBackend.Cuda is not available. For more information, enable the "
            "'verbose_backend_resolution' flag in the compiler options.");
  EXPECT_EQ(resolve_backend(CB::Metal, false, {}), CB::Metal);
  EXPECT_NO_THROW(backend_of(CB::Metal).require_code_generation());
  EXPECT_NO_THROW(backend_of(CB::Cuda).require_code_generation());
  EXPECT_NO_THROW(backend_of(CB::Cpu).require_code_generation());
}

TEST(Backend, AvailabilityHasAReason) {
  for (const Backend* b : backends()) EXPECT_EQ(b->available(), b->unavailable_reason().empty()) << b->name();
  std::vector<CB> avail = available_backends();
  for (const Backend* b : backends())
    EXPECT_EQ(std::find(avail.begin(), avail.end(), b->id()) != avail.end(), b->available()) << b->name();
#ifndef __APPLE__
  EXPECT_EQ(backend_of(CB::Metal).unavailable_reason(), "Metal is only available on macOS");
#endif
}

TEST(Backend, WhatTheSharedLayersAsk) {
  const Backend& cuda = backend_of(CB::Cuda);
  const Backend& cpu = backend_of(CB::Cpu);
  EXPECT_TRUE(cuda.gpu());
  EXPECT_TRUE(cuda.device_memory());
  EXPECT_FALSE(cpu.gpu());
  EXPECT_FALSE(cpu.device_memory());
  CompileOptions o;
  o.use_cuda_thread_block_clusters = true;
  o.max_thread_blocks_per_cluster = 64;
  o.use_cuda_graphs = true;
  GpuTarget t = cuda.gpu_target(o);
  EXPECT_EQ(t.max_cluster_blocks, 16);  // the most a cluster can hold
  EXPECT_TRUE(t.graphs);
  o.max_thread_blocks_per_cluster = 4;
  EXPECT_EQ(cuda.gpu_target(o).max_cluster_blocks, 4);
  o.use_cuda_thread_block_clusters = false;
  EXPECT_EQ(cuda.gpu_target(o).max_cluster_blocks, 0);
  // Externals: Cuda has no host externals, Metal no parallel host externals, Cpu takes both.
  LoopPar seq, par{4, false, 1024};
  EXPECT_EQ(cuda.external_error(true, seq), "Host externals are not supported in the CUDA backend");
  EXPECT_EQ(cuda.external_error(false, par), "");
  EXPECT_EQ(backend_of(CB::Metal).external_error(true, par), "Host externals cannot be parallel");
  EXPECT_EQ(backend_of(CB::Metal).external_error(true, seq), "");
  EXPECT_EQ(cpu.external_error(true, par), "");
  // Metal: a GPU backend whose host code reads arrays in place; no clusters, no graphs.
  const Backend& metal = backend_of(CB::Metal);
  EXPECT_TRUE(metal.gpu());
  EXPECT_FALSE(metal.device_memory());
  CompileOptions m;
  m.backend = CB::Metal;
  GpuTarget mt = metal.gpu_target(m);
  EXPECT_TRUE(mt.host_array_access);
  EXPECT_EQ(mt.max_cluster_blocks, 0);
  EXPECT_FALSE(mt.graphs);
  EXPECT_FALSE(cuda.gpu_target(m).host_array_access);
  m.use_cuda_graphs = true;
  EXPECT_THROW(metal.gpu_target(m), CompileError);
}

}  // namespace
}  // namespace parpy
