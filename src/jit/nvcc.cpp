#include "jit/nvcc.h"

#include <cstdlib>
#include <filesystem>
#include <exception>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>

#include "jit/cache_entry.h"
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

namespace {

// The toolkit nvcc compiles against: its include directory and the directory of its static
// runtime, as nvcc's own dry run names them (nvcc may be a wrapper script elsewhere).
struct Toolkit {
  fs::path include, lib;
};

// The paths of the -I (or -L) options on the "#$ INCLUDES=" (or "#$ LIBRARIES=") line of a dry run.
std::vector<fs::path> dry_run_paths(const std::string& text, const std::string& variable,
                                    const std::string& option) {
  std::vector<fs::path> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("#$ " + variable + "=", 0) != 0) continue;
    std::istringstream words(line.substr(variable.size() + 4));
    std::string word;
    while (words >> word) {
      if (!word.empty() && word.front() == '"') word = word.substr(1);
      if (!word.empty() && word.back() == '"') word.pop_back();
      if (word.rfind(option, 0) == 0) out.push_back(fs::path(word.substr(option.size())).lexically_normal());
    }
  }
  return out;
}

// The major version in "Cuda compilation tools, release X.Y, ...", or 0.
int release_major(const std::string& version) {
  size_t at = version.find("release ");
  return at == std::string::npos ? 0 : std::atoi(version.c_str() + at + 8);
}

std::optional<Toolkit> find_toolkit(const NvccInfo& info) {
  // cudaLibraryLoadData, which the host part loads its kernels with, came with CUDA 12.0.
  if (release_major(info.version) < 12) return std::nullopt;
  jit::ProcessResult dry =
      jit::run_process({info.path, "--dryrun", "-c", "-x", "cu", "/dev/null", "-o", "/dev/null"});
  if (dry.exit_code != 0) return std::nullopt;
  std::string text = dry.out + dry.err;
  std::error_code error;
  Toolkit t;
  for (const fs::path& dir : dry_run_paths(text, "INCLUDES", "-I"))
    if (fs::exists(dir / "cuda_runtime.h", error)) t.include = dir;
  for (const fs::path& dir : dry_run_paths(text, "LIBRARIES", "-L"))
    if (fs::exists(dir / "libcudart_static.a", error)) t.lib = dir;
  if (t.include.empty() || t.lib.empty()) return std::nullopt;
  return t;
}

const std::optional<Toolkit>& toolkit() {
  static const std::optional<Toolkit> found = [] {
    const NvccInfo& info = nvcc();
    return info.found ? find_toolkit(info) : std::nullopt;
  }();
  return found;
}

// Assembly defining the hidden symbol parpy_cubin (what the host part loads its kernels from) as
// the bytes of the file `cubin` in the build's directory.
std::string cubin_object_source(const std::string& cubin) {
  return "  .section .rodata\n  .balign 64\n  .globl parpy_cubin\n  .hidden parpy_cubin\n"
         "parpy_cubin:\n  .incbin \"" + cubin + "\"\n  .byte 0\n"
         "  .section .note.GNU-stack,\"\",@progbits\n";
}

} // namespace

namespace {

// The toolkit's include directories (nvcc's dry run names them): nvcc lists their headers among
// those a build read, but they are not the user's.
const std::vector<std::string>& toolkit_include_dirs() {
  static const std::vector<std::string> dirs = [] {
    std::vector<std::string> out;
    const NvccInfo& info = nvcc();
    if (!info.found) return out;
    jit::ProcessResult dry =
        jit::run_process({info.path, "--dryrun", "-c", "-x", "cu", "/dev/null", "-o", "/dev/null"});
    for (const fs::path& dir : dry_run_paths(dry.out + dry.err, "INCLUDES", "-I")) out.push_back(dir.string());
    return out;
  }();
  return dirs;
}

// `flags` with the toolkit's headers untracked.
jit::BuildFlags cuda_flags(const jit::BuildFlags& flags) {
  jit::BuildFlags out = flags;
  const std::vector<std::string>& toolkit = toolkit_include_dirs();
  out.untracked_dirs.insert(out.untracked_dirs.end(), toolkit.begin(), toolkit.end());
  return out;
}

} // namespace

jit::BuildResult build_cuda_library(const std::string& code, const jit::BuildFlags& flags,
                                    const std::string& arch) {
  const NvccInfo& info = require_nvcc();
  jit::LibraryBuild build =
      jit::library_build(code, "CUDA", ".cu", "-cuda.so", info.path, info.version, cuda_flags(flags),
                         {"-O3", "-std=c++17", "--shared", "-Xcompiler", "-fPIC", "-arch=" + arch, "-x",
                          "cu"});
  return jit::build_cached_library(build);
}

std::string describe_cuda_build(bool whole_requested) {
  const NvccInfo& info = nvcc();
  if (!info.found) return "none: " + info.why_missing;
  const std::string whole = "nvcc builds the whole program: ";
  if (whole_requested) return whole + "PARPY_CUDA_BUILD=nvcc";
  if (!jit::host_cxx().found) return whole + "no host C++ compiler";
  if (release_major(info.version) < 12) return whole + "nvcc is older than CUDA 12.0";
  const std::optional<Toolkit>& kit = toolkit();
  if (!kit) return whole + "nvcc's dry run names no directory with cuda_runtime.h and libcudart_static.a";
  return "two parts: kernels by nvcc -cubin, host part by " + jit::host_cxx().path + " with " +
         (kit->lib / "libcudart_static.a").string() + " (user flags or libs: nvcc builds the whole program)";
}

std::optional<jit::BuildResult> build_two_part_cuda_library(const std::string& device_code,
                                                         const std::string& host_code,
                                                         const jit::BuildFlags& flags,
                                                         const std::string& arch) {
  const NvccInfo& info = require_nvcc();
  const jit::Toolchain& cxx = jit::host_cxx();
  const std::optional<Toolkit>& kit = toolkit();
  if (!cxx.found || !kit) {
    return std::nullopt;
  }
  jit::LibraryBuild device =
      jit::library_build(device_code, "CUDA", ".cu", "-cuda.cubin", info.path, info.version, cuda_flags(flags),
                         {"-O3", "-std=c++17", "-cubin", "-arch=" + arch, "-x", "cu"});
  jit::LibraryBuild host =
      jit::library_build(host_code, "C++ (the host part of CUDA)", ".cpp", "-cuda-host.o", cxx.path,
                         cxx.version, cuda_flags(flags),
                         {"-I" + kit->include.string(), "-O1", "-std=c++17", "-fPIC", "-c", "-x", "c++"});

  // The two compilations run side by side; a failure of the kernels' is reported first.
  jit::BuildResult cubin, host_object;
  std::exception_ptr device_failure, host_failure;
  std::thread device_thread([&] {
    try {
      cubin = jit::build_cached_library(device);
    } catch (...) {
      device_failure = std::current_exception();
    }
  });
  try {
    host_object = jit::build_cached_library(host);
  } catch (...) {
    host_failure = std::current_exception();
  }
  device_thread.join();
  if (device_failure) std::rethrow_exception(device_failure);
  if (host_failure) std::rethrow_exception(host_failure);

  // The link reads the verified bytes of both entries, copied into its own build directory.
  jit::LibraryBuild link =
      jit::library_build(cubin_object_source("kernels.cubin"), "assembly (the kernels of CUDA)",
                         ".s", "-cuda.so", cxx.path, cxx.version, {},
                         {"-shared", "-fPIC", "-x", "assembler"});
  link.inputs = {{"kernels.cubin", cubin}, {"host.o", host_object}};
  link.track_dependencies = false;  // assembly that includes nothing; the inputs' headers count
  link.link_flags = {"-x", "none", "host.o", "-L" + kit->lib.string(),
                     "-lcudart_static", "-ldl", "-lrt", "-lpthread"};
  jit::BuildResult built = jit::build_cached_library(link);
  built.built = built.built || cubin.built || host_object.built;
  return built;
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
  jit::BuildDirectory work(fs::temp_directory_path());
  fs::path source = work.path() / "check.cu";
  jit::write_new_file(source, code);
  std::vector<std::string> argv = {info.path, "-c", "-std=c++17", "-arch=" + arch};
  for (const std::string& dir : include_dirs) {
    argv.push_back("-I" + dir);
  }
  // nvcc writes its intermediates under $TMPDIR and the object to /dev/null: nothing to clean up
  // but the build directory.
  for (const char* arg : {"-x", "cu"}) {
    argv.push_back(arg);
  }
  argv.push_back(source.string());
  argv.push_back("-o");
  argv.push_back("/dev/null");
  jit::ProcessOptions options;
  options.timeout_seconds = jit::compile_timeout_seconds();
  options.interrupt_epoch = jit::interrupt_epoch();
  jit::ProcessResult result = jit::run_process(argv, options);
  if (result.interrupted) {
    throw jit::Interrupted();
  }
  if (log != nullptr) {
    *log = result.out + result.err;
  }
  return result.exit_code == 0;
}

} // namespace parpy::cuda
