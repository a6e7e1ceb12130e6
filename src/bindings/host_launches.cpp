#include "bindings/host_launches.h"

#include <nanobind/stl/string.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <stdexcept>

#include "gpu/host_program.h"
#include "ir/c_names.h"
#include "jit/shared_library.h"

namespace nb = nanobind;

namespace parpy {
namespace {

size_t param_bytes(const AbiParam& p) { return p.type.is_scalar() ? static_cast<size_t>(elem_bytes(p.type.elem)) : 8; }

class Recorder final : public HostLauncher {
 public:
  Recorder(const GpuProgram& p, std::vector<RecordedLaunch>& out) : p_(p), out_(out) {}
  int32_t launch(const HostLaunch& l) override {
    const Kernel& k = p_.kernels.at(l.kernel);
    RecordedLaunch r{l.kernel, l.vector, l.grid_blocks, l.block_threads, l.cluster_blocks, {}};
    for (size_t i = 0; i < k.params.size(); ++i)
      r.params.emplace_back(static_cast<const char*>(l.params[i]), param_bytes(k.params[i]));
    out_.push_back(std::move(r));
    return 0;
  }

 private:
  const GpuProgram& p_;
  std::vector<RecordedLaunch>& out_;
};

class Counter final : public HostLauncher {
 public:
  int64_t launches = 0;
  uint64_t sum = 0;
  int32_t launch(const HostLaunch& l) override {
    ++launches;
    sum += reinterpret_cast<uintptr_t>(l.params[0]) + static_cast<uint64_t>(l.vector);
    return 0;
  }
};

// The fake runtime's record of one launch (tools/host_program/fake_cudart.cpp).
struct FakeLaunch {
  const char* kernel;
  uint32_t grid, block;
  const unsigned char* bytes;
  size_t nbytes;
};

std::string kernel_ident(const std::string& name) { return "parpy_kernel_" + c_chars(name); }

nb::object value(const AbiParam& p, const std::string& bytes) {
  if (!p.type.is_scalar()) {
    uint64_t a;
    std::memcpy(&a, bytes.data(), 8);
    return nb::int_(a);
  }
  auto get = [&](auto x) {
    std::memcpy(&x, bytes.data(), sizeof x);
    return x;
  };
  switch (p.type.elem) {
    case ElemSize::Bool: return nb::bool_(get(uint8_t{}) != 0);
    case ElemSize::I8: return nb::int_(get(int8_t{}));
    case ElemSize::I16: return nb::int_(get(int16_t{}));
    case ElemSize::I32: return nb::int_(get(int32_t{}));
    case ElemSize::I64: return nb::int_(get(int64_t{}));
    case ElemSize::U8: return nb::int_(get(uint8_t{}));
    case ElemSize::U16: return nb::int_(get(uint16_t{}));
    case ElemSize::U32: return nb::int_(get(uint32_t{}));
    case ElemSize::U64: return nb::int_(get(uint64_t{}));
    case ElemSize::F16: return nb::float_(static_cast<double>(get(_Float16{})));
    case ElemSize::F32: return nb::float_(static_cast<double>(get(float{})));
    case ElemSize::F64: return nb::float_(get(double{}));
  }
  return nb::none();
}

}  // namespace

std::vector<uint64_t> fake_scratch(const GpuProgram& p) {
  std::vector<uint64_t> s;
  for (size_t j = 0; j < p.scratch.size(); ++j) s.push_back((j + 1) << 32);
  return s;
}

std::vector<RecordedLaunch> interpret_host(const GpuProgram& p, void* const* argv) {
  HostProgram hp(p);
  std::vector<RecordedLaunch> out;
  Recorder rec(p, out);
  std::vector<uint64_t> scratch = fake_scratch(p);
  if (int32_t rc = hp.run(argv, scratch.data(), rec)) throw std::runtime_error("run returned " + std::to_string(rc));
  return out;
}

std::vector<RecordedLaunch> run_compiled_host(const GpuProgram& p, const std::string& library,
                                              const std::string& entry_symbol, void* const* argv) {
  jit::SharedLibrary lib(library);
  auto reset = reinterpret_cast<void (*)(const uint64_t*, size_t)>(lib.symbol("parpy_fake_reset"));
  auto reg = reinterpret_cast<void (*)(const char*, size_t, const size_t*)>(lib.symbol("parpy_fake_register"));
  auto launches = reinterpret_cast<size_t (*)(const FakeLaunch**)>(lib.symbol("parpy_fake_launches"));
  auto entry = reinterpret_cast<int32_t (*)(void* const*, void*, int32_t)>(lib.symbol(entry_symbol));
  std::map<std::string, std::pair<size_t, bool>> kernels;
  for (size_t k = 0; k < p.kernels.size(); ++k) {
    std::vector<size_t> sizes;
    for (const auto& a : p.kernels[k].params) sizes.push_back(param_bytes(a));
    for (bool vec : {false, true}) {
      if (vec && p.kernels[k].vector_body.empty()) continue;
      std::string id = kernel_ident(p.kernels[k].name + (vec ? "_vec" : ""));
      reg(id.c_str(), sizes.size(), sizes.data());
      kernels[id] = {k, vec};
    }
  }
  std::vector<uint64_t> scratch = fake_scratch(p);
  reset(scratch.data(), scratch.size());
  if (int32_t rc = entry(argv, nullptr, 0)) throw std::runtime_error("the compiled entry returned " + std::to_string(rc));
  const FakeLaunch* rec = nullptr;
  size_t n = launches(&rec);
  std::vector<RecordedLaunch> out;
  for (size_t i = 0; i < n; ++i) {
    auto it = kernels.find(rec[i].kernel);
    if (it == kernels.end()) throw std::runtime_error(std::string("launch of unknown kernel ") + rec[i].kernel);
    const Kernel& k = p.kernels[it->second.first];
    RecordedLaunch r{it->second.first, it->second.second, rec[i].grid, rec[i].block, k.cluster_blocks, {}};
    size_t off = 0;
    for (const auto& a : k.params) {
      size_t b = param_bytes(a);
      r.params.emplace_back(reinterpret_cast<const char*>(rec[i].bytes) + off, b);
      off += b;
    }
    out.push_back(std::move(r));
  }
  return out;
}

nb::list launches_to_python(const GpuProgram& p, const std::vector<RecordedLaunch>& launches, bool raw) {
  nb::list out;
  for (const auto& l : launches) {
    const Kernel& k = p.kernels.at(l.kernel);
    nb::list values;
    for (size_t i = 0; i < l.params.size(); ++i)
      values.append(raw ? nb::bytes(l.params[i].data(), l.params[i].size()) : value(k.params[i], l.params[i]));
    out.append(nb::make_tuple(k.name, l.vector, l.grid, l.block, l.cluster, values));
  }
  return out;
}

std::pair<double, double> host_run_ns(const GpuProgram& p, void* const* argv, int64_t iterations) {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  int64_t builds = std::max<int64_t>(1, iterations / 100);
  for (int64_t i = 0; i + 1 < builds; ++i) HostProgram warm(p);
  HostProgram hp(p);
  auto t1 = clock::now();
  std::vector<uint64_t> scratch = fake_scratch(p);
  Counter c;
  for (int64_t i = 0; i < std::min<int64_t>(iterations, 1000); ++i) hp.run(argv, scratch.data(), c);
  auto t2 = clock::now();
  for (int64_t i = 0; i < iterations; ++i) hp.run(argv, scratch.data(), c);
  auto t3 = clock::now();
  if (c.sum == 1) throw std::runtime_error("unreachable");  // keeps the runs
  double run = std::chrono::duration<double, std::nano>(t3 - t2).count() / static_cast<double>(iterations);
  double build = std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(builds);
  return {run, build};
}

}  // namespace parpy
