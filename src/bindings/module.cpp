// The parpy.parpy extension module.
#include <nanobind/nanobind.h>

#include "bindings/bind.h"

NB_MODULE(parpy, m) {
  m.doc() = "parpy compiler core";
  parpy::bind_options(m);
  parpy::bind_compiler(m);
  parpy::bind_externals(m);
}
