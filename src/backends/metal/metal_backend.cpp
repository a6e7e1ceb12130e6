#include "backends/metal/metal_backend.h"

#include <cstdlib>
#include <stdexcept>

namespace parpy {
namespace {

class MetalBackend final : public Backend {
 public:
  CompileBackend id() const override { return CompileBackend::Metal; }

  const std::string& unavailable_reason() const override {
    static const std::string reason = []() -> std::string {
#ifndef __APPLE__
      return "Metal is only available on macOS";
#else
      const char* headers = std::getenv("METAL_CPP_HEADER_PATH");
      if (!headers || !*headers)
        return "The METAL_CPP_HEADER_PATH environment variable is not set. It must point to the directory "
               "containing the metal-cpp headers (https://developer.apple.com/metal/cpp/), which are "
               "required to build the generated Metal code";
      return "";
#endif
    }();
    return reason;
  }

  bool generates_code() const override { return false; }
  bool gpu() const override { return true; }

  std::shared_ptr<Entry> build(const Lowered&, const CompileOptions&) const override { unsupported(); }
  std::shared_ptr<Entry> build_user_code(const std::string&, const std::string&, const std::vector<AbiParam>&,
                                         const CompileOptions&) const override {
    unsupported();
  }
  CallResult call(const Entry&, CallArgs&) const override { unsupported(); }

  std::string external_error(bool host, const LoopPar& par) const override {
    return host && par.is_parallel() ? "Host externals cannot be parallel" : "";
  }

 private:
  [[noreturn]] static void unsupported() {
    throw std::runtime_error("Code generation for the Metal backend is not part of this version of parpy yet.");
  }
};

}  // namespace

const Backend& metal_backend() {
  static const MetalBackend b;
  return b;
}

}  // namespace parpy
