#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace parpy::jit {

// A dlopen()ed shared library, closed when the last owner lets go.
class SharedLibrary {
public:
  // Loads with RTLD_NOW | RTLD_LOCAL; throws std::runtime_error("Failed to load <path>: ...").
  explicit SharedLibrary(const std::filesystem::path& path);
  // Loads exactly `image` (the verified bytes of the cache entry `entry`, named in messages):
  // dlopen needs a file, so through a private copy in the entry's directory, removed once loaded.
  SharedLibrary(const std::filesystem::path& entry, std::string_view image);
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

// The number of generated libraries loaded in this process now (for tests of their release).
int64_t loaded_library_count();

// The library of the cache entry `entry` whose verified bytes are `image` (BuildResult::payload),
// shared by every caller while any of them holds it: one instance per entry path and contents.
std::shared_ptr<SharedLibrary> load_library(const std::filesystem::path& entry,
                                            const std::shared_ptr<const std::string>& image);

// The same for an entry read and verified here (read_entry); throws std::runtime_error("Failed to
// load <path>: ...") if it is missing, damaged or not this user's.
std::shared_ptr<SharedLibrary> load_library(const std::filesystem::path& entry);

} // namespace parpy::jit
