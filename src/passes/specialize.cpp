#include "passes/specialize.h"

#include <algorithm>
#include <functional>
#include <map>

#include "passes/inline_calls.h"

namespace parpy {

namespace {

std::string quoted_list(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", '" : "'") + v[i] + "'";
  return out;
}

}  // namespace

void ensure_parallelism(const Function& f, const CompileOptions& opts) {
  bool found = false;
  std::vector<std::string> labels;  // of the function, in order of appearance
  visit_block(f.body, [&](const Stmt& s) {
    if (s->kind == StmtKind::WithGpu) found = true;
    for (const auto& l : s->labels) {
      if (opts.parallelize.count(l)) found = true;
      if (std::find(labels.begin(), labels.end(), l) == labels.end()) labels.push_back(l);
    }
  });
  if (found) return;
  // Say what to change: the labels the options name that the function lacks (likely a typo),
  // or how to pass parallelism for the labels it has.
  std::vector<std::string> unknown;
  for (const auto& [l, par] : opts.parallelize) unknown.push_back(l);
  std::string example = !labels.empty() ? labels[0] : !unknown.empty() ? unknown[0] : "N";
  std::string how = "using the 'opts' keyword argument, as in " + f.name + "(..., opts=parpy.par({'" +
                    example + "': parpy.threads(256)}))";
  std::string msg = "The function " + f.name + " does not contain any parallelism, which is not allowed. ";
  if (!labels.empty() && !unknown.empty()) {
    msg += "The parallelization options name label" + std::string(unknown.size() > 1 ? "s " : " ") +
           quoted_list(unknown) + ", which do" + (unknown.size() > 1 ? "" : "es") + " not occur in " +
           f.name + "; its label" + (labels.size() > 1 ? "s are " : " is ") + quoted_list(labels) +
           " (a typo?). Specify the parallelism of the function's labels " + how + ".";
  } else if (!labels.empty()) {
    msg += "Its label" + std::string(labels.size() > 1 ? "s " : " ") + quoted_list(labels) +
           " need" + (labels.size() > 1 ? "" : "s") + " a parallelization: specify it " + how + ".";
  } else {
    msg += "Try adding a label ('parpy.label') in front of a parallelizable statement, and specify its "
           "parallelism " + how + ".";
  }
  msg += " Alternatively, if you want to run sequential code on the GPU, wrap the code in a GPU context as "
         "'with parpy.gpu: ...'.";
  fail(msg, f.span);
}

namespace {

Expr scalar_literal(const ArgValue& a, const Span& sp, const CompileOptions& opts) {
  switch (a.kind) {
    case ArgValue::Kind::Int: return int_lit(a.ival, sp, true, opts.int_size());
    case ArgValue::Kind::Float: return float_lit(a.fval, sp, true, opts.float_size());
    case ArgValue::Kind::Array:
      if (a.elem == ElemSize::Bool) return bool_lit(a.ival != 0, sp);
      if (is_float(a.elem)) return float_lit(a.fval, sp, false, a.elem);
      return int_lit(a.ival, sp, false, a.elem);
    case ArgValue::Kind::Dict: break;
  }
  internal_fail("dict is not a scalar", sp);
}

bool is_scalar_arg(const ArgValue& a) {
  return a.kind == ArgValue::Kind::Int || a.kind == ArgValue::Kind::Float ||
         (a.kind == ArgValue::Kind::Array && a.shape.empty());
}

Type scalar_arg_type(const ArgValue& a, const CompileOptions& opts) {
  if (a.kind == ArgValue::Kind::Int) return Type::scalar(opts.int_size());
  if (a.kind == ArgValue::Kind::Float) return Type::scalar(opts.float_size());
  return Type::scalar(a.elem);
}

// The type of the entry parameter that passes argument `a`.
Type param_type(const ArgValue& a, const CompileOptions& opts) {
  if (a.on_device) return Type::tensor(a.elem, {1});
  return is_scalar_arg(a) ? scalar_arg_type(a, opts) : Type::tensor(a.elem, a.shape);
}

// How a scalar parameter (or scalar dict field) `name` is read: its value as a literal, or for a
// 0-dim array on the GPU a load of its element.
Expr scalar_read(const std::string& name, const ArgValue& a, const Span& sp, const CompileOptions& opts) {
  if (a.on_device) return subscript(var(name, sp), {int_lit(0, sp)}, sp);
  if (a.kind == ArgValue::Kind::Float) {
    // Read when the code runs, typed weakly like the literal it replaces: `dt * x[i]` with f32 x
    // stays f32.
    auto v = copy(var(name, sp, Type::scalar(opts.float_size())));
    v->weak = true;
    return v;
  }
  return scalar_literal(a, sp, opts);
}

Type dict_type(const ArgValue& a, const CompileOptions& opts) {
  Type t;
  t.kind = Type::Kind::Dict;
  for (const auto& [k, v] : a.fields)
    t.fields.emplace_back(k, is_scalar_arg(v) ? scalar_arg_type(v, opts) : Type::tensor(v.elem, v.shape));
  return t;
}

class Specializer {
 public:
  Specializer(const Function& f, const std::vector<ArgValue>& args, const CompileOptions& opts)
      : f_(f), args_(args), opts_(opts) {}

  Specialized run() {
    Specialized out;
    out.fn = f_;
    for (size_t i = 0; i < args_.size(); ++i) {
      const auto& p = f_.params[i];
      const auto& a = args_[i];
      if (a.kind == ArgValue::Kind::Dict) {
        dicts_[p.name] = &a;
        for (const auto& [k, v] : a.fields) {
          out.params.push_back({p.name + "_" + k, param_type(v, opts_), v.on_device, v.shares_memory || a.shares_memory});
          if (v.kind == ArgValue::Kind::Float) out.runtime_scalars[p.name + "_" + k] = Type::scalar(opts_.float_size());
        }
      } else {
        if (is_scalar_arg(a)) scalars_[p.name] = &a;
        if (a.kind == ArgValue::Kind::Float) out.runtime_scalars[p.name] = Type::scalar(opts_.float_size());
        out.params.push_back({p.name, param_type(a, opts_), a.on_device, a.shares_memory});
      }
    }
    check_no_scalar_assignment(f_.body);
    check_dicts_only_indexed(f_.body);
    out.fn.body = map_block_exprs(f_.body, [&](const Expr& e) { return rewrite(e); });
    return out;
  }

 private:
  const Function& f_;
  const std::vector<ArgValue>& args_;
  const CompileOptions& opts_;
  std::map<std::string, const ArgValue*> scalars_, dicts_;

  void check_no_scalar_assignment(const Block& b) {
    visit_block(b, [&](const Stmt& s) {
      if (s->kind != StmtKind::Assign) return;
      const Expr& l = s->lhs;
      if ((l->kind == ExprKind::Var && scalars_.count(l->name)) ||
          (l->kind == ExprKind::Subscript && l->args[0]->kind == ExprKind::Var &&
           scalars_.count(l->args[0]->name)))
        fail("Assigning to a scalar parameter is not allowed", s->span);
      if (l->kind == ExprKind::Subscript && l->args[0]->kind == ExprKind::Var &&
          dicts_.count(l->args[0]->name) && l->args.size() == 2 &&
          l->args[1]->kind == ExprKind::String) {
        const ArgValue* d = dicts_[l->args[0]->name];
        for (const auto& [k, v] : d->fields)
          if (k == l->args[1]->name && is_scalar_arg(v))
            fail("Assigning to a scalar parameter is not allowed", s->span);
      }
    });
  }

  // A dict parameter has no value of its own: only d["key"] is meaningful.
  void check_dicts_only_indexed(const Block& b) {
    std::function<void(const Expr&)> check = [&](const Expr& e) {
      if (!e) return;
      if (e->kind == ExprKind::Var && dicts_.count(e->name))
        fail("Encountered unknown dictionary type " + dict_type(*dicts_[e->name], opts_).str() +
                 " (a dictionary parameter may only be used as d[\"key\"])",
             e->span);
      for (size_t i = 0; i < e->args.size(); ++i) {
        const Expr& a = e->args[i];
        bool indexed = i == 0 && e->kind == ExprKind::Subscript && a && a->kind == ExprKind::Var;
        if (!indexed) check(a);
      }
    };
    visit_block(b, [&](const Stmt& s) {
      for (const Expr* e : {&s->lhs, &s->rhs, &s->cond, &s->lo, &s->hi}) check(*e);
    });
  }

  Expr rewrite(const Expr& e) {
    return map_expr(e, [&](const Expr& x) -> Expr {
      if (x->kind == ExprKind::Var) {
        auto it = scalars_.find(x->name);
        if (it != scalars_.end()) return scalar_read(x->name, *it->second, x->span, opts_);
        return x;
      }
      if (x->kind == ExprKind::Subscript && x->args[0]->kind == ExprKind::Var) {
        auto it = dicts_.find(x->args[0]->name);
        if (it == dicts_.end()) return x;
        const Expr& key = x->args[1];
        if (key->kind != ExprKind::String)
          type_fail("Cannot index using a non-string on dict expression", x->span);
        const ArgValue* field = nullptr;
        for (const auto& [k, v] : it->second->fields)
          if (k == key->name) field = &v;
        if (!field)
          type_fail("Field " + key->name + " not present in type " + dict_type(*it->second, opts_).str(),
                    x->span);
        std::vector<Expr> rest(x->args.begin() + 2, x->args.end());
        if (is_scalar_arg(*field)) {
          if (!rest.empty())
            type_fail("Indexing with " + std::to_string(rest.size()) +
                          " dimensions on tensor of shape []",
                      x->span);
          return scalar_read(x->args[0]->name + "_" + key->name, *field, x->span, opts_);
        }
        if (rest.empty()) return var(x->args[0]->name + "_" + key->name, x->span);
        // The field's own span, d["key"] up to its closing bracket, names it in messages.
        Span field_span = merge(x->args[0]->span, key->span);
        if (key->span.known()) field_span.end_col = key->span.end_col + 1;
        Expr v = var(x->args[0]->name + "_" + key->name, field_span);
        return subscript(v, std::move(rest), x->span);
      }
      return x;
    });
  }
};

}  // namespace

Specialized specialize(const Function& f, const std::vector<ArgValue>& args,
                       const CompileOptions& opts) {
  if (args.size() != f.params.size())
    type_fail("Function " + f.name + " expected " + std::to_string(f.params.size()) +
              " arguments but received " + std::to_string(args.size()));
  return Specializer(f, args, opts).run();
}

std::vector<AbiParam> abi_params(const std::vector<std::string>& names, const std::vector<ArgValue>& args,
                                 const CompileOptions& opts) {
  std::vector<AbiParam> out;
  for (size_t i = 0; i < args.size() && i < names.size(); ++i) {
    const ArgValue& a = args[i];
    if (a.kind == ArgValue::Kind::Dict) {
      for (const auto& [k, v] : a.fields) out.push_back({names[i] + "_" + k, param_type(v, opts), v.on_device});
    } else {
      out.push_back({names[i], param_type(a, opts), a.on_device});
    }
  }
  return out;
}

}  // namespace parpy
