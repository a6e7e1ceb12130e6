#include "codegen/c_names.h"

#include <cctype>
#include <cstdio>
#include <set>

namespace parpy {

std::string c_ident(const std::string& name) {
  static const std::set<std::string> reserved = {
      "alignas", "alignof", "asm", "auto", "bool", "break", "case", "catch", "char", "class",
      "const", "constexpr", "const_cast", "continue", "decltype", "default", "delete", "do",
      "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float",
      "for", "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new",
      "noexcept", "nullptr", "operator", "private", "protected", "public", "register",
      "reinterpret_cast", "return", "short", "signed", "sizeof", "static", "static_assert",
      "static_cast", "struct", "switch", "template", "this", "thread_local", "throw", "true", "try",
      "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual", "void", "volatile",
      "wchar_t", "while", "and", "or", "not", "xor", "bitand", "bitor", "compl", "and_eq",
      "or_eq", "xor_eq", "not_eq", "main", "NAN", "INFINITY", "HUGE_VAL", "HUGE_VALF",
      "concept", "requires", "co_await", "co_return", "co_yield", "char8_t", "char16_t",
      "char32_t", "consteval", "constinit", "final", "override", "restrict", "int8_t", "int16_t",
      "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t", "std"};
  // Compiler-generated names start with '$', which Python identifiers cannot contain.
  if (!name.empty() && name[0] == '$') return "parpy_" + name.substr(1);
  bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
  for (unsigned char c : name) ok = ok && (std::isalnum(c) || c == '_');
  if (ok && !reserved.count(name) && name.rfind("parpy_", 0) != 0) return name;
  std::string out = "v_";
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
