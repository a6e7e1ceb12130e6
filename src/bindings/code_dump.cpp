#include "bindings/code_dump.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "jit/sha256.h"

namespace parpy {

void dump_code(const std::string& fn_name, const CompileOptions& opts, const std::string& code) {
  static const char* dir = std::getenv("PARPY_DUMP_CODE");
  if (!dir || !*dir) return;
  static std::mutex mu;
  static std::map<std::string, int> turns;
  std::string test = std::getenv("PYTEST_CURRENT_TEST") ? std::getenv("PYTEST_CURRENT_TEST") : "";
  if (auto p = test.rfind(" ("); p != std::string::npos) test.erase(p);  // " (call)"
  std::string key = test + " " + fn_name + " " + backend_name(opts.backend);
  std::lock_guard<std::mutex> lock(mu);
  key += " #" + std::to_string(turns[key]++);
  std::filesystem::create_directories(dir);
  std::ofstream out(std::filesystem::path(dir) / (jit::sha256_hex(key).substr(0, 24) + ".txt"), std::ios::binary);
  out << key << "\n" << code;
}

}  // namespace parpy
