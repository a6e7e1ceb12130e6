#pragma once
#include "ir/ir.h"

namespace parpy {
// Host code (outside parallel loops and gpu blocks) cannot touch GPU memory: any array access
// there is an error, "Assignments are not allowed outside parallel code." (docs/gpu.md, Host code
// and kernels).
void check_host_code(const Block& b);
}  // namespace parpy
