// Compile options as the compiler sees them. The Python class CompileOptions wraps this struct.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/ir.h"

namespace parpy {

enum class CompileBackend : uint8_t { Auto = 0, Cuda = 1, Metal = 2, Cpu = 3 };
const char* backend_name(CompileBackend b);  // "Auto", "Cuda", "Metal", "Cpu"

struct CompileOptions {
  std::map<std::string, LoopPar> parallelize;
  bool verbose_backend_resolution = false;
  bool debug_print = false;
  bool write_output = false;
  CompileBackend backend = CompileBackend::Auto;
  bool use_cuda_thread_block_clusters = false;
  int64_t max_thread_blocks_per_cluster = 8;
  bool use_cuda_graphs = false;
  std::optional<ElemSize> force_int_size;
  std::optional<ElemSize> force_float_size;
  std::vector<std::string> includes;
  std::vector<std::string> libs;
  std::vector<std::string> extra_flags;
  // parpy's own option (not in the original library), meant to allow fast, less accurate
  // transcendental functions. No backend reads it yet: math functions are always the accurate
  // versions (docs/language.md, Types).
  bool fast_math = false;
  // parpy's own option: check at run time every index not proved in range at compile time, and
  // raise IndexError after the call (docs/language.md, Index bounds). Also set by the environment
  // variable PARPY_BOUNDS_CHECK=1.
  bool bounds_check = false;
  // parpy's own options: choose the parallel spec by timing candidates around `parallelize` on
  // the first call of each specialisation (docs/howto/autotuning.md), within this many seconds.
  bool autotune = false;
  double autotune_budget_s = 5.0;

  // Debug form listing every field, e.g. "CompileOptions { parallelize: {...}, ... }".
  std::string str() const;
  // A string identifying every field, cached; call touch() after any change.
  const std::string& key() const;
  void touch() { key_cache_.clear(); }

  ElemSize int_size() const;    // force_int_size, else the backend default (I64; I32 on Metal)
  ElemSize float_size() const;  // force_float_size, else F64 (F32 on Metal)

 private:
  mutable std::string key_cache_;
};

}  // namespace parpy
