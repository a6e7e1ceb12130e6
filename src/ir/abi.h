// The arguments of a call as the compiler sees them, and the parameters of the generated entry
// function: what the bindings, the passes and the printers agree on.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ir/types.h"

namespace parpy {

// What the compiler knows about one call argument.
struct ArgValue {
  enum class Kind : uint8_t { Int, Float, Array, Dict } kind = Kind::Int;
  int64_t ival = 0;     // Int, or an integer/bool 0-dim array
  double fval = 0.0;    // Float, or a float 0-dim array
  ElemSize elem = ElemSize::I64;  // Array
  std::vector<int64_t> shape;     // Array; empty for a 0-dim array (a typed scalar)
  std::vector<std::pair<std::string, ArgValue>> fields;  // Dict, sorted by key
  // A 0-dim array left on the GPU (Cuda): its value is not known here. It is passed as a pointer
  // to its element (a one-element array parameter `p`), and specialize() turns each read into
  // `p[0]`, a load in device code. `path` names the argument as the call does ("#1", "#2[\"k\"]").
  bool on_device = false;
  std::string path;
  // An array argument that shares memory with another array argument of the call (docs/language.md,
  // Parallel semantics): code that assumes different arrays are different memory is not used.
  bool shares_memory = false;
};

// One parameter of the generated entry function, in calling order (dicts expanded by key).
struct AbiParam {
  std::string name;
  Type type;  // arrays: Tensor with shape; scalars: scalar type (passed, but inlined)
  bool on_device = false;  // a 0-dim array left on the GPU: a one-element array, only read
  // An array that shares memory with another array argument of the call (ArgValue::shares_memory).
  bool shares_memory = false;
};

}  // namespace parpy
