// Points PARPY_CACHE_DIR at a fresh directory under /tmp for one test, then removes it and restores
// the previous value.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

#include "jit/disk_cache.h"

namespace parpy::testing {

class ScopedCacheDir {
 public:
  ScopedCacheDir() : dir_(std::filesystem::path("/tmp") / jit::unique_file_name("parpy-test-cache-", "")) {
    const char* previous = std::getenv("PARPY_CACHE_DIR");
    if (previous != nullptr) previous_ = previous;
    setenv("PARPY_CACHE_DIR", dir_.c_str(), 1);
  }
  ~ScopedCacheDir() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    if (previous_)
      setenv("PARPY_CACHE_DIR", previous_->c_str(), 1);
    else
      unsetenv("PARPY_CACHE_DIR");
  }
  ScopedCacheDir(const ScopedCacheDir&) = delete;
  ScopedCacheDir& operator=(const ScopedCacheDir&) = delete;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::optional<std::string> previous_;
};

}  // namespace parpy::testing
