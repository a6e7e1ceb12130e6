// The backend seam (docs/architecture.md, Backends): one object per backend owns whether it can
// run here (and why not), the end of its lowering (printing), building and calling. The pipeline
// (lower.cpp), the call path (bindings/compiler.cpp) and the argument marshalling ask the backend
// of the call's options instead of naming backends. Adding a backend is a folder under
// src/backends/ with a Backend subclass, plus one line in backend/registry.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gpu/gpu_ir.h"
#include "ir/abi.h"
#include "ir/bounds.h"
#include "ir/calls.h"
#include "ir/ir.h"
#include "ir/options.h"
#include "jit/cached_build.h"

namespace parpy {

namespace jit {
class SharedLibrary;
}

// The generated code of one specialisation, with what the caller needs to build and call it.
struct Lowered {
  std::string code;          // the generated source
  std::string entry_symbol;  // the uniform entry (the backend's calling convention)
  std::vector<AbiParam> params;
  std::string error_symbol;          // GPU: extern "C" const char* error() with the last failure
  std::vector<std::string> written;  // GPU: array parameters the code may write (copied back)
  std::string device_code, host_code;  // Cuda: `code` in two sources (see CudaProgram)
  // opts.bounds_check: the indices checked at run time, and the exported
  // `const int64_t* <bounds_symbol>()` giving the calling thread's last failure (site, index,
  // extent) after the entry returned PARPY_INDEX_ERROR; empty when nothing is checked.
  std::vector<BoundsSite> bounds_sites;
  std::string bounds_symbol;
  // GPU backends: the program that was printed (its host code can run without a host compiler,
  // gpu/host_program.h).
  std::shared_ptr<const GpuProgram> gpu;
};

// The Lowered of a GPU program printed by a backend (`printed`: its CudaProgram or MetalProgram,
// moved from): code, entry and error symbols, parameters and written arrays.
template <class Printed>
Lowered lowered_gpu(Printed& printed, const GpuProgram& gpu) {
  Lowered low;
  low.code = std::move(printed.code);
  low.entry_symbol = std::move(printed.entry_symbol);
  low.params = gpu.params;
  low.error_symbol = std::move(printed.error_symbol);
  low.written = gpu.written;
  low.bounds_symbol = std::move(printed.bounds_symbol);
  return low;
}

// What an entry returns when an index checked at run time was out of bounds (PARPY_INDEX_ERROR in
// parpy_common.h).
constexpr int32_t kIndexErrorStatus = 2;

// What a backend runs for an entry that has no compiled entry function (a Cuda program whose host
// code parpy interprets): the backend knows its type.
class EntryProgram {
 public:
  virtual ~EntryProgram() = default;
};

// A loaded library and its entry, ready to call.
struct Entry {
  std::shared_ptr<jit::SharedLibrary> lib;
  void* fn = nullptr;  // the entry, in its backend's calling convention
  std::shared_ptr<const EntryProgram> program;  // instead of lib and fn
  const char* (*error_fn)() = nullptr;  // the last failure's message, where the backend has one
  std::vector<bool> written;  // by argv index: copy a host array back after the call
  bool write_all = false;     // copy every host array back (hand-written code says nothing)
  // opts.bounds_check: the indices checked at run time and the calling thread's last failure.
  std::vector<BoundsSite> bounds_sites;
  const int64_t* (*bounds_fn)() = nullptr;
  bool built = false;  // a compiler ran (not found in the disk cache)
};

// A call's arguments in the entry's convention (bindings/args.h fills them in).
struct CallArgs {
  std::vector<void*> argv;
  // Host arrays a device backend copies in (and back), by their index in argv.
  struct HostArray {
    size_t index;
    void* host;
    size_t bytes;
  };
  std::vector<HostArray> host_arrays;
  void* stream = nullptr;  // the stream of the first CUDA array argument that names one
  // The CUDA device holding the array arguments; -1 where no argument is a CUDA array, and the
  // call runs on the thread's current device.
  int device = -1;
};

// How a call ended: status 0, or the entry's status with the backend's message (empty where it
// has none; kIndexErrorStatus with Entry::bounds_fn: the caller reads the failure from there).
struct CallResult {
  int32_t status = 0;
  std::string error;
};

// The checked, target-independent program that lower() hands to a backend.
struct Checked {
  std::string name;
  std::vector<AbiParam> params;
  Block body;
  Helpers helpers;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual CompileBackend id() const = 0;
  const char* name() const { return backend_name(id()); }

  // Empty when this backend can compile and run code here, else why not. Worked out once (but
  // see blocked_reason).
  virtual const std::string& unavailable_reason() const = 0;
  bool available() const { return unavailable_reason().empty(); }
  // Non-empty when the machine has this backend but this process cannot use it: a GPU whose
  // driver the parent process had initialised before forking this one. Resolution then fails with
  // this reason rather than choosing another backend (Auto) or saying "not available" (README,
  // "Backends"); unavailable_reason is this reason too. Cheap: asked at every resolution.
  virtual const std::string& blocked_reason() const;
  // Whether this version of parpy generates code for it.
  virtual bool generates_code() const { return true; }
  // Throws std::runtime_error saying so where it does not.
  void require_code_generation() const;

  // Whether arrays live in GPU memory: CUDA arrays are passed as they are, host arrays copied in
  // (and back where written) around the call.
  virtual bool device_memory() const { return false; }
  // Whether the GPU layer (src/gpu/) runs before printing: lower() then passes print_gpu a
  // GpuProgram made for gpu_target(opts); otherwise print_host gets the checked program.
  virtual bool gpu() const { return false; }
  virtual GpuTarget gpu_target(const CompileOptions&) const { return {}; }

  // The last stage of lower(): the generated code.
  virtual Lowered print_host(const Checked& p, const CompileOptions& opts) const;
  virtual Lowered print_gpu(const GpuProgram& p, const CompileOptions& opts) const;

  // Builds (or finds in the disk cache) the library of `low` and loads its entry.
  virtual std::shared_ptr<Entry> build(const Lowered& low, const CompileOptions& opts) const = 0;
  // compile_string: hand-written code; `params` describe the arguments of the first call. Code
  // without the uniform entry gets one calling `name`.
  virtual std::shared_ptr<Entry> build_user_code(const std::string& name, const std::string& code,
                                                 const std::vector<AbiParam>& params,
                                                 const CompileOptions& opts) const = 0;
  // Calls an entry (without the GIL).
  virtual CallResult call(const Entry& e, CallArgs& args) const = 0;

  // The error of an external declared for this backend with this target and parallelism, or
  // empty when it is accepted.
  virtual std::string external_error(bool host, const LoopPar& par) const;
};

// The backends, in the order Auto tries them: Cuda, Metal, Cpu.
const std::vector<const Backend*>& backends();
// The backend of `b` (not Auto).
const Backend& backend_of(CompileBackend b);

// The backend to compile for (README, "Backends"): Auto picks the first of `available` this
// version generates code for, but stops at a blocked backend (Backend::blocked_reason); in strict
// mode (jit calls, compile_string) a named backend must be available, otherwise it is accepted as
// is, so code can be printed for a backend this machine cannot run (the caller then asks
// require_code_generation). Throws std::runtime_error with the message and the way out.
CompileBackend resolve_backend(CompileBackend requested, bool strict,
                               const std::vector<CompileBackend>& available);
// The same, asking the backends themselves, and only those the resolution needs: an explicit
// backend's check looks at that backend alone (none for a non-strict one), so an explicit Cpu
// never loads the CUDA driver, whose cuInit would keep processes forked later from using CUDA.
CompileBackend resolve_backend(CompileBackend requested, bool strict);
// The backends available here, each asked (its answer is worked out once per process).
std::vector<CompileBackend> available_backends();

// The directory of parpy's support headers (set once by the Python package), and the include
// directories, library directories and flags of a build of `opts`, the headers' hash among them.
void set_include_dir(const std::string& dir);
jit::BuildFlags build_flags(const CompileOptions& opts);

// Loads a built library and looks its entry up (the error and bounds functions where named).
std::shared_ptr<Entry> load_entry(const jit::BuildResult& built, const std::string& entry_symbol,
                                  const std::string& error_symbol = "", const Lowered* low = nullptr);

}  // namespace parpy
