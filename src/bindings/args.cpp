#include "bindings/args.h"

#include <nanobind/stl/string.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "ir/error.h"
#include "ir/types.h"
#include "runtime/cuda_driver.h"

namespace nb = nanobind;

namespace parpy {

void py_fail(PyObject* cls, const std::string& msg) {
  PyErr_SetString(cls, msg.c_str());
  throw nb::python_error();
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

namespace {

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

// Whether byte `strides` (null: none given) describe C-contiguous memory.
bool c_contiguous(Py_ssize_t itemsize, int ndim, const Py_ssize_t* shape, const Py_ssize_t* strides) {
  if (!strides) return true;
  Py_ssize_t expect = itemsize;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

// The buffer-protocol format of an element type, so every array kind shares add_array.
const char* format_of(ElemSize e) {
  static const char* fmts[] = {"?", "b", "h", "i", "q", "B", "H", "I", "Q", "e", "f", "d"};
  return fmts[static_cast<int>(e)];
}

std::string type_name_of(nb::handle a) { return nb::cast<std::string>(nb::str(a.type().attr("__name__"))); }

// An interned attribute name, made once per call site.
#define PARPY_NAME(s)                                          \
  ([]() -> PyObject* {                                         \
    static PyObject* name = PyUnicode_InternFromString(s);     \
    return name;                                               \
  }())

// Whether `o` has the attribute `name`. Unlike PyObject_HasAttrString, an error of the attribute's
// getter other than AttributeError (a freed buffer's "Cannot use a buffer after it was freed")
// propagates instead of reading as "no such attribute". An attribute that is not there is found
// missing without an AttributeError being made where the type's getattr is the generic one (a
// numpy array's __cuda_array_interface__, asked for every array of every call).
bool has_attr(PyObject* o, PyObject* name) {
  PyObject* value = nullptr;
#if PY_VERSION_HEX >= 0x030D0000
  int found = PyObject_GetOptionalAttr(o, name, &value);
#else
  int found = _PyObject_LookupAttr(o, name, &value);
#endif
  if (found < 0) throw nb::python_error();
  Py_XDECREF(value);
  return found == 1;
}

// ---- torch.Tensor, recognised without importing torch ----
//
// Reading torch's __cuda_array_interface__ runs Python code that builds a dict for every argument
// of every call (several µs each); the tensor's own C getters give the same facts far cheaper.
// torch.Tensor is recognised by name and module when the first tensor arrives, then by pointer.

struct Torch {
  PyTypeObject* tensor = nullptr;      // torch.Tensor (strong reference, kept for the process)
  PyObject* strided = nullptr;         // torch.strided
  PyObject* current_stream = nullptr;  // device index -> current stream (read_torch_stream)
  bool raw_stream = false;             // current_stream returns the cudaStream_t as an int
  std::vector<std::pair<PyObject*, int>> dtypes;  // torch dtype -> ElemSize, or -1: unsupported
};

Torch& torch_state() {
  static Torch t;
  return t;
}


// `o.<name>` as a new reference, or nullptr with the Python error cleared: the fast path then
// gives way to the generic one, which reports any problem as it always has.
PyObject* try_attr(PyObject* o, PyObject* name) {
  PyObject* r = PyObject_GetAttr(o, name);
  if (!r) PyErr_Clear();
  return r;
}

PyObject* try_call(PyObject* o, PyObject* name) {
  PyObject* r = PyObject_CallMethodNoArgs(o, name);
  if (!r) PyErr_Clear();
  return r;
}

bool module_is_torch(PyTypeObject* type) {
  nb::object mod = nb::steal(try_attr(reinterpret_cast<PyObject*>(type), PARPY_NAME("__module__")));
  return mod.is_valid() && PyUnicode_Check(mod.ptr()) &&
         PyUnicode_CompareWithASCIIString(mod.ptr(), "torch") == 0;
}

// Fills torch_state() from the torch module, which is loaded since one of its tensors exists.
bool init_torch(PyTypeObject* tensor) {
  nb::object torch = nb::steal(PyImport_GetModule(PARPY_NAME("torch")));
  if (!torch.is_valid()) {
    PyErr_Clear();
    return false;
  }
  Torch& t = torch_state();
  t.strided = try_attr(torch.ptr(), PARPY_NAME("strided"));
  if (!t.strided) return false;
  // torch._C._cuda_getCurrentRawStream (what torch's compiled code uses) answers with the raw
  // stream; older builds only have torch.cuda.current_stream(i).cuda_stream.
  nb::object c = nb::steal(try_attr(torch.ptr(), PARPY_NAME("_C")));
  t.current_stream = c.is_valid() ? try_attr(c.ptr(), PARPY_NAME("_cuda_getCurrentRawStream")) : nullptr;
  t.raw_stream = t.current_stream != nullptr;
  if (!t.current_stream) {
    nb::object cuda = nb::steal(try_attr(torch.ptr(), PARPY_NAME("cuda")));
    t.current_stream = cuda.is_valid() ? try_attr(cuda.ptr(), PARPY_NAME("current_stream")) : nullptr;
  }
  Py_INCREF(tensor);
  t.tensor = tensor;
  return true;
}

// torch.Tensor's type once a tensor (or an instance of a subclass) has been seen, else nullptr.
PyTypeObject* torch_tensor_type(PyTypeObject* type) {
  Torch& t = torch_state();
  if (t.tensor) return t.tensor;
  for (PyTypeObject* base = type; base; base = base->tp_base)
    if (std::strcmp(base->tp_name, "Tensor") == 0 && module_is_torch(base) && init_torch(base)) break;
  return t.tensor;
}

// The ElemSize of a torch dtype, or -1 for dtypes parpy has no type for (bfloat16, complex).
int torch_elem(PyObject* dtype) {
  Torch& t = torch_state();
  for (const auto& [d, e] : t.dtypes)
    if (d == dtype) return e;
  // Seen once per dtype: torch dtypes print as "torch.<numpy-style name>".
  std::string s = nb::cast<std::string>(nb::str(nb::handle(dtype)));
  int elem = -1;
  for (int i = 0; i <= static_cast<int>(ElemSize::F64); ++i)
    if (s == std::string("torch.") + elem_long_name(static_cast<ElemSize>(i))) elem = i;
  Py_INCREF(dtype);  // dtypes are process-lifetime singletons; keep the key alive regardless
  t.dtypes.emplace_back(dtype, elem);
  return elem;
}

// The CUDA stream of a CUDA array interface or torch stream value: 0 and 1 mean the legacy
// default stream (nullptr); 2, the per-thread default stream, is cudaStreamPerThread's handle.
void* as_stream(uintptr_t s) { return s == 1 ? nullptr : reinterpret_cast<void*>(s); }

// The stream torch is working on for CUDA device `device` on this thread.
void* torch_current_stream(int device) {
  const Torch& t = torch_state();
  if (!t.current_stream) return nullptr;
  nb::object index = nb::steal(PyLong_FromLong(device));
  nb::object current = nb::steal(PyObject_CallOneArg(t.current_stream, index.ptr()));
  if (current.is_valid() && !t.raw_stream)
    current = nb::steal(PyObject_GetAttr(current.ptr(), PARPY_NAME("cuda_stream")));
  if (!current.is_valid()) throw nb::python_error();
  return as_stream(nb::cast<uintptr_t>(current));
}

// The device that holds CUDA array argument `name` at `data`, as the driver knows it.
int pointer_device(void* data, const std::string& name) {
  try {
    return cuda::pointer_device(reinterpret_cast<uint64_t>(data));
  } catch (const cuda::CudaError& e) {
    py_fail(PyExc_RuntimeError, "Argument " + name + " is a CUDA array whose device the CUDA driver does not know (" +
                                    e.what() + ")");
  }
}

}  // namespace

ArgPack::~ArgPack() {
  for (auto& v : views_) PyBuffer_Release(&v);
  for (DLManagedTensor* t : dlpack_)
    if (t->deleter) t->deleter(t);
}

void* ArgPack::slot() {
  slots_.push_back(0);
  return &slots_.back();
}

void ArgPack::add(nb::handle a, const std::string& name) {
  ++args_added_;
  ArgValue v;
  add(a, name, v, false);
  if (describe_) values.push_back(std::move(v));
}

void ArgPack::add(nb::handle a, const std::string& name, ArgValue& v, bool in_dict) {
  PyObject* o = a.ptr();
  if (PyLong_Check(o)) return add_int(o, name, v);
  if (PyFloat_Check(o)) return add_float(o, v);
  if (PyDict_Check(o)) return add_dict(o, name, v, in_dict);
  if (device_memory_ && Py_TYPE(o) == torch_tensor_type(Py_TYPE(o)) &&
      add_torch_cuda(o, name, v))
    return;
  if (has_attr(o, PARPY_NAME("__cuda_array_interface__"))) {
    if (!device_memory_)
      py_fail(PyExc_RuntimeError, "Argument " + name + " is a CUDA array, which is not supported in CompileBackend." +
                                      backend_name(opts_.backend) + ".");
    return add_cuda_array(a, name, v);
  }
  if (PyObject_CheckBuffer(o)) {
    views_.emplace_back();
    Py_buffer& view = views_.back();
    if (PyObject_GetBuffer(o, &view, PyBUF_RECORDS_RO) != 0) {
      views_.pop_back();
      PyErr_Clear();
      py_fail(PyExc_RuntimeError, "Argument " + name + " has unsupported type " + type_name_of(a));
    }
    return add_array(view.buf, view.format, view.itemsize, view.ndim, view.shape, view.strides,
                     view.readonly, name, v);
  }
  if (has_attr(o, PARPY_NAME("__array_interface__"))) return add_array_interface(a, name, v);
  if (has_attr(o, PARPY_NAME("__dlpack__"))) return add_dlpack(a, name, v);
  py_fail(PyExc_RuntimeError, "Argument " + name + " has unsupported type " + type_name_of(a));
}

void ArgPack::add_int(PyObject* o, const std::string& name, ArgValue& v) {
  int overflow = 0;
  long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow) py_fail(PyExc_RuntimeError, "Argument " + name + " is an integer that does not fit in 64 bits");
  key.push_back('i');
  put_bytes(&x, sizeof x);
  // An integer that force_int_size cannot hold would be truncated silently.
  auto check_fits = [&](long long lo, long long hi, const char* size) {
    if (x < lo || x > hi)
      py_fail(PyExc_OverflowError, "Argument " + name + " is " + std::to_string(x) + ", which does not fit in " +
                                       size + " (force_int_size): use a larger int size or a smaller value.");
  };
  switch (opts_.int_size()) {
    case ElemSize::I8: check_fits(INT8_MIN, INT8_MAX, "I8 (8 bits)"); break;
    case ElemSize::I16: check_fits(INT16_MIN, INT16_MAX, "I16 (16 bits)"); break;
    case ElemSize::I32: check_fits(INT32_MIN, INT32_MAX, "I32 (32 bits)"); break;
    default: break;
  }
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
}

void ArgPack::add_float(PyObject* o, ArgValue& v) {
  double x = PyFloat_AS_DOUBLE(o);
  key.push_back('f');  // its value is read when the code runs: not part of the key
  void* s = slot();
  switch (opts_.float_size()) {
    case ElemSize::F16: *static_cast<_Float16*>(s) = static_cast<_Float16>(x); break;
    case ElemSize::F32: *static_cast<float*>(s) = static_cast<float>(x); break;
    default: *static_cast<double*>(s) = x; break;
  }
  argv.push_back(s);
  v.kind = ArgValue::Kind::Float;
  v.fval = x;
}

void ArgPack::add_dict(PyObject* o, const std::string& name, ArgValue& v, bool in_dict) {
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
  for (const auto& [kname, item] : items) {
    key.append(kname);
    key.push_back('\0');
    ArgValue fv;
    add(item, name + "[\"" + kname + "\"]", fv, true);
    if (describe_) v.fields.emplace_back(kname, std::move(fv));
  }
}

void ArgPack::add_array(void* data, const char* fmt, Py_ssize_t itemsize, int ndim, const Py_ssize_t* shape,
                        const Py_ssize_t* strides, bool readonly, const std::string& name, ArgValue& v) {
  ElemSize elem;
  if (!parse_format(fmt, itemsize, elem))
    py_fail(PyExc_RuntimeError, "Argument " + name + " has unsupported element type '" +
                                    std::string(fmt ? fmt : "?") + "'");
  if (ndim > 0 && readonly)
    py_fail(PyExc_RuntimeError, "Argument " + name + ": Cannot construct buffer from read-only memory");
  // The code reads arrays contiguous: others run on a contiguous copy (a CUDA array's is made by
  // add_cuda_array, the same for every call: the key is that of the copy).
  bool contiguous = c_contiguous(itemsize, ndim, shape, strides);
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
    // A 0-dim array is a typed scalar: its value is part of the key
    // (docs/language.md, Scalars, 0-dimensional arrays and specialisation). The element may sit
    // at any address (a view into a byte buffer), so it is copied to an aligned slot, which the
    // entry reads, before anything reads it as its type. A bool byte other than 0 and 1 is True,
    // as in numpy, and becomes 1 (any other value is not a valid bool in C++).
    void* s = slot();
    std::memcpy(s, data, static_cast<size_t>(itemsize));
    if (is_bool(elem)) *static_cast<uint8_t*>(s) = *static_cast<uint8_t*>(s) != 0;
    put_bytes(s, sizeof(uint64_t));
    if (is_float(elem)) {
      v.fval = elem == ElemSize::F64 ? *static_cast<double*>(s)
               : elem == ElemSize::F32 ? *static_cast<float*>(s)
                                       : static_cast<double>(*static_cast<_Float16*>(s));
    } else if (is_bool(elem)) {
      v.ival = *static_cast<uint8_t*>(s);
    } else {
      switch (elem) {
        case ElemSize::I8: v.ival = *static_cast<int8_t*>(s); break;
        case ElemSize::I16: v.ival = *static_cast<int16_t*>(s); break;
        case ElemSize::I32: v.ival = *static_cast<int32_t*>(s); break;
        case ElemSize::U8: v.ival = *static_cast<uint8_t*>(s); break;
        case ElemSize::U16: v.ival = *static_cast<uint16_t*>(s); break;
        case ElemSize::U32: v.ival = *static_cast<uint32_t*>(s); break;
        default: v.ival = *static_cast<int64_t*>(s); break;
      }
    }
    argv.push_back(s);  // passed by value: the entry reads the element
    return;
  }
  size_t bytes = static_cast<size_t>(itemsize);
  for (int d = 0; d < ndim; ++d) bytes *= static_cast<size_t>(shape[d]);
  if (bytes > 0) {
    // The memory it spans: from its lowest to its highest element.
    auto lo = reinterpret_cast<uintptr_t>(data), hi = lo + static_cast<uintptr_t>(itemsize);
    for (int d = 0; d < ndim && !contiguous; ++d) {
      Py_ssize_t reach = (shape[d] - 1) * strides[d];
      if (reach < 0) lo += reach; else hi += reach;
    }
    if (contiguous) hi = lo + bytes;
    Memory m{lo, hi, !contiguous, name, args_added_, static_cast<char*>(data), {}, {},
             static_cast<size_t>(itemsize), on_device_ ? device_lib_ : 'n'};
    if (!contiguous) {
      m.shape.assign(shape, shape + ndim);
      m.strides.assign(strides, strides + ndim);
    }
    memory_.push_back(std::move(m));
  }
  if (!contiguous && !describe_)
    data = on_device_ ? device_copy_
                      : staged_copy(static_cast<char*>(data), ndim, shape, strides,
                                    static_cast<size_t>(itemsize));
  void* s = slot();
  *static_cast<void**>(s) = data;
  if (device_memory_ && !on_device_) host_arrays.push_back({argv.size(), data, bytes});
  argv.push_back(s);
}

namespace {

// Copies between a strided array (`strided`, byte strides) and contiguous memory (`flat`), one
// way or the other.
void copy_strided(char* strided, char* flat, int ndim, const Py_ssize_t* shape, const Py_ssize_t* strides,
                  size_t itemsize, bool gather) {
  size_t inner = static_cast<size_t>(shape[ndim - 1]);
  Py_ssize_t step = strides[ndim - 1];
  size_t outer = 1;
  for (int d = 0; d + 1 < ndim; ++d) outer *= static_cast<size_t>(shape[d]);
  std::vector<Py_ssize_t> idx(static_cast<size_t>(ndim), 0);
  for (size_t o = 0; o < outer; ++o) {
    char* row = strided;
    for (int d = 0; d + 1 < ndim; ++d) row += idx[d] * strides[d];
    char* f = flat + o * inner * itemsize;
    if (step == static_cast<Py_ssize_t>(itemsize)) {
      gather ? std::memcpy(f, row, inner * itemsize) : std::memcpy(row, f, inner * itemsize);
    } else {
      for (size_t i = 0; i < inner; ++i, f += itemsize, row += step)
        gather ? std::memcpy(f, row, itemsize) : std::memcpy(row, f, itemsize);
    }
    for (int d = ndim - 2; d >= 0 && ++idx[d] == shape[d]; --d) idx[d] = 0;
  }
}

}  // namespace

void* ArgPack::staged_copy(char* data, int ndim, const Py_ssize_t* shape, const Py_ssize_t* strides,
                           size_t itemsize) {
  size_t bytes = itemsize;
  for (int d = 0; d < ndim; ++d) bytes *= static_cast<size_t>(shape[d]);
  Staged& st = staged_.emplace_back();
  st.original = data;
  st.shape.assign(shape, shape + ndim);
  st.strides.assign(strides, strides + ndim);
  st.itemsize = itemsize;
  // Aligned as a fresh numpy array is, so the code's vector loads find what they expect.
  st.copy.reset(static_cast<char*>(std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64))));
  if (!st.copy) py_fail(PyExc_MemoryError, "Could not allocate a contiguous copy of a non-contiguous array");
  if (bytes > 0) copy_strided(data, st.copy.get(), ndim, shape, strides, itemsize, true);
  return st.copy.get();
}

void ArgPack::write_back(const Entry& e, bool ok) {
  for (Staged& st : staged_) {
    bool empty = std::find(st.shape.begin(), st.shape.end(), 0) != st.shape.end();
    if (!empty)
      copy_strided(st.original, st.copy.get(), static_cast<int>(st.shape.size()), st.shape.data(),
                   st.strides.data(), st.itemsize, false);
  }
  if (device_staged_.empty()) return;
  // The copies the code may write, back into their arrays by their libraries, each on the stream
  // it made the copy on: the call's stream, unless the call has arrays of two libraries, whose
  // launches are then waited for first. A broadcast array is never written (check_written).
  nb::object write = nb::module_::import_("parpy._device_copies").attr("write_back");
  bool waited = false;
  for (const DeviceStaged& s : device_staged_) {
    if (s.broadcast || !(e.write_all || (s.index < e.written.size() && e.written[s.index]))) continue;
    try {
      if (s.stream != stream && !waited) {
        waited = true;
        wait_for_stream(stream, device);
      }
      write(s.array, s.copy);
    } catch (const nb::python_error&) {
      if (ok) throw;
    }
  }
}

namespace {

// The bytes an argument's elements occupy, as sorted intervals [lo, hi): one for contiguous
// memory, one per element otherwise.
template <typename Memory>
std::vector<std::pair<uintptr_t, uintptr_t>> intervals(const Memory& m) {
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  if (!m.copied) return {{m.lo, m.hi}};
  size_t n = 1;
  for (Py_ssize_t e : m.shape) n *= static_cast<size_t>(e);
  out.reserve(n);
  int nd = static_cast<int>(m.shape.size());
  std::vector<Py_ssize_t> idx(static_cast<size_t>(nd), 0);
  for (size_t k = 0; k < n; ++k) {
    Py_ssize_t off = 0;
    for (int d = 0; d < nd; ++d) off += idx[d] * m.strides[d];
    auto p = reinterpret_cast<uintptr_t>(m.data) + static_cast<uintptr_t>(off);
    out.emplace_back(p, p + m.itemsize);
    for (int d = nd - 1; d >= 0 && ++idx[d] == m.shape[d]; --d) idx[d] = 0;
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Whether two sorted lists of intervals share a byte.
bool intersect(const std::vector<std::pair<uintptr_t, uintptr_t>>& a,
               const std::vector<std::pair<uintptr_t, uintptr_t>>& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i].second <= b[j].first) ++i;
    else if (b[j].second <= a[i].first) ++j;
    else return true;
  }
  return false;
}

}  // namespace

// A copied array sees nothing of what the code writes through another argument in the same
// memory, nor the other argument what it writes through the copy: such calls are refused. Views
// that only interleave (two columns of one matrix) share no element and are fine.
void ArgPack::check_copies_alone() const {
  for (const Memory& a : memory_) {
    if (!a.copied) continue;
    for (const Memory& b : memory_) {
      if (&a == &b || a.lo >= b.hi || b.lo >= a.hi) continue;
      if (!intersect(intervals(a), intervals(b))) continue;
      Who wa = who(a.name, a.arg), wb = who(b.name, b.arg);
      std::string other = "a" + wb.who.substr(1);
      std::string copy = a.lib == 't'   ? wa.param + ".contiguous()"
                         : a.lib == 'c' ? "cupy.ascontiguousarray(" + wa.param + ")"
                                        : "np.ascontiguousarray(" + wa.param + ")";
      std::string msg = wa.who + " is a non-contiguous array, which the function reads and writes through a "
                        "contiguous copy, and it shares memory with " + other +
                        ": writes through one would not be seen through the other.\nPass arrays that do not "
                        "share memory, or a contiguous copy of one (" + copy + ").";
      py_fail(PyExc_RuntimeError, CompileError(ErrorKind::Runtime, msg, wa.where).render());
    }
  }
}

// "Argument #k (parameter p)" for argument `name` of top-level position `arg` (from 1), the
// parameter's expression ("p", or "d[\"k\"]" for a dict entry) and its place in the `def` line,
// where the function is known.
ArgPack::Who ArgPack::who(const std::string& name, size_t arg) const {
  Who w{"Argument " + name, "x", {}};
  if (params && arg >= 1 && arg <= params->size()) {
    const Param& p = (*params)[arg - 1];
    size_t key = name.find('[');  // a dict entry: #1["k"] is d["k"]
    w.param = p.name + (key == std::string::npos ? "" : name.substr(key));
    w.where = p.span;
    w.who += " (parameter " + p.name + ")";
  }
  return w;
}

// A non-contiguous CUDA array of a library other than torch and CuPy: names the parameter and
// says how to get contiguous memory.
void ArgPack::not_contiguous(const std::string& name) const {
  Who w = who(name, args_added_);
  std::string msg = w.who + ": Buffers must only operate on contiguous memory.\nA non-contiguous CUDA array "
                    "runs on a contiguous copy only where it is a torch or CuPy array; pass a contiguous copy "
                    "of this one (the function then writes to the copy, not to the original array), or a "
                    "torch or CuPy view of it.";
  py_fail(PyExc_RuntimeError, CompileError(ErrorKind::Runtime, msg, w.where).render());
}

// Device memory used in place, or for a non-contiguous array, its contiguous `copy` made by
// library `lib` (device_copy).
void ArgPack::add_device_array(void* data, ElemSize elem, const std::vector<Py_ssize_t>& shape,
                               const Py_ssize_t* strides, bool readonly, const std::string& name,
                               ArgValue& v, void* copy, char lib) {
  on_device_ = true;
  device_copy_ = copy;
  device_lib_ = lib;
  add_array(data, format_of(elem), elem_bytes(elem), static_cast<int>(shape.size()), shape.data(), strides,
            readonly, name, v);
  on_device_ = false;
}

// A non-contiguous torch or CuPy array `a` runs on a contiguous copy that its library makes on
// the GPU, on the stream it works on (python/parpy/_device_copies.py); other CUDA arrays must be
// contiguous. Returns the copy's pointer (nullptr when only describing: the
// code is that of the copy, which has the array's dtype and shape) and sets `lib`.
void* ArgPack::device_copy(nb::handle a, const std::vector<Py_ssize_t>& shape,
                           const std::vector<Py_ssize_t>& strides, const std::string& name, char& lib) {
  nb::module_ copies = nb::module_::import_("parpy._device_copies");
  nb::object library = copies.attr("library")(a);
  if (library.is_none()) not_contiguous(name);
  lib = nb::cast<std::string>(library) == "torch" ? 't' : 'c';
  if (describe_) return nullptr;
  nb::tuple made = nb::cast<nb::tuple>(copies.attr("copy")(a));
  bool broadcast = false;
  for (size_t d = 0; d < shape.size(); ++d) broadcast |= shape[d] > 1 && strides[d] == 0;
  device_staged_.push_back({nb::borrow(a), made[0], argv.size(), as_stream(nb::cast<uintptr_t>(made[2])),
                            broadcast, lib, name, args_added_});
  return reinterpret_cast<void*>(nb::cast<uintptr_t>(made[1]));
}

// The code writes through the copy of a broadcast array: writing it back would store several
// results in each shared element.
void ArgPack::check_broadcast_written(const Entry& e) const {
  for (const DeviceStaged& s : device_staged_) {
    if (!s.broadcast || e.write_all || s.index >= e.written.size() || !e.written[s.index]) continue;
    Who w = who(s.name, s.arg);
    std::string copy = s.lib == 't' ? w.param + ".contiguous()" : "cupy.ascontiguousarray(" + w.param + ")";
    std::string msg = w.who + " is a broadcast array (a dimension of stride 0, as from expand or broadcast_to), "
                      "whose elements are shared, and the function writes it: writes to a shared element "
                      "would overwrite each other.\nWrite into an array with an element of its own for each "
                      "value, such as the copy " + copy + ", which the function then writes instead.";
    py_fail(PyExc_RuntimeError, CompileError(ErrorKind::Runtime, msg, w.where).render());
  }
}

// Waits for the work queued on stream `s` of device `dev`.
void ArgPack::wait_for_stream(void* s, int dev) {
  try {
    nb::gil_scoped_release release;
    cuda::DeviceScope scope(dev);
    cuda::stream_synchronize(s);
  } catch (const cuda::CudaError& e) {
    py_fail(PyExc_RuntimeError,
            std::string("Waiting for the contiguous copy of a CUDA array failed: ") + e.what());
  }
}

// DLPack producers without the buffer protocol (torch CPU tensors, JAX, ...): host memory only.
void ArgPack::add_dlpack(nb::handle a, const std::string& name, ArgValue& v) {
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
  add_array(static_cast<char*>(t.data) + t.byte_offset, format_of(elem), elem_bytes(elem), t.ndim, shape.data(),
            t.strides ? strides.data() : nullptr, false, name, v);
}

// __cuda_array_interface__ (torch, CuPy, parpy's CudaBuffer): used in place, on the array's stream.
void ArgPack::add_cuda_array(nb::handle a, const std::string& name, ArgValue& v) {
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
  bool names_stream = ai.contains("stream") && !ai["stream"].is_none();
  void* array_stream = names_stream ? as_stream(nb::cast<uintptr_t>(ai["stream"])) : nullptr;
  // torch's interface names no stream although torch works on the device's current one.
  PyTypeObject* tensor = torch_tensor_type(Py_TYPE(a.ptr()));
  bool torch_without_stream = !names_stream && tensor && PyObject_TypeCheck(a.ptr(), tensor);
  // Empty arrays have no memory (a null pointer), hence no device; code generation alone needs
  // no device either (print_compiled works without a GPU), except to read a 0-dim array's value.
  bool read = shape.empty() && reads_value(name);
  int dev = ptr && (!describe_ || read) ? pointer_device(ptr, name) : -1;
  if (read) {
    if (torch_without_stream) array_stream = torch_current_stream(dev);
    return add_device_scalar(ptr, elem, dev, array_stream, name, v);
  }
  if (shape.empty()) return add_device_element(ptr, elem, dev, array_stream, torch_without_stream, name, v);
  if (dev >= 0) on_device(dev, name);
  if (!stream && names_stream) stream = array_stream;
  if (!stream && torch_without_stream && dev >= 0) read_torch_stream(dev);
  bool readonly = nb::cast<bool>(data[1]);
  const Py_ssize_t* st = strides.empty() ? nullptr : strides.data();
  void* copy = nullptr;
  char lib = 0;
  // (An empty array has no elements to copy.)
  if (st && !readonly && !c_contiguous(elem_bytes(elem), static_cast<int>(shape.size()), shape.data(), st) &&
      std::find(shape.begin(), shape.end(), 0) == shape.end())
    copy = device_copy(a, shape, strides, name, lib);
  add_device_array(ptr, elem, shape, st, readonly, name, v, copy, lib);
}

// A 0-dim CUDA array whose value decides code is a typed scalar like a 0-dim host array: its
// value is read now (one element, device to host, after the work queued on the array's stream)
// and specialised on. It does not decide the call's device or stream.
void ArgPack::add_device_scalar(void* data, ElemSize elem, int device, void* array_stream,
                                const std::string& name, ArgValue& v) {
  void* value = slot();
  read_element(value, data, elem, device, array_stream, name);
  add_array(value, format_of(elem), elem_bytes(elem), 0, nullptr, nullptr, false, name, v);
}

void ArgPack::read_element(void* out, void* data, ElemSize elem, int device, void* array_stream,
                           const std::string& name) {
  try {
    nb::gil_scoped_release release;
    cuda::DeviceScope scope(device);
    cuda::copy_dtoh(out, reinterpret_cast<uint64_t>(data), static_cast<size_t>(elem_bytes(elem)), array_stream);
  } catch (const cuda::CudaError& e) {
    py_fail(PyExc_RuntimeError, "Argument " + name + ": reading the value of a 0-dimensional CUDA array failed: " +
                                    e.what());
  }
}

// A 0-dim CUDA array whose value decides no code: used in place, passed as a pointer to its
// element, which the kernels read. The key has its dtype only, so a new value builds nothing. It
// decides the call's device and stream only where no other CUDA array does (finish()).
void ArgPack::add_device_element(void* data, ElemSize elem, int dev, void* array_stream, bool torch,
                                 const std::string& name, ArgValue& v) {
  key.push_back('s');
  key.push_back(static_cast<char>(elem));
  void* s = slot();
  *static_cast<void**>(s) = data;
  if (!describe_) device_elements_.push_back({argv.size(), data, elem, dev, array_stream, torch, name});
  argv.push_back(s);
  v.kind = ArgValue::Kind::Array;
  v.elem = elem;
  v.on_device = true;
  if (describe_) v.path = name;
}

void ArgPack::finish() {
  if (!staged_.empty() || !device_staged_.empty()) check_copies_alone();
  // Arrays that share memory get code that does not assume otherwise: the call is keyed on it.
  bool shared = false;
  for (size_t a = 0; a < memory_.size(); ++a)
    for (size_t b = a + 1; b < memory_.size(); ++b) {
      const Memory &x = memory_[a], &y = memory_[b];
      if (x.lo >= y.hi || y.lo >= x.hi) continue;
      shared = true;
      if (describe_)
        for (size_t arg : {x.arg, y.arg})
          if (arg >= 1 && arg <= values.size()) values[arg - 1].shares_memory = true;
    }
  if (shared) key.push_back('o');
  if (!device_elements_.empty()) settle_device_elements();
  // A copy made on another stream than the call's (arrays of two libraries in one call) is waited
  // for before the launch.
  for (const DeviceStaged& s : device_staged_)
    if (s.stream != stream) wait_for_stream(s.stream, device);
}

void ArgPack::settle_device_elements() {
  if (device < 0) {
    const DeviceElement& first = device_elements_.front();
    on_device(first.device, first.name);
    if (!stream && !torch_stream_read_) {
      if (first.torch)
        read_torch_stream(first.device);
      else
        stream = first.stream;
    }
  }
  // One on another device is read now (after the work queued on its stream) and copied to the
  // call's device like a host array: a scalar may live on any device.
  for (const DeviceElement& e : device_elements_) {
    if (e.device == device) continue;
    void* value = slot();
    read_element(value, e.data, e.elem, e.device, e.torch ? torch_current_stream(e.device) : e.stream, e.name);
    host_arrays.push_back({e.index, value, static_cast<size_t>(elem_bytes(e.elem))});
  }
}

bool ArgPack::reads_value(const std::string& name) const {
  return !read_paths || std::find(read_paths->begin(), read_paths->end(), name) != read_paths->end();
}

// Every CUDA array of a call must be on one device: the call runs there
// (docs/gpu.md, Data, streams and devices).
void ArgPack::on_device(int dev, const std::string& name) {
  if (device < 0) {
    device = dev;
    device_arg_ = name;
  } else if (dev != device) {
    std::string first = "cuda:" + std::to_string(device), second = "cuda:" + std::to_string(dev);
    py_fail(PyExc_RuntimeError, "Arguments " + device_arg_ + " and " + name + " are on different CUDA devices (" +
                                    first + " and " + second + "); a call runs on one device, so move them to one "
                                    "device first (for example with tensor.to(\"" + first + "\"))");
  }
}

// The torch.Tensor fast path: the facts add_cuda_array reads from the interface, read from the
// tensor's getters instead. Returns false, having changed nothing, for any tensor that is not a
// plain dense CUDA tensor of a parpy element type; the generic path then gives exactly its usual
// result or error (CPU tensors: DLPack; requires_grad, sparse, non-contiguous, empty, ...).
bool ArgPack::add_torch_cuda(PyObject* o, const std::string& name, ArgValue& v) {
  auto is = [o](PyObject* attr, PyObject* expected) {
    nb::object r = nb::steal(try_attr(o, attr));
    return r.is_valid() && r.ptr() == expected;
  };
  if (!is(PARPY_NAME("is_cuda"), Py_True) || !is(PARPY_NAME("requires_grad"), Py_False) ||
      !is(PARPY_NAME("layout"), torch_state().strided))
    return false;
  nb::object dtype = nb::steal(try_attr(o, PARPY_NAME("dtype")));
  int elem = dtype.is_valid() ? torch_elem(dtype.ptr()) : -1;
  if (elem < 0) return false;
  nb::object shape_obj = nb::steal(try_attr(o, PARPY_NAME("shape")));
  if (!shape_obj.is_valid() || !PyTuple_Check(shape_obj.ptr())) return false;
  std::vector<Py_ssize_t> shape;
  for (Py_ssize_t d = 0; d < PyTuple_GET_SIZE(shape_obj.ptr()); ++d) {
    Py_ssize_t n = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape_obj.ptr(), d));
    if (n <= 0) {  // empty tensors report a null pointer through the interface; leave them to it
      PyErr_Clear();
      return false;
    }
    shape.push_back(n);
  }
  nb::object contiguous = nb::steal(try_call(o, PARPY_NAME("is_contiguous")));
  if (contiguous.ptr() != Py_True) return false;
  nb::object data_ptr = nb::steal(try_call(o, PARPY_NAME("data_ptr")));
  void* data = data_ptr.is_valid() ? PyLong_AsVoidPtr(data_ptr.ptr()) : nullptr;
  if (!data) {
    PyErr_Clear();
    return false;
  }
  nb::object device_obj = nb::steal(try_call(o, PARPY_NAME("get_device")));
  long dev = device_obj.is_valid() ? PyLong_AsLong(device_obj.ptr()) : -1;
  if (dev < 0) {
    PyErr_Clear();
    return false;
  }
  if (shape.empty() && reads_value(name)) {
    add_device_scalar(data, static_cast<ElemSize>(elem), static_cast<int>(dev), torch_current_stream(static_cast<int>(dev)),
                      name, v);
    return true;
  }
  if (shape.empty()) {
    add_device_element(data, static_cast<ElemSize>(elem), static_cast<int>(dev), nullptr, true, name, v);
    return true;
  }
  on_device(static_cast<int>(dev), name);
  if (!stream) read_torch_stream(static_cast<int>(dev));
  add_device_array(data, static_cast<ElemSize>(elem), shape, nullptr, false, name, v);
  return true;
}

// Launch on the stream torch is working on (docs/gpu.md, Data, streams and devices), so the call
// is ordered with the caller's torch work without a synchronisation. Asked once per call: one
// stream is used for the launch.
void ArgPack::read_torch_stream(int dev) {
  if (torch_stream_read_) return;
  torch_stream_read_ = true;
  stream = torch_current_stream(dev);
}

void ArgPack::add_array_interface(nb::handle a, const std::string& name, ArgValue& v) {
  nb::dict ai = nb::cast<nb::dict>(a.attr("__array_interface__"));
  if (!ai.contains("data")) py_fail(PyExc_RuntimeError, "Argument " + name + ": Buffer protocol not supported");
  nb::tuple data = nb::cast<nb::tuple>(ai["data"]);
  auto ptr = reinterpret_cast<void*>(nb::cast<uintptr_t>(data[0]));
  bool readonly = nb::cast<bool>(data[1]);
  std::string typestr = nb::cast<std::string>(ai["typestr"]);
  nb::tuple shape_t = nb::cast<nb::tuple>(ai["shape"]);
  std::vector<Py_ssize_t> shape;
  for (nb::handle d : shape_t) shape.push_back(nb::cast<Py_ssize_t>(d));
  std::vector<Py_ssize_t> strides;  // in bytes
  if (ai.contains("strides") && !ai["strides"].is_none())
    for (nb::handle d : nb::cast<nb::tuple>(ai["strides"])) strides.push_back(nb::cast<Py_ssize_t>(d));
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
  if (!strides.empty() && strides.size() != shape.size())
    py_fail(PyExc_RuntimeError, "Argument " + name + " has an __array_interface__ whose strides do not match its shape");
  add_array(ptr, format_of(elem), elem_bytes(elem), static_cast<int>(shape.size()), shape.data(),
            strides.empty() ? nullptr : strides.data(), readonly, name, v);
}

}  // namespace parpy
