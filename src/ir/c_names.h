#pragma once
#include <string>

#include "ir/types.h"

namespace parpy {
// The C/C++/CUDA name of a parpy name. A user identifier (function, parameter, local, loop
// variable) gets the prefix "v_", so that no user name reaches C as-is where it could collide
// with a keyword, a macro (NULL, M_PI, ...), a library function or a name of parpy's headers.
// A compiler-generated name ("$acc0") becomes "parpy_acc0". Characters C does not allow in
// identifiers are escaped as "_xHH".
std::string c_ident(const std::string& name);

// The characters of `name` that C allows in identifiers, the others escaped as "_xHH".
std::string c_chars(const std::string& name);

// The symbols a generated library exports, derived from the function's name: the entry
// (`extern "C" int32_t parpy_entry_<name>(...)`) and, on Cuda, the error message of the last
// failure (`extern "C" const char* parpy_error_<name>()`). compile_string finds the entry of a
// `print_compiled` program by the same rule.
std::string entry_symbol(const std::string& fname);
std::string error_symbol(const std::string& fname);
// The exported `const int64_t* parpy_bounds_<fname>()` of code that checks indices at run time.
std::string bounds_symbol(const std::string& fname);

// The C spelling of an element type; half precision is spelled by each backend.
const char* c_elem_type(ElemSize e, const char* half);
}  // namespace parpy
