#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace parpy::jit {

// The on-disk artifact cache: $PARPY_CACHE_DIR if set and non-empty, else $HOME/.cache/parpy.
// The environment is re-read on every call and the directory is created if missing.
std::filesystem::path cache_dir();

// A name that no other thread or process will pick: "<prefix><pid>-<counter>-<random><suffix>".
std::string unique_file_name(std::string_view prefix, std::string_view suffix);

// Writes `data` to a unique temporary file next to `path` and renames it onto `path`, so a
// concurrent reader sees either the old file or the complete new one, never half a file.
void atomic_write(const std::filesystem::path& path, std::string_view data);

// Removes everything under cache_dir() and recreates the (empty) directory.
void clear_disk_cache();

// Total size in bytes and number of regular files under cache_dir() (recursively).
uint64_t disk_cache_size_bytes();
uint64_t disk_cache_file_count();

} // namespace parpy::jit
