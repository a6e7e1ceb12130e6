// PARPY_DUMP_CODE=<dir>: every lowering's generated code is written to the directory, one file per
// program, named by the pytest test that lowered it and the function's name, backend and turn within
// the test (tools/golden.py suite compares two such directories).
#pragma once
#include <string>

#include "gpu/gpu_ir.h"
#include "ir/options.h"

namespace parpy {
void dump_code(const std::string& fn_name, const CompileOptions& opts, const std::string& code);

// PARPY_HOST_PROGRAM_LOG=<file>: for every Cuda lowering, one JSON line is appended to the file
// with the program's key (as above), what its host code contains (host_code_constructs) and
// whether HostProgram accepts it ("error": why not). tools/host_program_corpus.py reads it.
void log_host_program(const std::string& fn_name, const CompileOptions& opts, const GpuProgram& p);
}
