#include "jit/metal_build.h"

#include "jit/host_compiler.h"

namespace parpy::jit {

BuildResult build_metal_library(const std::string& code, const BuildFlags& flags, const std::string& metal_cpp) {
  const Toolchain& cxx = host_cxx();
  if (!cxx.found) throw BuildError("No C++ compiler found: " + cxx.why_missing);
  // metal-cpp's private implementation (defined by parpy_metal.h) is part of every library, which
  // macOS loads with two-level names: libraries do not see each other's.
  std::vector<std::string> own = {"-O2", "-shared", "-fPIC", "-std=c++17", "-I" + metal_cpp, "-x", "c++"};
  BuildFlags tracked = flags;
  tracked.untracked_dirs.push_back(metal_cpp);  // a toolkit's headers, not the user's
  LibraryBuild build = library_build(code, "Metal host C++", ".cpp", "-metal.so", cxx.path, cxx.version, tracked, own);
  build.link_flags = {"-x", "none", "-framework", "Metal", "-framework", "Foundation"};
  return build_cached_library(build);
}

}  // namespace parpy::jit
