#pragma once
#include "ir/ir.h"
#include "ir/options.h"

namespace parpy {
// Gives every for loop the LoopPar its labels select in opts.parallelize, merging several labels
// of one statement (docs/language.md, Labels);
// `_reduce` selects LoopPar().reduce().
Block resolve_par(const Block& b, const CompileOptions& opts);
}  // namespace parpy
