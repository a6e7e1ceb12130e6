#include "bindings/code_dump.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "gpu/host_program.h"
#include "jit/sha256.h"

namespace parpy {
namespace {

std::string current_test() {
  std::string test = std::getenv("PYTEST_CURRENT_TEST") ? std::getenv("PYTEST_CURRENT_TEST") : "";
  if (auto p = test.rfind(" ("); p != std::string::npos) test.erase(p);  // " (call)"
  return test;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

}  // namespace

void log_host_program(const std::string& fn_name, const CompileOptions& opts, const GpuProgram& p) {
  static const char* path = std::getenv("PARPY_HOST_PROGRAM_LOG");
  if (!path || !*path) return;
  std::string line = "{\"key\": " + json_string(current_test() + " " + fn_name + " " + backend_name(opts.backend));
  std::string error;
  try {
    HostProgram hp(p);
  } catch (const std::exception& e) {
    error = e.what();
  }
  line += ", \"error\": " + (error.empty() ? std::string("null") : json_string(error)) + ", \"constructs\": {";
  bool first = true;
  for (const auto& [k, n] : host_code_constructs(p)) {
    line += (first ? "" : ", ") + json_string(k) + ": " + std::to_string(n);
    first = false;
  }
  line += "}}\n";
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << line;
}

void dump_code(const std::string& fn_name, const CompileOptions& opts, const std::string& code) {
  static const char* dir = std::getenv("PARPY_DUMP_CODE");
  if (!dir || !*dir) return;
  static std::mutex mu;
  static std::map<std::string, int> turns;
  std::string key = current_test() + " " + fn_name + " " + backend_name(opts.backend);
  std::lock_guard<std::mutex> lock(mu);
  key += " #" + std::to_string(turns[key]++);
  std::filesystem::create_directories(dir);
  std::ofstream out(std::filesystem::path(dir) / (jit::sha256_hex(key).substr(0, 24) + ".txt"), std::ios::binary);
  out << key << "\n" << code;
}

}  // namespace parpy
