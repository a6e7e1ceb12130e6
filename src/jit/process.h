#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace parpy::jit {

struct ProcessResult {
  // The program's exit status; 128 + N if killed by signal N; 127 if it could not be started.
  int exit_code = 0;
  std::string out, err;
  bool timed_out = false;   // killed after ProcessOptions::timeout_seconds
  bool interrupted = false; // killed because the user interrupted the program (see below)
};

struct ProcessOptions {
  double timeout_seconds = 0; // kill the program (and what it started) after this long; 0: never
  std::string working_dir;    // empty: the caller's
  // Interrupts since this epoch (interrupt_epoch()) kill the program; unset: they do not.
  std::optional<uint64_t> interrupt_epoch;
};

// Runs argv[0] (looked up on PATH) with the given arguments, no shell involved, stdin from
// /dev/null, and captures all of stdout and stderr. The program runs in a process group of its
// own, which is killed as a whole on a timeout or an interrupt. Never throws for a failing program.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// The full path of `program` as posix_spawnp would find it, or nullopt. A name containing '/'
// is checked as given.
std::optional<std::string> find_on_path(const std::string& program);

// ---- Interrupts (Ctrl-C) of compilations and of waits for them ----

// Installs the embedding program's check (the Python module's: a pending KeyboardInterrupt). It is
// polled about ten times a second by every thread that waits for a compiler or for another build,
// and returns true when the user asked to stop. Such a true ends every wait in progress in the
// process: those begun before it (epoch below) stop and throw Interrupted.
void set_interrupt_check(bool (*check)());

// The number of interrupts seen so far: a wait begun at epoch E ends once this exceeds E.
uint64_t interrupt_epoch();

// Polls the check; whether an interrupt arrived since `epoch`.
bool interrupted_since(uint64_t epoch);

// A compilation or a wait for one, ended by an interrupt.
class Interrupted : public std::runtime_error {
public:
  Interrupted() : std::runtime_error("The compilation was interrupted") {}
};

} // namespace parpy::jit
