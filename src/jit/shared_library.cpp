#include "jit/shared_library.h"

#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include <dlfcn.h>
#include <link.h>

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

} // namespace

SharedLibrary::SharedLibrary(const fs::path& path) : path_(path) {
  handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    throw std::runtime_error("Failed to load " + path.string() + ": " + last_dl_error());
  }
  pin_openmp_runtime(handle_);
}

SharedLibrary::~SharedLibrary() {
  if (handle_ != nullptr) {
    dlclose(handle_);
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

std::shared_ptr<SharedLibrary> load_library(const fs::path& path) {
  static std::mutex mutex;
  static std::map<fs::path, std::weak_ptr<SharedLibrary>> loaded;

  std::error_code error;
  fs::path canonical = fs::canonical(path, error);
  if (error) {
    throw std::runtime_error("Failed to load " + path.string() + ": " + error.message());
  }
  std::lock_guard lock(mutex);
  auto it = loaded.find(canonical);
  if (it != loaded.end()) {
    if (std::shared_ptr<SharedLibrary> library = it->second.lock()) {
      return library;
    }
  }
  auto library = std::make_shared<SharedLibrary>(canonical);
  loaded[canonical] = library;
  // Drop entries whose libraries were released, so the map does not grow without bound.
  for (auto entry = loaded.begin(); entry != loaded.end();) {
    entry = entry->second.expired() ? loaded.erase(entry) : std::next(entry);
  }
  return library;
}

} // namespace parpy::jit
