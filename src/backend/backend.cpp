#include "backend/backend.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "jit/sha256.h"
#include "jit/shared_library.h"

namespace parpy {

Lowered Backend::print_host(const Checked&, const CompileOptions&) const {
  throw std::logic_error(std::string("The ") + name() + " backend prints GPU programs only");
}

Lowered Backend::print_gpu(const GpuProgram&, const CompileOptions&) const {
  throw std::logic_error(std::string("The ") + name() + " backend has no GPU layer");
}

void Backend::require_code_generation() const {
  if (!generates_code())
    throw std::runtime_error(std::string("Code generation for the ") + name() +
                             " backend is not part of this version of parpy yet.");
}

std::string Backend::external_error(bool, const LoopPar&) const { return ""; }

const Backend& backend_of(CompileBackend b) {
  for (const Backend* be : backends())
    if (be->id() == b) return *be;
  throw std::runtime_error(std::string("CompileBackend.") + backend_name(b) + " is not a concrete backend");
}

const std::string& Backend::blocked_reason() const {
  static const std::string none;
  return none;
}

namespace {

// resolve_backend's rules, with `is_available` asked only about the backends they need.
template <typename IsAvailable>
CompileBackend resolve_with(CompileBackend requested, bool strict, IsAvailable is_available) {
  auto blocked = [](const Backend& b) {
    const std::string& why = b.blocked_reason();
    if (!why.empty()) throw std::runtime_error(why);
  };
  if (requested == CompileBackend::Auto) {
    for (const Backend* b : backends()) {
      if (!b->generates_code()) continue;
      if (is_available(b->id())) return b->id();
      // A GPU that this process sees but cannot use: running elsewhere instead would surprise.
      blocked(*b);
    }
    throw std::runtime_error(
        "Found no enabled GPU backends. For detailed information on why this is, enable the "
        "'verbose_backend_resolution' flag in the compiler options.");
  }
  if (strict && !is_available(requested)) {
    blocked(backend_of(requested));
    throw std::runtime_error(std::string("Specified backend CompileBackend.") + backend_name(requested) +
                             " is not available. For more information, enable the "
                             "'verbose_backend_resolution' flag in the compiler options.");
  }
  return requested;
}

}  // namespace

CompileBackend resolve_backend(CompileBackend requested, bool strict,
                               const std::vector<CompileBackend>& available) {
  return resolve_with(requested, strict, [&](CompileBackend b) {
    return std::find(available.begin(), available.end(), b) != available.end();
  });
}

CompileBackend resolve_backend(CompileBackend requested, bool strict) {
  return resolve_with(requested, strict, [](CompileBackend b) { return backend_of(b).available(); });
}

std::vector<CompileBackend> available_backends() {
  std::vector<CompileBackend> out;
  for (const Backend* b : backends())
    if (b->available()) out.push_back(b->id());
  return out;
}

namespace {

std::string& include_dir() {
  static std::string dir;
  return dir;
}

const std::string& header_flag() {
  // The support headers are not part of the generated code; their hash keys the disk cache too.
  static std::string flag = [] {
    std::stringstream ss;
    for (const char* h : {"/parpy_common.h", "/parpy_cpu.h", "/parpy_cpu_pch.h", "/parpy_cuda_host.h",
                          "/parpy_cuda_math.h", "/parpy_cuda.h", "/parpy_rtc.h", "/parpy_metal.h",
                          "/rtc/cstdint", "/rtc/stdint.h", "/rtc/cmath", "/rtc/math.h", "/rtc/cstddef",
                          "/rtc/stddef.h", "/rtc/climits", "/rtc/limits.h", "/rtc/cfloat", "/rtc/float.h"}) {
      std::ifstream in(include_dir() + h, std::ios::binary);
      ss << in.rdbuf();
    }
    return "-DPARPY_HEADER_HASH=" + jit::sha256_hex(ss.str()).substr(0, 16);
  }();
  return flag;
}

}  // namespace

void set_include_dir(const std::string& dir) { include_dir() = dir; }

jit::BuildFlags build_flags(const CompileOptions& opts) {
  jit::BuildFlags flags;
  // Absolute: the compiler may run in a build directory of its own (and the headers found there
  // are recorded by absolute path).
  auto absolute = [](const std::string& dir) { return dir.empty() ? dir : std::filesystem::absolute(dir).string(); };
  for (const std::string& dir : opts.includes) flags.include_dirs.push_back(absolute(dir));
  flags.include_dirs.push_back(include_dir());
  flags.untracked_dirs = {include_dir()};
  for (const std::string& dir : opts.libs) flags.lib_dirs.push_back(absolute(dir));
  flags.extra_flags = opts.extra_flags;
  flags.extra_flags.push_back(header_flag());
  flags.write_output = opts.write_output;
  return flags;
}

std::shared_ptr<Entry> load_entry(const jit::BuildResult& built, const std::string& entry_symbol,
                                  const std::string& error_symbol, const Lowered* low) {
  auto e = std::make_shared<Entry>();
  e->built = built.built;
  e->lib = built.payload ? jit::load_library(built.library, built.payload) : jit::load_library(built.library);
  e->fn = e->lib->symbol(entry_symbol);
  if (!error_symbol.empty()) e->error_fn = reinterpret_cast<const char* (*)()>(e->lib->symbol(error_symbol));
  if (low && !low->bounds_symbol.empty()) {
    e->bounds_sites = low->bounds_sites;
    e->bounds_fn = reinterpret_cast<const int64_t* (*)()>(e->lib->symbol(low->bounds_symbol));
  }
  return e;
}

}  // namespace parpy
