#include "ir/types.h"

#include <sstream>

namespace parpy {

bool is_bool(ElemSize e) { return e == ElemSize::Bool; }
bool is_signed_int(ElemSize e) { return e >= ElemSize::I8 && e <= ElemSize::I64; }
bool is_unsigned_int(ElemSize e) { return e >= ElemSize::U8 && e <= ElemSize::U64; }
bool is_int(ElemSize e) { return is_signed_int(e) || is_unsigned_int(e); }
bool is_float(ElemSize e) { return e >= ElemSize::F16; }

int elem_bytes(ElemSize e) {
  switch (e) {
    case ElemSize::Bool: case ElemSize::I8: case ElemSize::U8: return 1;
    case ElemSize::I16: case ElemSize::U16: case ElemSize::F16: return 2;
    case ElemSize::I32: case ElemSize::U32: case ElemSize::F32: return 4;
    case ElemSize::I64: case ElemSize::U64: case ElemSize::F64: return 8;
  }
  return 8;
}

const char* elem_name(ElemSize e) {
  static const char* names[] = {"Bool", "I8", "I16", "I32", "I64", "U8",
                                "U16",  "U32", "U64", "F16", "F32", "F64"};
  return names[static_cast<int>(e)];
}

const char* elem_code(ElemSize e) {
  static const char* codes[] = {"b1", "i1", "i2", "i4", "i8", "u1",
                                "u2", "u4", "u8", "f2", "f4", "f8"};
  return codes[static_cast<int>(e)];
}

const char* elem_long_name(ElemSize e) {
  static const char* names[] = {"bool",   "int8",   "int16",   "int32",   "int64",   "uint8",
                                "uint16", "uint32", "uint64", "float16", "float32", "float64"};
  return names[static_cast<int>(e)];
}

bool elem_from_code(char kind, int itemsize, ElemSize& out) {
  for (int i = 0; i <= static_cast<int>(ElemSize::F64); ++i) {
    auto e = static_cast<ElemSize>(i);
    const char* c = elem_code(e);
    if (c[0] == kind && c[1] - '0' == itemsize) {
      out = e;
      return true;
    }
  }
  return false;
}

int64_t Type::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const Type* Type::field(const std::string& key) const {
  for (const auto& [k, t] : fields)
    if (k == key) return &t;
  return nullptr;
}

bool Type::operator==(const Type& o) const {
  if (kind != o.kind) return false;
  switch (kind) {
    case Kind::Tensor: return elem == o.elem && shape == o.shape;
    case Kind::Pointer: return elem == o.elem;
    case Kind::Dict: return fields == o.fields;
    default: return true;
  }
}

std::string Type::str() const {
  std::ostringstream os;
  switch (kind) {
    case Kind::Unknown: return "unknown type";
    case Kind::Void: return "None";
    case Kind::String: return "str";
    case Kind::Pointer: os << "pointer to " << elem_long_name(elem); return os.str();
    case Kind::Tensor: {
      os << elem_long_name(elem);
      if (shape.empty()) return os.str();
      os << " array of shape (";
      for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
      os << (shape.size() == 1 ? ",)" : ")");
      return os.str();
    }
    case Kind::Dict: {
      os << "dict {";
      for (size_t i = 0; i < fields.size(); ++i)
        os << (i ? ", " : "") << '\'' << fields[i].first << "': " << fields[i].second.str();
      os << "}";
      return os.str();
    }
  }
  return "unknown type";
}

}  // namespace parpy
