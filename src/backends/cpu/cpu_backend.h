// The Cpu backend: C++ with OpenMP, built by the host compiler (codegen/cpu, jit/host_compiler).
#pragma once
#include "backend/backend.h"

namespace parpy {
const Backend& cpu_backend();
}
