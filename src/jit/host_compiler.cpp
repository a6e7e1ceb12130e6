#include "jit/host_compiler.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <system_error>

#include "jit/cache_entry.h"
#include "jit/disk_cache.h"
#include "jit/process.h"

namespace parpy::jit {

namespace fs = std::filesystem;

namespace {

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

// Empty when host_cxx() builds an OpenMP program, else what went wrong.
std::string probe_openmp() {
  const Toolchain& cxx = host_cxx();
  if (!cxx.found) {
    return "no C++ compiler: " + cxx.why_missing;
  }
  std::error_code error;
  fs::path directory = fs::temp_directory_path(error);
  if (error) {
    return "no temporary directory to build a test program in: " + error.message();
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
    if (result.exit_code == 0) return "";
    return "'" + cxx.path + " -fopenmp' failed with exit code " +
           std::to_string(result.exit_code) + " on a small OpenMP program:\n" + result.out +
           result.err;
  } catch (const std::exception& e) {
    return std::string("building a small OpenMP program failed: ") + e.what();
  }
}

} // namespace

const Toolchain& host_cxx() {
  static const Toolchain toolchain = detect_host_cxx();
  return toolchain;
}

const std::string& host_cxx_openmp_problem() {
  static const std::string problem = probe_openmp();
  return problem;
}

bool host_cxx_has_openmp() { return host_cxx_openmp_problem().empty(); }

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

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Moves the linker's inputs among the user's flags (-l<name>, -Wl,..., -Xlinker <arg>, and
// library or object files) into *link, in their order: the linker reads them in order, and drops
// a library that nothing before it needs (GNU ld's --as-needed, the default of Debian's and
// Ubuntu's GCC), so they must come after the generated source.
void split_link_inputs(std::vector<std::string>& flags, std::vector<std::string>* link) {
  std::vector<std::string> compile;
  for (size_t i = 0; i < flags.size(); ++i) {
    const std::string& f = flags[i];
    bool two_words = (f == "-l" || f == "-Xlinker") && i + 1 < flags.size();
    bool file = !f.empty() && f[0] != '-' &&
                (ends_with(f, ".a") || ends_with(f, ".so") || ends_with(f, ".o") ||
                 f.find(".so.") != std::string::npos);
    if (two_words) {
      link->push_back(f);
      link->push_back(flags[++i]);
    } else if (f.rfind("-l", 0) == 0 || f.rfind("-Wl,", 0) == 0 || file) {
      link->push_back(f);
    } else {
      compile.push_back(f);
    }
  }
  flags = std::move(compile);
}

} // namespace

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
  BuildFlags compile_flags = flags;
  std::vector<std::string> link_inputs;
  split_link_inputs(compile_flags.extra_flags, &link_inputs);
  LibraryBuild build =
      library_build(code, "C++", ".cpp", "-cpu.so", cxx.path, cxx.version, compile_flags, own);
  if (host_cxx_has_libmvec()) link_inputs.push_back("-lmvec");
  if (!link_inputs.empty()) {
    // "-x none": files after it are not C++ sources (the -x c++ before the generated one).
    build.link_flags = {"-x", "none"};
    build.link_flags.insert(build.link_flags.end(), link_inputs.begin(), link_inputs.end());
  }
  if (!flags.precompiled_header.empty()) {
    if (std::optional<BuildResult> pch = precompiled_header(build, flags.precompiled_header)) {
      // GCC looks for the file of -include, and for its .gch first, in the working directory (the
      // build directory, which holds the copy), then along the include path (the header itself).
      build.flags.insert(build.flags.end(), {"-include", flags.precompiled_header});
      build.inputs = {{flags.precompiled_header + ".gch", *pch}};
    }
  }
  try {
    return build_cached_library(build);
  } catch (const BuildError& error) {
    // Probed only now: a process that finds its libraries in the disk cache compiles nothing.
    if (host_cxx_has_openmp()) throw;
    throw BuildError("The C++ compiler " + cxx.path + " (" + cxx.version + ") cannot build " +
                     "OpenMP code, which the Cpu backend generates (it always passes -fopenmp): " +
                     host_cxx_openmp_problem() + "\nInstall the compiler's OpenMP runtime " +
                     "(libgomp for GCC, libomp for Clang: on Debian or Ubuntu `apt install " +
                     "libgomp1` or `apt install libomp-dev`), or set CXX to a compiler that has " +
                     "it, such as g++.\n\nThe failed build: " + error.what());
  }
}

} // namespace parpy::jit
