#include "jit/host_compiler.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <system_error>

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

std::string first_word(const std::string& text) {
  std::istringstream words(text);
  std::string word;
  words >> word;
  return word;
}

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

Toolchain detect_host_cxx() {
  Toolchain toolchain;
  std::string program;
  const char* cxx_env = std::getenv("CXX");
  if (cxx_env != nullptr && first_word(cxx_env) != "") {
    program = first_word(cxx_env);
    std::optional<std::string> path = find_on_path(program);
    if (!path) {
      toolchain.why_missing =
          "the CXX environment variable names '" + program + "', which is not an executable "
          "program (not found on PATH)";
      return toolchain;
    }
    toolchain.path = *path;
  } else {
    for (const char* candidate : {"c++", "g++", "clang++"}) {
      if (std::optional<std::string> path = find_on_path(candidate)) {
        toolchain.path = *path;
        break;
      }
    }
    if (toolchain.path.empty()) {
      toolchain.why_missing = "none of c++, g++, clang++ was found on PATH and CXX is not set";
      return toolchain;
    }
  }
  ProcessResult version = run_process({toolchain.path, "--version"});
  if (version.exit_code != 0) {
    toolchain.path.clear();
    toolchain.why_missing = "'" + program + " --version' failed with exit code " +
                            std::to_string(version.exit_code) + ": " + version.err;
    return toolchain;
  }
  toolchain.version = first_line(version.out);
  toolchain.found = true;
  return toolchain;
}

bool probe_openmp() {
  const Toolchain& cxx = host_cxx();
  if (!cxx.found) {
    return false;
  }
  std::error_code error;
  fs::path directory = fs::temp_directory_path(error);
  if (error) {
    return false;
  }
  fs::path source = directory / unique_file_name("parpy-openmp-probe-", ".cpp");
  fs::path library = directory / unique_file_name("parpy-openmp-probe-", ".so");
  try {
    atomic_write(source, "#include <omp.h>\n"
                         "extern \"C\" int parpy_openmp_probe(int n) {\n"
                         "  int sum = 0;\n"
                         "#pragma omp parallel for reduction(+ : sum)\n"
                         "  for (int i = 0; i < n; ++i) sum += i;\n"
                         "  return sum + omp_get_max_threads();\n"
                         "}\n");
  } catch (const std::exception&) {
    return false;
  }
  ProcessResult result = run_process({cxx.path, "-fopenmp", "-shared", "-fPIC", "-x", "c++",
                                      source.string(), "-o", library.string()});
  fs::remove(source, error);
  fs::remove(library, error);
  return result.exit_code == 0;
}

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

const Toolchain& host_cxx() {
  static const Toolchain toolchain = detect_host_cxx();
  return toolchain;
}

bool host_cxx_has_openmp() {
  static const bool has_openmp = probe_openmp();
  return has_openmp;
}

bool host_cxx_has_libmvec() {
  static const bool has_libmvec = [] {
#if defined(__x86_64__) && defined(__GLIBC__)
    const Toolchain& cxx = host_cxx();
    if (!cxx.found || cxx.version.find("clang") != std::string::npos) return false;
    ProcessResult found = run_process({cxx.path, "-print-file-name=libmvec.so"});
    std::string path = first_line(found.out);
    std::error_code error;
    return found.exit_code == 0 && fs::path(path).is_absolute() && fs::exists(path, error);
#else
    return false;
#endif
  }();
  return has_libmvec;
}

uint64_t build_count() { return compiler_invocations.load(); }

BuildResult build_cached_library(const LibraryBuild& build) {
  BuildResult result;
  std::vector<std::string> key_parts = {build.compiler, build.compiler_version};
  key_parts.insert(key_parts.end(), build.flags.begin(), build.flags.end());
  key_parts.insert(key_parts.end(), build.link_flags.begin(), build.link_flags.end());
  result.key = cache_key(build.code, key_parts);
  fs::path directory = cache_dir();
  result.library = directory / (result.key + build.library_suffix);
  std::error_code error;
  if (fs::exists(result.library, error)) {
    return result;
  }

  fs::path source = directory / unique_file_name(".tmp-" + result.key + "-", build.source_suffix);
  fs::path temporary_library = directory / unique_file_name(".tmp-" + result.key + "-", ".so");
  atomic_write(source, build.code);
  ProcessResult compiled = [&] {
    compiler_invocations.fetch_add(1);
    std::vector<std::string> argv = {build.compiler};
    argv.insert(argv.end(), build.flags.begin(), build.flags.end());
    argv.push_back(source.string());
    argv.insert(argv.end(), build.link_flags.begin(), build.link_flags.end());
    argv.insert(argv.end(), {"-o", temporary_library.string()});
    return run_process(argv);
  }();
  fs::remove(source, error);

  if (compiled.exit_code != 0) {
    fs::remove(temporary_library, error);
    std::string message = "Compilation of generated " + build.language +
                          " code failed with exit code " + std::to_string(compiled.exit_code) +
                          ":\nStandard out:\n" + compiled.out + "\nStandard error:\n" +
                          compiled.err;
    if (build.write_output) {
      // Kept in the working directory so the user can find and inspect it after the failure.
      try {
        fs::path kept = fs::current_path() / (random_hex() + build.source_suffix);
        atomic_write(kept, build.code);
        message += "\nThe generated code was written to " + kept.string();
      } catch (const std::exception& write_error) {
        message += std::string("\nWriting the generated code failed: ") + write_error.what();
      }
    }
    throw BuildError(message);
  }

  fs::rename(temporary_library, result.library, error);
  if (error) {
    std::error_code ignored;
    fs::remove(temporary_library, ignored);
    throw BuildError("Failed to move the built library to " + result.library.string() + ": " +
                     error.message());
  }
  result.built = true;
  return result;
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
  return build;
}

BuildResult build_cpu_library(const std::string& code, const BuildFlags& flags) {
  const Toolchain& cxx = host_cxx();
  if (!cxx.found) {
    throw BuildError("No C++ compiler found: " + cxx.why_missing);
  }
  // errno is never read: without it sqrt is an instruction and math calls may vectorise.
  std::vector<std::string> own = {"-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-shared",
                                  "-fPIC", "-std=c++17"};
  if (host_cxx_has_libmvec()) own.push_back("-DPARPY_LIBMVEC");
  own.insert(own.end(), {"-x", "c++"});
  LibraryBuild build = library_build(code, "C++", ".cpp", "-cpu.so", cxx.path, cxx.version, flags, own);
  if (host_cxx_has_libmvec()) build.link_flags = {"-x", "none", "-lmvec"};
  return build_cached_library(build);
}

} // namespace parpy::jit
