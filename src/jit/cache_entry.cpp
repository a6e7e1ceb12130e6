#include "jit/cache_entry.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jit/disk_cache.h"
#include "jit/process.h"
#include "jit/sha256.h"

namespace parpy::jit {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view trailer_magic = "\nparpy-cache-entry v2 ";
// Far more than any library parpy builds; a bound on what read_entry reads into memory.
constexpr off_t max_entry_size = off_t(1) << 32;

bool write_all(int fd, std::string_view data) {
  for (size_t done = 0; done < data.size();) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

void fsync_directory(const fs::path& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

[[noreturn]] void throw_file_error(const std::string& what, const fs::path& path, int error) {
  std::string message = what + " " + path.string() + ": " + std::strerror(error);
  if (error == ENOENT) {
    throw CacheVanished(message);
  }
  if (error == EACCES || error == EPERM || error == EROFS) {
    throw CacheNotWritable(message);
  }
  throw std::runtime_error(message);
}

} // namespace

std::string seal_entry(std::string_view name, std::string_view payload,
                       const std::vector<Dependency>& dependencies) {
  std::string sealed(payload);
  for (const Dependency& d : dependencies) {
    sealed += d.sha256;
    sealed += ' ';
    sealed += d.path;
    sealed += '\n';
  }
  const size_t deps_size = sealed.size() - payload.size();
  const std::string hash = sha256_hex(sealed);
  sealed += trailer_magic;
  sealed += name;
  sealed += " sha256=";
  sealed += hash;
  sealed += " size=";
  sealed += std::to_string(payload.size());
  sealed += " deps=";
  sealed += std::to_string(deps_size);
  sealed += '\n';
  return sealed;
}

std::optional<std::string> read_entry(const fs::path& path, std::string* problem,
                                      std::vector<Dependency>* dependencies) {
  auto refuse = [&](const std::string& why) -> std::optional<std::string> {
    if (problem != nullptr) {
      *problem = why;
    }
    return std::nullopt;
  };
  // No symbolic links, and no blocking on a FIFO planted in place of a file.
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    return refuse(errno == ENOENT ? "missing"
                  : errno == ELOOP ? "a symbolic link"
                                   : std::string(std::strerror(errno)));
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat info;
  if (fstat(fd, &info) != 0) {
    return refuse(std::strerror(errno));
  }
  if (!S_ISREG(info.st_mode)) {
    return refuse("not a regular file");
  }
  if (info.st_uid != geteuid()) {
    return refuse("owned by user id " + std::to_string(info.st_uid));
  }
  if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return refuse("writable by its group or by others");
  }
  if (info.st_size > max_entry_size) {
    return refuse("too large");
  }
  std::string bytes(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = pread(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return refuse("shorter than its size");
    }
    done += static_cast<size_t>(n);
  }

  // The trailer: the last line, "parpy-cache-entry v2 <name> sha256=<hex> size=<n> deps=<m>".
  size_t at = bytes.rfind(trailer_magic);
  if (bytes.empty() || bytes.back() != '\n' || at == std::string::npos ||
      bytes.size() - at > 512) {
    return refuse("no parpy trailer (damaged, not made by parpy, or by an older version)");
  }
  std::istringstream fields(bytes.substr(at + trailer_magic.size()));
  std::string name, hash_field, size_field, deps_field, extra;
  fields >> name >> hash_field >> size_field >> deps_field;
  if (!fields || (fields >> extra) || hash_field.rfind("sha256=", 0) != 0 ||
      size_field.rfind("size=", 0) != 0 || deps_field.rfind("deps=", 0) != 0) {
    return refuse("a malformed trailer");
  }
  if (name != path.filename().string()) {
    return refuse("the entry " + name + ", not " + path.filename().string());
  }
  // size + deps == at, without trusting either number.
  size_t size = 0;
  bool sizes_match = false;
  try {
    size = std::stoull(size_field.substr(5));
    sizes_match = size <= at && "size=" + std::to_string(size) == size_field &&
                  deps_field == "deps=" + std::to_string(at - size);
  } catch (const std::exception&) {
  }
  if (!sizes_match) {
    return refuse("truncated or extended");
  }
  bytes.resize(at);
  if (hash_field.compare(7, std::string::npos, sha256_hex(bytes)) != 0) {
    return refuse("damaged (its SHA-256 does not match)");
  }
  if (dependencies != nullptr) {
    dependencies->clear();
    std::istringstream lines(bytes.substr(size));
    std::string line;
    while (std::getline(lines, line)) {
      size_t space = line.find(' ');
      if (space == std::string::npos) return refuse("a malformed list of headers");
      dependencies->push_back({line.substr(space + 1), line.substr(0, space)});
    }
  }
  bytes.resize(size);
  return bytes;
}

BuildDirectory::BuildDirectory(const fs::path& parent)
    : path_(parent / unique_file_name(build_directory_prefix, "")) {
  if (mkdir(path_.c_str(), 0700) != 0) {
    throw_file_error("Failed to create the build directory", path_, errno);
  }
  // Where the file system has no locks, sweeps (which need the lock) leave the directory alone.
  fd_ = open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd_ >= 0) {
    flock(fd_, LOCK_EX | LOCK_NB);
  }
}

BuildDirectory::~BuildDirectory() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
  if (fd_ >= 0) {
    close(fd_);
  }
}

bool BuildDirectory::exists() const {
  struct stat info;
  return lstat(path_.c_str(), &info) == 0;
}

void write_new_file(const fs::path& path, std::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw_file_error("Failed to create", path, errno);
  }
  bool written = write_all(fd, data);
  int error = errno;
  close(fd);
  if (!written) {
    throw_file_error("Failed to write", path, error);
  }
}

void publish_entry(const fs::path& cache, const std::string& name, std::string_view payload,
                   const std::vector<Dependency>& dependencies, const BuildDirectory& build) {
  fs::path temporary = build.path() / ("entry-" + name);
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw_file_error("Failed to create", temporary, errno);
  }
  // Flushed before the rename, so a crash never leaves a named entry with missing contents.
  bool written = write_all(fd, seal_entry(name, payload, dependencies)) && fsync(fd) == 0;
  int error = errno;
  close(fd);
  if (!written) {
    throw_file_error("Failed to write", temporary, error);
  }
  fs::path entry = cache / name;
  int renamed = rename(temporary.c_str(), entry.c_str());
  if (renamed != 0 && (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)) {
    // A directory where the entry belongs: not an entry, so out of the way.
    std::error_code ignored;
    fs::remove_all(entry, ignored);
    renamed = rename(temporary.c_str(), entry.c_str());
  }
  if (renamed != 0) {
    throw_file_error("Failed to move the built library to", entry, errno);
  }
  fsync_directory(cache);
}

// The builders of one entry in this process: the one holding `mutex` builds, the others wait.
struct EntryLock::Flight {
  std::timed_mutex mutex;
  int users = 0;
};

namespace {

std::mutex flights_mutex;
std::map<std::string, std::shared_ptr<EntryLock::Flight>> flights;

void leave_flight(const std::string& key, std::shared_ptr<EntryLock::Flight>& flight) {
  std::lock_guard lock(flights_mutex);
  if (--flight->users == 0) {
    flights.erase(key);
  }
  flight.reset();
}

constexpr auto check_interval = std::chrono::milliseconds(100);

} // namespace

EntryLock::EntryLock(const fs::path& cache, const std::string& name, uint64_t epoch,
                     double max_wait_seconds)
    : key_((cache / name).string()) {
  {
    std::lock_guard lock(flights_mutex);
    std::shared_ptr<Flight>& flight = flights[key_];
    if (!flight) {
      flight = std::make_shared<Flight>();
    }
    ++flight->users;
    flight_ = flight;
  }
  while (!flight_->mutex.try_lock_for(check_interval)) {
    if (interrupted_since(epoch)) {
      leave_flight(key_, flight_);
      throw Interrupted();
    }
  }

  // The lock file may be removed by its previous holder (or a sweep) while this one waits on it:
  // then the lock held is not the one at the path, and the wait starts again on the new file.
  file_ = cache / (lock_file_prefix + name);
  const auto start = std::chrono::steady_clock::now();
  auto next_check = start + check_interval;
  auto pause = std::chrono::milliseconds(2);
  for (int attempt = 0; attempt < 100; ++attempt) {
    fd_ = open(file_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      return;
    }
    while (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      int error = errno;
      auto now = std::chrono::steady_clock::now();
      bool waited_enough = max_wait_seconds > 0 &&
                           now - start > std::chrono::duration<double>(max_wait_seconds);
      if ((error != EWOULDBLOCK && error != EINTR) || waited_enough) {
        close(fd_);
        fd_ = -1;
        return;
      }
      if (now >= next_check) {
        next_check = now + check_interval;
        if (interrupted_since(epoch)) {
          close(fd_);
          fd_ = -1;
          flight_->mutex.unlock();
          leave_flight(key_, flight_);
          throw Interrupted();
        }
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
    struct stat held, current;
    if (fstat(fd_, &held) == 0 && lstat(file_.c_str(), &current) == 0 &&
        held.st_dev == current.st_dev && held.st_ino == current.st_ino) {
      return;
    }
    close(fd_);
    fd_ = -1;
  }
}

EntryLock::~EntryLock() {
  if (fd_ >= 0) {
    unlink(file_.c_str()); // while still held, so no one else holds the file removed here
    close(fd_);            // releases the flock
  }
  flight_->mutex.unlock();
  leave_flight(key_, flight_);
}

} // namespace parpy::jit
