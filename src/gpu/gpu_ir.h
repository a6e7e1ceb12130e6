// The GPU program shared by every GPU backend: kernels with their launch geometry, device
// scratch buffers, and the host code as data (a Block whose Launch statements run kernels).
#pragma once
#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/ir.h"
#include "ir/abi.h"

namespace parpy {

// Compiler-generated names start with '$' (printed as parpy_...). The GPU printers define these
// two: the thread index in the block and the block index in the grid.
inline const char* kThreadIdx = "$tid";
inline const char* kBlockIdx = "$bid";

// What the GPU backend being compiled for offers the shared GPU layer; each GPU backend makes one
// from the call's options (backend/backend.h, Backend::gpu_target).
struct GpuTarget {
  // The most blocks of one thread-block cluster (blocks that synchronise and reduce together
  // through distributed shared memory); 0: no clusters.
  int64_t max_cluster_blocks = 0;
  bool graphs = false;  // the entry may replay its launches as a graph (GpuProgram::use_graphs)
  // Host code may read and write arrays (their memory is shared with the host); otherwise an
  // array access outside parallel code is an error.
  bool host_array_access = false;
  // The threads a kernel needs to fill the GPU: a parallel loop with fewer, around a long
  // sequential accumulation, is split across blocks (gpu/split_rows.h); 0: never split.
  int64_t fill_threads = 0;
  bool atomics64 = true;  // 64-bit atomic updates exist (not on Metal)
  // Rows may be packed into blocks (gpu/geometry.h, pack_rows): groups of lanes of one warp
  // synchronise and reduce on their own (intrinsics GroupSync, GroupReduce), in divergent code.
  bool pack_rows = false;
};

struct Kernel {
  std::string name;
  std::vector<AbiParam> params;  // arrays (device pointers) and host scalars, in launch order
  int64_t block_threads = 32;    // blockDim.x, a multiple of 32
  int64_t grid_blocks = 1;       // gridDim.x
  int64_t cluster_blocks = 1;    // blocks per thread-block cluster (1: no cluster), divides grid_blocks
  Block body;                    // device code; calls of intrinsics (ir/intrinsics.h)
  // The same kernel with 128-bit accesses (gpu/vectorize.h), launched instead of `body` when every
  // array in `alignment` is aligned to its entry in bytes; empty when there is none.
  Block vector_body;
  std::map<std::string, int64_t> alignment;
  // The innermost layer's worker index (a local of `body`) and its number of workers, for the
  // passes over kernel bodies (gpu/vectorize.h, gpu/cache_rows.h).
  std::string inner_worker;
  int64_t inner_workers = 1;
  // How the kernel maps its loops when that is not the plain mapping (rows packed into blocks),
  // shown as a comment at the top of its body; empty otherwise.
  std::string note;
};

// A device buffer owned by the generated module, allocated on first use.
struct Scratch {
  std::string name;
  ElemSize elem;
  int64_t count;
  bool zeroed;  // must start as zeros (reset by the kernels that use it)
};

struct GpuProgram {
  std::string name;
  std::vector<AbiParam> params;  // the entry's parameters
  std::vector<Kernel> kernels;
  std::vector<Scratch> scratch;
  Block host;  // scalar host code; a Launch statement (`launch_stmt(kernel.name, args)`) runs a kernel
  std::vector<std::string> written;  // array parameters the program may write (copied back)
  bool use_graphs = false;  // the entry replays a CUDA graph of the host code's launches
  // Device functions the kernels call (jit helpers, callees first; name = C name), and the
  // headers of the externals they and the kernels call; the headers of the host externals
  // (Target.Host, Metal) the host code calls.
  std::vector<Function> functions;
  std::vector<std::string> headers;
  std::vector<std::string> host_headers;
  // Names of arrays that another name may refer to (locals naming arrays and what they name): the
  // kernel passes leave their accesses alone.
  std::set<std::string> aliased;
};

// The iterations of `loop` when its range is range(lo, hi) with literal bounds and step 1; -1
// otherwise.
inline int64_t constant_trips(const Stmt& loop) {
  if (loop->lo->kind != ExprKind::Int || loop->hi->kind != ExprKind::Int || loop->step != 1) return -1;
  return range_trips(loop->lo->ival, loop->hi->ival, 1);  // without overflow near the ends of int64
}

// Host code (before kernels are extracted) with the statements that `f` takes replaced by what it
// returns: f sees each statement of the host code, and where it returns nothing the statement is
// kept, sequential loops and branches entered; `with parpy.gpu:` blocks (one kernel's body) are
// not entered. The passes that rewrite a kernel's outermost parallel loop (split_rows,
// strip_rows) walk the host code with it.
inline Block map_host_statements(const Block& b, const std::function<std::optional<Block>(const Stmt&)>& f) {
  Block out;
  for (const auto& s : b) {
    if (std::optional<Block> r = f(s)) {
      out.insert(out.end(), r->begin(), r->end());
    } else if (s->kind == StmtKind::For || s->kind == StmtKind::While || s->kind == StmtKind::If) {
      auto n = copy(s);
      n->body = map_host_statements(s->body, f);
      n->orelse = map_host_statements(s->orelse, f);
      out.push_back(n);
    } else {
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace parpy
