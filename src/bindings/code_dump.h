// PARPY_DUMP_CODE=<dir>: every lowering's generated code is written to the directory, one file per
// program, named by the pytest test that lowered it and the function's name, backend and turn within
// the test (tools/golden.py suite compares two such directories).
#pragma once
#include <string>

#include "ir/options.h"

namespace parpy {
void dump_code(const std::string& fn_name, const CompileOptions& opts, const std::string& code);
}
