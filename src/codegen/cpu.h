#pragma once
#include <string>
#include <vector>

#include "ir/ir.h"
#include "ir/calls.h"
#include "ir/abi.h"

namespace parpy {

struct CpuProgram {
  std::string code;          // C++ source
  std::string entry_symbol;  // extern "C" int32_t <entry_symbol>(void** args)
  std::string bounds_symbol;  // with run-time index checks: see Lowered::bounds_symbol
};

// Prints the parallel loop IR as C++ with OpenMP (docs/language.md, Parallel semantics). The
// outermost parallel loop of a nest becomes `omp parallel for`, innermost parallel loops inside
// it `omp simd`, reductions use OpenMP reduction clauses. Defines `static int32_t v_<name>(params...)`
// and the library's one exported symbol, the uniform entry `parpy_entry_<name>(void** args)` (see
// entry_symbol), reading each argument through a pointer. Helpers called in expressions come first
// as `static inline` functions, after the externals' headers.
CpuProgram print_cpu(const std::string& name, const std::vector<AbiParam>& params, const Block& body,
                     const Helpers& helpers = {});

// The uniform entry `extern "C" int32_t <entry>(void** args)` calling the C function `fname`
// with typed arguments.
std::string print_cpu_entry(const std::string& entry, const std::string& fname,
                            const std::vector<AbiParam>& params);

// C++ spelling of an element type.
const char* cpu_type(ElemSize e);
}  // namespace parpy
