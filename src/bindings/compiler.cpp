// The compiler's Python surface: decoration (python_to_ir), the native call path of a jit
// function, print_compiled, caches and statistics.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "bindings/bind.h"
#include "bindings/externals.h"
#include "codegen/cpu.h"
#include "frontend/python_to_ir.h"
#include "ir/options.h"
#include "jit/disk_cache.h"
#include "jit/host_compiler.h"
#include "jit/nvcc.h"
#include "runtime/cuda_driver.h"
#include "jit/sha256.h"
#include "jit/shared_library.h"
#include "lower.h"

namespace nb = nanobind;

namespace parpy {
namespace {

struct IrFunction {
  std::shared_ptr<const Function> fn;
};

std::atomic<uint64_t> g_compiles{0};
std::atomic<uint64_t> g_cache_epoch{0};
std::string g_include_dir;

PyObject* exception_class(ErrorKind k) {
  switch (k) {
    case ErrorKind::Type: return PyExc_TypeError;
    case ErrorKind::Name: return PyExc_NameError;
    default: return PyExc_RuntimeError;
  }
}

[[noreturn]] void py_fail(PyObject* cls, const std::string& msg) {
  PyErr_SetString(cls, msg.c_str());
  throw nb::python_error();
}

// ---- Backend resolution (SPEC A1, B 1.11) ----

const std::vector<CompileBackend>& available_backends() {
  static std::vector<CompileBackend> avail = [] {
    std::vector<CompileBackend> out;
    nb::object mod = nb::module_::import_("parpy.backend");
    for (nb::handle b : mod.attr("available")) out.push_back(nb::cast<CompileBackend>(b));
    return out;
  }();
  return avail;
}

bool implemented(CompileBackend b) { return b == CompileBackend::Cpu || b == CompileBackend::Cuda; }

void explain_backends() {
  nb::object mod = nb::module_::import_("parpy.backend");
  for (nb::handle b : mod.attr("backends")) mod.attr("is_enabled")(b, true);
}

CompileBackend resolve_backend(CompileOptions& opts, bool strict) {
  const auto& avail = available_backends();
  if (opts.verbose_backend_resolution) explain_backends();
  if (opts.backend == CompileBackend::Auto) {
    for (CompileBackend b : {CompileBackend::Cuda, CompileBackend::Metal, CompileBackend::Cpu})
      if (implemented(b) && std::find(avail.begin(), avail.end(), b) != avail.end()) {
        opts.backend = b;
        opts.touch();
        return b;
      }
    py_fail(PyExc_RuntimeError,
            "Found no enabled GPU backends. For detailed information on why this is, enable the "
            "'verbose_backend_resolution' flag in the compiler options.");
  }
  if (strict && std::find(avail.begin(), avail.end(), opts.backend) == avail.end())
    py_fail(PyExc_RuntimeError, std::string("Specified backend CompileBackend.") +
                                    backend_name(opts.backend) +
                                    " is not available. For more information, enable the "
                                    "'verbose_backend_resolution' flag in the compiler options.");
  if (!implemented(opts.backend))
    py_fail(PyExc_RuntimeError, std::string("Code generation for the ") + backend_name(opts.backend) +
                                    " backend is not part of this version of parpy yet.");
  return opts.backend;
}

// ---- Arguments: cache key, marshalling and description (SPEC B 1.13) ----

bool parse_format(const char* fmt, Py_ssize_t itemsize, ElemSize& out) {
  if (!fmt) fmt = "B";
  while (*fmt == '<' || *fmt == '=' || *fmt == '@' || *fmt == '|') ++fmt;
  if (fmt[0] == 0 || fmt[1] != 0) return false;
  char kind;
  switch (fmt[0]) {
    case '?': kind = 'b'; break;
    case 'b': case 'h': case 'i': case 'l': case 'q': kind = 'i'; break;
    case 'B': case 'H': case 'I': case 'L': case 'Q': kind = 'u'; break;
    case 'e': case 'f': case 'd': kind = 'f'; break;
    default: return false;
  }
  return elem_from_code(kind, static_cast<int>(itemsize), out);
}

// The DLPack ABI (v0.x, unversioned capsules named "dltensor").
struct DLDevice {
  int32_t device_type;  // 1: CPU
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;  // 0 int, 1 uint, 2 float, 6 bool
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; null means C-contiguous
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor*);
};

// Walks the call's arguments once: builds the specialisation key and the entry's argument
// vector; on a cache miss it also describes them for the compiler.
class ArgPack {
 public:
  ArgPack(const CompileOptions& opts, bool describe) : opts_(opts), describe_(describe) {}
  ~ArgPack() {
    for (auto& v : views_) PyBuffer_Release(&v);
    for (DLManagedTensor* t : dlpack_)
      if (t->deleter) t->deleter(t);
  }
  ArgPack(const ArgPack&) = delete;
  ArgPack& operator=(const ArgPack&) = delete;

  std::string key;
  std::vector<void*> argv;
  std::vector<ArgValue> values;
  // Cuda: host arrays to copy in (and back), by their index in argv.
  struct HostArray {
    size_t index;
    void* host;
    size_t bytes;
  };
  std::vector<HostArray> host_arrays;
  void* stream = nullptr;  // the stream of the first CUDA array argument (SPEC A7)

  void add(nb::handle a, const std::string& name) {
    ArgValue v;
    add(a, name, v, false);
    if (describe_) values.push_back(std::move(v));
  }

 private:
  const CompileOptions& opts_;
  bool describe_;
  std::deque<Py_buffer> views_;
  std::deque<uint64_t> slots_;
  std::vector<DLManagedTensor*> dlpack_;
  bool on_device_ = false;

  void* slot() {
    slots_.push_back(0);
    return &slots_.back();
  }

  void put_bytes(const void* p, size_t n) { key.append(static_cast<const char*>(p), n); }

  void add(nb::handle a, const std::string& name, ArgValue& v, bool in_dict) {
    PyObject* o = a.ptr();
    if (PyLong_Check(o)) {
      int overflow = 0;
      long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
      if (overflow) py_fail(PyExc_RuntimeError, "Argument " + name + " is an integer that does not fit in 64 bits");
      key.push_back('i');
      put_bytes(&x, sizeof x);
      void* s = slot();
      switch (opts_.int_size()) {
        case ElemSize::I8: *static_cast<int8_t*>(s) = static_cast<int8_t>(x); break;
        case ElemSize::I16: *static_cast<int16_t*>(s) = static_cast<int16_t>(x); break;
        case ElemSize::I32: *static_cast<int32_t*>(s) = static_cast<int32_t>(x); break;
        default: *static_cast<int64_t*>(s) = x; break;
      }
      argv.push_back(s);
      v.kind = ArgValue::Kind::Int;
      v.ival = x;
      return;
    }
    if (PyFloat_Check(o)) {
      double x = PyFloat_AS_DOUBLE(o);
      key.push_back('f');
      put_bytes(&x, sizeof x);
      void* s = slot();
      switch (opts_.float_size()) {
        case ElemSize::F16: *static_cast<_Float16*>(s) = static_cast<_Float16>(x); break;
        case ElemSize::F32: *static_cast<float*>(s) = static_cast<float>(x); break;
        default: *static_cast<double*>(s) = x; break;
      }
      argv.push_back(s);
      v.kind = ArgValue::Kind::Float;
      v.fval = x;
      return;
    }
    if (PyDict_Check(o)) {
      if (in_dict) py_fail(PyExc_RuntimeError, "Dictionary argument " + name + " contains nested dictionary");
      std::vector<std::pair<std::string, nb::handle>> items;
      PyObject *k, *val;
      Py_ssize_t pos = 0;
      while (PyDict_Next(o, &pos, &k, &val)) {
        if (!PyUnicode_Check(k))
          py_fail(PyExc_RuntimeError, "Dictionary argument " + name + " contains non-string key " +
                                          nb::cast<std::string>(nb::repr(nb::handle(k))));
        items.emplace_back(nb::cast<std::string>(nb::handle(k)), nb::handle(val));
      }
      std::sort(items.begin(), items.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
      key.push_back('d');
      uint32_t n = static_cast<uint32_t>(items.size());
      put_bytes(&n, sizeof n);
      v.kind = ArgValue::Kind::Dict;
      for (const auto& [kname, val2] : items) {
        key.append(kname);
        key.push_back('\0');
        ArgValue fv;
        add(val2, name + "[\"" + kname + "\"]", fv, true);
        if (describe_) v.fields.emplace_back(kname, std::move(fv));
      }
      return;
    }
    if (PyObject_HasAttrString(o, "__cuda_array_interface__")) {
      if (opts_.backend != CompileBackend::Cuda)
        py_fail(PyExc_RuntimeError, "Argument " + name + " is a CUDA array, which is not supported in CompileBackend." +
                                        backend_name(opts_.backend) + ".");
      add_cuda_array(a, name, v);
      return;
    }
    if (PyObject_CheckBuffer(o)) {
      views_.emplace_back();
      Py_buffer& view = views_.back();
      if (PyObject_GetBuffer(o, &view, PyBUF_RECORDS_RO) != 0) {
        views_.pop_back();
        PyErr_Clear();
        py_fail(PyExc_RuntimeError, "Argument " + name + " has unsupported type " +
                                        nb::cast<std::string>(nb::str(a.type().attr("__name__"))));
      }
      add_array(view.buf, view.format, view.itemsize, view.ndim, view.shape, view.strides,
                view.readonly, name, v);
      return;
    }
    if (PyObject_HasAttrString(o, "__array_interface__")) {
      add_array_interface(a, name, v);
      return;
    }
    if (PyObject_HasAttrString(o, "__dlpack__")) {
      add_dlpack(a, name, v);
      return;
    }
    py_fail(PyExc_RuntimeError, "Argument " + name + " has unsupported type " +
                                    nb::cast<std::string>(nb::str(a.type().attr("__name__"))));
  }

  void add_array(void* data, const char* fmt, Py_ssize_t itemsize, int ndim, const Py_ssize_t* shape,
                 const Py_ssize_t* strides, bool readonly, const std::string& name, ArgValue& v) {
    ElemSize elem;
    if (!parse_format(fmt, itemsize, elem))
      py_fail(PyExc_RuntimeError, "Argument " + name + " has unsupported element type '" +
                                      std::string(fmt ? fmt : "?") + "'");
    if (ndim > 0 && readonly)
      py_fail(PyExc_RuntimeError, "Argument " + name + ": Cannot construct buffer from read-only memory");
    if (strides) {
      Py_ssize_t expect = itemsize;
      for (int d = ndim - 1; d >= 0; --d) {
        if (shape[d] != 1 && strides[d] != expect)
          py_fail(PyExc_RuntimeError,
                  "Argument " + name + ": Buffers must only operate on contiguous memory");
        expect *= shape[d];
      }
    }
    key.push_back('a');
    key.push_back(static_cast<char>(elem));
    key.push_back(static_cast<char>(ndim));
    v.kind = ArgValue::Kind::Array;
    v.elem = elem;
    for (int d = 0; d < ndim; ++d) {
      int64_t s = shape[d];
      put_bytes(&s, sizeof s);
      v.shape.push_back(s);
    }
    if (ndim == 0) {
      // A 0-dim array is a typed scalar: its value is part of the key (SPEC B 2.10).
      uint64_t bits = 0;
      std::memcpy(&bits, data, static_cast<size_t>(itemsize));
      put_bytes(&bits, sizeof bits);
      if (is_float(elem)) {
        v.fval = elem == ElemSize::F64 ? *static_cast<double*>(data)
                 : elem == ElemSize::F32 ? *static_cast<float*>(data)
                                         : static_cast<double>(*static_cast<_Float16*>(data));
      } else if (is_bool(elem)) {
        v.ival = *static_cast<bool*>(data);
      } else {
        switch (elem) {
          case ElemSize::I8: v.ival = *static_cast<int8_t*>(data); break;
          case ElemSize::I16: v.ival = *static_cast<int16_t*>(data); break;
          case ElemSize::I32: v.ival = *static_cast<int32_t*>(data); break;
          case ElemSize::U8: v.ival = *static_cast<uint8_t*>(data); break;
          case ElemSize::U16: v.ival = *static_cast<uint16_t*>(data); break;
          case ElemSize::U32: v.ival = *static_cast<uint32_t*>(data); break;
          default: std::memcpy(&v.ival, data, 8); break;
        }
      }
      argv.push_back(data);  // passed by value: the entry reads the element
      return;
    }
    void* s = slot();
    *static_cast<void**>(s) = data;
    if (opts_.backend == CompileBackend::Cuda && !on_device_) {
      size_t bytes = static_cast<size_t>(itemsize);
      for (int d = 0; d < ndim; ++d) bytes *= static_cast<size_t>(shape[d]);
      host_arrays.push_back({argv.size(), data, bytes});
    }
    argv.push_back(s);
  }

  // DLPack producers without the buffer protocol (torch CPU tensors, JAX, ...): host memory only.
  void add_dlpack(nb::handle a, const std::string& name, ArgValue& v) {
    nb::object cap = a.attr("__dlpack__")();
    auto* mt = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap.ptr(), "dltensor"));
    if (!mt) {
      PyErr_Clear();
      py_fail(PyExc_RuntimeError, "Argument " + name + " gave an unsupported DLPack capsule");
    }
    // The capsule is ours now: its deleter runs when this call's arguments are released.
    PyCapsule_SetName(cap.ptr(), "used_dltensor");
    dlpack_.push_back(mt);
    const DLTensor& t = mt->dl_tensor;
    if (t.device.device_type != 1)
      py_fail(PyExc_RuntimeError, "Argument " + name + " is a DLPack tensor on a device other than "
                                  "the CPU, which is not supported in " + backend_name(opts_.backend) + ".");
    char kind = t.dtype.code == 0 ? 'i' : t.dtype.code == 1 ? 'u' : t.dtype.code == 2 ? 'f' : t.dtype.code == 6 ? 'b' : '?';
    ElemSize elem;
    if (t.dtype.lanes != 1 || !elem_from_code(kind, t.dtype.bits / 8, elem))
      py_fail(PyExc_RuntimeError, "Argument " + name + " has an unsupported DLPack element type");
    std::vector<Py_ssize_t> shape(t.shape, t.shape + t.ndim), strides;
    if (t.strides)
      for (int d = 0; d < t.ndim; ++d) strides.push_back(static_cast<Py_ssize_t>(t.strides[d] * elem_bytes(elem)));
    static const char* fmts[] = {"?", "b", "h", "i", "q", "B", "H", "I", "Q", "e", "f", "d"};
    add_array(static_cast<char*>(t.data) + t.byte_offset, fmts[static_cast<int>(elem)], elem_bytes(elem),
              t.ndim, shape.data(), t.strides ? strides.data() : nullptr, false, name, v);
  }

  // __cuda_array_interface__ (torch, CuPy): used in place, on the array's stream.
  void add_cuda_array(nb::handle a, const std::string& name, ArgValue& v) {
    nb::dict ai = nb::cast<nb::dict>(a.attr("__cuda_array_interface__"));
    nb::tuple data = nb::cast<nb::tuple>(ai["data"]);
    auto ptr = reinterpret_cast<void*>(nb::cast<uintptr_t>(data[0]));
    std::string typestr = nb::cast<std::string>(ai["typestr"]);
    std::vector<Py_ssize_t> shape;
    for (nb::handle d : nb::cast<nb::tuple>(ai["shape"])) shape.push_back(nb::cast<Py_ssize_t>(d));
    ElemSize elem;
    if (typestr.size() != 3 || !elem_from_code(typestr[1], typestr[2] - '0', elem))
      py_fail(PyExc_RuntimeError, "Argument " + name + " has unsupported element type '" + typestr + "'");
    std::vector<Py_ssize_t> strides;
    if (ai.contains("strides") && !ai["strides"].is_none())
      for (nb::handle d : nb::cast<nb::tuple>(ai["strides"])) strides.push_back(nb::cast<Py_ssize_t>(d));
    if (shape.empty())
      py_fail(PyExc_RuntimeError, "Argument " + name + ": 0-dimensional CUDA arrays are not supported; "
                                  "pass a Python scalar or a 1-element array");
    if (!stream && ai.contains("stream") && !ai["stream"].is_none()) {
      uintptr_t st = nb::cast<uintptr_t>(ai["stream"]);
      // 1 and 2 name the legacy and per-thread default streams (CUDA array interface v3).
      stream = st == 1 ? nullptr : st == 2 ? reinterpret_cast<void*>(uintptr_t{2}) : reinterpret_cast<void*>(st);
    }
    static const char* fmts[] = {"?", "b", "h", "i", "q", "B", "H", "I", "Q", "e", "f", "d"};
    on_device_ = true;
    add_array(ptr, fmts[static_cast<int>(elem)], elem_bytes(elem), static_cast<int>(shape.size()),
              shape.data(), strides.empty() ? nullptr : strides.data(), nb::cast<bool>(data[1]), name, v);
    on_device_ = false;
  }

  void add_array_interface(nb::handle a, const std::string& name, ArgValue& v) {
    nb::dict ai = nb::cast<nb::dict>(a.attr("__array_interface__"));
    if (!ai.contains("data")) py_fail(PyExc_RuntimeError, "Argument " + name + ": Buffer protocol not supported");
    nb::tuple data = nb::cast<nb::tuple>(ai["data"]);
    auto ptr = reinterpret_cast<void*>(nb::cast<uintptr_t>(data[0]));
    bool readonly = nb::cast<bool>(data[1]);
    std::string typestr = nb::cast<std::string>(ai["typestr"]);
    nb::tuple shape_t = nb::cast<nb::tuple>(ai["shape"]);
    std::vector<Py_ssize_t> shape;
    for (nb::handle d : shape_t) shape.push_back(nb::cast<Py_ssize_t>(d));
    if (ai.contains("strides") && !ai["strides"].is_none())
      py_fail(PyExc_RuntimeError, "Argument " + name + ": Buffers must only operate on contiguous memory");
    if (typestr.size() != 3)
      py_fail(PyExc_RuntimeError, "Argument " + name + " has unsupported element type '" + typestr + "'");
    static const char host_order = [] {
      uint16_t x = 1;
      return *reinterpret_cast<uint8_t*>(&x) == 1 ? '<' : '>';
    }();
    if (typestr[0] != '|' && typestr[0] != host_order)
      py_fail(PyExc_RuntimeError, "Argument " + name + " has non-native byte order '" + typestr + "'");
    ElemSize elem;
    if (!elem_from_code(typestr[1], typestr[2] - '0', elem))
      py_fail(PyExc_RuntimeError, "Argument " + name + " has unsupported element type '" + typestr + "'");
    // Reuse the buffer path with a struct-style format.
    static const char* fmts[] = {"?", "b", "h", "i", "q", "B", "H", "I", "Q", "e", "f", "d"};
    add_array(ptr, fmts[static_cast<int>(elem)], elem_bytes(elem), static_cast<int>(shape.size()),
              shape.data(), nullptr, readonly, name, v);
  }
};

// ---- Compiled entries ----

using EntryFn = int32_t (*)(void**);
using CudaEntryFn = int32_t (*)(void**, void*);
using ErrorFn = const char* (*)();

struct Entry {
  std::shared_ptr<jit::SharedLibrary> lib;
  EntryFn fn = nullptr;
  CudaEntryFn cuda_fn = nullptr;
  ErrorFn error_fn = nullptr;
  std::vector<bool> written;  // by argv index: copy a host array back after the call (SPEC A6)
};

DebugSink python_print_sink() {
  return [](const std::string& s) { nb::print(nb::str(s.c_str(), s.size())); };
}

const std::string& header_flag() {
  // The support header is not part of the generated code; its hash keys the disk cache too.
  static std::string flag = [] {
    std::stringstream ss;
    for (const char* h : {"/parpy_common.h", "/parpy_cpu.h", "/parpy_cuda.h"}) {
      std::ifstream in(g_include_dir + h, std::ios::binary);
      ss << in.rdbuf();
    }
    return "-DPARPY_HEADER_HASH=" + jit::sha256_hex(ss.str()).substr(0, 16);
  }();
  return flag;
}

std::shared_ptr<Entry> build_code(const std::string& code, const std::string& symbol,
                                  const CompileOptions& opts) {
  jit::BuildFlags flags;
  flags.include_dirs = opts.includes;
  flags.include_dirs.push_back(g_include_dir);
  flags.lib_dirs = opts.libs;
  flags.extra_flags = opts.extra_flags;
  flags.extra_flags.push_back(header_flag());
  flags.write_output = opts.write_output;
  jit::BuildResult built;
  {
    nb::gil_scoped_release release;
    built = jit::build_cpu_library(code, flags);
  }
  auto e = std::make_shared<Entry>();
  e->lib = jit::load_library(built.library);
  e->fn = reinterpret_cast<EntryFn>(e->lib->symbol(symbol));
  ++g_compiles;
  return e;
}

std::shared_ptr<Entry> build_cuda_entry(const Lowered& low, const CompileOptions& opts) {
  jit::BuildFlags flags;
  flags.include_dirs = opts.includes;
  flags.include_dirs.push_back(g_include_dir);
  flags.lib_dirs = opts.libs;
  flags.extra_flags = opts.extra_flags;
  flags.extra_flags.push_back(header_flag());
  flags.write_output = opts.write_output;
  jit::BuildResult built;
  {
    nb::gil_scoped_release release;
    built = cuda::build_cuda_library(low.code, flags, cuda::arch_flag());
  }
  auto e = std::make_shared<Entry>();
  e->lib = jit::load_library(built.library);
  e->cuda_fn = reinterpret_cast<CudaEntryFn>(e->lib->symbol(low.entry_symbol));
  e->error_fn = reinterpret_cast<ErrorFn>(e->lib->symbol(low.error_symbol));
  for (const auto& p : low.params)
    e->written.push_back(std::find(low.written.begin(), low.written.end(), p.name) != low.written.end());
  ++g_compiles;
  return e;
}

std::shared_ptr<Entry> build_entry(const Function& fn, const std::vector<ArgValue>& values,
                                   const CompileOptions& opts) {
  Lowered low = lower(fn, values, opts, python_print_sink());
  if (opts.backend == CompileBackend::Cuda) return build_cuda_entry(low, opts);
  return build_code(low.code, low.entry_symbol, opts);
}

// Runs a CUDA entry: host arrays are copied to the device and back only if written (A6), on the
// stream of the CUDA array arguments (A7); nothing else is synchronised.
void run_cuda(const Entry& e, ArgPack& pack) {
  nb::gil_scoped_release release;
  std::string err;
  int32_t status = 0;
  std::vector<uint64_t> device;
  try {
    cuda::ensure_context();
    for (auto& h : pack.host_arrays) {
      uint64_t d = cuda::alloc_async(h.bytes, pack.stream);
      device.push_back(d);
      cuda::copy_htod(d, h.host, h.bytes, pack.stream);
      *static_cast<uint64_t*>(pack.argv[h.index]) = d;
    }
    status = e.cuda_fn(pack.argv.data(), pack.stream);
    if (status != 0) err = e.error_fn();
    for (size_t i = 0; i < pack.host_arrays.size(); ++i) {
      const auto& h = pack.host_arrays[i];
      if (status == 0 && h.index < e.written.size() && e.written[h.index])
        cuda::copy_dtoh(h.host, device[i], h.bytes, pack.stream);
    }
    for (uint64_t d : device) cuda::free_async(d, pack.stream);
    if (!pack.host_arrays.empty()) cuda::stream_synchronize(pack.stream);
  } catch (const std::exception& ex) {
    err = ex.what();
    status = status ? status : 1;
  }
  if (status != 0) {
    nb::gil_scoped_acquire acquire;
    py_fail(PyExc_RuntimeError, err);
  }
}

const CompileOptions& default_options() {
  static CompileOptions d;
  return d;
}

// The native callable behind every @parpy.jit function (DESIGN principle 5).
class JitFunction {
 public:
  explicit JitFunction(const IrFunction& ir) : fn_(ir.fn) {}

  nb::object call(nb::args args, nb::kwargs kwargs) {
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
    resolve_backend(*opts, true);
    if (epoch_ != g_cache_epoch.load()) {
      cache_.clear();
      epoch_ = g_cache_epoch.load();
    }
    ArgPack pack(*opts, false);
    size_t n = args.size();
    for (size_t i = 0; i < n; ++i) pack.add(args[i], "#" + std::to_string(i + 1));
    pack.key.push_back('\0');
    pack.key += opts->key();
    auto it = cache_.find(pack.key);
    std::shared_ptr<Entry> entry;
    if (it != cache_.end()) {
      entry = it->second;
    } else {
      ArgPack described(*opts, true);
      for (size_t i = 0; i < n; ++i) described.add(args[i], "#" + std::to_string(i + 1));
      entry = build_entry(*fn_, described.values, *opts);
      cache_.emplace(pack.key, entry);
    }
    if (opts->backend == CompileBackend::Cuda) {
      run_cuda(*entry, pack);
      return nb::none();
    }
    int32_t status;
    {
      nb::gil_scoped_release release;
      status = entry->fn(pack.argv.data());
    }
    if (status != 0) py_fail(PyExc_RuntimeError, "The generated code failed with status " + std::to_string(status));
    return nb::none();
  }

  size_t cache_size() const { return cache_.size(); }
  IrFunction ir() const { return {fn_}; }

 private:
  std::shared_ptr<const Function> fn_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> cache_;
  uint64_t epoch_ = 0;
};

// compile_string (SPEC B 1.5): user-written code in the generated calling convention.
class StringFunction {
 public:
  StringFunction(std::string name, std::string code, const CompileOptions& opts)
      : name_(std::move(name)), code_(std::move(code)), opts_(opts) {}

  nb::object call(nb::args args) {
    resolve_backend(opts_, true);
    ArgPack pack(opts_, false);
    for (size_t i = 0; i < args.size(); ++i) pack.add(args[i], "#" + std::to_string(i + 1));
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
      // Code from print_compiled already has the uniform entry; hand-written code gets one.
      std::string code = code_;
      if (code.find(name_ + "__parpy_entry(") == std::string::npos)
        code += "\n" + print_cpu_entry(name_, abi_params(names, described.values, opts_));
      entry = build_code(code, name_ + "__parpy_entry", opts_);
      cache_.emplace(pack.key, entry);
    }
    int32_t status;
    {
      nb::gil_scoped_release release;
      status = entry->fn(pack.argv.data());
    }
    if (status != 0) py_fail(PyExc_RuntimeError, "The compiled function failed with status " + std::to_string(status));
    return nb::none();
  }

 private:
  std::string name_, code_;
  CompileOptions opts_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> cache_;
};

}  // namespace

void bind_compiler(nb::module_& m) {
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

  m.def("python_to_ir",
        [](nb::handle fdef, const std::string& file, int line_offset, int col_offset, nb::object globals,
           nb::object locals, nb::dict jit_registry, nb::dict externals) {
          FrontendInput in;
          in.fdef = fdef;
          in.file = file;
          in.line_offset = line_offset;
          in.col_offset = col_offset;
          in.globals = globals;
          in.locals = locals;
          in.find_jit = [jit_registry](const std::string& name) -> std::shared_ptr<const Function> {
            nb::str key(name.c_str());
            if (!jit_registry.contains(key)) return nullptr;
            return nb::cast<IrFunction>(jit_registry[key]).fn;
          };
          // `externals` is parpy._ext_decls: backend -> Python name -> declaration.
          in.find_externals = [externals](const std::string& name) {
            std::vector<ExternalRef> out;
            nb::str key(name.c_str());
            for (auto [backend, decls] : externals)
              if (nb::cast<nb::dict>(decls).contains(key))
                out.push_back(nb::cast<ExternalHandle>(nb::cast<nb::dict>(decls)[key]).decl);
            return out;
          };
          return IrFunction{python_to_ir(in)};
        });

  nb::class_<JitFunction>(m, "JitFunction", nb::dynamic_attr())
      .def(nb::init<const IrFunction&>())
      .def("__call__", &JitFunction::call)
      .def_prop_ro("_ir", &JitFunction::ir)
      .def("_cache_size", &JitFunction::cache_size);

  m.def("print_compiled", [](const IrFunction& ir, nb::tuple args, CompileOptions& opts) {
    resolve_backend(opts, false);
    ArgPack described(opts, true);
    for (size_t i = 0; i < args.size(); ++i) described.add(args[i], "#" + std::to_string(i + 1));
    return lower(*ir.fn, described.values, opts, python_print_sink()).code;
  });

  nb::class_<StringFunction>(m, "StringFunction")
      .def(nb::init<std::string, std::string, const CompileOptions&>())
      .def("__call__", &StringFunction::call);

  m.def("_cuda_sync", [] {
    nb::gil_scoped_release release;
    cuda::device_synchronize();
  });
  m.def("_cuda_device", [] {
    const auto& d = cuda::device_info();
    nb::dict r;
    r["available"] = d.available;
    r["why"] = d.why_unavailable;
    r["name"] = d.name;
    r["major"] = d.major;
    r["minor"] = d.minor;
    return r;
  });

  m.def("_set_include_dir", [](const std::string& d) { g_include_dir = d; });
  m.def("clear_cache", [] {
    ++g_cache_epoch;
    jit::clear_disk_cache();
  });
  m.def("cache_dir", [] { return jit::cache_dir().string(); });
  m.def("stats", [] {
    nb::dict d;
    d["compiles"] = g_compiles.load();
    d["builds"] = jit::build_count();
    return d;
  });
}

}  // namespace parpy
