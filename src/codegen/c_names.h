#pragma once
#include <string>

namespace parpy {
// A valid C/C++ identifier for a parpy name: the name itself unless it is a keyword or has
// characters C does not allow.
std::string c_ident(const std::string& name);
}  // namespace parpy
