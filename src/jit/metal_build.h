// Building generated Metal programs (macOS): the host C++ with metal-cpp, by the host C++ compiler
// (Apple clang), linked against the Metal and Foundation frameworks. The MSL it embeds is compiled
// by Metal when the program first runs.
#pragma once
#include <string>

#include "jit/cached_build.h"

namespace parpy::jit {

// Builds `code` into a shared library; `metal_cpp` is the directory of the metal-cpp headers
// (METAL_CPP_HEADER_PATH).
BuildResult build_metal_library(const std::string& code, const BuildFlags& flags, const std::string& metal_cpp);

}  // namespace parpy::jit
