#include "jit/disk_cache.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>

#include <unistd.h>

namespace parpy::jit {

namespace fs = std::filesystem;

fs::path cache_dir() {
  fs::path dir;
  const char* configured = std::getenv("PARPY_CACHE_DIR");
  if (configured != nullptr && configured[0] != '\0') {
    dir = configured;
  } else {
    const char* home = std::getenv("HOME");
    // Without HOME, fall back to the temp directory rather than the working directory.
    fs::path base =
        (home != nullptr && home[0] != '\0') ? fs::path(home) : fs::temp_directory_path();
    dir = base / ".cache" / "parpy";
  }
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    throw std::runtime_error("Failed to create the parpy cache directory " + dir.string() + ": " +
                             error.message());
  }
  return dir;
}

std::string unique_file_name(std::string_view prefix, std::string_view suffix) {
  static std::atomic<uint64_t> counter{0};
  // The random part guards against pid reuse across containers sharing one cache directory.
  thread_local std::mt19937_64 generator{std::random_device{}()};
  char random_part[17];
  std::snprintf(random_part, sizeof(random_part), "%016llx",
                static_cast<unsigned long long>(generator()));
  std::string name(prefix);
  name += std::to_string(static_cast<long long>(getpid()));
  name += '-';
  name += std::to_string(counter.fetch_add(1));
  name += '-';
  name += random_part;
  name += suffix;
  return name;
}

void atomic_write(const fs::path& path, std::string_view data) {
  fs::path directory = path.parent_path();
  if (directory.empty()) {
    directory = ".";
  }
  // Built by appending: g++ 12 at -O3 warns falsely (-Wrestrict) on "literal" + std::string&&.
  std::string prefix = ".";
  prefix += path.filename().string();
  prefix += ".tmp-";
  fs::path temporary = directory / unique_file_name(prefix, "");
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw std::runtime_error("Failed to open " + temporary.string() + " for writing");
    }
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      fs::remove(temporary, ignored);
      throw std::runtime_error("Failed to write " + temporary.string());
    }
  }
  std::error_code error;
  fs::rename(temporary, path, error);
  if (error) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw std::runtime_error("Failed to rename " + temporary.string() + " to " + path.string() +
                             ": " + error.message());
  }
}

void clear_disk_cache() {
  fs::path dir = cache_dir();
  std::error_code error;
  fs::remove_all(dir, error);
  if (error) {
    throw std::runtime_error("Failed to clear the parpy cache directory " + dir.string() + ": " +
                             error.message());
  }
  cache_dir();
}

namespace {

template <typename Visit> void for_each_cached_file(Visit visit) {
  std::error_code error;
  fs::recursive_directory_iterator it(cache_dir(), error), end;
  // Another process may delete files while we walk; skip what vanishes instead of throwing.
  for (; !error && it != end; it.increment(error)) {
    std::error_code status_error;
    if (it->is_regular_file(status_error) && !status_error) {
      visit(*it);
    }
  }
}

} // namespace

uint64_t disk_cache_size_bytes() {
  uint64_t total = 0;
  for_each_cached_file([&](const fs::directory_entry& entry) {
    std::error_code error;
    uintmax_t size = entry.file_size(error);
    if (!error) {
      total += size;
    }
  });
  return total;
}

uint64_t disk_cache_file_count() {
  uint64_t count = 0;
  for_each_cached_file([&](const fs::directory_entry&) { ++count; });
  return count;
}

} // namespace parpy::jit
