// The scheduler of the Metal CPU emulator (see metal_emu_kernel.h and metal_emu_runtime.h).
//
// A dispatch runs its threadgroups on up to kWorkers CPU threads at once (in no fixed order, as
// on a GPU). A threadgroup runs on one CPU thread: each of its threads is a fiber (ucontext)
// with its own stack; a fiber runs until it waits (a threadgroup barrier, a SIMD-group
// exchange) or returns, then the next one runs. A wait ends when every thread it waits for has
// arrived: all threads of the threadgroup for a barrier, the active lanes of the SIMD group for
// an exchange. When no thread can move any more (a barrier that some threads never reach) the
// dispatch fails with a description, as Metal would hang or misbehave there; so do threads that
// meet at different calls of threadgroup_barrier.
#include "metal_emu_runtime.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parpy_emu {
namespace {

constexpr size_t kStack = 128 * 1024;
constexpr unsigned kMaxThreads = 1024;          // threads per threadgroup on Apple GPUs
constexpr size_t kThreadgroupMemory = 32 * 1024;  // bytes of threadgroup memory per threadgroup
constexpr unsigned kWorkers = 2;

struct Fiber {
  ucontext_t ctx;
  bool done = false;
  size_t tg_count = 0;
};

struct SimdGroup {
  uint32_t full = 0;     // lanes of this SIMD group
  uint32_t arrived = 0;  // lanes waiting in the current exchange
  uint32_t done = 0;     // lanes that returned (inactive)
  uint64_t gen = 0;
  uint64_t buf[2][32];
  uint32_t mask[2] = {0, 0};
};

struct Group {
  const KernelEntry* k;
  const Binding* b;
  size_t nb;
  unsigned gid, n;
  std::vector<Fiber> fibers;
  ucontext_t sched;
  unsigned current = 0;
  unsigned bar_arrived = 0;
  uint64_t bar_gen = 0;
  long bar_site = 0;
  std::vector<SimdGroup> simd;
  std::vector<void*> tg;
  std::vector<size_t> tg_size;
  size_t tg_bytes = 0;
  uint64_t progress = 0;
  std::string fault;
};

thread_local Group* cur = nullptr;

void yield() {
  Group& g = *cur;
  swapcontext(&g.fibers[g.current].ctx, &g.sched);
}

// A fault stops the thread for good: the scheduler does not resume it.
[[noreturn]] void stop(const std::string& what) {
  if (cur->fault.empty()) cur->fault = what;
  while (true) yield();
}

void release_simd(SimdGroup& s) {
  s.mask[s.gen & 1] = s.arrived;
  s.arrived = 0;
  s.gen++;
}

void fiber_main() {
  Group& g = *cur;
  unsigned t = g.current;
  const char* err = g.k->launch(g.b, g.nb, uint3_{t, 0, 0}, uint3_{g.gid, 0, 0}, false);
  if (err) stop(err);
  Group& h = *cur;
  h.fibers[t].done = true;
  h.progress++;
  // The lane is inactive from now on: an exchange its SIMD group waits in may be complete.
  SimdGroup& s = h.simd[t / 32];
  s.done |= 1u << (t % 32);
  if (s.arrived && (s.arrived | s.done) == s.full) release_simd(s);
}

struct Stacks {
  char* base = nullptr;
  size_t bytes = 0;
  ~Stacks() {
    if (base) munmap(base, bytes);
  }
  char* get(unsigned i, unsigned n) {
    if (!base) {
      bytes = kStack * n;
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) std::abort();
      base = static_cast<char*>(p);
    }
    return base + kStack * i;
  }
};

std::string describe_hang(const Group& g) {
  unsigned done = 0;
  for (const auto& f : g.fibers) done += f.done;
  unsigned simd_waiting = 0;
  for (const auto& s : g.simd) simd_waiting += __builtin_popcount(s.arrived);
  return "threadgroup " + std::to_string(g.gid) + " of kernel " + g.k->name + " cannot go on: " +
         std::to_string(g.bar_arrived) + " of its " + std::to_string(g.n) + " threads wait at a threadgroup_barrier, " +
         std::to_string(simd_waiting) + " in a SIMD-group function, " + std::to_string(done) +
         " have returned (a barrier that not every thread of the threadgroup reaches)";
}

std::string run_group(const KernelEntry* k, const Binding* b, size_t nb, unsigned gid, unsigned n, Stacks& stacks) {
  Group g;
  g.k = k;
  g.b = b;
  g.nb = nb;
  g.gid = gid;
  g.n = n;
  g.fibers.resize(n);
  g.simd.resize((n + 31) / 32);
  for (unsigned s = 0; s < g.simd.size(); ++s) {
    unsigned lanes = std::min(32u, n - 32 * s);
    g.simd[s].full = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
  }
  cur = &g;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = g.fibers[i];
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stacks.get(i, n);
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &g.sched;
    makecontext(&f.ctx, fiber_main, 0);
  }
  // Odd threadgroups resume their threads in reverse order: another interleaving between waits.
  bool reverse = gid % 2 == 1;
  unsigned live = n;
  std::string err;
  while (live) {
    uint64_t before = g.progress;
    for (unsigned j = 0; j < n && g.fault.empty(); ++j) {
      unsigned i = reverse ? n - 1 - j : j;
      if (g.fibers[i].done) continue;
      g.current = i;
      swapcontext(&g.sched, &g.fibers[i].ctx);
      if (g.fibers[i].done) live--;
    }
    if (!g.fault.empty()) {
      err = "kernel " + std::string(k->name) + ", threadgroup " + std::to_string(gid) + ": " + g.fault;
      break;
    }
    if (live && g.progress == before) {
      err = describe_hang(g);
      break;
    }
  }
  for (void* p : g.tg) std::free(p);
  cur = nullptr;
  return err;
}

std::map<std::string, std::vector<KernelEntry>>& registry() {
  static std::map<std::string, std::vector<KernelEntry>> r;
  return r;
}

thread_local std::string last_error;

}  // namespace

void register_library(const char* source, const KernelEntry* kernels, size_t n) {
  registry()[source] = std::vector<KernelEntry>(kernels, kernels + n);
}

bool has_library(const char* source) { return registry().count(source) > 0; }

const KernelEntry* find_kernel(const char* source, const char* name) {
  auto it = registry().find(source);
  if (it == registry().end()) return nullptr;
  for (const auto& k : it->second)
    if (std::strcmp(k.name, name) == 0) return &k;
  return nullptr;
}

const char* dispatch(const KernelEntry* k, const Binding* b, size_t nb, uint64_t grid, uint64_t threads) {
  last_error.clear();
  if (const char* e = k->launch(b, nb, uint3_{0, 0, 0}, uint3_{0, 0, 0}, true)) {
    last_error = std::string("kernel ") + k->name + ": " + e;
    return last_error.c_str();
  }
  if (threads == 0 || threads > kMaxThreads || threads > k->max_threads) {
    last_error = std::string("kernel ") + k->name + " dispatched with " + std::to_string(threads) +
                 " threads per threadgroup (at most " + std::to_string(std::min(kMaxThreads, k->max_threads)) + ")";
    return last_error.c_str();
  }
  std::atomic<uint64_t> next{0};
  std::mutex m;
  std::string err;
  auto work = [&] {
    Stacks stacks;
    while (true) {
      uint64_t g = next++;
      if (g >= grid) break;
      std::string e = run_group(k, b, nb, unsigned(g), unsigned(threads), stacks);
      if (!e.empty()) {
        std::lock_guard<std::mutex> lock(m);
        if (err.empty()) err = e;
        next = grid;
      }
    }
  };
  std::vector<std::thread> pool;
  for (uint64_t w = 1; w < std::min<uint64_t>(grid, kWorkers); ++w) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  last_error = err;
  return last_error.empty() ? nullptr : last_error.c_str();
}

unsigned thread_index() { return cur->current; }
unsigned group_threads() { return cur->n; }

void group_barrier(long site) {
  Group& g = *cur;
  uint64_t gen = g.bar_gen;
  g.progress++;
  if (g.bar_arrived == 0)
    g.bar_site = site;
  else if (g.bar_site != site)
    stop("threads of the threadgroup met at different calls of threadgroup_barrier (a barrier in code that "
         "not every thread of the threadgroup runs)");
  if (++g.bar_arrived == g.n) {
    g.bar_arrived = 0;
    g.bar_gen++;
    return;
  }
  while (cur->bar_gen == gen) yield();
}

const uint64_t* simd_exchange(uint64_t bits, uint32_t* mask) {
  Group& g = *cur;
  unsigned t = g.current;
  SimdGroup& s = g.simd[t / 32];
  uint64_t gen = s.gen;
  unsigned slot = gen & 1;
  s.buf[slot][t % 32] = bits;
  s.arrived |= 1u << (t % 32);
  g.progress++;
  if ((s.arrived | s.done) == s.full)
    release_simd(s);
  else
    while (s.gen == gen) yield();
  *mask = s.mask[slot];
  return s.buf[slot];
}

void* threadgroup_array(size_t bytes, size_t align) {
  Group& g = *cur;
  Fiber& f = g.fibers[g.current];
  size_t i = f.tg_count++;
  if (i < g.tg.size()) {
    if (g.tg_size[i] != bytes) stop("threads of one threadgroup declared different threadgroup arrays");
    return g.tg[i];
  }
  g.tg_bytes += bytes;
  if (g.tg_bytes > kThreadgroupMemory)
    stop("the kernel declares " + std::to_string(g.tg_bytes) + " bytes of threadgroup memory (Metal allows 32 KB)");
  size_t a = std::max<size_t>(align, 16);
  size_t rounded = std::max<size_t>((bytes + a - 1) / a * a, a);
  void* p = std::aligned_alloc(a, rounded);
  std::memset(p, 0xcd, rounded);
  g.tg.push_back(p);
  g.tg_size.push_back(bytes);
  return p;
}

void kernel_fault(const char* what) { stop(what); }

}  // namespace parpy_emu
