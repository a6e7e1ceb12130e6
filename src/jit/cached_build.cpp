#include "jit/cached_build.h"

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <system_error>

#include "jit/cache_entry.h"
#include "jit/disk_cache.h"
#include "jit/process.h"
#include "jit/sha256.h"

#ifndef PARPY_VERSION
#error "PARPY_VERSION must be defined by the build (CMake defines it for parpy_core)"
#endif

namespace parpy::jit {

namespace fs = std::filesystem;

namespace {

std::atomic<uint64_t> compiler_invocations{0};


std::string random_hex() {
  std::random_device device;
  std::mt19937_64 generator{(uint64_t(device()) << 32) ^ device()};
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(generator()));
  return text;
}

std::string cache_key(const std::string& code, const std::vector<std::string>& key_parts) {
  std::string material = code;
  for (const std::string& part : key_parts) {
    material += '\0';
    material += part;
  }
  material += '\0';
  material += PARPY_VERSION;
  return sha256_hex(material);
}

} // namespace

uint64_t build_count() { return compiler_invocations.load(); }

double compile_timeout_seconds() {
  const char* text = std::getenv("PARPY_COMPILE_TIMEOUT");
  if (text == nullptr || text[0] == '\0') {
    return 600;
  }
  char* end = nullptr;
  errno = 0;
  double seconds = std::strtod(text, &end);
  if (end == text || *end != '\0' || errno != 0 || !std::isfinite(seconds) || seconds < 0) {
    throw BuildError(std::string("PARPY_COMPILE_TIMEOUT must be a number of seconds (0 for no "
                                 "limit), not '") + text + "'");
  }
  return seconds;
}

namespace {

std::string read_output(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!in.good() && !in.eof()) {
    throw BuildError("Failed to read the compiler's output " + path.string());
  }
  return bytes;
}

// The user's headers that the compiler listed in `depfile` (none if it wrote none), and those
// of the build's inputs.
std::vector<Dependency> recorded_dependencies(const LibraryBuild& build, const fs::path& depfile,
                                              const fs::path& working_dir,
                                              const fs::path& build_dir) {
  std::vector<Dependency> out;
  for (const auto& [file, input] : build.inputs) {
    out = merge_dependencies(std::move(out), input.dependencies);
  }
  std::error_code error;
  if (!build.track_dependencies || !fs::exists(depfile, error)) {
    return out;
  }
  std::vector<fs::path> untracked = {build_dir};
  untracked.insert(untracked.end(), build.untracked_dirs.begin(), build.untracked_dirs.end());
  return merge_dependencies(
      std::move(out),
      user_dependencies(parse_make_dependencies(read_output(depfile)), working_dir, untracked));
}

// Runs the compiler of `build` in the private directory `work` and returns what it wrote, with
// the user's headers it read in *dependencies.
std::string run_compiler(const LibraryBuild& build, const BuildDirectory& work, double timeout,
                         uint64_t epoch, std::vector<Dependency>& dependencies) {
  fs::path source = work.path() / ("source" + build.source_suffix);
  fs::path output = work.path() / ("output" + build.library_suffix);
  fs::path depfile = work.path() / "dependencies.d";
  write_new_file(source, build.code);
  ProcessOptions options;
  options.timeout_seconds = timeout;
  options.interrupt_epoch = epoch;
  for (const auto& [file, input] : build.inputs) {
    write_new_file(work.path() / file, *input.payload);
    options.working_dir = work.path().string();
  }
  compiler_invocations.fetch_add(1);
  std::vector<std::string> argv = {build.compiler};
  argv.insert(argv.end(), build.flags.begin(), build.flags.end());
  if (build.track_dependencies) {
    argv.insert(argv.end(), {"-MMD", "-MF", depfile.string(), "-MT", "parpy"});
  }
  argv.push_back(source.string());
  argv.insert(argv.end(), build.link_flags.begin(), build.link_flags.end());
  argv.insert(argv.end(), {"-o", output.string()});
  ProcessResult compiled = run_process(argv, options);
  if (compiled.interrupted) {
    throw Interrupted();
  }
  if (!work.exists()) {
    throw CacheVanished("the build directory " + work.path().string() + " was removed");
  }
  if (compiled.timed_out) {
    char limit[32];
    std::snprintf(limit, sizeof(limit), "%g", timeout);
    throw BuildError("Compilation of generated " + build.language + " code did not finish within " +
                     limit + " s, so it was stopped. Set PARPY_COMPILE_TIMEOUT to a larger number "
                     "of seconds (0 for no limit) if it needs longer.\nStandard out:\n" +
                     compiled.out + "\nStandard error:\n" + compiled.err);
  }
  if (compiled.exit_code != 0) {
    throw BuildError(with_kept_source("Compilation of generated " + build.language +
                                          " code failed with exit code " +
                                          std::to_string(compiled.exit_code) + ":\nStandard out:\n" +
                                          compiled.out + "\nStandard error:\n" + compiled.err,
                                      build.code, build.source_suffix, build.write_output));
  }
  std::string bytes = read_output(output);
  if (bytes.empty()) {
    throw BuildError("The " + build.language + " compiler reported success but wrote nothing to " +
                     output.string());
  }
  // Hashed after the build: a header edited while the compiler ran may be recorded newer than
  // what it read, which no one can tell apart from an edit just after the build.
  fs::path working_dir = options.working_dir.empty() ? fs::current_path() : work.path();
  dependencies = recorded_dependencies(build, depfile, working_dir, work.path());
  return bytes;
}

} // namespace

std::string with_kept_source(std::string message, const std::string& code,
                             const std::string& source_suffix, bool keep) {
  if (!keep) {
    return message;
  }
  // Kept in the working directory so the user can find and inspect it after the failure.
  try {
    fs::path kept = fs::current_path() / (random_hex() + source_suffix);
    atomic_write(kept, code);
    message += "\nThe generated code was written to " + kept.string();
  } catch (const std::exception& write_error) {
    message += std::string("\nWriting the generated code failed: ") + write_error.what();
  }
  return message;
}

namespace {

// A valid entry `name` whose recorded headers are unchanged, in `directory`, else in the
// configured cache that this process cannot write: fills result's library, payload and
// dependencies (library: `directory`/name when none is found).
bool look_up_entry(const fs::path& directory, const std::string& name, BuildResult& result) {
  auto found = [&](const fs::path& entry) {
    std::vector<Dependency> dependencies;
    std::optional<std::string> payload = read_entry(entry, nullptr, &dependencies);
    if (!payload || changed_dependency(dependencies)) {
      return false;
    }
    result.library = entry;
    result.payload = std::make_shared<const std::string>(std::move(*payload));
    result.dependencies = std::move(dependencies);
    return true;
  };
  if (found(directory / name)) {
    return true;
  }
  std::optional<fs::path> read_only = read_only_cache_dir();
  if (read_only && found(*read_only / name)) {
    return true;
  }
  result.library = directory / name;
  return false;
}

} // namespace

std::optional<std::string> find_cached_entry(const std::string& code, const std::vector<std::string>& key_parts,
                                             const std::string& suffix) {
  BuildResult result;
  if (!look_up_entry(cache_dir(), cache_key(code, key_parts) + suffix, result)) {
    return std::nullopt;
  }
  return *result.payload;
}

BuildResult build_cached_entry(const std::string& code, const std::vector<std::string>& key_parts,
                               const std::string& suffix, const EntryCompiler& compile) {
  BuildResult result;
  result.key = cache_key(code, key_parts);
  const std::string name = result.key + suffix;
  const double timeout = compile_timeout_seconds();
  const uint64_t epoch = interrupt_epoch();
  for (int attempt = 1;; ++attempt) {
    fs::path directory = cache_dir();
    auto look_up = [&] { return look_up_entry(directory, name, result); };
    if (look_up()) {
      return result;
    }
    try {
      // Waits for another builder of this entry no longer than that one's compiler may run.
      EntryLock lock(directory, name, epoch, timeout > 0 ? timeout + 60 : 0);
      if (look_up()) {
        return result;
      }
      BuildDirectory work(directory);
      std::vector<Dependency> dependencies;
      std::string bytes = compile(work, timeout, epoch, dependencies);
      publish_entry(directory, name, bytes, dependencies, work);
      result.payload = std::make_shared<const std::string>(std::move(bytes));
      result.dependencies = std::move(dependencies);
      result.built = true;
      return result;
    } catch (const CacheNotWritable& error) {
      if (attempt >= 3) {
        throw BuildError(std::string("No writable parpy cache directory: ") + error.what() +
                         ". Set PARPY_CACHE_DIR to a writable directory.");
      }
      use_private_cache_instead_of(directory, error.what());
    } catch (const CacheVanished& error) {
      // Someone removed the cache directory (or this build's) meanwhile: build again.
      if (attempt >= 3) {
        throw BuildError(std::string("The parpy cache directory kept disappearing during the "
                                     "build (") +
                         error.what() + "). Is another program removing " + directory.string() +
                         "?");
      }
    }
  }
}

BuildResult build_cached_library(const LibraryBuild& build) {
  std::vector<std::string> key_parts = {build.compiler, build.compiler_version};
  key_parts.insert(key_parts.end(), build.flags.begin(), build.flags.end());
  key_parts.insert(key_parts.end(), build.link_flags.begin(), build.link_flags.end());
  for (const auto& [file, input] : build.inputs) {
    key_parts.push_back("input " + file + " " + input.library.filename().string());
  }
  return build_cached_entry(build.code, key_parts, build.library_suffix,
                            [&](const BuildDirectory& work, double timeout, uint64_t epoch,
                                std::vector<Dependency>& dependencies) {
                              return run_compiler(build, work, timeout, epoch, dependencies);
                            });
}

std::vector<std::string> user_flags(const BuildFlags& flags) {
  std::vector<std::string> out = flags.extra_flags;
  for (const std::string& dir : flags.include_dirs) out.push_back("-I" + dir);
  for (const std::string& dir : flags.lib_dirs) out.push_back("-L" + dir);
  return out;
}

LibraryBuild library_build(const std::string& code, const std::string& language,
                           const std::string& source_suffix, const std::string& library_suffix,
                           const std::string& compiler, const std::string& compiler_version,
                           const BuildFlags& flags, const std::vector<std::string>& own_flags) {
  LibraryBuild build;
  build.code = code;
  build.language = language;
  build.source_suffix = source_suffix;
  build.library_suffix = library_suffix;
  build.compiler = compiler;
  build.compiler_version = compiler_version;
  build.flags = user_flags(flags);
  build.flags.insert(build.flags.end(), own_flags.begin(), own_flags.end());
  build.write_output = flags.write_output;
  build.track_dependencies = true;
  build.untracked_dirs = flags.untracked_dirs;
  return build;
}

} // namespace parpy::jit
