#pragma once

// The user's headers that a build read, so that a cached library built from older versions of them
// is rebuilt instead of run. The cache key covers the generated code and the flags, not the
// contents of the headers the code includes; the entry records them (cache_entry.h) and
// build_cached_library checks them whenever it finds the entry on disk.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parpy::jit {

// A file that a build read and the SHA-256 (lower-case hex) of its contents then.
struct Dependency {
  std::string path; // absolute
  std::string sha256;
  bool operator==(const Dependency& other) const {
    return path == other.path && sha256 == other.sha256;
  }
};

// The files named by a make rule as compilers write it (-MD, -MMD): "target: dep dep \<newline>
// dep", spaces escaped "\ ", '#' "\#" and '$' "$$". The target (up to the first ": ") is dropped.
std::vector<std::string> parse_make_dependencies(std::string_view rule);

// The user's files among `files` (paths relative to `working_dir` or absolute), with their hashes:
// not those inside one of `untracked_dirs` (the build directory with the source, parpy's support
// headers, a toolkit's headers). Files that cannot be read are left out. Sorted by path, no
// duplicates.
std::vector<Dependency> user_dependencies(const std::vector<std::string>& files,
                                          const std::filesystem::path& working_dir,
                                          const std::vector<std::filesystem::path>& untracked_dirs);

// The first dependency whose file is missing or no longer has the recorded contents, or nullopt.
std::optional<std::string> changed_dependency(const std::vector<Dependency>& dependencies);

// `a` and `b` merged: sorted by path, without duplicates.
std::vector<Dependency> merge_dependencies(std::vector<Dependency> a,
                                           const std::vector<Dependency>& b);

} // namespace parpy::jit
