// The compiler's Python surface: decoration (python_to_ir), the native call path of a jit
// function, print_compiled, caches and statistics. Argument marshalling is in args.cpp.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "bindings/args.h"
#include "bindings/bind.h"
#include "bindings/code_dump.h"
#include "bindings/externals.h"
#include "bindings/host_launches.h"
#include "backend/backend.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/driver_program.h"
#include "gpu/host_program.h"
#include "frontend/python_to_ir.h"
#include "ir/options.h"
#include "jit/cached_build.h"
#include "jit/disk_cache.h"
#include "jit/host_compiler.h"
#include "jit/nvcc.h"
#include "jit/shared_library.h"
#include "lower.h"
#include "passes/specialize.h"

namespace nb = nanobind;

namespace parpy {
namespace {

struct IrFunction {
  std::shared_ptr<const Function> fn;
};

std::atomic<uint64_t> g_compiles{0};
// Libraries built by a compiler (not found in the disk cache); a Cuda program built in two parts
// counts once.
std::atomic<uint64_t> g_builds{0};
std::atomic<uint64_t> g_cache_epoch{0};

// parpy.ParallelismError (a RuntimeError): the spec asks for more parallelism than the target
// gives a loop nest; autotuning searches below it (python/parpy/autotune.py).
PyObject* g_parallelism_error = nullptr;

PyObject* exception_class(ErrorKind k) {
  switch (k) {
    case ErrorKind::Parallelism: return g_parallelism_error;
    case ErrorKind::Type: return PyExc_TypeError;
    case ErrorKind::Name: return PyExc_NameError;
    case ErrorKind::Index: return PyExc_IndexError;
    default: return PyExc_RuntimeError;
  }
}

// ---- Backend resolution (README, "Backends"; the rules in backend/backend.h) ----

// Prints why each backend that is not available here is not (verbose_backend_resolution).
void explain_backends() {
  for (const Backend* b : backends())
    if (!b->available())
      nb::print(nb::str(("Backend CompileBackend." + std::string(b->name()) + " is not enabled: " +
                         b->unavailable_reason()).c_str()));
}

// The backend to compile for; the caller's options are never changed (with_backend copies them).
CompileBackend resolve(const CompileOptions& opts, bool strict) {
  if (opts.verbose_backend_resolution) explain_backends();
  try {
    // Asks only the backends the resolution needs: an explicit Cpu never loads the CUDA driver.
    CompileBackend b = resolve_backend(opts.backend, strict);
    backend_of(b).require_code_generation();
    return b;
  } catch (const std::runtime_error& e) {
    py_fail(PyExc_RuntimeError, e.what());
  }
}

// ---- Compiled entries ----

// The IndexError of an index found out of bounds at run time (docs/language.md, Index bounds), or
// nullopt if the entry has no record of one.
std::optional<std::string> index_error(const Entry& e) {
  if (!e.bounds_fn) return std::nullopt;
  const int64_t* r = e.bounds_fn();
  if (r[0] < 1 || r[0] > static_cast<int64_t>(e.bounds_sites.size())) return std::nullopt;
  const BoundsSite& site = e.bounds_sites[r[0] - 1];
  std::string msg = bounds_message(site, "is " + std::to_string(r[1])) +
                    "\nThis index was checked when the code ran (bounds_check); the arrays written by the call "
                    "hold partial results. Check the values it is computed from, such as array elements "
                    "used as indices.";
  return CompileError(ErrorKind::Index, msg, site.span).render();
}

DebugSink python_print_sink() {
  return [](const std::string& s) { nb::print(nb::str(s.c_str(), s.size())); };
}

// Builds (or finds in the disk cache) and loads, without the GIL.
template <typename Build>
std::shared_ptr<Entry> built(Build&& build) {
  std::shared_ptr<Entry> e;
  {
    nb::gil_scoped_release release;
    e = build();
  }
  if (e->built) ++g_builds;
  ++g_compiles;
  return e;
}

// Calls an entry without the GIL; raises the IndexError of a failed run-time index check, or a
// RuntimeError with the backend's message (else `failed` and the status).
void call_entry(const Entry& e, ArgPack& args, CompileBackend b, const char* failed) {
  args.check_written(e);
  CallResult r;
  {
    nb::gil_scoped_release release;
    r = backend_of(b).call(e, args);
  }
  // Whatever the outcome, what the code wrote is in the arrays, as if it had run on them.
  args.write_back(e, r.status == 0);
  if (r.status == 0) return;
  if (r.status == kIndexErrorStatus)
    if (auto msg = index_error(e)) py_fail(PyExc_IndexError, *msg);
  if (r.error.empty()) r.error = std::string(failed) + " failed with status " + std::to_string(r.status);
  py_fail(PyExc_RuntimeError, r.error);
}

// What the compiler knows about a call's arguments; the 0-dim CUDA arrays of `read_paths` are
// read (all of them when null), the others stay on the GPU.
std::vector<ArgValue> describe(const nb::tuple& args, const CompileOptions& opts, const std::vector<Param>* params,
                               const std::vector<std::string>* read_paths) {
  ArgPack described(opts, true);
  described.params = params;
  described.read_paths = read_paths;
  for (size_t i = 0; i < args.size(); ++i) described.add(args[i], "#" + std::to_string(i + 1));
  described.finish();
  return std::move(described.values);
}

// Lowers a call, leaving on the GPU each 0-dim CUDA array whose value decides no code; the paths
// of those whose value does are added to `reads` (see lower_call).
Lowered lower_args(const Function& fn, const nb::tuple& args, const CompileOptions& opts,
                   std::vector<std::string>& reads, const DebugSink& debug) {
  std::vector<ArgValue> values = describe(args, opts, &fn.params, &reads);
  auto read_all = [&] { return describe(args, opts, &fn.params, nullptr); };
  Lowered low = lower_call(fn, values, read_all, reads, opts, debug);
  dump_code(fn.name, opts, low.code);
  if (low.gpu && opts.backend == CompileBackend::Cuda) log_host_program(fn.name, opts, *low.gpu);
  return low;
}

std::shared_ptr<Entry> build_entry(const Function& fn, const nb::tuple& args, const CompileOptions& opts,
                                   std::vector<std::string>& reads) {
  Lowered low = lower_args(fn, args, opts, reads, python_print_sink());
  return built([&] { return backend_of(opts.backend).build(low, opts); });
}

// PARPY_BOUNDS_CHECK=1 (read once) turns opts.bounds_check on for every call
// (docs/language.md, Index bounds).
bool env_bounds_check() {
  static const bool on = [] {
    const char* v = std::getenv("PARPY_BOUNDS_CHECK");
    return v != nullptr && *v != 0 && std::string(v) != "0";
  }();
  return on;
}

// `opts`, or a copy in `local` with bounds_check set where the environment asks for it.
CompileOptions* with_env_bounds(CompileOptions* opts, CompileOptions& local) {
  if (!env_bounds_check() || opts->bounds_check) return opts;
  if (opts != &local) local = *opts;
  local.bounds_check = true;
  local.touch();
  return &local;
}

// Options with the backend resolved, made from options whose backend is Auto.
struct ResolvedOptions {
  std::string source_key;  // the key of the options as given
  CompileOptions opts;
};

// `opts` with its backend resolved: opts itself when the backend is given, else a copy with it
// filled in, held by `hold`. `memo` keeps the last copy made (the resolution of Auto does not
// change within a process), so calls with the same Auto options copy them once, not each time.
const CompileOptions* with_backend(const CompileOptions* opts, bool strict,
                                   std::shared_ptr<const ResolvedOptions>& memo,
                                   std::shared_ptr<const ResolvedOptions>& hold) {
  if (opts->backend != CompileBackend::Auto) {
    resolve(*opts, strict);
    return opts;
  }
  hold = memo;
  // A memo made before a fork may name a backend the forked process cannot use (CUDA): resolved
  // again, it says why.
  if (hold && hold->source_key == opts->key() && backend_of(hold->opts.backend).available()) {
    if (opts->verbose_backend_resolution) explain_backends();
    return &hold->opts;
  }
  auto made = std::make_shared<ResolvedOptions>(ResolvedOptions{opts->key(), *opts});
  made->opts.backend = resolve(*opts, strict);
  made->opts.touch();
  hold = made;
  memo = made;
  return &hold->opts;
}

// The Python function that chooses options by measurement (parpy/autotune.py), set when parpy
// is imported; a strong reference kept for the life of the process.
PyObject*& autotuner() {
  static PyObject* fn = nullptr;
  return fn;
}

const CompileOptions& default_options() {
  static CompileOptions d;
  return d;
}

// The native callable behind every @parpy.jit function.
class JitFunction {
 public:
  explicit JitFunction(const IrFunction& ir) : fn_(ir.fn) {}
  // A function that calls a name not bound when it was decorated (a helper defined later in the
  // module): resolve(strict) converts it again with the namespaces of the first call, returning
  // None while a callee is still unbound (strict: failing with "Call to unknown function f").
  explicit JitFunction(nb::callable resolve) : resolve_(std::move(resolve)) {}

  // The IR, converted now if decoration deferred it; nullptr when still unbound (not strict) or
  // when this thread is converting it already (a recursive call). Another thread converting it
  // at the same time converts it too (the GIL is released in Python code): the results agree.
  FunctionRef function(bool strict) {
    if (fn_ || resolving()) return fn_;
    nb::object resolve = resolve_;
    auto me = std::this_thread::get_id();
    resolving_.insert(me);
    struct Done {
      std::multiset<std::thread::id>& set;
      std::thread::id me;
      ~Done() { set.erase(set.find(me)); }
    } done{resolving_, me};
    nb::object ir = resolve(strict);
    if (!fn_ && !ir.is_none()) {
      fn_ = nb::cast<IrFunction>(ir).fn;
      resolve_ = nb::object();
    }
    return fn_;
  }

  // The IR for a call: converted now if deferred, else the conversion's error.
  const Function& resolved() {
    auto fn = function(true);
    // Only a use of this function while this thread converts it gets here without an error.
    if (!fn) py_fail(PyExc_RuntimeError, "A jit function was used while it was being converted");
    return *fn;
  }

  // Whether this thread is converting this function now: a call to it is recursive.
  bool resolving() const { return resolving_.count(std::this_thread::get_id()) > 0; }

  nb::object call(nb::args args, nb::kwargs kwargs) { return run(args, kwargs, Mode::Call); }

  // The key a call with these arguments and options is cached under in memory (argument types,
  // shapes and int values, then the options), without running anything: what autotuning stores
  // its choice under.
  nb::bytes call_key(nb::args args, nb::kwargs kwargs) {
    nb::object key = run(args, kwargs, Mode::Key);
    return nb::cast<nb::bytes>(key);
  }

  // What a call with these arguments and options does before it runs: the code built (or found
  // in the disk cache) and kept under the call's key, where the call will find it. Nothing runs.
  // Autotuning builds a step's candidates this way, several threads at once, before it times them.
  void build(nb::args args, nb::kwargs kwargs) { run(args, kwargs, Mode::Build); }

 private:
  enum class Mode { Call, Key, Build };

  nb::object run(nb::args args, nb::kwargs kwargs, Mode mode) {
    CompileOptions* opts = nullptr;
    CompileOptions local;
    for (auto [k, v] : kwargs) {
      std::string key = nb::cast<std::string>(k);
      if (key != "opts") {
        nb::dict rest;
        for (auto [k2, v2] : kwargs)
          if (nb::cast<std::string>(k2) != "opts") rest[k2] = v2;
        py_fail(PyExc_RuntimeError,
                "Received unsupported keyword arguments: " + nb::cast<std::string>(nb::repr(rest)));
      }
      if (v.is_none()) continue;
      if (!nb::try_cast<CompileOptions*>(v, opts))
        py_fail(PyExc_TypeError, "Expected opts to be a CompileOptions, found " +
                                     nb::cast<std::string>(nb::str(v.type().attr("__name__"))));
    }
    if (!opts) {
      local = default_options();
      opts = &local;
    }
    opts = with_env_bounds(opts, local);
    std::shared_ptr<const ResolvedOptions> hold;
    const CompileOptions* o = with_backend(opts, true, resolved_, hold);
    if (epoch_ != g_cache_epoch.load()) {
      cache_.clear();
      epoch_ = g_cache_epoch.load();
    }
    // A function deferred at decoration is converted now (or fails with the conversion's error):
    // its parameters name the arguments in argument errors.
    const Function& fn = resolved();
    std::optional<ArgPack> packed;
    auto marshal = [&] {
      packed.emplace(*o, false);
      packed->params = &fn.params;
      packed->read_paths = &reads_;
      for (size_t i = 0; i < args.size(); ++i) packed->add(args[i], "#" + std::to_string(i + 1));
      packed->finish();
      packed->key.push_back('\0');
      packed->key += o->key();
    };
    marshal();
    if (mode == Mode::Key) return nb::bytes(packed->key.data(), packed->key.size());
    auto it = cache_.find(packed->key);
    std::shared_ptr<Entry> entry;
    if (it != cache_.end()) {
      entry = it->second;
    } else {
      size_t known = reads_.size();
      if (o->autotune && autotuner() != nullptr) {
        // The tuner times candidate options on copies of the arguments (calls of this function
        // without autotune) and returns the fastest; this call then runs it once, on the
        // arguments themselves, and later calls find it under this call's key.
        nb::object self = nb::find(this);
        nb::object chosen = nb::borrow(autotuner())(self, args, *o, nb::bytes(packed->key.data(), packed->key.size()));
        CompileOptions winner = nb::cast<CompileOptions>(chosen);
        winner.autotune = false;
        winner.backend = o->backend;
        winner.touch();
        entry = build_entry(fn, args, winner, reads_);
      } else {
        entry = build_entry(fn, args, *o, reads_);
      }
      // Values found to decide code are read, and keyed on, from this call on.
      if (reads_.size() != known) marshal();
      cache_.emplace(packed->key, entry);
    }
    if (mode == Mode::Build) return nb::none();
    call_entry(*entry, *packed, o->backend, "The generated code");
    return nb::none();
  }

 public:
  size_t cache_size() const { return cache_.size(); }
  // Forgets the compiled code cached under `key` (a _call_key): autotuning drops its candidates.
  bool drop_cached(nb::bytes key) { return cache_.erase(std::string(key.c_str(), key.size())) > 0; }
  IrFunction ir() {
    resolved();
    return {fn_};
  }

 private:
  std::shared_ptr<const ResolvedOptions> resolved_;  // with_backend's memo
  std::shared_ptr<const Function> fn_;
  nb::object resolve_;                      // while deferred
  std::multiset<std::thread::id> resolving_;  // threads converting it now (under the GIL)
  std::unordered_map<std::string, std::shared_ptr<Entry>> cache_;
  uint64_t epoch_ = 0;
  // The 0-dim CUDA array arguments ("#1", "#2[\"k\"]") whose value decides this function's code,
  // learnt when it is lowered: they are read at call time; the others stay on the GPU.
  std::vector<std::string> reads_;
};

// What a jit function calls: a jit function (its IR, converted now if it was deferred), an
// external wrapper (its declarations, one per backend) or something else.
ResolvedCall resolve_call(nb::handle v, bool strict) {
  ResolvedCall r;
  JitFunction* jit = nullptr;
  if (nb::try_cast<JitFunction*>(v, jit) && jit) {
    if (jit->resolving()) {
      r.kind = ResolvedCall::Recursive;
      return r;
    }
    r.fn = jit->function(strict);
    r.kind = r.fn ? ResolvedCall::Jit : ResolvedCall::Unbound;
    return r;
  }
  nb::object decls = nb::getattr(v, "_parpy_externals", nb::none());
  if (decls.is_none()) return r;
  for (nb::handle d : decls) r.exts.push_back(nb::cast<ExternalHandle>(d).decl);
  r.kind = ResolvedCall::External;
  return r;
}

// compile_string (docs/language.md, Arguments): user-written code in the generated calling
// convention, built by the backend (Backend::build_user_code).
class StringFunction {
 public:
  StringFunction(std::string name, std::string code, const CompileOptions& opts)
      : name_(std::move(name)), code_(std::move(code)), opts_(opts) {}

  nb::object call(nb::args args) {
    if (opts_.backend == CompileBackend::Auto) {
      opts_.backend = resolve(opts_, true);  // this object's own copy
      opts_.touch();
    } else {
      resolve(opts_, true);
    }
    ArgPack pack(opts_, false);
    for (size_t i = 0; i < args.size(); ++i) pack.add(args[i], "#" + std::to_string(i + 1));
    pack.finish();
    auto it = cache_.find(pack.key);
    std::shared_ptr<Entry> entry;
    if (it != cache_.end()) {
      entry = it->second;
    } else {
      ArgPack described(opts_, true);
      std::vector<std::string> names;
      for (size_t i = 0; i < args.size(); ++i) {
        described.add(args[i], "#" + std::to_string(i + 1));
        names.push_back("a" + std::to_string(i));
      }
      std::vector<AbiParam> params = abi_params(names, described.values, opts_);
      entry = built([&] { return backend_of(opts_.backend).build_user_code(name_, code_, params, opts_); });
      cache_.emplace(pack.key, entry);
    }
    call_entry(*entry, pack, opts_.backend, "The compiled function");
    return nb::none();
  }

 private:
  std::string name_, code_;
  CompileOptions opts_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> cache_;
};

// print_compiled's lowering of a call: the options resolved (not strictly) for `backend`, or for
// their own backend, with the index checks the environment asks for, and the code of `args`. Keeps
// the options that an ArgPack of the same call needs.
struct PrintedLowering {
  CompileOptions resolved, local;
  const CompileOptions* opts;
  std::vector<std::string> reads;
  Lowered low;
  PrintedLowering(const IrFunction& ir, nb::tuple args, const CompileOptions& given, std::optional<CompileBackend> backend = {})
      : resolved(given) {  // the caller's options stay as they are
    if (backend) resolved.backend = *backend;
    resolved.backend = resolve(resolved, false);
    resolved.touch();
    opts = with_env_bounds(&resolved, local);
    low = lower_args(*ir.fn, args, *opts, reads, python_print_sink());
  }
  PrintedLowering(const PrintedLowering&) = delete;
  PrintedLowering& operator=(const PrintedLowering&) = delete;
};

}  // namespace

// Source lines of code that is not in a file, as Python's tracebacks find them: IPython and
// Jupyter keep each cell's source in linecache.
static std::vector<std::string> linecache_lines(const std::string& file) {
  nb::gil_scoped_acquire gil;
  std::vector<std::string> out;
  try {
    for (nb::handle l : nb::module_::import_("linecache").attr("getlines")(file)) {
      std::string s = nb::cast<std::string>(l);
      if (!s.empty() && s.back() == '\n') s.pop_back();
      out.push_back(std::move(s));
    }
  } catch (const std::exception&) {
    out.clear();  // no excerpt, the message alone
  }
  return out;
}

void bind_compiler(nb::module_& m) {
  set_fallback_source(&linecache_lines);
  g_parallelism_error = PyErr_NewExceptionWithDoc(
      "parpy.ParallelismError",
      "The parallel spec asks for more parallelism than the target gives a loop nest (for "
      "example more threads than a block holds where the nest needs a barrier across them).",
      PyExc_RuntimeError, nullptr);
  m.attr("ParallelismError") = nb::handle(g_parallelism_error);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const CompileError& e) {
      PyErr_SetString(exception_class(e.kind()), e.render().c_str());
    } catch (const jit::BuildError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  nb::class_<IrFunction>(m, "IrFunction")
      .def_prop_ro("name", [](const IrFunction& f) { return f.fn->name; })
      .def("__str__", [](const IrFunction& f) { return print_function(*f.fn); });

  m.def(
      "python_to_ir",
      [](nb::handle fdef, const std::string& file, int line_offset, int col_offset, nb::object globals,
         nb::object locals, bool defer_unbound) -> std::optional<IrFunction> {
        FrontendInput in;
        in.fdef = fdef;
        in.file = file;
        in.line_offset = line_offset;
        in.col_offset = col_offset;
        in.globals = globals;
        in.locals = locals;
        in.defer_unbound = defer_unbound;
        in.resolve_call = [defer_unbound](nb::handle v) { return resolve_call(v, !defer_unbound); };
        auto fn = decorate(python_to_ir(in));
        if (!fn) return std::nullopt;
        return IrFunction{fn};
      },
      nb::arg("fdef"), nb::arg("file"), nb::arg("line_offset"), nb::arg("col_offset"), nb::arg("globals"),
      nb::arg("locals"), nb::arg("defer_unbound") = false);

  // Weakly referenceable: parpy._ir_asts holds jit functions weakly, so that a function (and the
  // libraries its cache holds) goes when the program drops it.
  nb::class_<JitFunction>(m, "JitFunction", nb::dynamic_attr(), nb::is_weak_referenceable())
      .def(nb::init<const IrFunction&>())
      .def(nb::init<nb::callable>())
      .def("__call__", &JitFunction::call)
      .def("_call_key", &JitFunction::call_key)
      .def("_build", &JitFunction::build)
      .def("_drop_cached", &JitFunction::drop_cached)
      .def_prop_ro("_ir", &JitFunction::ir)
      .def("_cache_size", &JitFunction::cache_size);

  m.def("print_compiled", [](const IrFunction& ir, nb::tuple args, const CompileOptions& opts) {
    return PrintedLowering(ir, args, opts).low.code;
  });
  // For tests: print_compiled's code with the Cuda backend's two parts (device, host), which
  // are empty on other backends.
  m.def("_print_compiled_parts", [](const IrFunction& ir, nb::tuple args, const CompileOptions& opts) {
    PrintedLowering p(ir, args, opts);
    return nb::make_tuple(p.low.code, p.low.device_code, p.low.host_code);
  });

  // Private, for tests and tools (gpu/host_program.h): a call lowered for the Cuda backend as
  // print_compiled lowers it, and the launches its host code asks for, run by HostProgram or (with
  // `library`) by the compiled host part built against tools/host_program/fake_cudart.cpp (its
  // entry: `entry`, by default the program's own).
  m.def(
      "_host_launches",
      [](const IrFunction& ir, nb::tuple args, const CompileOptions& opts, std::optional<std::string> library,
         std::optional<std::string> entry, bool raw) {
        PrintedLowering p(ir, args, opts, CompileBackend::Cuda);
        const Lowered& low = p.low;
        ArgPack pack(*p.opts, false);
        pack.params = &ir.fn->params;
        pack.read_paths = &p.reads;
        for (size_t i = 0; i < args.size(); ++i) pack.add(args[i], "#" + std::to_string(i + 1));
        pack.finish();
        try {
          auto launches = library ? run_compiled_host(*low.gpu, *library, entry.value_or(low.entry_symbol), pack.argv.data())
                                  : interpret_host(*low.gpu, pack.argv.data());
          return launches_to_python(*low.gpu, launches, raw);
        } catch (const std::runtime_error& e) {
          py_fail(PyExc_RuntimeError, e.what());
        }
      },
      nb::arg("fun"), nb::arg("args"), nb::arg("opts"), nb::arg("library") = nb::none(),
      nb::arg("entry") = nb::none(), nb::arg("raw") = false);
  // The host part of that lowering, its entry, what its host code contains, and the time of
  // HostProgram::run (and of preparing it) in nanoseconds over `iterations` runs (0: not timed).
  m.def("_host_program", [](const IrFunction& ir, nb::tuple args, const CompileOptions& opts, int64_t iterations) {
    PrintedLowering p(ir, args, opts, CompileBackend::Cuda);
    const Lowered& low = p.low;
    nb::dict d;
    d["host_code"] = low.host_code;
    d["entry_symbol"] = low.entry_symbol;
    nb::dict constructs;
    for (const auto& [k, n] : host_code_constructs(*low.gpu)) constructs[k.c_str()] = n;
    d["constructs"] = constructs;
    try {
      HostProgram hp(*low.gpu);
      d["slots"] = hp.slots();
      d["ops"] = hp.ops();
    } catch (const std::runtime_error& e) {
      d["error"] = std::string(e.what());
    }
    if (iterations > 0) {
      ArgPack pack(*p.opts, false);
      pack.params = &ir.fn->params;
      pack.read_paths = &p.reads;
      for (size_t i = 0; i < args.size(); ++i) pack.add(args[i], "#" + std::to_string(i + 1));
      pack.finish();
      auto [run, build] = host_run_ns(*low.gpu, pack.argv.data(), iterations);
      d["run_ns"] = run;
      d["prepare_ns"] = build;
    }
    return d;
  }, nb::arg("fun"), nb::arg("args"), nb::arg("opts"), nb::arg("iterations") = 0);

  nb::class_<StringFunction>(m, "StringFunction")
      .def(nb::init<std::string, std::string, const CompileOptions&>())
      .def("__call__", &StringFunction::call);

  m.def("_set_include_dir", [](const std::string& d) { set_include_dir(d); });
  // Backend availability and resolution for parpy.backend (the rules in backend/backend.h).
  m.def("_backend_reason", [](CompileBackend b) -> std::string {
    if (b == CompileBackend::Auto) return "CompileBackend.Auto is not a concrete backend";
    return backend_of(b).unavailable_reason();
  });
  m.def("_resolve_backend", [](CompileBackend b, bool strict, const std::vector<CompileBackend>& available) {
    try {
      return resolve_backend(b, strict, available);
    } catch (const std::runtime_error& e) {
      py_fail(PyExc_RuntimeError, e.what());
    }
  });
  m.def("_host_cxx", []() -> std::optional<std::string> {
    const jit::Toolchain& cxx = jit::host_cxx();
    if (!cxx.found) return std::nullopt;
    return cxx.path;
  });
  m.def("clear_cache", [] {
    ++g_cache_epoch;
    nb::gil_scoped_release release;
    jit::forget_precompiled_headers();
    jit::clear_disk_cache();
  });
  // Records of the disk cache made by Python (autotuning's choices): the entry keyed by
  // `key_parts`, with the disk cache's trust checks, single flight and atomic publication; made
  // by `make()` (bytes) when there is no valid one. Returns (payload, whether make ran).
  m.def("_cache_record", [](const std::vector<std::string>& key_parts, const std::string& suffix, nb::callable make) {
    struct PythonFailed {};
    jit::BuildResult r;
    try {
      nb::gil_scoped_release release;  // waiting for another maker of the entry
      r = jit::build_cached_entry("", key_parts, suffix,
                                  [&](const jit::BuildDirectory&, double, uint64_t, std::vector<jit::Dependency>&) {
                                    nb::gil_scoped_acquire acquire;
                                    try {
                                      nb::bytes b = nb::cast<nb::bytes>(make());
                                      return std::string(b.c_str(), b.size());
                                    } catch (nb::python_error& e) {
                                      e.restore();  // raised again below, with the GIL
                                      throw PythonFailed{};
                                    }
                                  });
    } catch (const PythonFailed&) {
      throw nb::python_error();
    }
    return nb::make_tuple(nb::bytes(r.payload->data(), r.payload->size()), r.built);
  });
  // The same record, looked up only (None when there is no valid one).
  m.def("_cached_record", [](const std::vector<std::string>& key_parts, const std::string& suffix) -> nb::object {
    std::optional<std::string> payload;
    {
      nb::gil_scoped_release release;
      payload = jit::find_cached_entry("", key_parts, suffix);
    }
    if (!payload) return nb::none();
    return nb::bytes(payload->data(), payload->size());
  });
  m.def("_set_autotuner", [](nb::callable fn) {
    Py_XDECREF(autotuner());
    autotuner() = fn.inc_ref().ptr();
  });
  m.def("cache_dir", [] {
    nb::gil_scoped_release release;
    return jit::cache_dir().string();
  });
  m.def("cuda_build", [] { return describe_cuda_build(); });
  // The generated libraries loaded now (jit functions release theirs when they go).
  // Loaded entries: libraries, and Cuda programs run without one (DriverProgram).
  m.def("_loaded_library_count", [] { return jit::loaded_library_count() + DriverProgram::live(); });
  m.def("stats", [] {
    nb::dict d;
    d["compiles"] = g_compiles.load();
    d["builds"] = g_builds.load();
    return d;
  });
}

}  // namespace parpy
