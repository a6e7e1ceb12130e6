#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace parpy::jit {

// A cache directory that other users could write: the message says what is wrong and the fix.
class CacheError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The on-disk artifact cache: $PARPY_CACHE_DIR if set and non-empty (made absolute, a relative one
// against the current directory), else $HOME/.cache/parpy, else $XDG_CACHE_HOME/parpy, else a
// private directory made for this process (never a fixed path in a shared /tmp). The environment is re-read on every call. The directory is created (mode
// 0700) if missing, and must be a real directory (no symbolic link) owned by this user, writable
// by neither its group nor others, inside a directory that no other user can rename it out of;
// else CacheError. If this process cannot write it, a private temporary directory (removed at
// exit) takes its place, with a warning once; read_only_cache_dir() then still names it for
// lookups. The first use in a process sweeps the temporaries of builds whose processes died.
std::filesystem::path cache_dir();

// The configured cache directory when cache_dir() found that this process cannot write it (and
// gave the private one instead), provided it exists and passes the same checks as a writable one
// (else CacheError): builds look up their entries there after cache_dir(), so that a cache filled
// in advance on read-only storage is used. nullopt otherwise.
std::optional<std::filesystem::path> read_only_cache_dir();

// From now on cache_dir() gives a private temporary directory in place of `dir` (which refused a
// new file: `why`), and warns once.
void use_private_cache_instead_of(const std::filesystem::path& dir, const std::string& why);

// A name that no other thread or process will pick: "<prefix><pid>-<counter>-<random><suffix>".
std::string unique_file_name(std::string_view prefix, std::string_view suffix);

// Writes `data` to a unique temporary file next to `path`, flushes it to disk and renames it onto
// `path`, so a concurrent reader (or a crash) sees either the old file or the complete new one.
void atomic_write(const std::filesystem::path& path, std::string_view data);

// Removes the finished entries in cache_dir() and the temporaries of dead builds. Builds in flight,
// in this process or another, are not disturbed: they publish their entries when done.
void clear_disk_cache();

// Total size in bytes and number of regular files under cache_dir() (recursively).
uint64_t disk_cache_size_bytes();
uint64_t disk_cache_file_count();

// Names in a cache directory that are not entries: builds in flight, their locks, and partly
// written files.
bool is_temporary_name(std::string_view name);
inline constexpr const char* build_directory_prefix = ".tmp-build-";
inline constexpr const char* lock_file_prefix = ".lock-";

// Removes from `dir` the build directories of dead builds (their lock is free and they are more
// than a minute old), the lock files no one holds, and other temporaries more than an hour old.
void sweep_stale_temporaries(const std::filesystem::path& dir);

// Warnings of the cache (a directory it cannot write). They go to stderr unless the embedding
// program installs its own handler (the Python module: warnings.warn). The handler is never called
// with a lock of the cache held.
void set_warning_handler(void (*handler)(const std::string& message));
void warn(const std::string& message);

} // namespace parpy::jit
