#pragma once

#include <optional>
#include <string>
#include <vector>

namespace parpy::jit {

struct ProcessResult {
  // The program's exit status; 128 + N if killed by signal N; 127 if it could not be started.
  int exit_code = 0;
  std::string out, err;
};

// Runs argv[0] (looked up on PATH) with the given arguments, no shell involved, stdin from
// /dev/null, and captures all of stdout and stderr. Never throws for a failing program.
ProcessResult run_process(const std::vector<std::string>& argv);

// The full path of `program` as posix_spawnp would find it, or nullopt. A name containing '/'
// is checked as given.
std::optional<std::string> find_on_path(const std::string& program);

} // namespace parpy::jit
