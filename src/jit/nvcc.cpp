#include "jit/nvcc.h"

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <system_error>

#include "jit/disk_cache.h"
#include "jit/process.h"

#ifndef PARPY_VERSION
#error "PARPY_VERSION must be defined by the build (CMake defines it for parpy_core)"
#endif

namespace parpy::cuda {

namespace fs = std::filesystem;

namespace {

// nvcc --version ends with "Cuda compilation tools, release X.Y, VX.Y.Z" then a "Build" line.
std::string release_line(const std::string& text) {
  std::istringstream lines(text);
  std::string line, found;
  while (std::getline(lines, line)) {
    if (line.find("release") != std::string::npos) {
      found = line;
    }
  }
  return found;
}

NvccInfo detect_nvcc() {
  NvccInfo info;
  const char* env = std::getenv("PARPY_NVCC");
  if (env != nullptr && *env != '\0') {
    std::optional<std::string> path = jit::find_on_path(env);
    if (!path) {
      info.why_missing = std::string("PARPY_NVCC names '") + env +
                         "', which is not an executable program (not found on PATH)";
      return info;
    }
    info.path = *path;
  } else if (std::optional<std::string> path = jit::find_on_path("nvcc")) {
    info.path = *path;
  } else {
    std::vector<std::string> candidates;
    const char* cuda_home = std::getenv("CUDA_HOME");
    if (cuda_home != nullptr && *cuda_home != '\0') {
      candidates.push_back(std::string(cuda_home) + "/bin/nvcc");
    }
    candidates.push_back("/usr/local/cuda/bin/nvcc");
    for (const std::string& candidate : candidates) {
      if (std::optional<std::string> path = jit::find_on_path(candidate)) {
        info.path = *path;
        break;
      }
    }
    if (info.path.empty()) {
      info.why_missing = "nvcc was not found on PATH, in $CUDA_HOME/bin or in "
                         "/usr/local/cuda/bin, and PARPY_NVCC is not set";
      return info;
    }
  }
  jit::ProcessResult version = jit::run_process({info.path, "--version"});
  if (version.exit_code != 0) {
    info.why_missing = "'" + info.path + " --version' failed with exit code " +
                       std::to_string(version.exit_code) + ": " + version.err;
    info.path.clear();
    return info;
  }
  info.version = release_line(version.out);
  if (info.version.empty()) {
    info.version = version.out; // an unexpected format still identifies the toolchain in the key
  }
  info.found = true;
  return info;
}

const NvccInfo& require_nvcc() {
  const NvccInfo& info = nvcc();
  if (!info.found) {
    throw jit::BuildError("No CUDA compiler found: " + info.why_missing);
  }
  return info;
}

} // namespace

const NvccInfo& nvcc() {
  static const NvccInfo info = detect_nvcc();
  return info;
}

jit::BuildResult build_cuda_library(const std::string& code, const jit::BuildFlags& flags,
                                    const std::string& arch) {
  const NvccInfo& info = require_nvcc();
  jit::LibraryBuild build;
  build.code = code;
  build.language = "CUDA";
  build.source_suffix = ".cu";
  build.library_suffix = "-cuda.so";
  build.compiler = info.path;
  build.compiler_version = info.version;
  build.flags = jit::user_flags(flags);
  build.flags.insert(build.flags.end(),
                     {"-O3", "-std=c++17", "--shared", "-Xcompiler", "-fPIC", "-arch=" + arch, "-x", "cu"});
  build.write_output = flags.write_output;
  return jit::build_cached_library(build);
}

bool nvcc_compiles(const std::string& code, const std::string& arch,
                   const std::vector<std::string>& include_dirs, std::string* log) {
  const NvccInfo& info = nvcc();
  if (!info.found) {
    if (log != nullptr) {
      *log = "No CUDA compiler found: " + info.why_missing;
    }
    return false;
  }
  fs::path source = jit::cache_dir() / jit::unique_file_name(".tmp-check-", ".cu");
  jit::atomic_write(source, code);
  std::vector<std::string> argv = {info.path, "-c", "-std=c++17", "-arch=" + arch};
  for (const std::string& dir : include_dirs) {
    argv.push_back("-I" + dir);
  }
  // nvcc writes its intermediates under $TMPDIR and the object to /dev/null: nothing to clean up
  // but the source.
  for (const char* arg : {"-x", "cu"}) {
    argv.push_back(arg);
  }
  argv.push_back(source.string());
  argv.push_back("-o");
  argv.push_back("/dev/null");
  jit::ProcessResult result = jit::run_process(argv);
  std::error_code ignored;
  fs::remove(source, ignored);
  if (log != nullptr) {
    *log = result.out + result.err;
  }
  return result.exit_code == 0;
}

} // namespace parpy::cuda
