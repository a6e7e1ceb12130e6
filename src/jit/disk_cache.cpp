#include "jit/disk_cache.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace parpy::jit {

namespace fs = std::filesystem;

namespace {

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "0%03o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Someone else could put files into `dir` (or swap it for another directory): refuse it, saying
// how to fix it.
void check_trusted(const fs::path& dir) {
  const std::string where = "The parpy cache directory " + dir.string();
  const std::string risk = ": another user could plant code there that parpy would run.";
  struct stat info;
  if (lstat(dir.c_str(), &info) != 0) {
    throw CacheError("Failed to inspect the parpy cache directory " + dir.string() + ": " +
                     std::strerror(errno));
  }
  if (S_ISLNK(info.st_mode)) {
    throw CacheError(where + " is a symbolic link, which parpy does not follow: whoever can change "
                     "the link chooses what parpy loads. Set PARPY_CACHE_DIR to the directory it "
                     "points to, or replace the link with a directory (mkdir -m 700).");
  }
  if (!S_ISDIR(info.st_mode)) {
    throw CacheError(where + " is not a directory. Remove it, or set PARPY_CACHE_DIR to another "
                             "path.");
  }
  if (info.st_uid != geteuid()) {
    throw CacheError(where + " belongs to user id " + std::to_string(info.st_uid) +
                     ", not to you (user id " + std::to_string(geteuid()) + ")" + risk +
                     " Set PARPY_CACHE_DIR to a directory of your own, or remove " + dir.string() +
                     " so that parpy creates it afresh.");
  }
  if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    throw CacheError(where + " is writable by its group or by others (mode " +
                     mode_text(info.st_mode) + ")" + risk + " Run `chmod 700 " + dir.string() +
                     "`, or set PARPY_CACHE_DIR to a private directory.");
  }
  // Whoever can write the directory above can rename this one away and put another in its place.
  fs::path parent = fs::absolute(dir).parent_path();
  struct stat above;
  if (stat(parent.c_str(), &above) == 0) {
    bool others_write = (above.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
                        (above.st_mode & S_ISVTX) == 0;
    bool foreign = above.st_uid != geteuid() && above.st_uid != 0;
    if (others_write || foreign) {
      throw CacheError(where + " is inside " + parent.string() + ", which " +
                       (foreign ? "belongs to user id " + std::to_string(above.st_uid)
                                : "is writable by its group or by others (mode " +
                                      mode_text(above.st_mode) + ", no sticky bit)") +
                       ": another user could replace the cache directory with one of their own. "
                       "Set PARPY_CACHE_DIR to a directory inside one that only you (or root) "
                       "can write.");
    }
  }
}

bool is_permission_error(int error) {
  return error == EACCES || error == EPERM || error == EROFS;
}

// Creates `dir` (mode 0700; the directories above it as usual). False with the reason in *why if
// this user may not create it; throws for other failures.
bool create_directory(const fs::path& dir, std::string* why) {
  struct stat info;
  if (lstat(dir.c_str(), &info) == 0) {
    return true;
  }
  fs::path parent = fs::absolute(dir).parent_path();
  std::error_code error;
  fs::create_directories(parent, error);
  if (error && is_permission_error(error.value())) {
    *why = "creating " + parent.string() + " failed: " + error.message();
    return false;
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    if (is_permission_error(errno)) {
      *why = std::strerror(errno);
      return false;
    }
    throw std::runtime_error("Failed to create the parpy cache directory " + dir.string() + ": " +
                             std::strerror(errno));
  }
  return true;
}

std::optional<fs::path> configured_dir() {
  auto variable = [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    if (value == nullptr || value[0] == '\0') {
      return std::nullopt;
    }
    return std::string(value);
  };
  // Made absolute where it is read: the compiler may run in a build directory of its own, where a
  // relative path to the cache's files would name nothing.
  if (std::optional<std::string> dir = variable("PARPY_CACHE_DIR")) {
    return fs::absolute(fs::path(*dir));
  }
  if (std::optional<std::string> home = variable("HOME")) {
    return fs::absolute(fs::path(*home) / ".cache" / "parpy");
  }
  std::optional<std::string> xdg = variable("XDG_CACHE_HOME");
  if (xdg && fs::path(*xdg).is_absolute()) {
    return fs::path(*xdg) / "parpy";
  }
  return std::nullopt;
}

std::mutex state_mutex;
std::set<fs::path> unwritable_dirs; // configured directories replaced by the private one
std::set<fs::path> swept_dirs;
std::optional<fs::path> private_dir;
pid_t private_dir_owner = 0;

void remove_private_dir() {
  std::lock_guard lock(state_mutex);
  // A forked child inherits this handler but not the directory.
  if (private_dir && private_dir_owner == getpid()) {
    std::error_code ignored;
    fs::remove_all(*private_dir, ignored);
    private_dir.reset();
  }
}

// This process's private cache directory (mkdtemp: mode 0700, a name no one can predict).
fs::path private_cache_dir() {
  std::lock_guard lock(state_mutex);
  if (private_dir && private_dir_owner == getpid()) {
    struct stat info;
    if (lstat(private_dir->c_str(), &info) == 0) {
      return *private_dir;
    }
  }
  const char* tmpdir = std::getenv("TMPDIR");
  fs::path base = (tmpdir != nullptr && fs::path(tmpdir).is_absolute()) ? fs::path(tmpdir)
                                                                         : fs::path("/tmp");
  std::string pattern = (base / "parpy-cache-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("Failed to create a private parpy cache directory in " +
                             base.string() + ": " + std::strerror(errno) +
                             ". Set PARPY_CACHE_DIR to a writable directory.");
  }
  static std::once_flag registered;
  std::call_once(registered, [] { std::atexit(remove_private_dir); });
  private_dir = fs::path(pattern);
  private_dir_owner = getpid();
  return *private_dir;
}

bool should_sweep(const fs::path& dir) {
  std::lock_guard lock(state_mutex);
  return swept_dirs.insert(dir).second;
}

std::atomic<void (*)(const std::string&)> warning_handler{nullptr};

} // namespace

void set_warning_handler(void (*handler)(const std::string&)) { warning_handler.store(handler); }

void warn(const std::string& message) {
  if (void (*handler)(const std::string&) = warning_handler.load()) {
    handler(message);
  } else {
    std::fprintf(stderr, "parpy: warning: %s\n", message.c_str());
  }
}

void use_private_cache_instead_of(const fs::path& dir, const std::string& why) {
  bool first;
  {
    std::lock_guard lock(state_mutex);
    first = unwritable_dirs.insert(dir).second;
  }
  if (first) {
    warn("The parpy cache directory " + dir.string() + " cannot be written (" + why +
         "), so this process uses the libraries it finds there but builds new ones into a private "
         "temporary cache instead (" + private_cache_dir().string() +
         ", removed at exit). Make the directory writable, or set PARPY_CACHE_DIR to one that is.");
  }
}

std::optional<fs::path> read_only_cache_dir() {
  std::optional<fs::path> configured = configured_dir();
  if (!configured) {
    return std::nullopt;
  }
  {
    std::lock_guard lock(state_mutex);
    if (unwritable_dirs.count(*configured) == 0) {
      return std::nullopt;
    }
  }
  struct stat info;
  if (lstat(configured->c_str(), &info) != 0) {
    return std::nullopt; // it could not be created
  }
  // Read-only or not, parpy runs what it loads from there.
  check_trusted(*configured);
  return configured;
}

fs::path cache_dir() {
  std::optional<fs::path> configured = configured_dir();
  if (!configured) {
    return private_cache_dir();
  }
  {
    std::lock_guard lock(state_mutex);
    if (unwritable_dirs.count(*configured) != 0) {
      configured.reset();
    }
  }
  if (!configured) {
    return private_cache_dir();
  }
  std::string why;
  if (create_directory(*configured, &why)) {
    check_trusted(*configured);
    if (access(configured->c_str(), W_OK | X_OK) == 0) {
      if (should_sweep(*configured)) {
        sweep_stale_temporaries(*configured);
      }
      return *configured;
    }
    why = std::strerror(errno);
  }
  use_private_cache_instead_of(*configured, why);
  return private_cache_dir();
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
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error("Failed to open " + temporary.string() + " for writing: " +
                             std::strerror(errno));
  }
  bool written = true;
  for (size_t done = 0; written && done < data.size();) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    written = n > 0;
    done += written ? static_cast<size_t>(n) : 0;
  }
  written = written && fsync(fd) == 0;
  int saved_errno = errno;
  close(fd);
  std::error_code ignored;
  if (!written) {
    fs::remove(temporary, ignored);
    throw std::runtime_error("Failed to write " + temporary.string() + ": " +
                             std::strerror(saved_errno));
  }
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    saved_errno = errno;
    fs::remove(temporary, ignored);
    throw std::runtime_error("Failed to rename " + temporary.string() + " to " + path.string() +
                             ": " + std::strerror(saved_errno));
  }
  int dir_fd = open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
}

bool is_temporary_name(std::string_view name) {
  return name.rfind(".tmp-", 0) == 0 || name.rfind(lock_file_prefix, 0) == 0 ||
         (name.rfind('.', 0) == 0 && name.find(".tmp-") != std::string_view::npos);
}

void sweep_stale_temporaries(const fs::path& dir) {
  const auto now = std::chrono::system_clock::now();
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    std::string name = it->path().filename().string();
    if (!is_temporary_name(name)) {
      continue;
    }
    struct stat info;
    if (lstat(it->path().c_str(), &info) != 0) {
      continue;
    }
    auto age = now - std::chrono::system_clock::from_time_t(info.st_mtime);
    std::error_code ignored;
    if (S_ISREG(info.st_mode) && name.rfind(lock_file_prefix, 0) == 0) {
      // Left by a builder that died. Builders check, once they hold a lock, that its file is
      // still in place, so removing one that is about to be taken is harmless.
      int fd = open(it->path().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        unlink(it->path().c_str());
      }
      close(fd);
    } else if (S_ISDIR(info.st_mode) && name.rfind(build_directory_prefix, 0) == 0) {
      // A live build holds the lock of its directory; the age covers the moment between creating
      // the directory and locking it.
      if (age < std::chrono::minutes(1)) {
        continue;
      }
      int fd = open(it->path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        fs::remove_all(it->path(), ignored);
      }
      close(fd);
    } else if (age > std::chrono::hours(1)) {
      fs::remove_all(it->path(), ignored);
    }
  }
}

void clear_disk_cache() {
  fs::path dir = cache_dir();
  std::error_code error;
  std::string failure;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    std::string name = it->path().filename().string();
    if (is_temporary_name(name)) {
      continue; // a build in flight, or swept below once its builder is gone
    }
    std::error_code removal;
    fs::remove_all(it->path(), removal);
    if (removal && removal != std::errc::no_such_file_or_directory && failure.empty()) {
      failure = it->path().string() + ": " + removal.message();
    }
  }
  if (error && error != std::errc::no_such_file_or_directory && failure.empty()) {
    failure = dir.string() + ": " + error.message();
  }
  sweep_stale_temporaries(dir);
  if (!failure.empty()) {
    throw std::runtime_error("Failed to clear the parpy cache directory " + dir.string() +
                             ": " + failure);
  }
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
