#include "jit/occupancy.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

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

// The text between `prefix` and the next quote in `line`, if `line` holds `prefix`.
std::optional<std::string> quoted_after(const std::string& line, const std::string& prefix) {
  size_t at = line.find(prefix);
  if (at == std::string::npos) return std::nullopt;
  at += prefix.size();
  size_t end = line.find('\'', at);
  if (end == std::string::npos || end == at) return std::nullopt;
  return line.substr(at, end - at);
}

// The word (up to white space) after `prefix` in `line`, if any.
std::optional<std::string> word_after(const std::string& line, const std::string& prefix) {
  size_t at = line.find(prefix);
  if (at == std::string::npos) return std::nullopt;
  at += prefix.size();
  size_t end = at;
  while (end < line.size() && !std::isspace(static_cast<unsigned char>(line[end]))) ++end;
  if (end == at) return std::nullopt;
  return line.substr(at, end - at);
}

// The decimal number just before `suffix` in `line` ("24 bytes spill stores" -> 24), if any.
std::optional<int> number_before(const std::string& line, const std::string& suffix) {
  size_t end = line.find(suffix);
  if (end == std::string::npos) return std::nullopt;
  size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(line[begin - 1]))) --begin;
  if (begin == end) return std::nullopt;
  return std::atoi(line.substr(begin, end - begin).c_str());
}

bool is_ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// A kernel declaration `__launch_bounds__(<threads>) <name>(` in generated code; `close` is the
// position of the bounds' ')'.
struct BoundsSite {
  size_t close;
  int threads;
  std::string name;
};

std::vector<BoundsSite> bounds_sites(const std::string& code) {
  static const std::string kw = "__launch_bounds__(";
  std::vector<BoundsSite> out;
  for (size_t at = code.find(kw); at != std::string::npos; at = code.find(kw, at + 1)) {
    size_t i = at + kw.size();
    const size_t digits = i;
    while (i < code.size() && std::isdigit(static_cast<unsigned char>(code[i]))) ++i;
    if (i == digits || i >= code.size() || code[i] != ')') continue;
    const size_t close = i++;
    const size_t space = i;
    while (i < code.size() && std::isspace(static_cast<unsigned char>(code[i]))) ++i;
    const size_t name = i;
    while (i < code.size() && is_ident(code[i])) ++i;
    if (space == name || name == i) continue;
    const size_t end_name = i;
    while (i < code.size() && std::isspace(static_cast<unsigned char>(code[i]))) ++i;
    if (i >= code.size() || code[i] != '(') continue;
    out.push_back({close, std::atoi(code.substr(digits, close - digits).c_str()),
                   code.substr(name, end_name - name)});
  }
  return out;
}

} // namespace

std::map<std::string, KernelUsage> parse_ptxas_usage(const std::string& log) {
  std::map<std::string, KernelUsage> out;
  std::istringstream lines(log);
  std::string line, entry_name, current;  // current: the kernel whose spills the next lines give
  while (std::getline(lines, line)) {
    if (std::optional<std::string> name = quoted_after(line, "Compiling entry function '")) {
      current = entry_name = unmangled(*name);
      out[current];
    } else if (std::optional<std::string> fn = word_after(line, "Function properties for ")) {
      // A device function's properties are not its caller's.
      current = unmangled(*fn) == entry_name ? entry_name : "";
    } else if (std::optional<int> bytes = number_before(line, " bytes spill stores"); bytes && !current.empty()) {
      out[current].spill_bytes = *bytes;
    } else if (std::optional<int> regs = number_before(line, " registers"); regs && !entry_name.empty() &&
                                                                              line.find("Used ") != std::string::npos) {
      out[entry_name].registers = *regs;
    }
  }
  return out;
}

std::map<std::string, int> launch_bounds(const std::string& code) {
  std::map<std::string, int> out;
  for (const BoundsSite& site : bounds_sites(code)) out.emplace(site.name, site.threads);
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
  // The first declaration of each named kernel gets ", blocks" before its bounds' ')', from the
  // back so that earlier positions stay valid.
  std::vector<std::pair<size_t, int>> inserts;
  std::set<std::string> done;
  for (const BoundsSite& site : bounds_sites(code)) {
    auto b = blocks.find(site.name);
    if (b != blocks.end() && done.insert(site.name).second) inserts.emplace_back(site.close, b->second);
  }
  std::string out = code;
  for (auto it = inserts.rbegin(); it != inserts.rend(); ++it) out.insert(it->first, ", " + std::to_string(it->second));
  return out;
}

} // namespace parpy::cuda
