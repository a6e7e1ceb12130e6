// Building generated code into the disk cache, whatever the toolchain: a build's description, its
// key, the single build per key, the compiler run with its time limit, the verified entry.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "jit/dependencies.h"

namespace parpy::jit {

struct BuildFlags {
  std::vector<std::string> include_dirs, lib_dirs, extra_flags;
  // Directories whose headers are not the user's (parpy's support headers, whose hash the flags
  // carry): a build does not record them among its dependencies.
  std::vector<std::string> untracked_dirs;
  // Also keep a copy of the generated source in the working directory when the build fails.
  bool write_output = false;
  // A header (found in include_dirs) that may be included before the code, because the code
  // includes it first anyway: build_cpu_library then uses a precompiled copy of it when the
  // compiler can make one (GCC). Empty: none.
  std::string precompiled_header;
};

struct BuildResult {
  std::filesystem::path library; // the cache entry
  bool built = false;             // false: found in the disk cache
  std::string key;
  // The user's headers it was built from (those of its inputs too), as its entry records them.
  std::vector<Dependency> dependencies;
  // The entry's verified bytes: what load_library loads and what later builds read, so neither
  // depends on the entry staying in place (clear_cache) nor reads it unchecked again.
  std::shared_ptr<const std::string> payload;
};

// A failed build: compiler output, or no compiler at all.
class BuildError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// One toolchain-independent build: `compiler <flags...> <source> <link_flags...> -o <library>`,
// run in a private directory of the cache. The cache key covers the code, the compiler and its
// version, every flag, the inputs and the parpy version. The headers the code includes are not in
// the key: with track_dependencies the compiler also writes the headers it read (-MMD: not the
// system's), and the entry records the user's among them with their hashes; an entry whose
// headers changed since is rebuilt and replaced (never loaded).
struct LibraryBuild {
  std::string code;
  std::string language;        // in error messages: "C++", "CUDA"
  std::string source_suffix;   // ".cpp", ".cu"
  std::string library_suffix;  // "-cpu.so", "-cuda.so"
  std::string compiler, compiler_version;
  std::vector<std::string> flags;
  std::vector<std::string> link_flags;  // after the source (libraries)
  bool write_output = false;
  // Whether the compiler takes -MMD -MF <file> -MT <target> (GCC, Clang, nvcc) to list the headers
  // it read; set by library_build. Headers inside `untracked_dirs` are not recorded.
  bool track_dependencies = false;
  std::vector<std::string> untracked_dirs;
  // Entries of earlier builds that this one reads: their verified bytes are copied into its
  // directory under the given file names, and the compiler runs in that directory (so the code
  // and the flags name them relative to it). The key covers their keys, and the build's
  // dependencies include theirs.
  std::vector<std::pair<std::string, BuildResult>> inputs;
};

// The user's flags, then -I and -L for the include and library directories.
std::vector<std::string> user_flags(const BuildFlags& flags);

// A build of `code` by `compiler` (path and version) with the user's flags, then `own_flags`.
LibraryBuild library_build(const std::string& code, const std::string& language,
                           const std::string& source_suffix, const std::string& library_suffix,
                           const std::string& compiler, const std::string& compiler_version,
                           const BuildFlags& flags, const std::vector<std::string>& own_flags);

// Returns the entry cache_dir()/<key><library_suffix>, compiling it first unless a valid one is
// there (a damaged or foreign one, or one whose recorded headers changed, is rebuilt and
// replaced). One build per key at a time, in this
// process and across processes; the others wait for it and use its entry. The compiler runs in a
// private build directory, is killed after compile_timeout_seconds() or on an interrupt (which
// throws Interrupted), and its library is published by atomic rename.
BuildResult build_cached_library(const LibraryBuild& build);

class BuildDirectory;

// Makes the bytes of a cache entry in the private directory `work` (a compiler run there, or one
// in this process that ignores it), within `timeout` seconds (0: no limit) where it can be
// stopped; throws BuildError when that fails, Interrupted on an interrupt since `epoch`. The user's
// headers it read go in `dependencies` (the entry is rebuilt when one changes).
using EntryCompiler = std::function<std::string(const BuildDirectory& work, double timeout, uint64_t epoch,
                                                std::vector<Dependency>& dependencies)>;

// The cache entry cache_dir()/<key><suffix>, keyed by `code`, `key_parts` and the parpy version:
// read and verified if a valid one is there, else made by `compile` and published, with the
// locking, retries and trust checks of build_cached_library (which is this with a compiler run).
BuildResult build_cached_entry(const std::string& code, const std::vector<std::string>& key_parts,
                               const std::string& suffix, const EntryCompiler& compile);

// The same entry, looked up only: its verified payload (in the cache, else in the read-only
// configured one), or nullopt when there is no valid one. Nothing is built or locked.
std::optional<std::string> find_cached_entry(const std::string& code, const std::vector<std::string>& key_parts,
                                             const std::string& suffix);

// `message`, and where `keep` (BuildFlags::write_output), a copy of the failed `code` written to
// the working directory as <random><source_suffix>, with where it went.
std::string with_kept_source(std::string message, const std::string& code,
                             const std::string& source_suffix, bool keep);

// $PARPY_COMPILE_TIMEOUT in seconds (0: no limit), default 600; BuildError if it is not a number.
double compile_timeout_seconds();

// Compiler invocations made by build_cached_library in this process; a cache hit adds none.
uint64_t build_count();

} // namespace parpy::jit
