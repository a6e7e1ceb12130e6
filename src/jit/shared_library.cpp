#include "jit/shared_library.h"

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include <cerrno>
#include <cstring>

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <unistd.h>

#include "jit/cache_entry.h"
#include "jit/disk_cache.h"
#include "jit/sha256.h"

namespace parpy::jit {

namespace fs = std::filesystem;

namespace {

// dlerror() state is per thread but not per call; read it right after the failing call.
std::string last_dl_error() {
  const char* message = dlerror();
  return message != nullptr ? message : "unknown error";
}

// An OpenMP runtime's idle worker threads keep running its code after the parallel region, so
// unloading it together with the last generated library crashes them: keep it loaded for good.
void pin_openmp_runtime(void* handle) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0) {
    dlerror();
    return;
  }
  for (; map != nullptr; map = map->l_next) {
    std::string_view name = map->l_name != nullptr ? map->l_name : "";
    bool is_openmp_runtime = name.find("libgomp") != std::string_view::npos ||
                             name.find("libomp") != std::string_view::npos ||
                             name.find("libiomp") != std::string_view::npos;
    if (is_openmp_runtime &&
        dlopen(map->l_name, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) == nullptr) {
      dlerror();
    }
  }
}

std::atomic<int64_t> live_libraries{0};

} // namespace

int64_t loaded_library_count() { return live_libraries.load(); }

SharedLibrary::SharedLibrary(const fs::path& path) : path_(path) {
  handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    throw std::runtime_error("Failed to load " + path.string() + ": " + last_dl_error());
  }
  pin_openmp_runtime(handle_);
  ++live_libraries;
}

SharedLibrary::SharedLibrary(const fs::path& entry, std::string_view image) : path_(entry) {
  // A unique name, never reused: the dynamic loader takes a library whose name matches one it has
  // loaded for that one.
  auto copy_into = [&](const fs::path& dir) {
    fs::path copy = dir / unique_file_name(".tmp-load-", ".so");
    write_new_file(copy, image);
    return copy;
  };
  fs::path copy;
  try {
    copy = copy_into(entry.parent_path());
  } catch (const std::exception&) {
    copy = copy_into(cache_dir()); // the entry's directory was removed meanwhile
  }
  handle_ = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string error = handle_ == nullptr ? last_dl_error() : "";
  unlink(copy.c_str());
  if (handle_ == nullptr) {
    throw std::runtime_error("Failed to load " + entry.string() + ": " + error);
  }
  pin_openmp_runtime(handle_);
  ++live_libraries;
}

SharedLibrary::~SharedLibrary() {
  if (handle_ != nullptr) {
    dlclose(handle_);
    --live_libraries;
  }
}

void* SharedLibrary::symbol(const std::string& name) const {
  dlerror(); // clear a stale error so a null symbol value is not mistaken for a failure
  void* address = dlsym(handle_, name.c_str());
  if (address == nullptr) {
    const char* message = dlerror();
    if (message != nullptr) {
      throw std::runtime_error("Symbol '" + name + "' not found in " + path_.string() + ": " +
                               message);
    }
  }
  return address;
}

std::shared_ptr<SharedLibrary> load_library(const fs::path& entry,
                                            const std::shared_ptr<const std::string>& image) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<SharedLibrary>> loaded;

  std::shared_ptr<const std::string> bytes = image;
  if (bytes == nullptr) {
    std::string problem;
    std::optional<std::string> read = read_entry(entry, &problem);
    if (!read) {
      throw std::runtime_error("Failed to load " + entry.string() + ": the cache entry is " +
                               problem);
    }
    bytes = std::make_shared<const std::string>(std::move(*read));
  }
  // Keyed by the bytes too: an entry rebuilt in place (its headers changed) is another library,
  // while the old one may still be loaded for the calls that use it.
  std::string key = fs::absolute(entry).lexically_normal().string() + '\0' + sha256_hex(*bytes);
  std::lock_guard lock(mutex);
  auto it = loaded.find(key);
  if (it != loaded.end()) {
    if (std::shared_ptr<SharedLibrary> library = it->second.lock()) {
      return library;
    }
  }
  auto library = std::make_shared<SharedLibrary>(entry, *bytes);
  loaded[key] = library;
  // Drop entries whose libraries were released, so the map does not grow without bound.
  for (auto other = loaded.begin(); other != loaded.end();) {
    other = other->second.expired() ? loaded.erase(other) : std::next(other);
  }
  return library;
}

std::shared_ptr<SharedLibrary> load_library(const fs::path& entry) {
  return load_library(entry, nullptr);
}

} // namespace parpy::jit
