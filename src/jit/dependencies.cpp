#include "jit/dependencies.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <system_error>

#include "jit/sha256.h"

namespace parpy::jit {

namespace fs = std::filesystem;

namespace {

std::optional<std::string> file_sha256(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return std::nullopt;
  return sha256_hex(bytes);
}

// `path` without "." and "..", and through the symbolic links of the part that exists.
fs::path resolved(const fs::path& path) {
  std::error_code error;
  fs::path out = fs::weakly_canonical(path, error);
  return error ? path.lexically_normal() : out;
}

bool inside(const fs::path& path, const fs::path& dir) {
  auto [end, _] = std::mismatch(dir.begin(), dir.end(), path.begin(), path.end());
  // A trailing separator of `dir` reads as an empty last element.
  return end == dir.end() || (std::next(end) == dir.end() && end->empty());
}

} // namespace

std::vector<std::string> parse_make_dependencies(std::string_view rule) {
  std::vector<std::string> files;
  std::string word;
  bool in_target = true;
  auto finish = [&] {
    if (!word.empty() && !in_target) files.push_back(word);
    word.clear();
  };
  for (size_t i = 0; i < rule.size(); ++i) {
    char c = rule[i];
    if (c == '\\' && i + 1 < rule.size() && (rule[i + 1] == '\n' || rule[i + 1] == '\r')) {
      finish(); // a line continuation
      ++i;
      if (rule[i] == '\r' && i + 1 < rule.size() && rule[i + 1] == '\n') ++i;
    } else if (c == '\\' && i + 1 < rule.size() && (rule[i + 1] == ' ' || rule[i + 1] == '#')) {
      word += rule[++i];
    } else if (c == '$' && i + 1 < rule.size() && rule[i + 1] == '$') {
      word += rule[++i];
    } else if (in_target && c == ':' && (i + 1 == rule.size() || rule[i + 1] == ' ' ||
                                         rule[i + 1] == '\t' || rule[i + 1] == '\n')) {
      word.clear();
      in_target = false;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_target) {
        // "target : deps" (nvcc's spacing): the target ends at the colon.
        continue;
      }
      finish();
      // A second rule (-MP's phony targets) names nothing new.
      if (c == '\n') in_target = true;
    } else {
      word += c;
    }
  }
  finish();
  return files;
}

std::vector<Dependency> user_dependencies(const std::vector<std::string>& files,
                                          const fs::path& working_dir,
                                          const std::vector<fs::path>& untracked_dirs) {
  std::vector<fs::path> untracked;
  for (const fs::path& dir : untracked_dirs) {
    if (!dir.empty()) untracked.push_back(resolved(fs::absolute(dir)));
  }
  std::vector<Dependency> out;
  for (const std::string& file : files) {
    // Recorded as named (a symbolic link that is pointed elsewhere later changes the contents
    // read through it), compared with the untracked directories wherever links lead.
    fs::path path = fs::absolute(working_dir / file).lexically_normal();
    fs::path real = resolved(path);
    bool skip = std::any_of(untracked.begin(), untracked.end(),
                            [&](const fs::path& dir) { return inside(real, dir); });
    if (skip) continue;
    if (std::optional<std::string> hash = file_sha256(path)) {
      out.push_back({path.string(), *hash});
    }
  }
  return merge_dependencies(std::move(out), {});
}

std::optional<std::string> changed_dependency(const std::vector<Dependency>& dependencies) {
  for (const Dependency& d : dependencies) {
    std::optional<std::string> hash = file_sha256(d.path);
    if (!hash || *hash != d.sha256) return d.path;
  }
  return std::nullopt;
}

std::vector<Dependency> merge_dependencies(std::vector<Dependency> a,
                                           const std::vector<Dependency>& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end(), [](const Dependency& x, const Dependency& y) {
    return x.path != y.path ? x.path < y.path : x.sha256 < y.sha256;
  });
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

} // namespace parpy::jit
