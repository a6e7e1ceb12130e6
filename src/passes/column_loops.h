// Loops over the columns of arrays (docs/language.md, Parallel semantics): what the Cpu
// backend's column tiles and the GPU layer's row splits and interchanges ask of a loop nest.
#pragma once
#include <optional>
#include <utility>

#include "ir/ir.h"

namespace parpy {

// An assignment to an array element with no call (a statement a loop nest may run in another
// order of its parallel iterations).
bool plain_store(const Stmt& s);

// The coefficients of loop variables `j` and `i` in an index, if it is affine in them.
std::optional<std::pair<int64_t, int64_t>> loop_strides(const Expr& index, const std::string& j, const std::string& i);

// Whether running the iterations of `rows` (sequential, over i) column by column keeps every
// dependence of `par` (parallel, over j, inside it) in order: each array the body writes is
// accessed at one index, which names one column (a*j + b*i + c with a != 0 and |b| at least a
// row's length, or no i), so no two columns touch the same element.
bool columns_independent(const Stmt& rows, const Stmt& par);

// `for i: for j (parallel): S` (S plain stores, the columns independent) as
// `for j (parallel): for i: S`; nullopt where that does not apply.
std::optional<Stmt> interchange_rows(const Stmt& rows);

}  // namespace parpy
