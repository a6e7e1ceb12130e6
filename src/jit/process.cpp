#include "jit/process.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace parpy::jit {

namespace {

// Owns a file descriptor so every early return closes it.
class FileDescriptor {
public:
  explicit FileDescriptor(int fd = -1) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      close(fd_);
    }
    fd_ = fd;
  }

private:
  int fd_;
};

ProcessResult failed_to_start(const std::string& program, const std::string& why) {
  return ProcessResult{127, "", "Failed to start '" + program + "': " + why};
}

// Pipes are close-on-exec so concurrent spawns in other threads do not inherit our ends.
bool make_pipe(FileDescriptor& read_end, FileDescriptor& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return false;
  }
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  return true;
}

using Clock = std::chrono::steady_clock;

// Drains both pipes together so a child filling one of them can never block on the other. Every
// tenth of a second `should_stop` may end the child: then reading goes on for a moment (the
// child's group is killed, so the pipes close) and stops.
constexpr auto poll_interval = std::chrono::milliseconds(100);

template <typename ShouldStop>
void read_both(int out_fd, int err_fd, std::string& out, std::string& err, ShouldStop should_stop) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&out, &err};
  int open_count = 2;
  char buffer[65536];
  std::optional<Clock::time_point> give_up;
  Clock::time_point next_check = Clock::now() + poll_interval;
  while (open_count > 0) {
    Clock::time_point now = Clock::now();
    if (!give_up && now >= next_check) {
      next_check = now + poll_interval;
      if (should_stop()) {
        give_up = now + std::chrono::seconds(2);
      }
    }
    if (give_up && now > *give_up) {
      return;
    }
    int ready = poll(fds, 2, static_cast<int>(poll_interval.count()));
    if (ready < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
}

bool is_executable_file(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
         access(path.c_str(), X_OK) == 0;
}

} // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
  if (argv.empty()) {
    return failed_to_start("", "empty argument list");
  }
  const std::string& program = argv[0];

  FileDescriptor out_read, out_write, err_read, err_write;
  if (!make_pipe(out_read, out_write) || !make_pipe(err_read, err_write)) {
    return failed_to_start(program, std::string("pipe: ") + std::strerror(errno));
  }

  posix_spawn_file_actions_t actions;
  if (posix_spawn_file_actions_init(&actions) != 0) {
    return failed_to_start(program, "posix_spawn_file_actions_init failed");
  }
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
  if (!options.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
  }
  // A process group of its own, so a timeout or an interrupt kills the compiler's own children
  // too; default handling of the signals the embedding program may ignore (Python: SIGPIPE).
  posix_spawnattr_t attributes;
  if (posix_spawnattr_init(&attributes) != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return failed_to_start(program, "posix_spawnattr_init failed");
  }
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int signal : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) {
    sigaddset(&defaults, signal);
  }
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> c_argv;
  c_argv.reserve(argv.size() + 1);
  for (const std::string& arg : argv) {
    c_argv.push_back(const_cast<char*>(arg.c_str()));
  }
  c_argv.push_back(nullptr);

  pid_t pid = 0;
  int spawn_error =
      posix_spawnp(&pid, program.c_str(), &actions, &attributes, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawn_error != 0) {
    return failed_to_start(program, std::strerror(spawn_error));
  }

  // Close our copies of the write ends, or the reads below would never see end-of-file.
  out_write.reset();
  err_write.reset();
  ProcessResult result;
  std::optional<Clock::time_point> deadline;
  if (options.timeout_seconds > 0) {
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(options.timeout_seconds));
  }
  read_both(out_read.get(), err_read.get(), result.out, result.err, [&] {
    result.timed_out = deadline && Clock::now() > *deadline;
    result.interrupted = !result.timed_out && options.interrupt_epoch &&
                         interrupted_since(*options.interrupt_epoch);
    if (result.timed_out || result.interrupted) {
      kill(-pid, SIGKILL);
      return true;
    }
    return false;
  });

  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      result.exit_code = 127;
      result.err += std::string("waitpid failed: ") + std::strerror(errno);
      return result;
    }
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  } else {
    result.exit_code = 127;
  }
  return result;
}

namespace {

std::atomic<bool (*)()> interrupt_check{nullptr};
std::atomic<uint64_t> interrupts{0};

} // namespace

void set_interrupt_check(bool (*check)()) { interrupt_check.store(check); }

uint64_t interrupt_epoch() { return interrupts.load(); }

bool interrupted_since(uint64_t epoch) {
  if (interrupts.load() > epoch) {
    return true;
  }
  bool (*check)() = interrupt_check.load();
  if (check != nullptr && check()) {
    interrupts.fetch_add(1);
    return true;
  }
  return false;
}

std::optional<std::string> find_on_path(const std::string& program) {
  if (program.empty()) {
    return std::nullopt;
  }
  if (program.find('/') != std::string::npos) {
    if (is_executable_file(program)) {
      return program;
    }
    return std::nullopt;
  }
  const char* path_env = std::getenv("PATH");
  // Same default search path as glibc's execvp when PATH is unset.
  std::string search_path = path_env != nullptr ? path_env : "/bin:/usr/bin";
  size_t start = 0;
  while (start <= search_path.size()) {
    size_t end = search_path.find(':', start);
    if (end == std::string::npos) {
      end = search_path.size();
    }
    std::string directory = search_path.substr(start, end - start);
    std::string candidate = (directory.empty() ? "." : directory) + "/" + program;
    if (is_executable_file(candidate)) {
      return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

} // namespace parpy::jit
