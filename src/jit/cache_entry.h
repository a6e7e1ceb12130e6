#pragma once

// The entries of the disk cache, how they are built and published, and who may build them.
//
// An entry is a file <key><suffix> in cache_dir(): the artifact's bytes, the user's headers the
// build read (one line "<sha256 of the file> <absolute path>" each; dependencies.h), and a trailer
// line
//   "\nparpy-cache-entry v2 <name> sha256=<hex> size=<artifact bytes> deps=<header lines' bytes>\n"
// naming the entry it was built for, with the SHA-256 of the artifact and the header lines
// together. Entries are read only through read_entry, which checks the owner, the mode, the name
// and the hash, so nothing damaged, planted or misplaced is ever used; what it refuses (an entry
// of an older format too) is rebuilt and replaced.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "jit/dependencies.h"

namespace parpy::jit {

// `payload` and `dependencies` followed by their trailer as the entry `name`.
std::string seal_entry(std::string_view name, std::string_view payload,
                       const std::vector<Dependency>& dependencies = {});

// The verified payload of the entry at `path` (and in *dependencies the headers it was built
// from), or nullopt with the reason in *problem: missing, a symbolic link or not a regular file,
// owned by another user, writable by group or others, or bytes that do not match their trailer
// (damaged, truncated, another entry's, or of an older format).
std::optional<std::string> read_entry(const std::filesystem::path& path,
                                      std::string* problem = nullptr,
                                      std::vector<Dependency>* dependencies = nullptr);

// The cache directory (or a build's own) vanished meanwhile (someone removed it): build again.
class CacheVanished : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The cache directory refuses new files (read-only, or not this user's to write).
class CacheNotWritable : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// A private directory "<parent>/.tmp-build-<unique>" (mode 0700) for one build, locked (flock)
// while it exists, so that sweeps and clear_disk_cache() leave it alone; removed on destruction.
// Throws CacheNotWritable or CacheVanished when it cannot be made.
class BuildDirectory {
public:
  explicit BuildDirectory(const std::filesystem::path& parent);
  ~BuildDirectory();
  BuildDirectory(const BuildDirectory&) = delete;
  BuildDirectory& operator=(const BuildDirectory&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Whether it is still there (nobody removed it from under the build).
  bool exists() const;

private:
  std::filesystem::path path_;
  int fd_ = -1;
};

// Writes a new file (mode 0600) in a build directory; CacheVanished if the directory is gone.
void write_new_file(const std::filesystem::path& path, std::string_view data);

// Publishes `payload` (built from `dependencies`) as the entry `name` of `cache`: sealed into a
// file of `build`, flushed to disk, renamed into place, and the directory flushed. Readers see the
// old entry or the new one.
void publish_entry(const std::filesystem::path& cache, const std::string& name,
                   std::string_view payload, const std::vector<Dependency>& dependencies,
                   const BuildDirectory& build);

// Held by one builder of the entry `name` at a time: one thread in this process (the others wait
// here), and one process (an flock on cache/.lock-<name>, which the kernel drops when a process
// dies; the holder removes the file when done). An interrupt since `epoch` ends the wait with
// Interrupted. After `max_wait_seconds` (0: never) of waiting for another process, or when the
// lock file cannot be used, the build goes on without it: two builders of one entry only
// duplicate work.
class EntryLock {
public:
  EntryLock(const std::filesystem::path& cache, const std::string& name, uint64_t epoch,
            double max_wait_seconds);
  ~EntryLock();
  EntryLock(const EntryLock&) = delete;
  EntryLock& operator=(const EntryLock&) = delete;

  struct Flight;

private:
  std::string key_;
  std::shared_ptr<Flight> flight_;
  std::filesystem::path file_;
  int fd_ = -1;
};

} // namespace parpy::jit
