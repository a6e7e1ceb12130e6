// Locals that name arrays: `alpha = alpha1`, reassigned in branches (`if t & 1: alpha = alpha2`)
// and then indexed, sliced, reduced or passed on like the arrays themselves. Such a local is a
// pointer variable in the generated code; its type is that of the arrays it names.
#pragma once
#include <map>
#include <set>
#include <string>

#include "ir/ir.h"

namespace parpy {

// Before type checking: finds the locals assigned arrays (`arrays` gives the type of every array
// or pointer parameter), checks that every array a local may name has the same type and that it
// is assigned nothing else, and writes that type on every use of such a local, so that slices of
// it are lowered against its shape.
Block type_array_locals(const Block &b, const std::map<std::string, Type> &arrays);

// After resolve_par: a local that names an array and is defined outside a parallel loop cannot
// be reassigned inside it (the threads would overwrite one variable).
void check_array_local_writes(const Block &b, const std::map<std::string, Type> &arrays);

// Typed code: every local (or reassigned parameter) that names arrays, with all the names it may
// stand for, followed through locals assigned from other locals.
using ArrayAliases = std::map<std::string, std::set<std::string>>;
ArrayAliases array_aliases(const Block &b);

// `names` with every alias among them replaced by the names it may stand for (the alias kept).
std::set<std::string> with_aliased(const std::set<std::string> &names, const ArrayAliases &aliases);

// The aliases and every name they may stand for: accesses through different names of these may
// touch the same memory.
std::set<std::string> aliased_names(const ArrayAliases &aliases);

}  // namespace parpy
