// Python bindings of the option and type objects: CompileBackend, ElemSize, Target, ExtType,
// DataType, ScalarSizes, LoopPar, CompileOptions and par().
#include <nanobind/nanobind.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <bit>
#include <string>

#include "bindings/bind.h"
#include "ir/options.h"
#include "ir/types.h"

namespace nb = nanobind;

namespace parpy {
namespace {

// Host or device side of an external function.
enum class Target : uint8_t { Host = 0, Device = 1 };

// ExtType.Pointer(elem): the pointer type of an external's parameter or result.
struct ExtType {
  ElemSize elem;
};

// An array-interface type string: byte order plus element size.
struct DataType {
  char byteorder;  // '<', '>' or '|'
  ElemSize sz;
};

struct ScalarSizes {
  ElemSize int_;
  ElemSize float_;
};

[[noreturn]] void runtime_error(const std::string& msg) { throw std::runtime_error(msg); }

// Accepts the item size as an int (4) or a one-character string ('4').
std::string item_size_text(nb::handle h) {
  if (nb::isinstance<nb::str>(h)) return nb::cast<std::string>(h);
  return nb::cast<std::string>(nb::str(h));
}

ElemSize parse_elem(const std::string& tyid, const std::string& itemsize) {
  ElemSize out;
  bool digits = !itemsize.empty() && itemsize.size() <= 2;
  for (char c : itemsize) digits = digits && c >= '0' && c <= '9';
  if (tyid.size() != 1 || !digits || !elem_from_code(tyid[0], std::stoi(itemsize), out))
    runtime_error("Unknown type identifier " + tyid + itemsize);
  return out;
}

nb::object to_numpy(ElemSize e) {
  if (e == ElemSize::Bool) return nb::module_::import_("builtins").attr("bool");
  return nb::module_::import_("numpy").attr(elem_long_name(e));
}

nb::object to_ctype(ElemSize e) {
  const char* name = "c_bool";
  switch (e) {
    case ElemSize::Bool: name = "c_bool"; break;
    case ElemSize::I8: name = "c_int8"; break;
    case ElemSize::I16: name = "c_int16"; break;
    case ElemSize::I32: name = "c_int32"; break;
    case ElemSize::I64: name = "c_int64"; break;
    case ElemSize::U8: name = "c_uint8"; break;
    case ElemSize::U16: name = "c_uint16"; break;
    case ElemSize::U32: name = "c_uint32"; break;
    case ElemSize::U64: name = "c_uint64"; break;
    case ElemSize::F16: name = "c_uint16"; break;  // ctypes has no half type
    case ElemSize::F32: name = "c_float"; break;
    case ElemSize::F64: name = "c_double"; break;
  }
  return nb::module_::import_("ctypes").attr(name);
}

// torch is imported lazily: it is never a dependency. Unsigned types wider than a byte map to
// the signed torch type of the same width, as in ParPy.
nb::object to_torch(ElemSize e) {
  const char* name = "bool";
  switch (e) {
    case ElemSize::Bool: name = "bool"; break;
    case ElemSize::I8: name = "int8"; break;
    case ElemSize::I16: case ElemSize::U16: name = "int16"; break;
    case ElemSize::I32: case ElemSize::U32: name = "int32"; break;
    case ElemSize::I64: case ElemSize::U64: name = "int64"; break;
    case ElemSize::U8: name = "uint8"; break;
    case ElemSize::F16: name = "float16"; break;
    case ElemSize::F32: name = "float32"; break;
    case ElemSize::F64: name = "float64"; break;
  }
  return nb::module_::import_("torch").attr(name);
}

char native_byteorder(ElemSize e) {
  if (elem_bytes(e) == 1) return '|';  // as numpy writes it for one-byte types
  return std::endian::native == std::endian::little ? '<' : '>';
}

DataType parse_data_type(const std::string& s) {
  if (s.size() < 3) runtime_error("Unknown format of type specification: " + s);
  char bo = s[0];
  if (bo != '<' && bo != '>' && bo != '|' && bo != '=')
    runtime_error(std::string("Unknown byteorder ") + bo);
  if (bo == '=') bo = native_byteorder(ElemSize::I64);
  ElemSize sz = parse_elem(s.substr(1, 1), s.substr(2));
  return DataType{bo, sz};
}

std::string data_type_str(const DataType& d) {
  return std::string(1, d.byteorder) + elem_code(d.sz);
}

// ElemSize is a Python enum, so ElemSize(tyid, itemsize) needs the enum metaclass to route
// two-argument calls to the parser instead of Enum's functional API.
const char* elem_size_meta = R"(
def _install(cls):
    base = type(cls)

    class _ElemSizeMeta(base):
        def __call__(self, value, *args, **kwargs):
            if len(args) == 1 and not kwargs:
                return self._from_code(value, args[0])
            return super().__call__(value, *args, **kwargs)

    cls.__class__ = _ElemSizeMeta
)";

template <typename E>
void enum_str(nb::enum_<E>& e, const char* cls, const char* (*name)(E)) {
  std::string prefix = std::string(cls) + ".";
  e.def("__str__", [prefix, name](E v) { return prefix + name(v); });
  e.def("__repr__", [prefix, name](E v) { return prefix + name(v); });
  e.def("__format__", [prefix, name](E v, nb::handle spec) {
    return nb::str(nb::str((prefix + name(v)).c_str()).attr("__format__")(spec));
  });
}

std::string ext_type_str(const ExtType& t) {
  return std::string("ExtType.Pointer(") + elem_name(t.elem) + ")";
}

const char* target_name(Target t) { return t == Target::Host ? "Host" : "Device"; }

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

}  // namespace

void bind_options(nb::module_& m) {
  // CompileBackend
  nb::enum_<CompileBackend> backend(m, "CompileBackend", nb::is_arithmetic());
  backend.value("Auto", CompileBackend::Auto)
      .value("Cuda", CompileBackend::Cuda)
      .value("Metal", CompileBackend::Metal)
      .value("Cpu", CompileBackend::Cpu);
  enum_str(backend, "CompileBackend", backend_name);

  // ElemSize
  nb::enum_<ElemSize> elem(m, "ElemSize", nb::is_arithmetic());
  elem.value("Bool", ElemSize::Bool)
      .value("I8", ElemSize::I8)
      .value("I16", ElemSize::I16)
      .value("I32", ElemSize::I32)
      .value("I64", ElemSize::I64)
      .value("U8", ElemSize::U8)
      .value("U16", ElemSize::U16)
      .value("U32", ElemSize::U32)
      .value("U64", ElemSize::U64)
      .value("F16", ElemSize::F16)
      .value("F32", ElemSize::F32)
      .value("F64", ElemSize::F64);
  elem.def("__str__", [](ElemSize e) { return std::string(elem_code(e)); });
  elem.def("__repr__", [](ElemSize e) { return std::string("ElemSize.") + elem_name(e); });
  elem.def("__format__", [](ElemSize e, nb::handle spec) {
    return nb::str(nb::str(elem_code(e)).attr("__format__")(spec));
  });
  elem.def_static("_from_code", [](nb::handle tyid, nb::handle itemsize) {
    return parse_elem(nb::cast<std::string>(nb::str(tyid)), item_size_text(itemsize));
  });
  elem.def("size", [](ElemSize e) { return elem_bytes(e); });
  elem.def("to_numpy", &to_numpy);
  elem.def("to_ctype", &to_ctype);
  elem.def("to_torch", &to_torch);
  {
    nb::dict scope;
    nb::module_::import_("builtins").attr("exec")(elem_size_meta, scope);
    scope["_install"](elem);
  }

  // Target
  nb::enum_<Target> target(m, "Target", nb::is_arithmetic());
  target.value("Host", Target::Host).value("Device", Target::Device);
  enum_str(target, "Target", target_name);

  // ExtType
  nb::class_<ExtType>(m, "ExtType")
      .def_static("Pointer", [](ElemSize e) { return ExtType{e}; }, nb::arg("elem"))
      .def_prop_ro("elem", [](const ExtType& t) { return t.elem; })
      .def_prop_ro("_0", [](const ExtType& t) { return t.elem; })
      .def("__eq__", [](const ExtType& a, const ExtType& b) { return a.elem == b.elem; })
      .def("__eq__", [](const ExtType&, nb::handle) { return false; })
      .def("__hash__",
           [](const ExtType& t) { return nb::hash(nb::make_tuple("Pointer", t.elem)); })
      .def("__repr__", &ext_type_str)
      .def("__str__", &ext_type_str);

  // DataType
  nb::class_<DataType>(m, "DataType")
      .def(
          "__init__",
          [](DataType* d, const std::string& s) { new (d) DataType(parse_data_type(s)); },
          nb::arg("s"))
      .def_static("from_elem_size", [](ElemSize e) { return DataType{native_byteorder(e), e}; },
                  nb::arg("sz"))
      .def_prop_ro("sz", [](const DataType& d) { return d.sz; })
      .def("__str__", &data_type_str)
      .def("__repr__", [](const DataType& d) { return "DataType('" + data_type_str(d) + "')"; })
      .def("__eq__", [](const DataType& a, const DataType& b) {
        return a.byteorder == b.byteorder && a.sz == b.sz;
      })
      .def("__eq__", [](const DataType&, nb::handle) { return false; })
      .def("__hash__",
           [](const DataType& d) { return nb::hash(nb::str(data_type_str(d).c_str())); })
      .def("size", [](const DataType& d) { return elem_bytes(d.sz); })
      .def("is_signed_integer", [](const DataType& d) { return is_signed_int(d.sz); })
      .def("is_unsigned_integer", [](const DataType& d) { return is_unsigned_int(d.sz); })
      .def("is_integer", [](const DataType& d) { return is_int(d.sz); })
      .def("is_floating_point", [](const DataType& d) { return is_float(d.sz); })
      .def("to_numpy", [](const DataType& d) { return to_numpy(d.sz); })
      .def("to_torch", [](const DataType& d) { return to_torch(d.sz); })
      .def("to_ctype", [](const DataType& d) { return to_ctype(d.sz); });

  // LoopPar: every method returns a modified copy; equality is identity, as in ParPy.
  nb::class_<LoopPar>(m, "LoopPar")
      .def(nb::init<>())
      .def("threads", [](const LoopPar& p, int64_t n) {
        if (p.nthreads != 0) runtime_error("The number of threads can only be set once");
        LoopPar q = p;
        q.nthreads = n;
        return q;
      }, nb::arg("n"))
      .def("reduce", [](const LoopPar& p) {
        LoopPar q = p;
        q.reduction = true;
        return q;
      })
      .def("tpb", [](const LoopPar& p, int64_t n) {
        if (n <= 0 || n % 32 != 0)
          runtime_error(
              "The number of threads per block must be a positive integer divisible by 32.");
        LoopPar q = p;
        q.tpb = n;
        return q;
      }, nb::arg("n"))
      .def("is_parallel", &LoopPar::is_parallel)
      // Pickled by value (python/parpy/_pickling.py).
      .def("__getstate__", [](const LoopPar& p) { return std::make_tuple(p.nthreads, p.reduction, p.tpb); })
      .def("__setstate__",
           [](LoopPar& p, const std::tuple<int64_t, bool, int64_t>& s) {
             new (&p) LoopPar();
             p.nthreads = std::get<0>(s);
             p.reduction = std::get<1>(s);
             p.tpb = std::get<2>(s);
           })
      .def("__repr__", &LoopPar::str)
      .def("__str__", &LoopPar::str);

  // CompileOptions: every setter touches the struct so its cached key is rebuilt.
  using CO = CompileOptions;
  nb::class_<CO>(m, "CompileOptions",
                 "How a jit function is compiled: the parallel spec of its labels, the backend and build settings. "
                 "Pass it as f(..., opts=...); parpy.par({...}) makes one.")
      .def(nb::init<>())
      .def_prop_rw("parallelize",
          [](const CO& o) {
            nb::dict d;
            for (const auto& [k, v] : o.parallelize) d[nb::str(k.c_str())] = nb::cast(v);
            return d;
          },
          [](CO& o, std::map<std::string, LoopPar> p) { o.parallelize = std::move(p); o.touch(); },
          "The parallel spec of each label, {label: parpy.threads(n)}, with .reduce() for reductions and "
          ".tpb(k) for the threads per block; parpy.par(...) makes options with it.")
      .def_prop_rw("verbose_backend_resolution",
          [](const CO& o) { return o.verbose_backend_resolution; },
          [](CO& o, bool v) { o.verbose_backend_resolution = v; o.touch(); },
          "Print why each backend that is not available here is not, whenever the backend is resolved.")
      .def_prop_rw("debug_print", [](const CO& o) { return o.debug_print; },
          [](CO& o, bool v) { o.debug_print = v; o.touch(); },
          "Print the IR after each compiler pass, with its time, and the generated code.")
      .def_prop_rw("write_output", [](const CO& o) { return o.write_output; },
          [](CO& o, bool v) { o.write_output = v; o.touch(); },
          "Keep a copy of the generated source in the working directory when its build fails.")
      .def_prop_rw("backend", [](const CO& o) { return o.backend; },
          [](CO& o, CompileBackend v) { o.backend = v; o.touch(); },
          "The backend to compile for: CompileBackend.Auto (the default: the first available of Cuda, Metal"
          " and Cpu), Cuda, Metal or Cpu.")
      .def_prop_rw("use_cuda_thread_block_clusters",
          [](const CO& o) { return o.use_cuda_thread_block_clusters; },
          [](CO& o, bool v) { o.use_cuda_thread_block_clusters = v; o.touch(); },
          "Cuda on sm_90 and later: the blocks of a row whose innermost loop spans several blocks form a "
          "thread-block cluster, so that the nest stays one kernel.")
      .def_prop_rw("max_thread_blocks_per_cluster",
          [](const CO& o) { return o.max_thread_blocks_per_cluster; },
          [](CO& o, int64_t v) {
            if (!is_power_of_two(v))
              runtime_error("The number of thread blocks per cluster must be a power of two.");
            o.max_thread_blocks_per_cluster = v;
            o.touch();
          },
          "The most blocks of one cluster (a power of two; at most 16 are used).")
      .def_prop_rw("use_cuda_graphs", [](const CO& o) { return o.use_cuda_graphs; },
          [](CO& o, bool v) { o.use_cuda_graphs = v; o.touch(); },
          "Cuda: capture a call's launches into a CUDA graph once and replay it while the arguments are the"
          " same.")
      .def_prop_rw("force_int_size", [](const CO& o) { return o.force_int_size; },
          [](CO& o, std::optional<ElemSize> v) {
            if (v && !is_int(*v))
              runtime_error("Cannot use a non integer type for integer scalars.");
            o.force_int_size = v;
            o.touch();
          }, nb::arg("value").none(),
          "The type of Python int arguments and integer literals (None: I64, I32 on Metal). An argument "
          "that does not fit raises OverflowError.")
      .def_prop_rw("force_float_size", [](const CO& o) { return o.force_float_size; },
          [](CO& o, std::optional<ElemSize> v) {
            if (v && !is_float(*v))
              runtime_error("Cannot use a non floating-point type for floating-point scalars.");
            o.force_float_size = v;
            o.touch();
          }, nb::arg("value").none(),
          "The type of Python float arguments and float literals (None: F64, F32 on Metal).")
      .def_prop_rw("includes", [](const CO& o) { return o.includes; },
          [](CO& o, std::vector<std::string> v) { o.includes = std::move(v); o.touch(); },
          "Include directories added to the build (for the headers of externals).")
      .def_prop_rw("libs", [](const CO& o) { return o.libs; },
          [](CO& o, std::vector<std::string> v) { o.libs = std::move(v); o.touch(); },
          "Library directories added to the build; on Cuda, nvcc then builds the whole program.")
      .def_prop_rw("extra_flags", [](const CO& o) { return o.extra_flags; },
          [](CO& o, std::vector<std::string> v) { o.extra_flags = std::move(v); o.touch(); },
          "Flags added to the compiler's command line (on Cpu, the linker's inputs among them, such as "
          "-l<name>, after the generated source); on Cuda they are nvcc flags, and nvcc builds the whole "
          "program.")
      .def_prop_rw("fast_math", [](const CO& o) { return o.fast_math; },
          [](CO& o, bool v) { o.fast_math = v; o.touch(); },
          "Metal: compile the kernels with Metal's fast math. The Cpu and Cuda backends accept it for "
          "compatibility and never compile with fast-math, so their results keep IEEE semantics.")
      .def_prop_rw("bounds_check", [](const CO& o) { return o.bounds_check; },
          [](CO& o, bool v) { o.bounds_check = v; o.touch(); },
          "Check at run time the indices that cannot be proved in range; an index out of range raises "
          "IndexError after the call (also PARPY_BOUNDS_CHECK=1).")
      .def_prop_rw("autotune", [](const CO& o) { return o.autotune; },
          [](CO& o, bool v) { o.autotune = v; o.touch(); },
          "Choose the parallel spec by measurement: the first call of each specialisation times "
          "candidates around parallelize (threads and tpb per label, clusters) on copies of the "
          "arguments and keeps the fastest, in memory and on disk; parpy.tuned() shows the choice.")
      .def_prop_rw("autotune_budget_s", [](const CO& o) { return o.autotune_budget_s; },
          [](CO& o, double v) {
            if (!(v > 0.0)) runtime_error("The autotuning budget must be a positive number of seconds.");
            o.autotune_budget_s = v;
            o.touch();
          },
          "The most seconds one autotuning search spends (default 5), builds included.")
      .def("__str__", &CO::str)
      .def("_key", [](const CO& o) { return o.key(); });

  nb::class_<ScalarSizes>(m, "ScalarSizes")
      .def("__init__", [](ScalarSizes* s, const CO& o) {
        new (s) ScalarSizes{o.int_size(), o.float_size()};
      }, nb::arg("opts"))
      .def_prop_ro("int", [](const ScalarSizes& s) { return s.int_; })
      .def_prop_ro("float", [](const ScalarSizes& s) { return s.float_; });

  m.def("par", [](std::map<std::string, LoopPar> p, bool autotune) {
    CO o;
    o.parallelize = std::move(p);
    o.autotune = autotune;
    return o;
  }, nb::arg("p"), nb::arg("autotune") = false);
}

}  // namespace parpy
