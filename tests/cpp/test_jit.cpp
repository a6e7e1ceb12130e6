#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

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
