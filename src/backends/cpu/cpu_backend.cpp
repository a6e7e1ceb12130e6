#include "backends/cpu/cpu_backend.h"

#include "backends/cpu/tile_columns.h"

#include "codegen/cpu.h"
#include "ir/c_names.h"
#include "jit/host_compiler.h"

namespace parpy {
namespace {

// int32_t entry(void** args)
using EntryFn = int32_t (*)(void**);

class CpuBackend final : public Backend {
 public:
  CompileBackend id() const override { return CompileBackend::Cpu; }

  const std::string& unavailable_reason() const override {
    static const std::string reason = [] {
      const jit::Toolchain& cxx = jit::host_cxx();
      if (cxx.found) return std::string();
      return "Could not find a C++ compiler (" + cxx.why_missing +
             ") - set the CXX environment variable or put 'c++', 'g++' or 'clang++' in path";
    }();
    return reason;
  }

  Lowered print_host(const Checked& p, const CompileOptions&) const override {
    CpuProgram prog = print_cpu(p.name, p.params, tile_column_loops(p.body), p.helpers);
    Lowered low;
    low.code = std::move(prog.code);
    low.entry_symbol = std::move(prog.entry_symbol);
    low.params = p.params;
    low.bounds_symbol = std::move(prog.bounds_symbol);
    return low;
  }

  std::shared_ptr<Entry> build(const Lowered& low, const CompileOptions& opts) const override {
    // The generated code includes the support header before anything else, so the build may use
    // the header precompiled.
    jit::BuildFlags flags = build_flags(opts);
    flags.precompiled_header = "parpy_cpu_pch.h";
    return load_entry(jit::build_cpu_library(low.code, flags), low.entry_symbol, "", &low);
  }

  std::shared_ptr<Entry> build_user_code(const std::string& name, const std::string& code,
                                         const std::vector<AbiParam>& params,
                                         const CompileOptions& opts) const override {
    // Code from print_compiled already has the uniform entry; hand-written code gets one.
    std::string src = code;
    if (code.find(entry_symbol(name) + "(") == std::string::npos)
      src += "\n" + print_cpu_entry(entry_symbol(name), name, params);
    return load_entry(jit::build_cpu_library(src, build_flags(opts)), entry_symbol(name));
  }

  CallResult call(const Entry& e, CallArgs& args) const override {
    return {reinterpret_cast<EntryFn>(e.fn)(args.argv.data()), ""};
  }
};

}  // namespace

const Backend& cpu_backend() {
  static const CpuBackend b;
  return b;
}

}  // namespace parpy
