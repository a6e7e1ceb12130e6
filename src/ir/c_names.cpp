#include "ir/c_names.h"

#include <cctype>
#include <cstdio>

namespace parpy {

std::string c_chars(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '_') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "_x%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string c_ident(const std::string& name) {
  // Compiler-generated names start with '$', which Python identifiers cannot contain.
  if (!name.empty() && name[0] == '$') return "parpy_" + c_chars(name.substr(1));
  return "v_" + c_chars(name);
}

std::string entry_symbol(const std::string& fname) { return "parpy_entry_" + c_chars(fname); }

std::string error_symbol(const std::string& fname) { return "parpy_error_" + c_chars(fname); }

std::string bounds_symbol(const std::string& fname) { return "parpy_bounds_" + c_chars(fname); }

const char* c_elem_type(ElemSize e, const char* half) {
  switch (e) {
    case ElemSize::Bool: return "bool";
    case ElemSize::I8: return "int8_t";
    case ElemSize::I16: return "int16_t";
    case ElemSize::I32: return "int32_t";
    case ElemSize::I64: return "int64_t";
    case ElemSize::U8: return "uint8_t";
    case ElemSize::U16: return "uint16_t";
    case ElemSize::U32: return "uint32_t";
    case ElemSize::U64: return "uint64_t";
    case ElemSize::F16: return half;
    case ElemSize::F32: return "float";
    case ElemSize::F64: return "double";
  }
  return "int64_t";
}

}  // namespace parpy
