#include "bindings/bind.h"
namespace parpy {
void bind_options(nanobind::module_&) {}
}  // namespace parpy
