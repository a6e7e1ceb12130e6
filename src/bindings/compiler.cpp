#include "bindings/bind.h"
namespace parpy {
void bind_compiler(nanobind::module_&) {}
}  // namespace parpy
