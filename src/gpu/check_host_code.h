#pragma once
#include "ir/ir.h"

namespace parpy {
// Host code (outside parallel loops and gpu blocks) cannot touch GPU memory: any array access
// there is an error, "Found a write (or read) of an array outside parallel code: ...", which says
// how to rewrite it (docs/howto/host-code.md).
void check_host_code(const Block& b);
}  // namespace parpy
