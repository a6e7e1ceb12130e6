#pragma once
#include <string>

#include "ir/types.h"

namespace parpy {
// A valid C/C++ identifier for a parpy name: the name itself unless it is a keyword or has
// characters C does not allow.
std::string c_ident(const std::string& name);

// The C spelling of an element type; half precision is spelled by each backend.
const char* c_elem_type(ElemSize e, const char* half);
}  // namespace parpy
