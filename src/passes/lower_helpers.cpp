#include "passes/lower_helpers.h"

#include <algorithm>
#include <map>
#include <set>

#include "ir/c_names.h"
#include "passes/array_locals.h"

namespace parpy {
namespace {

class HelperLowering {
 public:
  HelperLowering(const CompileOptions& opts, const HelperPasses& passes) : opts_(opts), passes_(passes) {}

  Helpers run(const Function& main) {
    out_.main_calls = targets(main);
    return std::move(out_);
  }

 private:
  const CompileOptions& opts_;
  const HelperPasses& passes_;
  Helpers out_;
  std::map<const Function*, CallTarget> done_;
  std::set<std::string> used_;

  CallTargets targets(const Function& f) {
    CallTargets t;
    for (const auto& [name, h] : f.helpers) t[name] = lower(*h);
    for (const auto& [name, decls] : f.externals)
      for (const auto& d : decls) {
        if (d->backend != opts_.backend) continue;
        CallTarget ct{d->ext_name, {}, d->ret};
        Callee callee{name, true, !d->device, d->par, d->header, {}};
        for (const auto& p : d->params) {
          ct.params.push_back(*p.annotation);
          // Nothing is known about an external's body: it may write any pointer it gets.
          callee.writes.push_back(p.annotation->is_pointer());
        }
        t[name] = std::move(ct);
        out_.callees[d->ext_name] = std::move(callee);
        if (!d->header.empty() &&
            std::find(out_.headers.begin(), out_.headers.end(), d->header) == out_.headers.end())
          out_.headers.push_back(d->header);

      }
    return t;
  }

  // Parallel loops only exist in the main function; a helper runs inside one thread's code.
  void reject_parallel(const Block& b) {
    visit_block(b, [&](const Stmt& s) {
      bool par = s->kind == StmtKind::WithGpu;
      for (const auto& l : s->labels) par |= opts_.parallelize.count(l) > 0;
      if (par) fail("Found parallel code outside main function definition, which is not allowed.", s->span);
    });
  }

  std::string unique_name(const std::string& name) {
    // A C name no user identifier has (those are prefixed "v_", see c_ident).
    std::string base = "parpy_helper_" + c_chars(name), n = base;
    for (int i = 1; !used_.insert(n).second; ++i) n = base + "_" + std::to_string(i);
    return n;
  }

  CallTarget lower(const Function& h) {
    auto it = done_.find(&h);
    if (it != done_.end()) return it->second;
    reject_parallel(h.body);
    CallTargets calls = targets(h);
    Function fn = passes_(h, calls);
    fn.name = unique_name(h.name);
    CallTarget ct{fn.name, {}, fn.ret};
    std::set<std::string> written = written_arrays(fn.body, out_.callees);
    Callee callee{h.name, false, false, {}, {}, {}};
    for (const auto& p : fn.params) {
      ct.params.push_back(*p.annotation);
      callee.writes.push_back(p.annotation->is_pointer() && written.count(p.name) > 0);
    }
    out_.callees[fn.name] = std::move(callee);
    out_.functions.push_back(std::move(fn));
    done_[&h] = ct;
    return ct;
  }
};

}  // namespace

std::set<std::string> written_arrays(const Block& b, const std::map<std::string, Callee>& callees) {
  std::set<std::string> out;
  auto through_calls = [&](const Expr& e) {
    visit_expr(e, [&](const Expr& x) {
      if (!x || x->kind != ExprKind::Call) return;
      auto it = callees.find(x->name);
      if (it == callees.end()) return;
      for (size_t i = 0; i < x->args.size() && i < it->second.writes.size(); ++i) {
        const Expr& a = x->args[i];
        // A pointer argument is an array, a row of one (x[i]) or a pointer parameter.
        if (it->second.writes[i] && (a->kind == ExprKind::Var || a->kind == ExprKind::Access)) out.insert(a->name);
      }
    });
  };
  visit_block(b, [&](const Stmt& s) {
    if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Access) out.insert(s->lhs->name);
    for (const Expr* e : {&s->lhs, &s->rhs, &s->cond, &s->lo, &s->hi})
      if (*e) through_calls(*e);
  });
  // A write through a local naming arrays writes any of them.
  return with_aliased(out, array_aliases(b));
}

Helpers lower_helpers(const Function& main, const CompileOptions& opts, const HelperPasses& passes) {
  return HelperLowering(opts, passes).run(main);
}

}  // namespace parpy
