#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jit/cached_build.h"

// NVRTC, CUDA's runtime compiler, builds the kernels of a program without a toolchain: the
// library is found at run time and loaded with dlopen (neither it nor nvrtc.h is needed to build
// parpy), and the device part of a program (CudaProgram::device_code) is compiled in this process
// to an image for cuModuleLoadData, kept in the disk cache.
namespace parpy::cuda {

struct NvrtcInfo {
  bool found = false;
  std::string path;    // the library file loaded
  std::string source;  // where it came from, e.g. "pip wheel nvidia-cuda-nvrtc in <site-packages>"
  int major = 0, minor = 0;  // nvrtcVersion, e.g. 13 and 0
  // The GPU architectures NVRTC makes cubins for (nvrtcGetSupportedArchs), as compute capability
  // times ten, ascending: 75, 80, ..., 90, 100, ...
  std::vector<int> archs;
  // A directory with cuda_fp16.h (NVRTC has no built-in copy), given with -I to every compile;
  // empty when none was found, which only programs with float16 data need.
  std::string fp16_include_dir;
  std::string fp16_source;  // where that directory came from, or why there is none
  std::string why_missing;  // set when !found: what was tried, and why each failed
};

// The directories of the running Python's sys.path, where the pip wheels of NVRTC and the CUDA
// runtime headers are installed (the Python package passes them when it is imported). Takes effect
// only before the first nvrtc().
void set_python_paths(const std::vector<std::string>& dirs);

// The NVRTC library, found once per process (thread-safe; never throws). The search stops at the
// first library that loads, has every function used here and compiles a test kernel:
//   $PARPY_NVRTC (a path to the library; when set, nothing else is tried),
//   the pip wheels in set_python_paths(): nvidia/cu<N>/lib/libnvrtc.so.<N> (nvidia-cuda-nvrtc
//     N.x, newest first), then nvidia/cuda_nvrtc/lib/libnvrtc.so.12 (nvidia-cuda-nvrtc-cu12),
//   the CUDA toolkit: $CUDA_HOME, $CUDA_PATH, /usr/local/cuda (lib64/libnvrtc.so[.13|.12]),
//   the system library path: libnvrtc.so, libnvrtc.so.13, libnvrtc.so.12.
const NvrtcInfo& nvrtc();

// The same search run again now over `python_dirs` instead of the paths set before the first
// use, leaving the library in use as it is (for tests of the search order).
NvrtcInfo search_nvrtc(const std::vector<std::string>& python_dirs);

// For diagnostics: "NVRTC 13.0 at <path> (<source>); ..." or "not found: <why>".
std::string describe_nvrtc();

// What nvrtc_compile makes: a cubin for the device's own architecture where NVRTC supports it,
// else PTX for the newest architecture NVRTC supports below it (the driver compiles it on loading).
enum class ImageKind { Cubin, Ptx };
const char* image_kind_name(ImageKind kind);  // "cubin", "ptx"

struct NvrtcTarget {
  ImageKind kind = ImageKind::Cubin;
  int arch = 0;  // compute capability times ten
  // The -arch value: "sm_90" for a cubin, "compute_90" for PTX.
  std::string arch_name() const;
};

// The image kind and architecture for a device of compute capability major.minor with nvrtc().
// Throws jit::BuildError when NVRTC is missing or supports no architecture at or below it.
NvrtcTarget nvrtc_target(int major, int minor);

struct NvrtcImage {
  NvrtcTarget target;
  // The cache entry: payload holds the image (PTX with its terminating NUL, as cuModuleLoadData
  // takes it); built is false when it came from the disk cache.
  jit::BuildResult built;
  const std::string& bytes() const { return *built.payload; }
};

// Compiles `code` (a device part: kernels and device functions only) with NVRTC for a device of
// compute capability major.minor (see nvrtc_target), with the options
//   -std=c++17 -arch=<arch> <flags.extra_flags> -I<flags.include_dirs>... -I<fp16 dir>
//   [--use_fast_math]
// flags.include_dirs must hold parpy's include directory (build_flags does); lib_dirs are unused.
// The image is kept in the disk cache (cache_dir()/<key>-nvrtc.cubin or .ptx) under a key over
// the code, the image kind and architecture, NVRTC's version, every option and the parpy version,
// with the trust checks of every entry; a later compile of the same, in any process, reads it
// without calling NVRTC. Throws jit::BuildError with NVRTC's log when the compilation fails
// ("Compilation of generated CUDA code with NVRTC ... failed: ..."). NVRTC runs in this process:
// neither PARPY_COMPILE_TIMEOUT nor an interrupt stops it (it takes well under a second).
NvrtcImage nvrtc_compile(const std::string& code, int major, int minor,
                         const jit::BuildFlags& flags, bool fast_math = false);

// Programs NVRTC compiled for nvrtc_compile in this process (a disk cache hit adds none).
uint64_t nvrtc_compile_count();

} // namespace parpy::cuda
