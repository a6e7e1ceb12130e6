#pragma once
#include "ir/ir.h"

namespace parpy {
// Moves each run of label statements onto the next statement of its block
// (docs/language.md, Labels).
Block attach_labels(const Block& b);
}  // namespace parpy
