#include "ir/intrinsics.h"
#include "passes/inline_calls.h"

#include <map>
#include <set>

namespace parpy {

Expr substitute(const Expr& e, const std::map<std::string, Expr>& sub) {
  return map_expr(e, [&](const Expr& x) -> Expr {
    if (x->kind == ExprKind::Var) {
      auto it = sub.find(x->name);
      if (it == sub.end()) return x;
      // A renamed local keeps the span of its use.
      if (it->second->kind == ExprKind::Var && !it->second->span.known())
        return var(it->second->name, x->span);
      return it->second;
    }
    if (x->kind == ExprKind::Subscript && x->args[0]->kind == ExprKind::Subscript) {
      // Indices of a substituted x[i] follow i; those of a substituted slice a[lo:hi] index into
      // its slices in order (docs/language.md, Index bounds), `[:]` keeping a slice as it is.
      const Expr& inner = x->args[0];
      std::vector<Expr> idx;
      size_t next = 1;
      for (size_t i = 1; i < inner->args.size(); ++i) {
        const Expr& a = inner->args[i];
        if (a->kind != ExprKind::Slice || next >= x->args.size()) {
          idx.push_back(a);
          continue;
        }
        const Expr& o = x->args[next++];
        if (o->kind == ExprKind::Slice && !o->args[0] && !o->args[1])
          idx.push_back(a);
        else if (o->kind == ExprKind::Slice)
          fail("A slice of the slice " + (source_text(inner->span).empty() ? print_expr(inner) : source_text(inner->span)) +
                   " passed to this function is not supported (only [:] is); pass the slice you need instead.",
               x->span);
        else
          idx.push_back(intrinsic(Intrinsic::SliceIndex, {o, a->args[0], a->args[1]}, inner->span));
      }
      idx.insert(idx.end(), x->args.begin() + next, x->args.end());
      return subscript(inner->args[0], std::move(idx), x->span);
    }
    return x;
  });
}

static Block substitute_block(const Block& b, const std::map<std::string, Expr>& sub,
                              const std::map<std::string, std::string>& rename) {
  Block out;
  for (const auto& s : b) {
    auto n = copy(s);
    auto f = [&](const Expr& e) { return e ? substitute(e, sub) : e; };
    n->lhs = f(n->lhs);
    n->rhs = f(n->rhs);
    n->cond = f(n->cond);
    n->lo = f(n->lo);
    n->hi = f(n->hi);
    if (n->kind == StmtKind::For) {
      auto it = rename.find(n->var);
      if (it != rename.end()) n->var = it->second;
    }
    n->body = substitute_block(s->body, sub, rename);
    n->orelse = substitute_block(s->orelse, sub, rename);
    out.push_back(n);
  }
  return out;
}

static void assigned_names(const Block& b, std::set<std::string>& out) {
  visit_block(b, [&](const Stmt& s) {
    if (s->kind == StmtKind::For) out.insert(s->var);
    if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var) out.insert(s->lhs->name);
  });
}

namespace {
using FindJit = std::function<std::shared_ptr<const Function>(const std::string&)>;
using IsExternal = std::function<bool(const std::string&)>;

// `counter` numbers the calls inlined into one function, so that the same function always gets
// the same names.
Block inline_block(const Block& b, const FindJit& find_jit, const IsExternal& is_external, int& counter) {
  Block out;
  for (const auto& s : b) {
    if (s->kind != StmtKind::Call) {
      auto n = with_blocks(s, [&](const Block& x) { return inline_block(x, find_jit, is_external, counter); });
      out.push_back(n);
      continue;
    }
    const Expr& c = s->rhs;
    auto callee = find_jit(c->name);
    if (!callee) {
      if (is_external(c->name)) fail("Cannot inline call to external function " + c->name, s->span);
      fail("Call to unknown function " + c->name, s->span);
    }
    if (callee->params.size() != c->args.size())
      fail("Function " + c->name + " expected " + std::to_string(callee->params.size()) +
               " arguments, but received " + std::to_string(c->args.size()) + ".",
           s->span);
    std::map<std::string, Expr> sub;
    for (size_t i = 0; i < c->args.size(); ++i) sub[callee->params[i].name] = c->args[i];
    std::set<std::string> locals;
    assigned_names(callee->body, locals);
    std::map<std::string, std::string> rename;
    int id = counter++;
    for (const auto& l : locals) {
      if (sub.count(l)) continue;
      // '$' keeps the renamed locals apart from the caller's names (no Python identifier has
      // it); the call's number is the last '_'-separated part, so names of different calls
      // differ. The callee's def name, not the call's key (which may read `mod.step`).
      std::string fresh = "$" + l + "_" + callee->name + "_" + std::to_string(id);
      rename[l] = fresh;
      sub[l] = var(fresh, {});
    }
    // Renamed locals keep their original spans through substitute(): give them the use's span.
    Block body = substitute_block(callee->body, sub, rename);
    if (!s->labels.empty() && !body.empty()) {
      auto first = copy(body[0]);
      first->labels.insert(first->labels.begin(), s->labels.begin(), s->labels.end());
      body[0] = first;
    }
    for (auto& st : body) out.push_back(st);
  }
  return out;
}

}  // namespace

Block inline_calls(const Block& b, const FindJit& find_jit, const IsExternal& is_external) {
  int counter = 0;
  return inline_block(b, find_jit, is_external, counter);
}

}  // namespace parpy
