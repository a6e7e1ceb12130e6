// The parpy.parpy extension module.
#include <nanobind/nanobind.h>

#include "bindings/bind.h"

NB_MODULE(parpy, m) {
  m.doc() = "parpy compiler core";
  // Jit wrappers live in module-level registries until interpreter exit; that is not a leak.
  nanobind::set_leak_warnings(false);
  parpy::bind_options(m);
  parpy::bind_compiler(m);
  parpy::bind_cuda_runtime(m);
  parpy::bind_externals(m);
  parpy::bind_cache(m);
  parpy::bind_nvrtc(m);
}
