// parpy.parpy.declare_external: validates and records a parpy.external declaration. The Python
// decorator (parpy.external) evaluates the annotations and keeps the registries.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <regex>

#include "backend/backend.h"
#include "bindings/bind.h"
#include "bindings/externals.h"
#include "ir/options.h"

namespace nb = nanobind;

namespace parpy {
namespace {

// A parpy.types annotation: an ElemSize is a scalar, an ExtType a pointer; else nullopt.
std::optional<Type> annotation_type(nb::handle v) {
  nb::module_ native = nb::module_::import_("parpy.parpy");
  if (nb::isinstance(v, native.attr("ElemSize")))
    return Type::scalar(static_cast<ElemSize>(nb::cast<int>(v.attr("value"))));
  if (nb::isinstance(v, native.attr("ExtType")))
    return Type::pointer(static_cast<ElemSize>(nb::cast<int>(v.attr("elem").attr("value"))));
  return std::nullopt;
}

// The generated code names an external as written and includes its header: both must be what
// they claim, a C/C++ (qualified) identifier and one #include operand.
void check_c_names(const std::string& ext_name, const std::optional<std::string>& header) {
  static const std::regex ident("(::)?[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*");
  if (!std::regex_match(ext_name, ident))
    fail("The external name '" + ext_name + "' is not a C/C++ function name. Give the name the generated "
         "code calls, an identifier optionally qualified by namespaces, such as 'fmin' or 'std::fmin'.");
  if (!header || header->empty()) return;
  static const std::regex file("<[A-Za-z0-9_./+ -]+>|\"[A-Za-z0-9_./+ -]+\"|[A-Za-z0-9_./+-]+");
  if (!std::regex_match(*header, file))
    fail("The header '" + *header + "' is not a header file name. Give one file, as '<file.h>', "
         "'\"file.h\"' or 'file.h', made of letters, digits and the characters _ . / + -.");
}

ExternalHandle declare_external(const std::string& name, const std::string& ext_name,
                                CompileBackend backend, nb::handle target,
                                std::optional<std::string> header, const LoopPar& par,
                                const std::vector<std::pair<std::string, nb::object>>& params,
                                nb::object ret) {
  bool host = nb::cast<int>(target.attr("value")) == 0;
  if (backend == CompileBackend::Auto)
    fail(std::string("Unsupported external backend: CompileBackend.") + backend_name(backend));
  if (std::string err = backend_of(backend).external_error(host, par); !err.empty()) fail(err);
  check_c_names(ext_name, header);
  auto d = std::make_shared<ExternalDecl>();
  d->name = name;
  d->ext_name = ext_name;
  d->backend = backend;
  d->device = !host;
  d->header = header.value_or("");
  d->par = par;
  for (const auto& [pname, ann] : params) {
    auto t = annotation_type(ann);
    if (ann.is_none()) fail("External declaration parameters must be annotated with types.");
    // An annotation that is not a parpy type (x: int, x: np.ndarray) is reported as such.
    if (!t)
      fail("Unsupported parameter type annotation\nParameter " + pname + " of external function " + name +
           " is annotated with " + nb::cast<std::string>(nb::repr(ann)) +
           ". Annotate parameters with types from parpy.types: parpy.types.F32, parpy.types.I64, ... for "
           "scalars and parpy.types.pointer(parpy.types.F32) for arrays.");
    d->params.push_back({pname, t, {}});
  }
  auto r = annotation_type(ret);
  if (!r) fail("Unsupported return type annotation on external function");
  d->ret = *r;
  return {d};
}

}  // namespace

void bind_externals(nb::module_& m) {
  nb::class_<ExternalHandle>(m, "ExternalDecl")
      .def_prop_ro("name", [](const ExternalHandle& h) { return h.decl->name; })
      .def_prop_ro("ext_name", [](const ExternalHandle& h) { return h.decl->ext_name; })
      .def_prop_ro("backend", [](const ExternalHandle& h) { return h.decl->backend; })
      .def_prop_ro("header",
                   [](const ExternalHandle& h) -> std::optional<std::string> {
                     if (h.decl->header.empty()) return std::nullopt;
                     return h.decl->header;
                   })
      .def("__repr__", [](const ExternalHandle& h) {
        return "ExternalDecl(" + h.decl->name + " -> " + h.decl->ext_name + ", " +
               backend_name(h.decl->backend) + ")";
      });
  m.def("declare_external", &declare_external, nb::arg("name"), nb::arg("ext_name"), nb::arg("backend"),
        nb::arg("target"), nb::arg("header").none(), nb::arg("parallelize"), nb::arg("params"),
        nb::arg("ret").none());
}

}  // namespace parpy
