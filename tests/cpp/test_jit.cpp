#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "jit/cache_entry.h"
#include "jit/disk_cache.h"
#include "jit/host_compiler.h"
#include "jit/process.h"
#include "jit/sha256.h"
#include "jit/shared_library.h"
#include "scoped_cache_dir.h"

namespace parpy::jit {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundaries) {
  // 55, 56 and 64 bytes straddle the one-or-two padding block boundary.
  EXPECT_EQ(sha256_hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256_hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(sha256_hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
  EXPECT_EQ(sha256_hex(std::string_view("a\0b", 3)).size(), 64u);
  EXPECT_NE(sha256_hex(std::string_view("a\0b", 3)), sha256_hex("a"));
}

TEST(DiskCache, HonoursParpyCacheDir) {
  testing::ScopedCacheDir scoped;
  EXPECT_FALSE(fs::exists(scoped.dir()));
  EXPECT_EQ(cache_dir(), scoped.dir());
  EXPECT_TRUE(fs::is_directory(scoped.dir()));
}

TEST(DiskCache, FallsBackToHomeWhenUnsetOrEmpty) {
  testing::ScopedCacheDir scoped;
  const char* previous_home = std::getenv("HOME");
  std::string saved_home = previous_home != nullptr ? previous_home : "";
  fs::path home = scoped.dir() / "home";
  setenv("HOME", home.c_str(), 1);
  setenv("PARPY_CACHE_DIR", "", 1);
  EXPECT_EQ(cache_dir(), home / ".cache" / "parpy");
  unsetenv("PARPY_CACHE_DIR");
  EXPECT_EQ(cache_dir(), home / ".cache" / "parpy");
  EXPECT_TRUE(fs::is_directory(home / ".cache" / "parpy"));
  if (previous_home != nullptr) {
    setenv("HOME", saved_home.c_str(), 1);
  } else {
    unsetenv("HOME");
  }
}

TEST(DiskCache, AtomicWriteReadsBackAndLeavesNoTemporaries) {
  testing::ScopedCacheDir scoped;
  fs::path target = cache_dir() / "entry.bin";
  std::string data("binary\0data\n", 12);
  atomic_write(target, data);
  EXPECT_EQ(read_file(target), data);
  atomic_write(target, "replaced");
  EXPECT_EQ(read_file(target), "replaced");
  EXPECT_EQ(disk_cache_file_count(), 1u);
  EXPECT_EQ(disk_cache_size_bytes(), 8u);
}

TEST(DiskCache, ConcurrentWritersNeverExposeHalfAFile) {
  testing::ScopedCacheDir scoped;
  fs::path target = cache_dir() / "contended";
  const std::string first(1 << 20, 'x'), second(1 << 20, 'y');
  atomic_write(target, first);
  std::vector<std::thread> writers;
  for (int i = 0; i < 4; ++i) {
    writers.emplace_back([&, i] {
      for (int round = 0; round < 5; ++round) {
        atomic_write(target, (i + round) % 2 == 0 ? first : second);
      }
    });
  }
  bool always_whole = true;
  for (int read = 0; read < 20; ++read) {
    std::string seen = read_file(target);
    always_whole = always_whole && (seen == first || seen == second);
  }
  for (std::thread& writer : writers) {
    writer.join();
  }
  EXPECT_TRUE(always_whole);
  EXPECT_EQ(disk_cache_file_count(), 1u);
}

TEST(DiskCache, ClearRemovesEverything) {
  testing::ScopedCacheDir scoped;
  atomic_write(cache_dir() / "a", "12345");
  fs::create_directories(cache_dir() / "sub");
  atomic_write(cache_dir() / "sub" / "b", "678");
  EXPECT_EQ(disk_cache_file_count(), 2u);
  EXPECT_EQ(disk_cache_size_bytes(), 8u);
  clear_disk_cache();
  EXPECT_TRUE(fs::is_directory(scoped.dir()));
  EXPECT_EQ(disk_cache_file_count(), 0u);
  EXPECT_EQ(disk_cache_size_bytes(), 0u);
}

// Sets an environment variable for one test and restores it.
class ScopedEnv {
public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* previous = std::getenv(name)) previous_ = previous;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (previous_) {
      setenv(name_.c_str(), previous_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

private:
  std::string name_;
  std::optional<std::string> previous_;
};

mode_t mode_of(const fs::path& path) {
  struct stat info;
  EXPECT_EQ(lstat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

std::string cache_error_message() {
  try {
    cache_dir();
  } catch (const CacheError& error) {
    return error.what();
  }
  return "";
}

TEST(DiskCache, CreatesAPrivateDirectory) {
  testing::ScopedCacheDir scoped;
  cache_dir();
  EXPECT_EQ(mode_of(scoped.dir()), 0700u);
}

TEST(DiskCache, RefusesADirectoryOthersCanWrite) {
  testing::ScopedCacheDir scoped;
  fs::create_directories(scoped.dir());
  chmod(scoped.dir().c_str(), 0777);
  std::string message = cache_error_message();
  EXPECT_NE(message.find("writable by its group or by others (mode 0777)"), std::string::npos)
      << message;
  EXPECT_NE(message.find("chmod 700 " + scoped.dir().string()), std::string::npos) << message;
  chmod(scoped.dir().c_str(), 0750); // group-readable is fine
  EXPECT_EQ(cache_dir(), scoped.dir());
}

TEST(DiskCache, RefusesADirectoryOfAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a directory away";
  testing::ScopedCacheDir scoped;
  fs::create_directories(scoped.dir());
  ASSERT_EQ(chown(scoped.dir().c_str(), 12345, 12345), 0);
  std::string message = cache_error_message();
  EXPECT_NE(message.find("belongs to user id 12345"), std::string::npos) << message;
  EXPECT_NE(message.find("PARPY_CACHE_DIR"), std::string::npos) << message;
}

TEST(DiskCache, RefusesASymbolicLinkAndAnOpenParent) {
  testing::ScopedCacheDir scoped;
  fs::path real = scoped.dir().string() + "-real";
  fs::create_directories(real);
  fs::create_directory_symlink(real, scoped.dir());
  std::string message = cache_error_message();
  EXPECT_NE(message.find("is a symbolic link"), std::string::npos) << message;
  fs::remove(scoped.dir());
  fs::remove_all(real);

  // A directory inside one that anyone may write (without the sticky bit of /tmp).
  fs::create_directories(scoped.dir() / "cache");
  chmod(scoped.dir().c_str(), 0777);
  ScopedEnv env("PARPY_CACHE_DIR", (scoped.dir() / "cache").c_str());
  message = cache_error_message();
  EXPECT_NE(message.find("another user could replace the cache directory"), std::string::npos)
      << message;
  chmod(scoped.dir().c_str(), 0700);
}

TEST(DiskCache, WithoutHomeUsesXdgCacheHomeThenAPrivateDirectory) {
  testing::ScopedCacheDir scoped;
  ScopedEnv no_parpy("PARPY_CACHE_DIR", nullptr);
  ScopedEnv no_home("HOME", nullptr);
  {
    ScopedEnv xdg("XDG_CACHE_HOME", scoped.dir().c_str());
    EXPECT_EQ(cache_dir(), scoped.dir() / "parpy");
  }
  ScopedEnv no_xdg("XDG_CACHE_HOME", nullptr);
  fs::path private_dir = cache_dir();
  EXPECT_EQ(cache_dir(), private_dir);
  EXPECT_EQ(private_dir.filename().string().rfind("parpy-cache-", 0), 0u) << private_dir;
  EXPECT_EQ(mode_of(private_dir), 0700u);
  EXPECT_NE(private_dir, fs::temp_directory_path() / ".cache" / "parpy");
}

TEST(CacheEntry, SealedPayloadReadsBack) {
  testing::ScopedCacheDir scoped;
  fs::path entry = cache_dir() / "0123-cpu.so";
  std::string payload("library\0bytes\n", 14);
  atomic_write(entry, seal_entry(entry.filename().string(), payload));
  chmod(entry.c_str(), 0600);
  EXPECT_EQ(read_entry(entry), payload);
  std::string problem;
  EXPECT_FALSE(read_entry(cache_dir() / "missing-cpu.so", &problem));
  EXPECT_EQ(problem, "missing");
}

TEST(CacheEntry, RefusesDamagedForeignAndMisplacedEntries) {
  testing::ScopedCacheDir scoped;
  fs::path entry = cache_dir() / "0123-cpu.so";
  const std::string payload(5000, 'p');
  const std::string sealed = seal_entry(entry.filename().string(), payload);
  auto refused = [&](const std::string& bytes, const std::string& expected_problem) {
    fs::remove(entry);
    atomic_write(entry, bytes);
    chmod(entry.c_str(), 0600);
    std::string problem;
    EXPECT_FALSE(read_entry(entry, &problem)) << expected_problem;
    EXPECT_NE(problem.find(expected_problem), std::string::npos) << problem;
  };
  refused(sealed.substr(0, 2000), "no parpy trailer");
  refused(payload, "no parpy trailer");
  refused("", "no parpy trailer");
  std::string flipped = sealed;
  flipped[100] = 'q';
  refused(flipped, "damaged");
  refused(sealed.substr(0, 100) + sealed.substr(200), "truncated");
  refused(seal_entry("4567-cpu.so", payload), "the entry 4567-cpu.so");

  // The right bytes, but writable by others, or behind a symbolic link.
  atomic_write(entry, sealed);
  chmod(entry.c_str(), 0666);
  std::string problem;
  EXPECT_FALSE(read_entry(entry, &problem));
  EXPECT_EQ(problem, "writable by its group or by others");
  chmod(entry.c_str(), 0600);
  EXPECT_EQ(read_entry(entry), payload);
  fs::path elsewhere = scoped.dir() / "elsewhere";
  fs::rename(entry, elsewhere);
  fs::create_symlink(elsewhere, entry);
  EXPECT_FALSE(read_entry(entry, &problem));
  EXPECT_EQ(problem, "a symbolic link");
  if (geteuid() == 0) {
    fs::remove(entry);
    fs::rename(elsewhere, entry);
    ASSERT_EQ(chown(entry.c_str(), 12345, 12345), 0);
    EXPECT_FALSE(read_entry(entry, &problem));
    EXPECT_EQ(problem, "owned by user id 12345");
  }
}

TEST(DiskCache, ClearLeavesBuildsInFlightAndSweepsDeadOnes) {
  testing::ScopedCacheDir scoped;
  fs::path dir = cache_dir();
  atomic_write(dir / "finished-cpu.so", "entry");
  auto age = [](const fs::path& path) {
    fs::last_write_time(path, fs::last_write_time(path) - std::chrono::hours(2));
  };
  BuildDirectory live(dir);
  age(live.path());
  // A build directory whose process died: nobody holds its lock.
  fs::path dead = dir / (std::string(build_directory_prefix) + "dead");
  fs::create_directories(dead / "inside");
  age(dead);
  // A recent one that is being created (not locked yet) stays too.
  fs::path fresh = dir / (std::string(build_directory_prefix) + "fresh");
  fs::create_directories(fresh);
  atomic_write(dir / ".tmp-left-over", "x");
  age(dir / ".tmp-left-over");
  clear_disk_cache();
  EXPECT_FALSE(fs::exists(dir / "finished-cpu.so"));
  EXPECT_TRUE(fs::is_directory(live.path()));
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(dir / ".tmp-left-over"));
}

TEST(Process, CapturesOutputErrorAndExitCode) {
  ProcessResult result = run_process({"sh", "-c", "printf hello; printf oops >&2; exit 3"});
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.out, "hello");
  EXPECT_EQ(result.err, "oops");
}

TEST(Process, ArgumentsAreNotInterpretedByAShell) {
  ProcessResult result = run_process({"printf", "%s", "$(echo injected); rm -rf /"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "$(echo injected); rm -rf /");
}

TEST(Process, LargeOutputOnBothStreamsDoesNotDeadlock) {
  ProcessResult result = run_process(
      {"sh", "-c", "head -c 1500000 /dev/zero >&2; head -c 3000000 /dev/zero; "
                   "head -c 1200000 /dev/zero >&2"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out.size(), 3000000u);
  EXPECT_EQ(result.err.size(), 2700000u);
}

TEST(Process, MissingProgramGives127) {
  ProcessResult result = run_process({"parpy-no-such-program-xyz"});
  EXPECT_EQ(result.exit_code, 127);
  EXPECT_NE(result.err.find("parpy-no-such-program-xyz"), std::string::npos);
  EXPECT_EQ(run_process({}).exit_code, 127);
}

TEST(Process, SignalGives128PlusSignal) {
  EXPECT_EQ(run_process({"sh", "-c", "kill -9 $$"}).exit_code, 128 + 9);
}

TEST(Process, TimeoutKillsTheProgramAndWhatItStarted) {
  ProcessOptions options;
  options.timeout_seconds = 0.3;
  // The background sleep keeps the output pipe open: only killing the whole group ends the read.
  ProcessResult result = run_process({"sh", "-c", "sleep 60 & sleep 60"}, options);
  EXPECT_TRUE(result.timed_out);
  EXPECT_FALSE(result.interrupted);
  EXPECT_EQ(result.exit_code, 128 + 9);
}

std::atomic<bool> interrupt_requested{false};

TEST(Process, AnInterruptKillsTheProgram) {
  set_interrupt_check([] { return interrupt_requested.load(); });
  ProcessOptions options;
  options.interrupt_epoch = interrupt_epoch();
  interrupt_requested = true;
  ProcessResult result = run_process({"sh", "-c", "sleep 60 & sleep 60"}, options);
  interrupt_requested = false;
  set_interrupt_check(nullptr);
  EXPECT_TRUE(result.interrupted);
  EXPECT_FALSE(result.timed_out);
  // Later calls begin after that interrupt and are not affected by it.
  options.interrupt_epoch = interrupt_epoch();
  EXPECT_EQ(run_process({"sh", "-c", "sleep 0.3; exit 4"}, options).exit_code, 4);
}

TEST(Process, RunsInTheGivenWorkingDirectory) {
  testing::ScopedCacheDir scoped;
  ProcessOptions options;
  options.working_dir = cache_dir().string();
  ProcessResult result = run_process({"pwd"}, options);
  EXPECT_EQ(result.out, cache_dir().string() + "\n");
}

TEST(Process, FindOnPath) {
  std::optional<std::string> sh = find_on_path("sh");
  ASSERT_TRUE(sh.has_value());
  EXPECT_TRUE(fs::path(*sh).is_absolute());
  EXPECT_FALSE(find_on_path("parpy-no-such-program-xyz").has_value());
  EXPECT_FALSE(find_on_path("").has_value());
  EXPECT_EQ(find_on_path(*sh), sh);
}

TEST(HostCompiler, FindsACompilerWithVersion) {
  const Toolchain& cxx = host_cxx();
  ASSERT_TRUE(cxx.found) << cxx.why_missing;
  EXPECT_FALSE(cxx.path.empty());
  EXPECT_FALSE(cxx.version.empty());
  EXPECT_EQ(cxx.version.find('\n'), std::string::npos);
  EXPECT_EQ(&host_cxx(), &cxx);
}

constexpr const char* increment_code = R"(
extern "C" int f(int x) { return x + 1; }

extern "C" int sum_below(int n) {
  int sum = 0;
#pragma omp parallel for reduction(+ : sum)
  for (int i = 0; i < n; ++i) sum += i;
  return sum;
}
)";

TEST(HostCompiler, BuildsLoadsAndCachesALibrary) {
  ASSERT_TRUE(host_cxx_has_openmp());
  testing::ScopedCacheDir scoped;
  uint64_t builds_before = build_count();
  BuildResult first = build_cpu_library(increment_code, {});
  EXPECT_TRUE(first.built);
  EXPECT_EQ(build_count(), builds_before + 1);
  EXPECT_EQ(first.key.size(), 64u);
  EXPECT_EQ(first.library, scoped.dir() / (first.key + "-cpu.so"));
  EXPECT_TRUE(fs::exists(first.library));
  // Only the library remains: the temporary source and output are gone.
  EXPECT_EQ(disk_cache_file_count(), 1u);
  EXPECT_EQ(mode_of(first.library), 0600u);
  ASSERT_TRUE(first.payload);
  EXPECT_EQ(read_entry(first.library), *first.payload);

  std::shared_ptr<SharedLibrary> library = load_library(first.library);
  auto f = reinterpret_cast<int (*)(int)>(library->symbol("f"));
  EXPECT_EQ(f(41), 42);
  auto sum_below = reinterpret_cast<int (*)(int)>(library->symbol("sum_below"));
  EXPECT_EQ(sum_below(1000), 499500);
  EXPECT_EQ(load_library(first.library), library);

  BuildResult second = build_cpu_library(increment_code, {});
  EXPECT_FALSE(second.built);
  EXPECT_EQ(second.key, first.key);
  EXPECT_EQ(second.library, first.library);
  EXPECT_EQ(build_count(), builds_before + 1);
}

TEST(Dependencies, ParsesTheRulesOfGccAndNvcc) {
  EXPECT_EQ(parse_make_dependencies("parpy: /b/source.cpp sp\\ ace/my.h \\\n /x/a\\#b.h $$d.h\n"),
            (std::vector<std::string>{"/b/source.cpp", "sp ace/my.h", "/x/a#b.h", "$d.h"}));
  EXPECT_EQ(parse_make_dependencies("parpy : a.cu \\\n    /cuda/include/cuda_runtime.h \\\n    inc/my.h\n"),
            (std::vector<std::string>{"a.cu", "/cuda/include/cuda_runtime.h", "inc/my.h"}));
  // -MP's phony rules name nothing new.
  EXPECT_EQ(parse_make_dependencies("parpy: a.cpp b.h\nb.h:\n"), (std::vector<std::string>{"a.cpp", "b.h"}));
  EXPECT_TRUE(parse_make_dependencies("").empty());
}

// A user header (k.h, which includes inner.h) in its own directory, and code returning its constant.
struct UserHeaders {
  testing::ScopedCacheDir scoped;
  fs::path dir = scoped.dir().parent_path() / unique_file_name("parpy-test-headers-", "");
  UserHeaders() {
    fs::create_directories(dir / "sub");
    write("k.h", "#pragma once\n#include \"sub/inner.h\"\n#define K (INNER + 0)\n");
    write("sub/inner.h", "#define INNER 3\n");
  }
  ~UserHeaders() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << text;
  }
  BuildFlags flags() const {
    BuildFlags flags;
    flags.include_dirs = {dir.string()};
    return flags;
  }
};

constexpr const char* header_code = "#include \"k.h\"\nextern \"C\" int k() { return K; }\n";

int call_k(const BuildResult& built) {
  return reinterpret_cast<int (*)()>(load_library(built.library, built.payload)->symbol("k"))();
}

TEST(HostCompiler, AnEditedHeaderRebuildsItsLibraryInPlace) {
  UserHeaders headers;
  BuildResult first = build_cpu_library(header_code, headers.flags());
  ASSERT_TRUE(first.built);
  std::shared_ptr<SharedLibrary> old_library = load_library(first.library, first.payload);
  EXPECT_EQ(call_k(first), 3);
  // Both headers are recorded (the source and the system's are not), by absolute path.
  ASSERT_EQ(first.dependencies.size(), 2u);
  EXPECT_EQ(first.dependencies[0].path, (headers.dir / "k.h").string());
  EXPECT_EQ(first.dependencies[1].path, (headers.dir / "sub" / "inner.h").string());
  EXPECT_EQ(first.dependencies[1].sha256, sha256_hex("#define INNER 3\n"));
  std::vector<Dependency> recorded;
  ASSERT_TRUE(read_entry(first.library, nullptr, &recorded));
  EXPECT_EQ(recorded, first.dependencies);
  EXPECT_FALSE(build_cpu_library(header_code, headers.flags()).built);  // unchanged: found

  headers.write("sub/inner.h", "#define INNER 5\n");
  uint64_t builds_before = build_count();
  BuildResult second = build_cpu_library(header_code, headers.flags());
  EXPECT_TRUE(second.built);
  EXPECT_EQ(build_count(), builds_before + 1);
  EXPECT_EQ(second.library, first.library);  // the same key: the entry is replaced
  EXPECT_EQ(disk_cache_file_count(), 1u);
  // The new library, though the old one of the same entry is still loaded.
  EXPECT_EQ(call_k(second), 5);
  EXPECT_EQ(reinterpret_cast<int (*)()>(old_library->symbol("k"))(), 3);
  EXPECT_FALSE(build_cpu_library(header_code, headers.flags()).built);
  EXPECT_EQ(call_k(build_cpu_library(header_code, headers.flags())), 5);

  // A header that is gone: rebuilt, and the build says what is missing.
  fs::remove(headers.dir / "sub" / "inner.h");
  EXPECT_THROW(build_cpu_library(header_code, headers.flags()), BuildError);
}

TEST(HostCompiler, HeadersOfUntrackedDirectoriesAreNotRecorded) {
  UserHeaders headers;
  BuildFlags flags = headers.flags();
  flags.untracked_dirs = {headers.dir.string()};
  BuildResult first = build_cpu_library(header_code, flags);
  EXPECT_TRUE(first.dependencies.empty());
  headers.write("sub/inner.h", "#define INNER 5\n");
  EXPECT_FALSE(build_cpu_library(header_code, flags).built);
}

TEST(HostCompiler, ConcurrentBuildsOfOneKeyAllSucceed) {
  testing::ScopedCacheDir scoped;
  const std::string code = std::string(increment_code) + "// concurrent\n";
  std::vector<BuildResult> results(4);
  std::vector<std::thread> builders;
  for (BuildResult& result : results) {
    builders.emplace_back([&] { result = build_cpu_library(code, {}); });
  }
  for (std::thread& builder : builders) {
    builder.join();
  }
  for (const BuildResult& result : results) {
    EXPECT_EQ(result.library, results[0].library);
  }
  EXPECT_EQ(disk_cache_file_count(), 1u);
  std::shared_ptr<SharedLibrary> library = load_library(results[0].library);
  auto f = reinterpret_cast<int (*)(int)>(library->symbol("f"));
  EXPECT_EQ(f(1), 2);
}

TEST(HostCompiler, ConcurrentBuildsOfOneKeyCompileOnce) {
  testing::ScopedCacheDir scoped;
  const std::string code = std::string(increment_code) + "// once\n";
  uint64_t builds_before = build_count();
  std::vector<BuildResult> results(6);
  std::vector<std::thread> builders;
  for (BuildResult& result : results) {
    builders.emplace_back([&] { result = build_cpu_library(code, {}); });
  }
  for (std::thread& builder : builders) {
    builder.join();
  }
  EXPECT_EQ(build_count(), builds_before + 1);
  int built = 0;
  for (const BuildResult& result : results) {
    built += result.built ? 1 : 0;
    ASSERT_TRUE(result.payload);
    EXPECT_EQ(*result.payload, *results[0].payload);
  }
  EXPECT_EQ(built, 1);
}

TEST(HostCompiler, DamagedOrMisplacedEntriesAreRebuiltNotLoaded) {
  testing::ScopedCacheDir scoped;
  const std::string code = std::string(increment_code) + "// damaged\n";
  const std::string other_code = std::string(increment_code) + "// other\n";
  BuildResult first = build_cpu_library(code, {});
  BuildResult other = build_cpu_library(other_code, {});
  const std::string sealed = read_file(first.library);
  std::vector<std::string> damaged = {sealed.substr(0, sealed.size() / 2), "garbage bytes",
                                      read_file(other.library),
                                      sealed.substr(0, sealed.size() - 1) + "x"};
  for (const std::string& bytes : damaged) {
    fs::remove(first.library);
    atomic_write(first.library, bytes);
    chmod(first.library.c_str(), 0600);
    uint64_t builds_before = build_count();
    BuildResult again = build_cpu_library(code, {});
    EXPECT_TRUE(again.built);
    EXPECT_EQ(build_count(), builds_before + 1);
    EXPECT_EQ(read_entry(first.library), *again.payload);
    std::shared_ptr<SharedLibrary> library = load_library(again.library);
    EXPECT_EQ(reinterpret_cast<int (*)(int)>(library->symbol("f"))(1), 2);
  }
  // load_library refuses what is not a valid entry of its name.
  fs::copy_file(other.library, first.library, fs::copy_options::overwrite_existing);
  EXPECT_THROW(load_library(first.library), std::runtime_error);
}

TEST(HostCompiler, ClearingTheCacheNeverBreaksBuildsInFlight) {
  testing::ScopedCacheDir scoped;
  std::atomic<bool> done{false};
  std::thread clearer([&] {
    while (!done) {
      clear_disk_cache();
    }
  });
  std::vector<std::string> failures(3);
  std::vector<std::thread> builders;
  for (size_t i = 0; i < failures.size(); ++i) {
    builders.emplace_back([&, i] {
      try {
        for (int round = 0; round < 2; ++round) {
          std::string code = std::string(increment_code) + "// clear " + std::to_string(i) + "\n";
          BuildResult built = build_cpu_library(code, {});
          std::shared_ptr<SharedLibrary> library = load_library(built.library, built.payload);
          if (reinterpret_cast<int (*)(int)>(library->symbol("f"))(1) != 2) {
            failures[i] = "wrong result";
          }
        }
      } catch (const std::exception& error) {
        failures[i] = error.what();
      }
    });
  }
  for (std::thread& builder : builders) {
    builder.join();
  }
  done = true;
  clearer.join();
  for (const std::string& failure : failures) {
    EXPECT_EQ(failure, "");
  }
}

TEST(HostCompiler, ACompilerRunningPastTheTimeoutIsStopped) {
  testing::ScopedCacheDir scoped;
  ScopedEnv timeout("PARPY_COMPILE_TIMEOUT", "0.3");
  LibraryBuild build;
  build.code = "never compiled";
  build.language = "C++";
  build.source_suffix = ".cpp";
  build.library_suffix = "-cpu.so";
  build.compiler = "sh";
  build.flags = {"-c", "sleep 60", "sh"};
  try {
    build_cached_library(build);
    FAIL() << "expected BuildError";
  } catch (const BuildError& error) {
    EXPECT_NE(std::string(error.what()).find("did not finish within 0.3 s"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("PARPY_COMPILE_TIMEOUT"), std::string::npos);
  }
  ScopedEnv invalid("PARPY_COMPILE_TIMEOUT", "ten");
  EXPECT_THROW(build_cached_library(build), BuildError);
}

TEST(SharedLibrary, UnloadAfterParallelRegionAndReload) {
  // Regression: closing the last library that used OpenMP once unloaded libgomp under its
  // still-running worker threads.
  testing::ScopedCacheDir scoped;
  BuildResult built = build_cpu_library(increment_code, {});
  for (int round = 0; round < 3; ++round) {
    std::shared_ptr<SharedLibrary> library = load_library(built.library);
    auto sum_below = reinterpret_cast<int (*)(int)>(library->symbol("sum_below"));
    EXPECT_EQ(sum_below(100), 4950);
  }
}

TEST(HostCompiler, KeyDependsOnCodeAndFlags) {
  testing::ScopedCacheDir scoped;
  BuildFlags with_define;
  with_define.extra_flags = {"-DPARPY_TEST_FLAG=1"};
  BuildResult plain = build_cpu_library(increment_code, {});
  BuildResult flagged = build_cpu_library(increment_code, with_define);
  BuildResult other_code = build_cpu_library(std::string(increment_code) + "\n", {});
  EXPECT_NE(plain.key, flagged.key);
  EXPECT_NE(plain.key, other_code.key);
  EXPECT_TRUE(flagged.built);
  EXPECT_TRUE(other_code.built);
}

TEST(HostCompiler, CompileErrorThrowsBuildErrorWithCompilerOutput) {
  testing::ScopedCacheDir scoped;
  uint64_t builds_before = build_count();
  try {
    build_cpu_library("extern \"C\" int f(int x) { return parpy_undeclared_name; }\n", {});
    FAIL() << "expected BuildError";
  } catch (const BuildError& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("Compilation of generated C++ code failed with exit code"),
              std::string::npos);
    EXPECT_NE(message.find("\nStandard out:\n"), std::string::npos);
    EXPECT_NE(message.find("\nStandard error:\n"), std::string::npos);
    EXPECT_NE(message.find("parpy_undeclared_name"), std::string::npos);
    EXPECT_EQ(message.find("The generated code was written to"), std::string::npos);
  }
  EXPECT_EQ(build_count(), builds_before + 1);
  // A failed build leaves nothing behind in the cache.
  EXPECT_EQ(disk_cache_file_count(), 0u);
}

TEST(HostCompiler, WriteOutputKeepsTheFailingSource) {
  testing::ScopedCacheDir scoped;
  fs::path previous_working_dir = fs::current_path();
  fs::path working_dir = scoped.dir() / "work";
  fs::create_directories(working_dir);
  fs::current_path(working_dir);
  const std::string code = "this is not C++\n";
  BuildFlags flags;
  flags.write_output = true;
  std::string message;
  try {
    build_cpu_library(code, flags);
  } catch (const BuildError& error) {
    message = error.what();
  }
  fs::current_path(previous_working_dir);

  const std::string marker = "\nThe generated code was written to ";
  size_t at = message.find(marker);
  ASSERT_NE(at, std::string::npos) << message;
  fs::path written = message.substr(at + marker.size());
  EXPECT_TRUE(written.is_absolute());
  EXPECT_EQ(written.parent_path(), working_dir);
  EXPECT_EQ(written.extension(), ".cpp");
  EXPECT_EQ(read_file(written), code);
}

// The entries of the cache directory whose names end in `suffix`.
std::vector<fs::path> entries_ending(const std::string& suffix) {
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(cache_dir())) {
    const std::string name = entry.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      found.push_back(entry.path());
  }
  return found;
}

// A directory of headers for one test, removed at its end.
class HeaderDir {
 public:
  HeaderDir() : dir_(fs::path("/tmp") / unique_file_name("parpy-test-include-", "")) {
    fs::create_directories(dir_);
  }
  ~HeaderDir() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << text;
  }
  std::string path() const { return dir_.string(); }

 private:
  fs::path dir_;
};

constexpr const char* pch_test_header =
    "#pragma once\n#include <cmath>\nstatic inline int pch_plus_one(int x) { return x + 1; }\n";
constexpr const char* pch_test_code =
    "#include \"pch_test.h\"\nextern \"C\" int f(int x) { return pch_plus_one(x); }\n";

int call_f(const BuildResult& built, int x) {
  std::shared_ptr<SharedLibrary> library = load_library(built.library, built.payload);
  return reinterpret_cast<int (*)(int)>(library->symbol("f"))(x);
}

TEST(HostCompiler, APrecompiledHeaderIsBuiltOnceVerifiedAndUsed) {
  if (!host_cxx_is_gcc()) GTEST_SKIP() << "parpy precompiles headers with GCC only";
  testing::ScopedCacheDir scoped;
  forget_precompiled_headers();
  HeaderDir headers;
  headers.write("pch_test.h", pch_test_header);
  BuildFlags flags;
  flags.include_dirs = {headers.path()};
  flags.precompiled_header = "pch_test.h";
  flags.extra_flags = {"-Winvalid-pch", "-Werror"};  // a precompiled copy GCC refuses fails the test
  uint64_t builds_before = build_count();
  BuildResult first = build_cpu_library(pch_test_code, flags);
  EXPECT_EQ(build_count(), builds_before + 2);  // the header, then the library
  EXPECT_EQ(call_f(first, 41), 42);
  std::vector<fs::path> pch = entries_ending("-cpu.pch");
  ASSERT_EQ(pch.size(), 1u);
  EXPECT_EQ(entries_ending("-cpu.so").size(), 1u);
  EXPECT_EQ(mode_of(pch[0]), 0600u);
  ASSERT_TRUE(read_entry(pch[0]));

  // Later builds read the precompiled copy, not the header: it is not compiled again, and a
  // header that no longer compiles goes unnoticed. (This code leaves the include to -include: GCC
  // would include a header whose contents changed once more.)
  headers.write("pch_test.h", "#error the header was parsed again\n");
  BuildResult second =
      build_cpu_library("extern \"C\" int f(int x) { return pch_plus_one(x); }\n", flags);
  EXPECT_EQ(build_count(), builds_before + 3);
  EXPECT_EQ(call_f(second, 1), 2);

  // A process that has not read it yet verifies the entry: a damaged one is built again.
  headers.write("pch_test.h", pch_test_header);
  forget_precompiled_headers();
  const std::string sealed = read_file(pch[0]);
  fs::remove(pch[0]);
  atomic_write(pch[0], sealed.substr(0, sealed.size() / 2));
  chmod(pch[0].c_str(), 0600);
  BuildResult third = build_cpu_library(std::string(pch_test_code) + "// third\n", flags);
  EXPECT_EQ(build_count(), builds_before + 5);
  EXPECT_EQ(call_f(third, 2), 3);
  EXPECT_TRUE(read_entry(pch[0]));
  forget_precompiled_headers();
}

TEST(HostCompiler, BuildsFallBackToTheHeaderWhenThePrecompiledCopyIsUnusable) {
  if (!host_cxx_is_gcc()) GTEST_SKIP() << "parpy precompiles headers with GCC only";
  testing::ScopedCacheDir scoped;
  forget_precompiled_headers();
  HeaderDir headers;
  headers.write("pch_test.h", pch_test_header);
  BuildFlags flags;
  flags.include_dirs = {headers.path()};
  flags.precompiled_header = "pch_test.h";
  EXPECT_EQ(call_f(build_cpu_library(pch_test_code, flags), 1), 2);
  // A valid entry whose bytes GCC does not accept (as from another build of the compiler): GCC
  // reads the header itself.
  std::vector<fs::path> pch = entries_ending("-cpu.pch");
  ASSERT_EQ(pch.size(), 1u);
  fs::remove(pch[0]);
  atomic_write(pch[0], seal_entry(pch[0].filename().string(), "not a precompiled header"));
  chmod(pch[0].c_str(), 0600);
  forget_precompiled_headers();
  uint64_t builds_before = build_count();
  BuildResult built = build_cpu_library(std::string(pch_test_code) + "// fallback\n", flags);
  EXPECT_EQ(build_count(), builds_before + 1);
  EXPECT_EQ(call_f(built, 2), 3);
  forget_precompiled_headers();
}

TEST(HostCompiler, AHeaderThatCannotBePrecompiledIsLeftOut) {
  testing::ScopedCacheDir scoped;
  forget_precompiled_headers();
  BuildFlags flags;
  flags.precompiled_header = "parpy_no_such_header.h";
  BuildResult built = build_cpu_library(increment_code, flags);
  EXPECT_TRUE(built.built);
  EXPECT_EQ(call_f(built, 1), 2);
  EXPECT_EQ(disk_cache_file_count(), 1u);  // the library only
  // The failure is remembered: the next build does not try again.
  uint64_t builds_before = build_count();
  BuildResult again = build_cpu_library(std::string(increment_code) + "// again\n", flags);
  EXPECT_EQ(build_count(), builds_before + 1);
  EXPECT_EQ(call_f(again, 2), 3);
  forget_precompiled_headers();
}

TEST(SharedLibrary, MissingSymbolAndMissingFileThrow) {
  testing::ScopedCacheDir scoped;
  BuildResult built = build_cpu_library(increment_code, {});
  std::shared_ptr<SharedLibrary> library = load_library(built.library);
  try {
    library->symbol("parpy_no_such_symbol");
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("parpy_no_such_symbol"), std::string::npos);
  }
  EXPECT_THROW(load_library(scoped.dir() / "missing.so"), std::runtime_error);
  atomic_write(scoped.dir() / "garbage.so", "not an ELF file");
  try {
    SharedLibrary garbage(scoped.dir() / "garbage.so");
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& error) {
    EXPECT_EQ(std::string(error.what()).rfind("Failed to load ", 0), 0u);
  }
}

} // namespace
} // namespace parpy::jit
