#include "jit/occupancy.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <regex>
#include <sstream>

namespace parpy::cuda {

namespace {

// The identifier of a mangled (Itanium ABI) or plain function name: "_Z3fooPf" -> "foo".
std::string unmangled(const std::string& name) {
  if (name.rfind("_Z", 0) != 0) return name;
  size_t i = 2;
  size_t len = 0;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])))
    len = len * 10 + static_cast<size_t>(name[i++] - '0');
  if (len == 0 || i + len > name.size()) return name;
  return name.substr(i, len);
}

// Threads an SM holds at most, by compute capability.
int max_threads_per_sm(int sm) {
  if (sm == 75) return 1024;
  if (sm == 86 || sm == 87 || sm == 88 || sm == 89 || sm >= 120) return 1536;
  return 2048;
}

constexpr int kRegistersPerSm = 65536;
constexpr int kMaxBlocksPerSm = 32;

// Blocks of `threads` that fit in an SM's registers at `registers` per thread (allocated per warp
// in units of 256).
int blocks_by_registers(int registers, int threads) {
  const int warps = (threads + 31) / 32;
  const int per_warp = (registers * 32 + 255) / 256 * 256;
  return per_warp == 0 ? kMaxBlocksPerSm : kRegistersPerSm / (per_warp * warps);
}

} // namespace

std::map<std::string, KernelUsage> parse_ptxas_usage(const std::string& log) {
  static const std::regex entry(R"(Compiling entry function '([^']+)')");
  static const std::regex properties(R"(Function properties for (\S+))");
  static const std::regex spills(R"((\d+) bytes spill stores)");
  static const std::regex regs(R"(Used (\d+) registers)");
  std::map<std::string, KernelUsage> out;
  std::istringstream lines(log);
  std::string line, entry_name, current;  // current: the kernel whose spills the next lines give
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_search(line, m, entry)) {
      current = entry_name = unmangled(m[1]);
      out[current];
    } else if (std::regex_search(line, m, properties)) {
      // A device function's properties are not its caller's.
      current = unmangled(m[1]) == entry_name ? entry_name : "";
    } else if (!current.empty() && std::regex_search(line, m, spills)) {
      out[current].spill_bytes = std::atoi(m[1].str().c_str());
    } else if (!entry_name.empty() && std::regex_search(line, m, regs)) {
      out[entry_name].registers = std::atoi(m[1].str().c_str());
    }
  }
  return out;
}

std::map<std::string, int> launch_bounds(const std::string& code) {
  static const std::regex bounds(R"(__launch_bounds__\((\d+)\)\s+(\w+)\s*\()");
  std::map<std::string, int> out;
  for (std::sregex_iterator it(code.begin(), code.end(), bounds), end; it != end; ++it)
    out[(*it)[2]] = std::atoi((*it)[1].str().c_str());
  return out;
}

int occupancy_step(int registers, int threads, int sm) {
  if (registers <= 0 || threads <= 0) return 0;
  const int by_threads = std::min(kMaxBlocksPerSm, max_threads_per_sm(sm) / threads);
  const int now = blocks_by_registers(registers, threads);
  if (now >= by_threads) return 0;
  const int next = now + 1;
  // The registers per thread that `next` blocks leave, in ptxas's steps of 8.
  const int allowed = kRegistersPerSm / (next * ((threads + 31) / 32 * 32)) / 8 * 8;
  if (allowed <= 0 || registers - allowed > 8) return 0;
  return next;
}

std::string with_min_blocks(const std::string& code, const std::map<std::string, int>& blocks) {
  std::string out = code;
  for (const auto& [name, count] : blocks) {
    const std::regex decl("__launch_bounds__\\((\\d+)\\)(\\s+" + name + "\\s*\\()");
    out = std::regex_replace(out, decl, "__launch_bounds__($1, " + std::to_string(count) + ")$2",
                             std::regex_constants::format_first_only);
  }
  return out;
}

} // namespace parpy::cuda
