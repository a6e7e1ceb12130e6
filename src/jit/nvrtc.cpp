#include "jit/nvrtc.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>

#include <dlfcn.h>

#include "jit/cache_entry.h"
#include "jit/occupancy.h"

namespace parpy::cuda {

namespace fs = std::filesystem;

namespace {

// The few NVRTC types and functions used here, declared so that no nvrtc.h is needed (ABI per
// nvrtc.h, stable since CUDA 11.2, which added nvrtcGetSupportedArchs).
using nvrtcResult = int;
using nvrtcProgram = struct _nvrtcProgram*;
constexpr nvrtcResult NVRTC_SUCCESS = 0;

struct NvrtcApi {
  const char* (*nvrtcGetErrorString)(nvrtcResult) = nullptr;
  nvrtcResult (*nvrtcVersion)(int*, int*) = nullptr;
  nvrtcResult (*nvrtcGetNumSupportedArchs)(int*) = nullptr;
  nvrtcResult (*nvrtcGetSupportedArchs)(int*) = nullptr;
  nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram*, const char*, const char*, int, const char* const*,
                                    const char* const*) = nullptr;
  nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram*) = nullptr;
  nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram, int, const char* const*) = nullptr;
  nvrtcResult (*nvrtcGetPTXSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*nvrtcGetPTX)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram, char*) = nullptr;
};

struct Nvrtc {
  NvrtcApi api;
  NvrtcInfo info;
};

std::mutex& python_paths_mutex() {
  static std::mutex m;
  return m;
}

std::vector<std::string>& python_paths() {
  static std::vector<std::string> dirs;
  return dirs;
}

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

bool is_file(const fs::path& p) {
  std::error_code error;
  return fs::is_regular_file(p, error);
}

std::string error_name(const NvrtcApi& api, nvrtcResult result) {
  const char* text = api.nvrtcGetErrorString != nullptr ? api.nvrtcGetErrorString(result) : nullptr;
  return text != nullptr ? text : "NVRTC error " + std::to_string(result);
}

// A program of NVRTC, destroyed with the object.
class Program {
public:
  Program(const NvrtcApi& api, const std::string& code, const char* name) : api_(api) {
    result_ = api.nvrtcCreateProgram(&program_, code.c_str(), name, 0, nullptr, nullptr);
    if (result_ != NVRTC_SUCCESS) program_ = nullptr;
  }
  ~Program() {
    if (program_ != nullptr) api_.nvrtcDestroyProgram(&program_);
  }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  // NVRTC_SUCCESS, or why the program could not be created or compiled.
  nvrtcResult compile(const std::vector<std::string>& options) {
    if (program_ == nullptr) return result_;
    std::vector<const char*> argv;
    for (const std::string& option : options) argv.push_back(option.c_str());
    return api_.nvrtcCompileProgram(program_, static_cast<int>(argv.size()), argv.data());
  }

  std::string log() const {
    size_t size = 0;
    if (program_ == nullptr || api_.nvrtcGetProgramLogSize(program_, &size) != NVRTC_SUCCESS ||
        size == 0)
      return "";
    std::string text(size, '\0');
    if (api_.nvrtcGetProgramLog(program_, text.data()) != NVRTC_SUCCESS) return "";
    while (!text.empty() && (text.back() == '\0' || text.back() == '\n')) text.pop_back();
    return text;
  }

  // The compiled image (PTX with its terminating NUL); empty with *why set on failure.
  std::string image(ImageKind kind, std::string* why) const {
    auto get_size = kind == ImageKind::Cubin ? api_.nvrtcGetCUBINSize : api_.nvrtcGetPTXSize;
    auto get = kind == ImageKind::Cubin ? api_.nvrtcGetCUBIN : api_.nvrtcGetPTX;
    size_t size = 0;
    nvrtcResult r = get_size(program_, &size);
    std::string bytes(r == NVRTC_SUCCESS ? size : 0, '\0');
    if (r == NVRTC_SUCCESS && size > 0) r = get(program_, bytes.data());
    if (r != NVRTC_SUCCESS || bytes.empty()) {
      *why = r != NVRTC_SUCCESS ? error_name(api_, r) : "an empty image";
      return "";
    }
    return bytes;
  }

private:
  const NvrtcApi& api_;
  nvrtcProgram program_ = nullptr;
  nvrtcResult result_ = NVRTC_SUCCESS;
};

template <typename Fn> bool bind(void* handle, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  return fn != nullptr;
}

// Loads the library `file` and checks it (every function, its version and architectures, and a
// test compile, which needs libnvrtc-builtins next to it). On success fills `nvrtc` and returns
// true; otherwise returns false with the reason in *why.
bool try_load(const std::string& file, Nvrtc& nvrtc, std::string* why) {
  // Never unloaded: NVRTC stays for the life of the process, like the CUDA driver.
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* error = dlerror();
    *why = error != nullptr ? error : "dlopen failed";
    return false;
  }
  NvrtcApi api;
  std::string missing;
  auto need = [&](const char* name, auto& fn) {
    if (!bind(handle, name, fn)) missing += missing.empty() ? name : std::string(", ") + name;
  };
  need("nvrtcGetErrorString", api.nvrtcGetErrorString);
  need("nvrtcVersion", api.nvrtcVersion);
  need("nvrtcGetNumSupportedArchs", api.nvrtcGetNumSupportedArchs);
  need("nvrtcGetSupportedArchs", api.nvrtcGetSupportedArchs);
  need("nvrtcCreateProgram", api.nvrtcCreateProgram);
  need("nvrtcDestroyProgram", api.nvrtcDestroyProgram);
  need("nvrtcCompileProgram", api.nvrtcCompileProgram);
  need("nvrtcGetPTXSize", api.nvrtcGetPTXSize);
  need("nvrtcGetPTX", api.nvrtcGetPTX);
  need("nvrtcGetCUBINSize", api.nvrtcGetCUBINSize);
  need("nvrtcGetCUBIN", api.nvrtcGetCUBIN);
  need("nvrtcGetProgramLogSize", api.nvrtcGetProgramLogSize);
  need("nvrtcGetProgramLog", api.nvrtcGetProgramLog);
  if (!missing.empty()) {
    *why = "it lacks " + missing + " (NVRTC older than CUDA 11.2?)";
    return false;
  }
  NvrtcInfo info;
  int count = 0;
  nvrtcResult r = api.nvrtcVersion(&info.major, &info.minor);
  if (r == NVRTC_SUCCESS) r = api.nvrtcGetNumSupportedArchs(&count);
  if (r == NVRTC_SUCCESS && count > 0) {
    info.archs.resize(count);
    r = api.nvrtcGetSupportedArchs(info.archs.data());
  }
  if (r != NVRTC_SUCCESS || info.archs.empty()) {
    *why = "asking it for its version and architectures failed: " +
           (r != NVRTC_SUCCESS ? error_name(api, r) : "it supports none");
    return false;
  }
  std::sort(info.archs.begin(), info.archs.end());
  // The file the library was actually loaded from (a bare name resolves on the library path).
  info.path = file;
  Dl_info where;
  if (dladdr(reinterpret_cast<void*>(api.nvrtcVersion), &where) != 0 && where.dli_fname != nullptr)
    info.path = where.dli_fname;
  // The built-in headers live in libnvrtc-builtins, which NVRTC loads by name on its first
  // compile, finding it next to itself ($ORIGIN). Loaded here first from that directory, it is
  // found even where that lookup fails (a dlopen interposed, as by AddressSanitizer).
  fs::path builtins = fs::path(info.path).parent_path() /
                      ("libnvrtc-builtins.so." + std::to_string(info.major) + "." +
                       std::to_string(info.minor));
  if (is_file(builtins)) dlopen(builtins.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  Program probe(api, "extern \"C\" __global__ void parpy_probe() {}\n", "parpy_probe.cu");
  nvrtcResult compiled = probe.compile({"-arch=compute_" + std::to_string(info.archs.front())});
  if (compiled != NVRTC_SUCCESS) {
    *why = "it failed to compile an empty kernel (" + error_name(api, compiled) +
           "; is libnvrtc-builtins.so of the same version next to it?)" +
           (probe.log().empty() ? "" : ": " + probe.log());
    return false;
  }
  info.found = true;
  nvrtc.api = api;
  nvrtc.info = info;
  return true;
}

// The pip wheels' directories nvidia/cu<N> (nvidia-cuda-nvrtc N.x, nvidia-cuda-runtime N.x) under
// `dir`, newest N first.
std::vector<std::pair<int, fs::path>> cuda_wheel_dirs(const fs::path& dir) {
  std::vector<std::pair<int, fs::path>> out;
  std::error_code error;
  fs::directory_iterator it(dir / "nvidia", error);
  for (; !error && it != fs::directory_iterator(); it.increment(error)) {
    std::string name = it->path().filename().string();
    if (name.size() > 2 && name.size() <= 4 && name.rfind("cu", 0) == 0 &&
        name.find_first_not_of("0123456789", 2) == std::string::npos)
      out.emplace_back(std::stoi(name.substr(2)), it->path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

// Where a library was looked for: its file and a description of where that is.
struct Candidate {
  std::string file, source;
  bool must_exist = true;  // false: a bare name for the system library path
};

std::vector<Candidate> candidates(const std::vector<std::string>& paths) {
  std::vector<Candidate> out;
  for (const std::string& dir : paths)
    for (const auto& [version, wheel] : cuda_wheel_dirs(dir))
      out.push_back({(wheel / "lib" / ("libnvrtc.so." + std::to_string(version))).string(),
                     "pip wheel nvidia-cuda-nvrtc in " + dir});
  for (const std::string& dir : paths)
    out.push_back({(fs::path(dir) / "nvidia/cuda_nvrtc/lib/libnvrtc.so.12").string(),
                   "pip wheel nvidia-cuda-nvrtc-cu12 in " + dir});
  std::vector<std::string> roots;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (std::optional<std::string> root = env(var)) roots.push_back(*root);
  roots.push_back("/usr/local/cuda");
  for (const std::string& root : roots)
    for (const char* name : {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"})
      out.push_back({(fs::path(root) / "lib64" / name).string(), "CUDA toolkit at " + root});
  for (const char* name : {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"})
    out.push_back({name, "system library path", false});
  return out;
}

// A directory with cuda_fp16.h for NVRTC, in this order: the toolkit NVRTC came from, the pip
// wheels of the CUDA runtime headers (nvidia-cuda-runtime; the one of NVRTC's major version
// first), the CUDA toolkit.
void find_fp16_header(NvrtcInfo& info, const std::vector<std::string>& paths) {
  std::vector<std::pair<fs::path, std::string>> dirs;
  const std::string toolkit = "CUDA toolkit at ";
  if (info.source.rfind(toolkit, 0) == 0)
    dirs.emplace_back(fs::path(info.source.substr(toolkit.size())) / "include", info.source);
  std::vector<std::pair<fs::path, std::string>> wheels, others;
  for (const std::string& dir : paths) {
    for (const auto& [version, wheel] : cuda_wheel_dirs(dir))
      (version == info.major ? wheels : others)
          .emplace_back(wheel / "include", "pip wheel nvidia-cuda-runtime in " + dir);
    (info.major == 12 ? wheels : others)
        .emplace_back(fs::path(dir) / "nvidia/cuda_runtime/include",
                      "pip wheel nvidia-cuda-runtime-cu12 in " + dir);
  }
  dirs.insert(dirs.end(), wheels.begin(), wheels.end());
  dirs.insert(dirs.end(), others.begin(), others.end());
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (std::optional<std::string> root = env(var))
      dirs.emplace_back(fs::path(*root) / "include", "CUDA toolkit at " + *root);
  dirs.emplace_back("/usr/local/cuda/include", "CUDA toolkit at /usr/local/cuda");
  for (const auto& [dir, source] : dirs) {
    if (is_file(dir / "cuda_fp16.h") && is_file(dir / "cuda_fp16.hpp")) {
      info.fp16_include_dir = dir.lexically_normal().string();
      info.fp16_source = source;
      return;
    }
  }
  info.fp16_source = "cuda_fp16.h was not found in the pip wheels nvidia-cuda-runtime or "
                     "nvidia-cuda-runtime-cu12, in $CUDA_HOME/include, $CUDA_PATH/include or "
                     "/usr/local/cuda/include";
}

// The search, over the Python path directories `paths` (where pip puts wheels) and the rest.
Nvrtc detect(const std::vector<std::string>& paths) {
  Nvrtc nvrtc;
  NvrtcInfo& info = nvrtc.info;
  if (std::optional<std::string> file = env("PARPY_NVRTC")) {
    std::string why;
    if (!try_load(*file, nvrtc, &why)) {
      info.why_missing = "PARPY_NVRTC names '" + *file + "', which is not a usable NVRTC library: " +
                         why + ". Point it at libnvrtc.so, or unset it to search the pip wheels, "
                         "the CUDA toolkit and the system library path";
      return nvrtc;
    }
    info.source = "$PARPY_NVRTC";
  } else {
    std::string tried;
    for (const Candidate& c : candidates(paths)) {
      if (c.must_exist && !is_file(c.file)) continue;
      std::string why;
      if (try_load(c.file, nvrtc, &why)) {
        info.source = c.source;
        break;
      }
      // A bare name that is not on the library path is no finding worth reporting.
      if (c.must_exist) tried += "; " + c.file + ": " + why;
    }
    if (!info.found) {
      info.why_missing =
          "no NVRTC library (libnvrtc.so) was found in the pip wheels nvidia-cuda-nvrtc or "
          "nvidia-cuda-nvrtc-cu12 of this Python, in $CUDA_HOME, $CUDA_PATH or /usr/local/cuda "
          "(lib64), or on the system library path" +
          (tried.empty() ? std::string() : " (found but unusable" + tried + ")") +
          ". Install one with `pip install nvidia-cuda-nvrtc`, or set PARPY_NVRTC to the library";
      return nvrtc;
    }
  }
  find_fp16_header(info, paths);
  return nvrtc;
}

const Nvrtc& state() {
  // Made once (thread-safe static initialisation) and kept: the library is never unloaded.
  static const Nvrtc* loaded = [] {
    auto* nvrtc = new Nvrtc();
    std::vector<std::string> paths;
    {
      std::lock_guard<std::mutex> lock(python_paths_mutex());
      paths = python_paths();
    }
    try {
      *nvrtc = detect(paths);
    } catch (const std::exception& e) {
      *nvrtc = Nvrtc();
      nvrtc->info.why_missing = std::string("the search for NVRTC failed: ") + e.what();
    }
    return nvrtc;
  }();
  return *loaded;
}

std::atomic<uint64_t> compiles{0};

// The cubin of `code` compiled again with the next occupancy step for each kernel just over one
// (jit/occupancy.h), from the first compile's ptxas `log`; kernels that then spill more than 16
// bytes keep their first form. Empty when no kernel changes.
std::string next_occupancy_step(const NvrtcApi& api, const std::string& code, const std::string& log,
                                const std::vector<std::string>& options, int sm) {
  const std::map<std::string, KernelUsage> usage = parse_ptxas_usage(log);
  std::map<std::string, int> steps;
  for (const auto& [name, threads] : launch_bounds(code)) {
    auto u = usage.find(name);
    if (u == usage.end()) continue;
    if (int blocks = occupancy_step(u->second.registers, threads, sm)) steps[name] = blocks;
  }
  constexpr int kMaxSpillBytes = 16;
  while (!steps.empty()) {
    Program program(api, with_min_blocks(code, steps), "parpy_kernels.cu");
    if (program.compile(options) != NVRTC_SUCCESS) return "";
    const std::map<std::string, KernelUsage> stepped = parse_ptxas_usage(program.log());
    bool spilled = false;
    for (auto it = steps.begin(); it != steps.end();) {
      auto u = stepped.find(it->first);
      if (u == stepped.end() || u->second.spill_bytes > kMaxSpillBytes) {
        it = steps.erase(it);
        spilled = true;
      } else {
        ++it;
      }
    }
    if (!spilled) {
      std::string why;
      return program.image(ImageKind::Cubin, &why);
    }
  }
  return "";
}

std::string version_text(const NvrtcInfo& info) {
  return std::to_string(info.major) + "." + std::to_string(info.minor);
}

std::string arch_list(const std::vector<int>& archs) {
  std::string out;
  for (int a : archs) out += (out.empty() ? "sm_" : ", sm_") + std::to_string(a);
  return out;
}

} // namespace

void set_python_paths(const std::vector<std::string>& dirs) {
  std::lock_guard<std::mutex> lock(python_paths_mutex());
  python_paths() = dirs;
}

const NvrtcInfo& nvrtc() { return state().info; }

NvrtcInfo search_nvrtc(const std::vector<std::string>& python_dirs) {
  try {
    return detect(python_dirs).info;
  } catch (const std::exception& e) {
    NvrtcInfo info;
    info.why_missing = std::string("the search for NVRTC failed: ") + e.what();
    return info;
  }
}

std::string describe_nvrtc() {
  const NvrtcInfo& info = nvrtc();
  if (!info.found) return "not found: " + info.why_missing;
  return "NVRTC " + version_text(info) + " at " + info.path + " (" + info.source +
         "); cubins for " + arch_list(info.archs) + "; cuda_fp16.h: " +
         (info.fp16_include_dir.empty() ? "none (" + info.fp16_source + ")"
                                        : info.fp16_include_dir + " (" + info.fp16_source + ")");
}

const char* image_kind_name(ImageKind kind) { return kind == ImageKind::Cubin ? "cubin" : "ptx"; }

std::string NvrtcTarget::arch_name() const {
  return (kind == ImageKind::Cubin ? "sm_" : "compute_") + std::to_string(arch);
}

NvrtcTarget nvrtc_target(int major, int minor) {
  const NvrtcInfo& info = nvrtc();
  if (!info.found) throw jit::BuildError("NVRTC is not available: " + info.why_missing);
  const int device = major * 10 + minor;
  NvrtcTarget target;
  if (std::find(info.archs.begin(), info.archs.end(), device) != info.archs.end()) {
    target.arch = device;
    return target;
  }
  // The newest architecture below the device's: PTX, which the driver compiles for the device.
  for (int arch : info.archs)
    if (arch <= device) target.arch = arch;
  if (target.arch == 0)
    throw jit::BuildError("NVRTC " + version_text(info) + " (" + info.path +
                          ") supports no GPU architecture at or below the device's sm_" +
                          std::to_string(device) + " (it supports " + arch_list(info.archs) +
                          "). Use an NVRTC of an older CUDA version (PARPY_NVRTC), or nvcc.");
  target.kind = ImageKind::Ptx;
  return target;
}

NvrtcImage nvrtc_compile(const std::string& code, int major, int minor,
                         const jit::BuildFlags& flags, bool fast_math) {
  NvrtcImage out;
  out.target = nvrtc_target(major, minor);
  const Nvrtc& nv = state();
  const NvrtcInfo& info = nv.info;
  const std::string arch = out.target.arch_name();
  std::vector<std::string> options = {"-std=c++17", "-arch=" + arch};
  options.insert(options.end(), flags.extra_flags.begin(), flags.extra_flags.end());
  for (const std::string& dir : flags.include_dirs) options.push_back("-I" + dir);
  if (!info.fp16_include_dir.empty()) options.push_back("-I" + info.fp16_include_dir);
  // Last: parpy's stand-ins for the C and C++ standard headers device code may include
  // (<cstdint>, <cmath>, ...), which NVRTC lacks; a user's own include directories come first.
  for (const std::string& dir : flags.untracked_dirs) options.push_back("-I" + dir + "/rtc");
  if (fast_math) options.push_back("--use_fast_math");

  // ptxas reports each kernel's registers (-v) for the occupancy step (jit/occupancy.h).
  std::vector<std::string> with_usage = options;
  if (out.target.kind == ImageKind::Cubin) with_usage.push_back("-Xptxas=-v");
  std::vector<std::string> key_parts = {"NVRTC " + version_text(info),
                                        image_kind_name(out.target.kind), "occupancy steps"};
  key_parts.insert(key_parts.end(), options.begin(), options.end());
  const ImageKind kind = out.target.kind;
  const std::string suffix = kind == ImageKind::Cubin ? "-nvrtc.cubin" : "-nvrtc.ptx";
  out.built = jit::build_cached_entry(
      code, key_parts, suffix, [&](const jit::BuildDirectory&, double, uint64_t, std::vector<jit::Dependency>&) {
        compiles.fetch_add(1);
        Program program(nv.api, code, "parpy_kernels.cu");
        nvrtcResult result = program.compile(with_usage);
        if (result != NVRTC_SUCCESS) {
          std::string log = program.log();
          std::string message = "Compilation of generated CUDA code with NVRTC " +
                                version_text(info) + " (" + info.path + ") for " + arch +
                                " failed (" + error_name(nv.api, result) + "):\n" + log;
          if (info.fp16_include_dir.empty() && log.find("\"cuda_fp16.h\"") != std::string::npos)
            message += "\nPrograms with float16 data need cuda_fp16.h, which NVRTC does not have "
                       "built in: " + info.fp16_source +
                       ". Install it with `pip install nvidia-cuda-runtime` (or "
                       "nvidia-cuda-runtime-cu12 for NVRTC 12), or set CUDA_HOME to a CUDA toolkit.";
          else if (log.find("cannot open source file") != std::string::npos)
            message += "\nNVRTC has no C++ standard library and no CUDA runtime headers: parpy gives "
                       "it <cstdint>, <cstddef>, <climits>, <cfloat> and <cmath> (and their .h forms) "
                       "only, so a header an external includes must do without the others here, or "
                       "install nvcc (the CUDA toolkit), which parpy then uses for programs whose "
                       "externals include headers.";
          throw jit::BuildError(
              jit::with_kept_source(message, code, ".cu", flags.write_output));
        }
        std::string why;
        std::string image = program.image(kind, &why);
        if (image.empty())
          throw jit::BuildError("NVRTC " + version_text(info) + " compiled the generated CUDA code " +
                                "for " + arch + " but gave no " + image_kind_name(kind) + ": " + why);
        if (kind == ImageKind::Cubin) {
          std::string stepped = next_occupancy_step(nv.api, code, program.log(), with_usage, out.target.arch);
          if (!stepped.empty()) return stepped;
        }
        return image;
      });
  return out;
}

uint64_t nvrtc_compile_count() { return compiles.load(); }

} // namespace parpy::cuda
