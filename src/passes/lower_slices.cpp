#include "passes/lower_slices.h"

#include <map>
#include <optional>
#include <sstream>

#include "ir/affine.h"
#include "ir/reductions.h"
#include "passes/constant_fold.h"

namespace parpy {
namespace {

const char* kReduceMsg =
    "\nReduce operations must be used on a slice expression, containing the right-hand side of "
    "an assigment.";

bool has_slice(const Expr& e) {
  bool found = false;
  visit_expr(e, [&](const Expr& x) {
    if (x->kind == ExprKind::Slice) found = true;
  });
  return found;
}

// A subscript containing slices, resolved against its array's shape.
struct SliceSub {
  Expr node;
  std::vector<int64_t> lo, ext;  // per slice, in order
  // Per slice: its start when computed (x[b*B:(b+1)*B]), else nullptr and the start is `lo`.
  std::vector<Expr> lo_expr;
};

// hi - lo when it is the same for every value of what they are computed from: both in affine form
// (ir/affine.h) whose atoms are the subexpressions that are not sums, differences, negations or
// products by a constant (a variable, an array element, ...), named by their printed form.
std::optional<int64_t> constant_difference(const Expr& hi, const Expr& lo) {
  auto atom = [](const Expr& e) -> std::optional<Affine> { return affine_atom(print_expr(e)); };
  auto h = affine(hi, atom), l = affine(lo, atom);
  if (!h || !l) return std::nullopt;
  auto d = combined(*h, *l, -1);
  if (!d || !d->is_constant()) return std::nullopt;
  return d->constant;
}

class SliceLowering {
 public:
  explicit SliceLowering(const std::map<std::string, std::vector<int64_t>>& shapes) : shapes_(shapes) {}

  Block block(const Block& b) {
    Block out;
    for (const auto& s : b) stmt(s, out);
    return out;
  }

 private:
  const std::map<std::string, std::vector<int64_t>>& shapes_;
  std::map<const ExprNode*, SliceSub> subs_;

  // Loop variables of the slice loops: '$' keeps them apart from the user's names, and the count
  // starts afresh for every function, so the same program always gets the same code.
  int next_dim_ = 0;
  std::string fresh() { return "$slice_dim" + std::to_string(next_dim_++); }

  void reject_slices_and_reductions(const Expr& e) {
    visit_expr(e, [&](const Expr& x) {
      if (x->kind == ExprKind::Slice)
        fail("Slice expressions are only allowed in assignment statements.", x->span);
      if (x->kind == ExprKind::Reduce)
        fail(std::string("Found reduction operation ") + reduce_name(x->reduce) +
                 " in unsupported position." + kReduceMsg,
             x->span);
    });
  }

  void stmt(const Stmt& s, Block& out) {
    if (s->kind != StmtKind::Assign) {
      for (const Expr* e : {&s->lhs, &s->rhs, &s->cond, &s->lo, &s->hi})
        if (*e) reject_slices_and_reductions(*e);
      auto n = with_blocks(s, [&](const Block& x) { return block(x); });
      out.push_back(n);
      return;
    }
    bool is_reduce = s->rhs->kind == ExprKind::Reduce;
    Expr lhs = constant_fold(s->lhs);
    Expr rhs = constant_fold(is_reduce ? s->rhs->args[0] : s->rhs);
    reject_nested_reductions(lhs);
    reject_nested_reductions(rhs);
    if (!has_slice(lhs) && !has_slice(rhs)) {
      if (is_reduce)
        fail(std::string("Found reduction operation ") + reduce_name(s->rhs->reduce) +
                 " in unsupported position." + kReduceMsg,
             s->rhs->span);
      out.push_back(s);
      return;
    }
    std::vector<SliceSub*> lsubs = resolve(lhs), rsubs = resolve(rhs);
    size_t nl = max_slices(lsubs), nr = max_slices(rsubs);
    check_shapes(s, lsubs, rsubs, nr);
    if (is_reduce)
      reduction(s, lhs, rhs, lsubs, rsubs, nl, nr, out);
    else
      mapping(s, lhs, rhs, lsubs, rsubs, nl, nr, out);
  }

  void reject_nested_reductions(const Expr& e) {
    visit_expr(e, [&](const Expr& x) {
      if (x->kind == ExprKind::Reduce)
        fail(std::string("Found reduction operation ") + reduce_name(x->reduce) +
                 " in unsupported position." + kReduceMsg,
             x->span);
    });
  }

  static size_t max_slices(const std::vector<SliceSub*>& subs) {
    size_t n = 0;
    for (auto* s : subs) n = std::max(n, s->ext.size());
    return n;
  }

  int64_t bound(const Expr& e, bool lower, int64_t dim) {
    if (!e) return lower ? 0 : dim;
    if (e->kind != ExprKind::Int)
      fail(lower ? "Lower-bound of slice must be fixed." : "Upper-bound of slice must be fixed.", e->span);
    int64_t v = e->ival;
    return v < 0 ? v + dim : v;
  }

  std::vector<SliceSub*> resolve(const Expr& e) {
    std::vector<SliceSub*> out;
    visit_expr(e, [&](const Expr& x) {
      if (x->kind != ExprKind::Subscript) return;
      bool any = false;
      for (size_t i = 1; i < x->args.size(); ++i) any |= x->args[i]->kind == ExprKind::Slice;
      if (!any) return;
      const Expr& t = x->args[0];
      if (t->kind != ExprKind::Var) fail("Target of slice must be a variable.", t->span);
      // A local naming arrays carries their type (type_array_locals); a parameter is looked up.
      auto it = shapes_.find(t->name);
      if (!t->ty.is_array() && it == shapes_.end())
        fail("Target of slice subscript operation has invalid type.", t->span);
      const auto& shape = t->ty.is_array() ? t->ty.shape : it->second;
      if (x->args.size() - 1 > shape.size())
        fail("Received too many indices (" + std::to_string(x->args.size() - 1) + " indices for a tensor of " +
                 std::to_string(shape.size()) + " dimensions).",
             x->span);
      if (x->args.size() - 1 != shape.size())
        fail("Subscript operations containing slices must refer to all dimensions of the target. "
             "The target has shape " + shape_str(shape) + " but " +
                 std::to_string(x->args.size() - 1) + " indices were given.",
             x->span);
      SliceSub sub{x, {}, {}, {}};
      for (size_t i = 1; i < x->args.size(); ++i) {
        const Expr& ix = x->args[i];
        if (ix->kind != ExprKind::Slice) continue;
        int64_t dim = shape[i - 1];
        const Expr &lo_e = ix->args[0], &hi_e = ix->args[1];
        bool computed = (lo_e && lo_e->kind != ExprKind::Int) || (hi_e && hi_e->kind != ExprKind::Int);
        if (computed) {
          // x[b*B:(b+1)*B]: the start is computed, the length a constant (the indices are checked
          // against the shape later, by check_bounds).
          std::optional<int64_t> len =
              constant_difference(hi_e ? hi_e : int_lit(dim, ix->span), lo_e ? lo_e : int_lit(0, ix->span));
          if (!len) {  // the length depends on values: the message of the bound that is not fixed
            bound(lo_e, true, dim);
            bound(hi_e, false, dim);
            internal_fail("a slice bound that is not fixed", ix->span);
          }
          if (*len <= 0)
            fail("This slice is empty or reversed: its upper bound is " + std::to_string(*len) +
                     " from its lower bound. A slice must have at least one element.",
                 ix->span);
          sub.lo.push_back(0);
          sub.lo_expr.push_back(lo_e ? lo_e : int_lit(0, ix->span));
          sub.ext.push_back(*len);
          continue;
        }
        int64_t lo = bound(ix->args[0], true, dim), hi = bound(ix->args[1], false, dim);
        if (lo < 0 || hi > dim || lo > dim)
          fail("Slice dimensions " + std::to_string(lo) + " and " + std::to_string(hi) +
                   " out of range for shape " + std::to_string(dim),
               ix->span);
        if (lo >= hi)
          fail("Lower-bound " + std::to_string(lo) + " of slice must be less than its upper-bound " +
                   std::to_string(hi) + ".",
               ix->span);
        sub.lo.push_back(lo);
        sub.lo_expr.push_back(nullptr);
        sub.ext.push_back(hi - lo);
      }
      subs_[x.get()] = std::move(sub);
      out.push_back(&subs_[x.get()]);
    });
    return out;
  }

  // Extents of n right-aligned dimensions, combining broadcastable extents.
  std::vector<int64_t> extents(const std::vector<SliceSub*>& subs, size_t n, const Span& sp) {
    std::vector<int64_t> ext(n, 1);
    for (auto* s : subs) {
      size_t m = s->ext.size();
      for (size_t j = 0; j < m; ++j) {
        int64_t& e = ext[n - m + j];
        if (e == 1) e = s->ext[j];
        else if (s->ext[j] != 1 && s->ext[j] != e) shape_error(subs, sp);
      }
    }
    return ext;
  }

  [[noreturn]] void shape_error(const std::vector<SliceSub*>& subs, const Span& sp) {
    std::vector<std::vector<int64_t>> shapes;
    for (auto* s : subs) shapes.push_back(s->ext);
    shape_error(shapes, sp);
  }

  [[noreturn]] static void shape_error(const std::vector<std::vector<int64_t>>& shapes, const Span& sp) {
    std::string msg = "Found incompatible shapes ";
    for (size_t i = 0; i < shapes.size(); ++i) {
      if (i) msg += i + 1 == shapes.size() ? " and " : ", ";
      msg += shape_str(shapes[i]);
    }
    type_fail(msg, sp);
  }

  // numpy's broadcasting of right-aligned shapes, where 1 matches anything; nullopt if the
  // shapes do not broadcast.
  static std::optional<std::vector<int64_t>> broadcast(const std::vector<std::vector<int64_t>>& shapes) {
    size_t n = 0;
    for (const auto& s : shapes) n = std::max(n, s.size());
    std::vector<int64_t> out(n, 1);
    for (const auto& s : shapes)
      for (size_t j = 0; j < s.size(); ++j) {
        int64_t& e = out[n - s.size() + j];
        if (e == 1) e = s[j];
        else if (s[j] != 1 && s[j] != e) return std::nullopt;
      }
    return out;
  }

  // The shapes of a slice statement must broadcast (numpy's rule) before anything else about
  // the statement is checked, as type checking does for other statements: a TypeError on the
  // whole statement. A reduction contributes the shape of its result.
  void check_shapes(const Stmt& s, const std::vector<SliceSub*>& lsubs, const std::vector<SliceSub*>& rsubs,
                    size_t nr) {
    std::vector<std::vector<int64_t>> lshapes, rshapes;
    for (auto* l : lsubs) lshapes.push_back(l->ext);
    for (auto* r : rsubs) rshapes.push_back(r->ext);
    auto rhs_shape = broadcast(rshapes);
    if (!rhs_shape) {
      lshapes.insert(lshapes.end(), rshapes.begin(), rshapes.end());
      shape_error(lshapes, s->span);
    }
    const Expr& red = s->rhs;
    if (red->kind == ExprKind::Reduce) {
      // Other problems of the reduction (axis out of range, no slices) are reported later.
      if (nr == 0) return;
      if (!red->has_axis) {
        rshapes = {{}};
      } else {
        int64_t k = red->axis < 0 ? red->axis + static_cast<int64_t>(nr) : red->axis;
        if (k < 0 || k >= static_cast<int64_t>(nr)) return;
        rhs_shape->erase(rhs_shape->begin() + k);
        rshapes = {*rhs_shape};
      }
    }
    std::vector<std::vector<int64_t>> all = lshapes;
    all.insert(all.end(), rshapes.begin(), rshapes.end());
    if (!broadcast(all)) shape_error(all, s->span);
  }

  // Replaces the slices of every subscript in e by indices of the given dimensions. Subscripts
  // are matched by identity with those resolve() saw, so the walk is over the original tree.
  Expr bind(const Expr& e, const std::vector<Expr>& dim_index, const std::vector<int64_t>& dim_ext,
            const std::vector<SliceSub*>& all, const Span& sp) {
    if (!e) return e;
    std::vector<Expr> args;
    for (const auto& a : e->args) args.push_back(bind(a, dim_index, dim_ext, all, sp));
    auto it = subs_.find(e.get());
    if (e->kind != ExprKind::Subscript || it == subs_.end()) return with_args(e, std::move(args));
    const SliceSub& sub = it->second;
    size_t n = dim_index.size(), m = sub.ext.size();
    if (m > n) internal_fail("slice dimensions exceed loop dimensions", e->span);
    std::vector<Expr> idx;
    size_t j = 0;
    for (size_t i = 1; i < args.size(); ++i) {
      if (e->args[i]->kind != ExprKind::Slice) {
        idx.push_back(args[i]);
        continue;
      }
      size_t d = n - m + j;
      int64_t lo = sub.lo[j], ext = sub.ext[j];
      if (ext != dim_ext[d] && ext != 1) shape_error(all, sp);
      const Span& isp = e->args[i]->span;
      const Expr& lo_e = sub.lo_expr[j];
      if (ext == 1 && dim_ext[d] != 1)
        idx.push_back(lo_e ? lo_e : int_lit(lo, isp));
      else if (lo_e)
        idx.push_back(binop(BinOp::Add, lo_e, dim_index[d], isp));
      else if (lo == 0)
        idx.push_back(dim_index[d]);
      else
        idx.push_back(binop(BinOp::Add, int_lit(lo, isp), dim_index[d], isp));
      ++j;
    }
    return subscript(args[0], std::move(idx), e->span);
  }

  // A target must have exactly the extents of its loops: it cannot broadcast.
  void require_exact(const std::vector<SliceSub*>& targets, const std::vector<int64_t>& ext,
                     const std::vector<SliceSub*>& all, const Span& sp) {
    for (auto* t : targets)
      for (size_t j = 0; j < t->ext.size(); ++j)
        if (t->ext[j] != ext[ext.size() - t->ext.size() + j]) shape_error(all, sp);
  }

  std::vector<std::string> labels_for(const Stmt& s, size_t expected, const char* what) {
    if (s->labels.empty()) return std::vector<std::string>(expected, "");
    if (s->labels.size() != expected) {
      if (std::string(what) == "full")
        fail("Expected zero or one labels for full reduction operation, found " +
                 std::to_string(s->labels.size()),
             s->span);
      fail("Expected zero or " + std::to_string(expected) + " labels, found " +
               std::to_string(s->labels.size()),
           s->span);
    }
    return s->labels;
  }

  static std::vector<std::string> label_list(const std::string& l, bool reduce) {
    std::vector<std::string> out;
    if (!l.empty()) out.push_back(l);
    if (reduce) out.push_back(kReduceLabel);
    return out;
  }

  void mapping(const Stmt& s, const Expr& lhs, const Expr& rhs, const std::vector<SliceSub*>& lsubs,
               const std::vector<SliceSub*>& rsubs, size_t nl, size_t nr, Block& out) {
    if (nr > nl)
      fail("Slice statements cannot have more slice dimensions in the right-hand side expression "
           "than in the left-hand side expression.",
           s->span);
    std::vector<SliceSub*> all = lsubs;
    all.insert(all.end(), rsubs.begin(), rsubs.end());
    std::vector<int64_t> ext = extents(lsubs, nl, s->span);
    // The target's extents decide the loops; the right-hand side must broadcast to them.
    for (auto* r : rsubs)
      for (size_t j = 0; j < r->ext.size(); ++j) {
        int64_t e = ext[nl - r->ext.size() + j];
        if (r->ext[j] != e && r->ext[j] != 1) shape_error(all, s->span);
      }
    auto labels = labels_for(s, nl, "map");
    std::vector<std::string> vars;
    std::vector<Expr> idx;
    for (size_t d = 0; d < nl; ++d) {
      vars.push_back(fresh());
      idx.push_back(var(vars.back(), s->span));
    }
    Stmt body = assign(bind(lhs, idx, ext, all, s->span), bind(rhs, idx, ext, all, s->span), s->span);
    Block inner{body};
    for (size_t d = nl; d-- > 0;)
      inner = {for_loop(vars[d], int_lit(0, s->span), int_lit(ext[d], s->span), 1, inner, s->span,
                        label_list(labels[d], false))};
    out.push_back(inner[0]);
  }

  void reduction(const Stmt& s, const Expr& lhs, const Expr& arg, const std::vector<SliceSub*>& lsubs,
                 const std::vector<SliceSub*>& rsubs, size_t nl, size_t nr, Block& out) {
    const Expr& red = s->rhs;
    if (nr == 0)
      fail(std::string("Found reduction operation ") + reduce_name(red->reduce) +
               " in unsupported position." + kReduceMsg,
           red->span);
    std::vector<SliceSub*> all = lsubs;
    all.insert(all.end(), rsubs.begin(), rsubs.end());
    std::vector<int64_t> ext = extents(rsubs, nr, s->span);
    for (int64_t e : ext)
      if (e == 0) fail("Cannot apply reduction on empty dimension", red->span);
    BinOp op = combine_op(red->reduce);
    const Span& sp = s->span;
    Block result;
    if (red->has_axis) {
      if (nl + 1 != nr)
        fail("When reducing along one dimension, the number of slice dimensions of the left-hand "
             "side expression must be one less than in the right-hand side.",
             sp);
      int64_t k = red->axis;
      if (k < -static_cast<int64_t>(nr) || k >= static_cast<int64_t>(nr))
        type_fail("Invalid axis value " + std::to_string(k) + " for tensor of " +
                      std::to_string(nr) + " dimensions.",
                  red->span);
      if (k < 0) k += nr;
      auto labels = labels_for(s, nr, "axis");
      std::vector<std::string> vars;
      std::vector<Expr> idx;
      for (size_t d = 0; d < nr; ++d) {
        vars.push_back(fresh());
        idx.push_back(var(vars.back(), sp));
      }
      std::vector<Expr> lidx, lo_idx = idx;
      std::vector<int64_t> lext;
      for (size_t d = 0; d < nr; ++d)
        if (static_cast<int64_t>(d) != k) {
          lidx.push_back(idx[d]);
          lext.push_back(ext[d]);
        }
      lo_idx[k] = int_lit(0, sp);
      require_exact(lsubs, lext, all, sp);
      Expr target = bind(lhs, lidx, lext, all, sp);
      Expr elem = bind(arg, idx, ext, all, sp);
      Block inner{assign(target, neutral(red->reduce, bind(arg, lo_idx, ext, all, sp), sp), sp),
                  for_loop(vars[k], int_lit(0, sp), int_lit(ext[k], sp), 1,
                           {assign(target, binop(op, target, elem, sp), sp)}, sp,
                           label_list(labels[k], true))};
      for (size_t d = nr; d-- > 0;) {
        if (static_cast<int64_t>(d) == k) continue;
        inner = {for_loop(vars[d], int_lit(0, sp), int_lit(ext[d], sp), 1, inner, sp,
                          label_list(labels[d], false))};
      }
      result = inner;
    } else {
      if (nl != 0)
        fail("When reducing along all dimensions, the left-hand side expression must be a scalar.", sp);
      auto labels = labels_for(s, 1, "full");
      std::string v = fresh();
      Expr flat = var(v, sp);
      std::vector<Expr> idx, zero_idx;
      int64_t total = 1, inner_size = 1;
      for (int64_t e : ext) total *= e;
      idx.resize(nr);
      for (size_t d = nr; d-- > 0;) {
        Expr ix = inner_size == 1 ? flat : binop(BinOp::FloorDiv, flat, int_lit(inner_size, sp), sp);
        if (d > 0) ix = binop(BinOp::Mod, ix, int_lit(ext[d], sp), sp);
        idx[d] = ix;
        inner_size *= ext[d];
        zero_idx.push_back(int_lit(0, sp));
      }
      Expr elem = bind(arg, idx, ext, all, sp);
      result = {assign(lhs, neutral(red->reduce, bind(arg, zero_idx, ext, all, sp), sp), sp),
                for_loop(v, int_lit(0, sp), int_lit(total, sp), 1,
                         {assign(lhs, binop(op, lhs, elem, sp), sp)}, sp, label_list(labels[0], true))};
    }
    out.push_back(with_gpu(result, sp));
  }
};

}  // namespace

Block lower_slices(const Block& b, const std::map<std::string, std::vector<int64_t>>& shapes) {
  return SliceLowering(shapes).block(b);
}

}  // namespace parpy
