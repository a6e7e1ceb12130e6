#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "jit/cached_build.h"

namespace parpy::jit {

// A compiler used to build generated code; `why_missing` explains a `found == false`.
struct Toolchain {
  bool found = false;
  std::string path;
  std::string version;
  std::string why_missing;
};

// The host C++ compiler: the first word of $CXX if set, else the first of c++, g++, clang++ on
// PATH. Detected once per process.
const Toolchain& host_cxx();

// Whether host_cxx() accepts -fopenmp and links an OpenMP program. Probed once per process.
bool host_cxx_has_openmp();
// Empty when host_cxx_has_openmp(), else what failed (the compiler's output).
const std::string& host_cxx_openmp_problem();

// Whether host_cxx() is GCC on x86-64 and finds glibc's vector math library (libmvec.so), whose
// SIMD exp/log/sin/cos/pow let loops calling them vectorise. Probed once per process.
bool host_cxx_has_libmvec();

// Builds `code` as C++17 with OpenMP into a shared library with the host compiler. The user's
// flags go before the source, except the linker's inputs among them (-l<name>, -Wl,...,
// -Xlinker <arg>, .a/.so/.o files), which go after it, in their order. When the build fails and
// the compiler cannot build OpenMP code at all, the error says so and how to fix it.
//
// With flags.precompiled_header, the header is first precompiled (a cache entry
// <key>-cpu.pch, keyed like a library on the compiler, its version, the flags and the header
// hash among them) and its verified bytes are copied into the build directory, where the compiler
// finds them through -include. When the header cannot be precompiled (not GCC, or its build fails)
// the library is built without; when GCC finds the copy unusable it reads the header itself.
BuildResult build_cpu_library(const std::string& code, const BuildFlags& flags);

// Whether host_cxx() is GCC (not Clang or another compiler that defines __GNUC__). Probed once.
bool host_cxx_is_gcc();

// Forgets the precompiled headers this process has read or built (the next build reads or builds
// them again); clear_cache calls it.
void forget_precompiled_headers();

} // namespace parpy::jit
