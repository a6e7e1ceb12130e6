// THE pipeline: from the decorated function's IR and a call's arguments to generated code.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ir/ir.h"
#include "ir/options.h"
#include "ir/parsed.h"
#include "ir/bounds.h"
#include "ir/abi.h"
#include "ir/calls.h"
#include "backend/backend.h"
#include "gpu/gpu_ir.h"

namespace parpy {


// Receives "===== <stage> (time: N us) =====\n<IR>" after each pass when opts.debug_print is set.
using DebugSink = std::function<void(const std::string&)>;

// Generated code of f for these arguments, for the backend opts.backend (not Auto: the caller
// resolves it, backend/backend.h).
Lowered lower(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts,
              const DebugSink& debug = {});

// The passes of lower() up to the GPU layer's program, before printing (opts.backend a GPU
// backend): what the GPU layer's tests look at.
GpuProgram lower_gpu_program(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts,
                             const DebugSink& debug = {});

// The decoration passes over a parsed function: labels attach to the statements they precede
// (passes/attach_labels), statement-level calls to jit functions are inlined
// (passes/inline_calls). nullptr when a callee is not bound yet (Parsed::unbound).
std::shared_ptr<Function> decorate(const Parsed& parsed);

// The jit helpers and externals that f calls in expressions, each helper lowered by the helper
// passes of lower().
Helpers lower_helpers_of(const Function& f, const CompileOptions& opts, const DebugSink& debug = {});

// Lowers a call whose 0-dim CUDA arrays may stay on the GPU (ArgValue::on_device). One stays
// there unless its value decides code: read by host code, or needed as a compile-time value (a
// slice bound, the bounds of a loop split into kernels). The lowering tries them on the GPU first;
// where that fails, `read_all()` gives the arguments with every value read, and the fewest values
// that make the lowering succeed are used. Their paths are added to `reads`: the caller reads those
// values at call time from then on (the arguments it passes have the values of `reads` read).
Lowered lower_call(const Function& f, const std::vector<ArgValue>& args,
                   const std::function<std::vector<ArgValue>()>& read_all, std::vector<std::string>& reads,
                   const CompileOptions& opts, const DebugSink& debug = {});

}  // namespace parpy
