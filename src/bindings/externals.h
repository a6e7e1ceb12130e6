// The Python handle of an external declaration (docs/language.md, Functions), stored in
// parpy._ext_decls.
#pragma once
#include "ir/ir.h"

namespace parpy {
struct ExternalHandle {
  ExternalRef decl;
};
}  // namespace parpy
