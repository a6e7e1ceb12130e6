// Element types and value types of the IR.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace parpy {

enum class ElemSize : uint8_t { Bool, I8, I16, I32, I64, U8, U16, U32, U64, F16, F32, F64 };

bool is_bool(ElemSize e);
bool is_signed_int(ElemSize e);
bool is_unsigned_int(ElemSize e);
bool is_int(ElemSize e);  // signed or unsigned
bool is_float(ElemSize e);
int elem_bytes(ElemSize e);
// Rust-style debug name of the ElemSize enum value: "F32", "I64", "Bool" (reprs, not messages).
const char* elem_name(ElemSize e);
// numpy type code: "f4", "i8", "b1".
const char* elem_code(ElemSize e);
// numpy-style name used in messages: "float32", "int64", "bool".
const char* elem_long_name(ElemSize e);
// Parse a numpy kind char + itemsize ('f', 4). Returns false if unknown.
bool elem_from_code(char kind, int itemsize, ElemSize& out);

// A value type. Scalars are tensors with an empty shape.
struct Type {
  enum class Kind : uint8_t { Unknown, Tensor, Pointer, Dict, String, Void };
  Kind kind = Kind::Unknown;
  ElemSize elem = ElemSize::I64;
  std::vector<int64_t> shape;                        // Tensor only; empty = scalar
  std::vector<std::pair<std::string, Type>> fields;  // Dict only, sorted by key

  static Type unknown() { return Type{}; }
  static Type scalar(ElemSize e) { return Type{Kind::Tensor, e, {}, {}}; }
  static Type tensor(ElemSize e, std::vector<int64_t> s) { return Type{Kind::Tensor, e, std::move(s), {}}; }
  static Type pointer(ElemSize e) { return Type{Kind::Pointer, e, {}, {}}; }
  static Type void_() { return Type{Kind::Void, ElemSize::I64, {}, {}}; }
  static Type string() { return Type{Kind::String, ElemSize::I64, {}, {}}; }

  bool is_unknown() const { return kind == Kind::Unknown; }
  bool is_scalar() const { return kind == Kind::Tensor && shape.empty(); }
  bool is_tensor() const { return kind == Kind::Tensor; }
  bool is_array() const { return kind == Kind::Tensor && !shape.empty(); }
  bool is_pointer() const { return kind == Kind::Pointer; }
  bool is_dict() const { return kind == Kind::Dict; }
  int64_t numel() const;
  const Type* field(const std::string& key) const;

  bool operator==(const Type& o) const;
  bool operator!=(const Type& o) const { return !(*this == o); }
  // Python-level form used in messages and the IR printer: "float32" for a scalar,
  // "float32 array of shape (10, 20)", "pointer to float32", "dict {'a': int64}".
  std::string str() const;
};

}  // namespace parpy
