#include "jit/host_compiler.h"

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
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
  try {
    BuildDirectory work(directory);
    fs::path source = work.path() / "probe.cpp";
    write_new_file(source, "#include <omp.h>\n"
                           "extern \"C\" int parpy_openmp_probe(int n) {\n"
                           "  int sum = 0;\n"
                           "#pragma omp parallel for reduction(+ : sum)\n"
                           "  for (int i = 0; i < n; ++i) sum += i;\n"
                           "  return sum + omp_get_max_threads();\n"
                           "}\n");
    ProcessResult result =
        run_process({cxx.path, "-fopenmp", "-shared", "-fPIC", "-x", "c++", source.string(), "-o",
                     (work.path() / "probe.so").string()});
    return result.exit_code == 0;
  } catch (const std::exception&) {
    return false;
  }
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

bool host_cxx_is_gcc() {
  static const bool is_gcc = [] {
    const Toolchain& cxx = host_cxx();
    if (!cxx.found) return false;
    try {
      // The predefined macros: Clang and Intel's compilers define __GNUC__ too.
      ProcessResult macros = run_process({cxx.path, "-dM", "-E", "-x", "c++", "/dev/null"});
      const std::string& m = macros.out;
      return macros.exit_code == 0 && m.find("#define __GNUC__ ") != std::string::npos &&
             m.find("__clang__") == std::string::npos && m.find("__INTEL") == std::string::npos;
    } catch (const std::exception&) {
      return false;
    }
  }();
  return is_gcc;
}

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

// Compiles `build` in a private directory of `cache` and publishes the result as `name`.
std::string compile_entry(const LibraryBuild& build, const fs::path& cache, const std::string& name,
                          double timeout, uint64_t epoch) {
  BuildDirectory work(cache);
  fs::path source = work.path() / ("source" + build.source_suffix);
  fs::path output = work.path() / ("output" + build.library_suffix);
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
  std::string bytes = read_output(output);
  if (bytes.empty()) {
    throw BuildError("The " + build.language + " compiler reported success but wrote nothing to " +
                     output.string());
  }
  publish_entry(cache, name, bytes, work);
  return bytes;
}

} // namespace

BuildResult build_cached_library(const LibraryBuild& build) {
  BuildResult result;
  std::vector<std::string> key_parts = {build.compiler, build.compiler_version};
  key_parts.insert(key_parts.end(), build.flags.begin(), build.flags.end());
  key_parts.insert(key_parts.end(), build.link_flags.begin(), build.link_flags.end());
  for (const auto& [file, input] : build.inputs) {
    key_parts.push_back("input " + file + " " + input.library.filename().string());
  }
  result.key = cache_key(build.code, key_parts);
  const std::string name = result.key + build.library_suffix;
  const double timeout = compile_timeout_seconds();
  const uint64_t epoch = interrupt_epoch();
  auto found = [&](const fs::path& entry) {
    std::optional<std::string> payload = read_entry(entry);
    if (payload) {
      result.payload = std::make_shared<const std::string>(std::move(*payload));
    }
    return payload.has_value();
  };
  for (int attempt = 1;; ++attempt) {
    fs::path directory = cache_dir();
    result.library = directory / name;
    if (found(result.library)) {
      return result;
    }
    try {
      // Waits for another builder of this entry no longer than that one's compiler may run.
      EntryLock lock(directory, name, epoch, timeout > 0 ? timeout + 60 : 0);
      if (found(result.library)) {
        return result;
      }
      result.payload = std::make_shared<const std::string>(
          compile_entry(build, directory, name, timeout, epoch));
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

namespace {

// Precompiled headers read or built by this process, by what their key covers; nullopt: the
// compiler failed to precompile that header with those flags (not tried again).
std::mutex pch_mutex;
std::map<std::string, std::optional<BuildResult>> pch_memo;

// `header` precompiled with the compiler and flags of `library` less those of its linking and
// language, or nullopt when it cannot be. Read (and verified) from the disk cache once per process:
// it is large and every library build reads it.
std::optional<BuildResult> precompiled_header(const LibraryBuild& library, const std::string& header) {
  if (!host_cxx_is_gcc()) return std::nullopt;
  LibraryBuild pch;
  pch.code = "#include \"" + header + "\"\n";
  pch.language = "C++ (the precompiled support header)";
  pch.source_suffix = ".h";
  pch.library_suffix = "-cpu.pch";
  pch.compiler = library.compiler;
  pch.compiler_version = library.compiler_version;
  for (size_t i = 0; i < library.flags.size(); ++i) {
    if (library.flags[i] == "-shared") continue;  // with it GCC links instead
    if (library.flags[i] == "-x") {
      ++i;
      continue;
    }
    pch.flags.push_back(library.flags[i]);
  }
  pch.flags.insert(pch.flags.end(), {"-x", "c++-header"});
  std::string memo_key = pch.compiler + '\0' + pch.compiler_version + '\0' + pch.code;
  for (const std::string& flag : pch.flags) memo_key += '\0' + flag;
  {
    std::lock_guard<std::mutex> lock(pch_mutex);
    auto found = pch_memo.find(memo_key);
    if (found != pch_memo.end()) return found->second;
  }
  std::optional<BuildResult> result;
  try {
    result = build_cached_library(pch);
  } catch (const BuildError&) {
    // The library build includes the header itself (and reports any error in it).
  }
  std::lock_guard<std::mutex> lock(pch_mutex);
  pch_memo.emplace(memo_key, result);
  return result;
}

} // namespace

void forget_precompiled_headers() {
  std::lock_guard<std::mutex> lock(pch_mutex);
  pch_memo.clear();
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
  if (!flags.precompiled_header.empty()) {
    if (std::optional<BuildResult> pch = precompiled_header(build, flags.precompiled_header)) {
      // GCC looks for the file of -include, and for its .gch first, in the working directory (the
      // build directory, which holds the copy), then along the include path (the header itself).
      build.flags.insert(build.flags.end(), {"-include", flags.precompiled_header});
      build.inputs = {{flags.precompiled_header + ".gch", *pch}};
    }
  }
  return build_cached_library(build);
}

} // namespace parpy::jit
