#pragma once

#include <filesystem>
#include <memory>
#include <string>

namespace parpy::jit {

// A dlopen()ed shared library, closed when the last owner lets go.
class SharedLibrary {
public:
  // Loads with RTLD_NOW | RTLD_LOCAL; throws std::runtime_error("Failed to load <path>: ...").
  explicit SharedLibrary(const std::filesystem::path& path);
  ~SharedLibrary();
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;

  // The address of `name`; throws std::runtime_error with the dlerror() text if it is missing.
  void* symbol(const std::string& name) const;

  const std::filesystem::path& path() const { return path_; }

private:
  std::filesystem::path path_;
  void* handle_ = nullptr;
};

// The loaded library at `path`, shared by every caller while any of them holds it: one instance
// per canonical path.
std::shared_ptr<SharedLibrary> load_library(const std::filesystem::path& path);

} // namespace parpy::jit
