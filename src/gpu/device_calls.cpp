#include "gpu/device_calls.h"

#include <algorithm>
#include <functional>
#include <string>

#include "passes/lower_helpers.h"

namespace parpy {
namespace {

// The first call to one of `callees` that `pred` accepts, in the expressions of statement `s`
// (not of its body).
const ExprNode* find_call(const Stmt& s, const Helpers& h, const std::function<bool(const Callee&)>& pred) {
  const ExprNode* found = nullptr;
  for (const Expr* e : {&s->lhs, &s->rhs, &s->cond, &s->lo, &s->hi}) {
    if (!*e) continue;
    visit_expr(*e, [&](const Expr& x) {
      if (found || !x || x->kind != ExprKind::Call) return;
      auto it = h.callees.find(x->name);
      if (it != h.callees.end() && pred(it->second)) found = x.get();
    });
  }
  return found;
}

// A host external (Target.Host, Metal) is a host function: called in parallel code or in a jit
// helper (which runs on the GPU), it is an error.
void check_no_host_externals(const Block& b, const Helpers& h, const std::string& where) {
  visit_block(b, [&](const Stmt& s) {
    if (const ExprNode* c = find_call(s, h, [](const Callee& x) { return x.host; })) {
      const Callee& callee = h.callees.at(c->name);
      fail("The external function " + callee.name + " is declared with Target.Host, a function of the host, "
               "so it cannot be called " + where + ". Call it outside parallel code, or declare a device "
               "function with Target.Device to call it on the GPU.",
           c->span);
    }
  });
}

void check_host_calls(const Block& b, const Helpers& h) {
  for (const auto& s : b) {
    if (s->kind == StmtKind::WithGpu || (s->kind == StmtKind::For && s->par.is_parallel())) {
      check_no_host_externals(s->body, h, "in parallel code");
      continue;
    }
    // Host externals are what host code may call.
    if (const ExprNode* c = find_call(s, h, [](const Callee& x) { return !x.host; })) {
      const Callee& callee = h.callees.at(c->name);
      fail(std::string("The ") + (callee.external ? "external function " : "jit function ") + callee.name +
               " runs on the GPU, so it cannot be called outside parallel code.",
           c->span);
    }
    check_host_calls(s->body, h);
    check_host_calls(s->orelse, h);
  }
}

// A parallel external is an innermost parallel layer at its call site, which only the main
// function's parallel code has; a jit helper runs in one thread.
void check_parallel_externals_in_helper(const Function& f, const Helpers& h) {
  visit_block(f.body, [&](const Stmt& s) {
    const ExprNode* c = find_call(s, h, [](const Callee& x) { return x.external && x.par.is_parallel(); });
    if (!c) return;
    const Callee& callee = h.callees.at(c->name);
    auto self = h.callees.find(f.name);
    std::string helper = self != h.callees.end() ? " " + self->second.name : "";
    fail("The external function " + callee.name + " is declared with parallelize=threads(" +
             std::to_string(callee.par.nthreads) + "), so the threads of a parallel loop call it together; "
             "the jit function" + helper + " runs in one thread and cannot call it. Call it in the "
             "parallel code of the main function instead.",
         c->span);
  });
}

// Statements of a parallel loop outside its inner parallel loops run in every thread of the
// block; extract_kernels narrows their stores to one thread, but a call in any other position
// runs in each thread. A helper writing through a pointer would repeat its writes, so it must not
// run there (an external's effects are not known: it is called as written).
void check_replicated_writes(const Block& b, const Helpers& h, bool in_kernel, bool replicated) {
  for (const auto& s : b) {
    bool root = !in_kernel && (s->kind == StmtKind::WithGpu || (s->kind == StmtKind::For && s->par.is_parallel()));
    bool nested = in_kernel && s->kind == StmtKind::For && s->par.is_parallel();
    if (root || nested) {
      check_replicated_writes(s->body, h, true, contains_parallel(s->body));
      continue;
    }
    bool narrowed = s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Access;
    if (replicated && !narrowed) {
      auto writes = [](const Callee& c) {
        return !c.external && std::find(c.writes.begin(), c.writes.end(), true) != c.writes.end();
      };
      if (const ExprNode* c = find_call(s, h, writes))
        fail("The jit function " + h.callees.at(c->name).name +
                 " writes through a pointer parameter, so on the GPU it must be called in an innermost "
                 "parallel loop or in an assignment to an array element; here every thread of the block "
                 "would run it.",
             c->span);
    }
    check_replicated_writes(s->body, h, in_kernel, replicated);
    check_replicated_writes(s->orelse, h, in_kernel, replicated);
  }
}

}  // namespace

void check_device_calls(const Block& main_body, const Helpers& helpers) {
  check_host_calls(main_body, helpers);
  check_replicated_writes(main_body, helpers, false, false);
  for (const auto& f : helpers.functions) {
    check_parallel_externals_in_helper(f, helpers);
    auto self = helpers.callees.find(f.name);
    check_no_host_externals(f.body, helpers,
                            "in the jit function " + (self != helpers.callees.end() ? self->second.name : f.name) +
                                ", which runs on the GPU");
  }
}

std::map<std::string, ParallelExternal> parallel_externals(const Helpers& helpers) {
  std::map<std::string, ParallelExternal> out;
  for (const auto& [c_name, callee] : helpers.callees)
    if (callee.external && callee.par.is_parallel()) out[c_name] = {callee.name, callee.par};
  return out;
}

void attach_device_functions(GpuProgram& prog, const Block& main_body, const Helpers& helpers) {
  prog.functions = helpers.functions;
  // Each header goes where its externals run: device externals' to the kernels, host externals'
  // to the host code (in the order of first use).
  auto used_by = [&](const std::string& header, bool host) {
    return std::any_of(helpers.callees.begin(), helpers.callees.end(), [&](const auto& kv) {
      return kv.second.external && kv.second.host == host && kv.second.header == header;
    });
  };
  for (const auto& header : helpers.headers) {
    if (used_by(header, false)) prog.headers.push_back(header);
    if (used_by(header, true)) prog.host_headers.push_back(header);
  }
  for (const auto& name : written_arrays(main_body, helpers.callees)) {
    bool param = std::any_of(prog.params.begin(), prog.params.end(),
                             [&](const AbiParam& p) { return p.name == name && p.type.is_array(); });
    if (param && std::find(prog.written.begin(), prog.written.end(), name) == prog.written.end())
      prog.written.push_back(name);
  }
}

}  // namespace parpy
