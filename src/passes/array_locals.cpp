#include "passes/array_locals.h"

#include <functional>
#include <optional>
#include <vector>

namespace parpy {
namespace {

// Scopes as type checking has them: a for body (and its variable) is a scope of its own, if and
// while bodies are not. A name maps to the type of the arrays it names, or to nothing when it
// holds another kind of value.
class ArrayLocalTyping {
public:
  explicit ArrayLocalTyping(const std::map<std::string, Type> &arrays) : arrays_(arrays) {
    scopes_.emplace_back();
    for (const auto &[n, t] : arrays)
      scopes_.back()[n] = t;
  }

  Block block(const Block &b) {
    Block out;
    for (const auto &s : b)
      out.push_back(stmt(s));
    return out;
  }

private:
  const std::map<std::string, Type> &arrays_;
  std::vector<std::map<std::string, std::optional<Type>>> scopes_;

  const std::optional<Type> *lookup(const std::string &n) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(n);
      if (f != it->end())
        return &f->second;
    }
    return nullptr;
  }

  // The type of the arrays a local names, if `name` is such a local.
  std::optional<Type> local_array(const std::string &name) const {
    const std::optional<Type> *t = lookup(name);
    if (!t || !*t || arrays_.count(name))
      return std::nullopt;
    return *t;
  }

  Expr annotate(const Expr &e) {
    if (!e)
      return e;
    return map_expr(e, [&](const Expr &x) -> Expr {
      if (x->kind != ExprKind::Var)
        return x;
      auto t = local_array(x->name);
      return t ? with_type(x, *t) : x;
    });
  }

  // The type of the arrays `rhs` names when it is an array (a parameter or a local naming one).
  std::optional<Type> array_of(const Expr &rhs) const {
    if (rhs->kind != ExprKind::Var)
      return std::nullopt;
    const std::optional<Type> *t = lookup(rhs->name);
    return t ? *t : std::nullopt;
  }

  Stmt stmt(const Stmt &s) {
    auto n = copy(s);
    for (Expr *e : {&n->lhs, &n->rhs, &n->cond, &n->lo, &n->hi})
      *e = annotate(*e);
    if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var)
      assign(s, *n);
    if (s->kind == StmtKind::For) {
      scopes_.emplace_back();
      scopes_.back()[s->var] = std::nullopt;
      n->body = block(s->body);
      scopes_.pop_back();
      return n;
    }
    n->body = block(s->body);
    n->orelse = block(s->orelse);
    return n;
  }

  void assign(const Stmt &s, StmtNode &n) {
    const std::string &name = s->lhs->name;
    std::optional<Type> rhs = array_of(s->rhs);
    const std::optional<Type> *known = lookup(name);
    if (!known) {
      scopes_.back()[name] = rhs;
    } else if (*known && !rhs) {
      type_fail(std::string(arrays_.count(name) ? "The array parameter " : "The local ") + name +
                    " names an array of type " + (*known)->str() +
                    ", so it can only be assigned an array of that type (a parameter, a dict entry or "
                    "another local naming one). Use a different local for other values.",
                s->span);
    } else if (*known && *rhs != **known) {
      type_fail("Cannot coerce incompatible tensor types (" + (*known)->str() + " != " + rhs->str() +
                    "): all arrays that " + name + " may name must have the same element type and shape.",
                s->span);
    } else if (!*known && rhs) {
      type_fail("The local " + name +
                    " was first assigned a value that is not an array, so it cannot name the array " +
                    s->rhs->name + ". Use a different local for the array.",
                s->span);
    }
    if (rhs)
      n.lhs = with_type(s->lhs, *rhs);
  }
};

bool is_array_name(const Expr &e) {
  return e->kind == ExprKind::Var && (e->ty.is_array() || e->ty.is_pointer());
}

void check_writes(const Block &b, std::set<std::string> known, const std::set<std::string> &outside,
                  const std::map<std::string, Type> &params) {
  for (const auto &s : b) {
    if (s->kind == StmtKind::Assign && is_array_name(s->lhs)) {
      const std::string &name = s->lhs->name;
      if (outside.count(name))
        fail(std::string(params.count(name) ? "The array parameter " : "The local ") + name +
                 " names an array and is defined outside this parallel loop, so it cannot be "
                 "assigned inside it (every thread would overwrite it). Define it inside the loop instead.",
             s->span);
      known.insert(name);
    }
    if (s->kind == StmtKind::For) {
      check_writes(s->body, known, s->par.is_parallel() ? known : outside, params);
    } else {
      // Definitions in if and while bodies stay known after them.
      check_writes(s->body, known, outside, params);
      check_writes(s->orelse, known, outside, params);
      visit_block(s->body, [&](const Stmt &x) {
        if (x->kind == StmtKind::Assign && is_array_name(x->lhs))
          known.insert(x->lhs->name);
      });
      visit_block(s->orelse, [&](const Stmt &x) {
        if (x->kind == StmtKind::Assign && is_array_name(x->lhs))
          known.insert(x->lhs->name);
      });
    }
  }
}

}  // namespace

Block type_array_locals(const Block &b, const std::map<std::string, Type> &arrays) {
  return ArrayLocalTyping(arrays).block(b);
}

void check_array_local_writes(const Block &b, const std::map<std::string, Type> &arrays) {
  std::set<std::string> known;
  for (const auto &[n, t] : arrays)
    known.insert(n);
  check_writes(b, known, {}, arrays);
}

ArrayAliases array_aliases(const Block &b) {
  std::map<std::string, std::set<std::string>> direct;
  visit_block(b, [&](const Stmt &s) {
    if (s->kind == StmtKind::Assign && is_array_name(s->lhs) && s->rhs->kind == ExprKind::Var)
      direct[s->lhs->name].insert(s->rhs->name);
  });
  ArrayAliases out;
  for (const auto &[alias, names] : direct) {
    std::set<std::string> &all = out[alias];
    std::function<void(const std::string &)> add = [&](const std::string &n) {
      if (!all.insert(n).second)
        return;
      auto it = direct.find(n);
      if (it != direct.end())
        for (const auto &m : it->second)
          add(m);
    };
    for (const auto &n : names)
      add(n);
  }
  return out;
}

std::set<std::string> with_aliased(const std::set<std::string> &names, const ArrayAliases &aliases) {
  std::set<std::string> out = names;
  for (const auto &n : names) {
    auto it = aliases.find(n);
    if (it != aliases.end())
      out.insert(it->second.begin(), it->second.end());
  }
  return out;
}

std::set<std::string> aliased_names(const ArrayAliases &aliases) {
  std::set<std::string> out;
  for (const auto &[alias, names] : aliases) {
    out.insert(alias);
    out.insert(names.begin(), names.end());
  }
  return out;
}

}  // namespace parpy
