#include "passes/lower_helpers.h"

#include <algorithm>
#include <map>
#include <set>

#include "codegen/c_names.h"
#include "passes/constant_fold.h"
#include "passes/flatten_indices.h"

namespace parpy {
namespace {

class HelperLowering {
 public:
  HelperLowering(const Function& main, const CompileOptions& opts) : opts_(opts) {
    used_.insert(c_ident(main.name));
  }

  Helpers run(const Function& main) {
    out_.main_calls = targets(main);
    return std::move(out_);
  }

 private:
  const CompileOptions& opts_;
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
        for (const auto& p : d->params) ct.params.push_back(*p.annotation);
        t[name] = std::move(ct);
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
    std::string base = "helper_" + c_ident(name), n = base;
    for (int i = 1; !used_.insert(n).second; ++i) n = base + "_" + std::to_string(i);
    return n;
  }

  CallTarget lower(const Function& h) {
    auto it = done_.find(&h);
    if (it != done_.end()) return it->second;
    reject_parallel(h.body);
    CallTargets calls = targets(h);
    Function fn = h;
    fn.body = constant_fold(fn.body);
    Type ret;
    fn.body = typecheck_helper(fn, opts_, calls, ret);
    fn.body = constant_fold(fn.body);
    fn.body = flatten_indices(fn.body);
    fn.name = unique_name(h.name);
    fn.ret = ret;
    CallTarget ct{fn.name, {}, ret};
    for (const auto& p : fn.params) ct.params.push_back(*p.annotation);
    out_.functions.push_back(std::move(fn));
    done_[&h] = ct;
    return ct;
  }
};

}  // namespace

Helpers lower_helpers(const Function& main, const CompileOptions& opts) {
  return HelperLowering(main, opts).run(main);
}

}  // namespace parpy
