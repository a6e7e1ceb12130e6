// The launches of a GPU program's host code seen from Python, for tests and tools: run by
// HostProgram (gpu/host_program.h), or by the host part the Cuda printer prints, compiled against
// a recording stand-in for the CUDA runtime (tools/host_program/fake_cudart.cpp), so that the two
// can be compared. Nothing here needs a GPU: device addresses are the arrays' host addresses.
#pragma once
#include <nanobind/nanobind.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gpu/gpu_ir.h"

namespace parpy {

struct RecordedLaunch {
  size_t kernel;
  bool vector;
  int64_t grid, block, cluster;
  std::vector<std::string> params;  // each parameter's bytes, in its C type
};

// The device addresses given to the program's scratch buffers: the same in both runs.
std::vector<uint64_t> fake_scratch(const GpuProgram& p);

// The launches HostProgram asks for with these entry arguments.
std::vector<RecordedLaunch> interpret_host(const GpuProgram& p, void* const* argv);

// The launches the compiled host part in `library` (built with the fake runtime) makes.
std::vector<RecordedLaunch> run_compiled_host(const GpuProgram& p, const std::string& library,
                                              const std::string& entry_symbol, void* const* argv);

// (kernel_name, vector, grid, block, cluster, [values]) per launch: values as Python ints, floats
// and bools, or (raw) as bytes.
nanobind::list launches_to_python(const GpuProgram& p, const std::vector<RecordedLaunch>& launches, bool raw);

// Nanoseconds per HostProgram::run, over `iterations` runs with a launcher that only counts
// (the first element), and per construction of the HostProgram (the second).
std::pair<double, double> host_run_ns(const GpuProgram& p, void* const* argv, int64_t iterations);

}  // namespace parpy
