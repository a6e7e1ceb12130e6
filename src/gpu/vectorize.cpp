#include "gpu/vectorize.h"

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <variant>

#include "gpu/index_expr.h"
#include "gpu/strip_rows.h"
#include "ir/affine.h"
#include "ir/intrinsics.h"
#include "passes/constant_fold.h"
#include "passes/inline_calls.h"

namespace parpy {
namespace {

using gpu::iadd;
using gpu::ilit;
using gpu::iop;
using gpu::ivar;

bool mentions_any(const Expr& e, const std::set<std::string>& names) {
  bool found = false;
  visit_expr(e, [&](const Expr& x) { found = found || (x->kind == ExprKind::Var && names.count(x->name)); });
  return found;
}

// Whether e is a multiple of m for every value of its variables.
bool multiple_of(const Expr& e, int64_t m) {
  switch (e->kind) {
    case ExprKind::Int: return e->ival % m == 0;
    case ExprKind::Convert: return multiple_of(e->args[0], m);
    case ExprKind::BinOp:
      if (e->binop == BinOp::Mul) return multiple_of(e->args[0], m) || multiple_of(e->args[1], m);
      if (e->binop == BinOp::Add || e->binop == BinOp::Sub)
        return multiple_of(e->args[0], m) && multiple_of(e->args[1], m);
      return false;
    default: return false;
  }
}

class LoopVectorizer {
 public:
  LoopVectorizer(const Stmt& loop, const std::string& worker, int64_t workers,
                 const std::set<std::string>& aliased, int& counter)
      : s_(loop), worker_(worker), workers_(workers), aliased_(aliased), counter_(counter) {}

  // The vector loop and the remainder loop, or nothing when the loop does not qualify.
  std::optional<Block> run(std::map<std::string, int64_t>& alignment) {
    if (!match_header() || !scan_body()) return std::nullopt;
    int64_t count = 0;  // bounds too far apart for an int64 count stay scalar
    if (__builtin_sub_overflow(s_->hi->ival, lo_, &count)) return std::nullopt;
    int64_t groups = count / lanes_;
    if (groups <= 0 || lo_ % lanes_ != 0) return std::nullopt;
    for (const auto& [name, bytes] : widths_) {
      for (const auto& base : bases_[name])
        if (!multiple_of(base, lanes_)) return std::nullopt;
      int64_t need = bytes * lanes_;
      alignment[name] = std::max(alignment[name], need);
    }
    Block body;
    std::vector<std::map<std::string, Expr>> loaded(static_cast<size_t>(lanes_));
    for (int64_t u = 0; u < lanes_; ++u) hoist_loads(u, body, loaded[static_cast<size_t>(u)]);
    for (int64_t u = 0; u < lanes_; ++u) lane(u, body, loaded[static_cast<size_t>(u)]);
    Block out;
    auto vec = copy(for_loop(s_->var, iadd(ilit(lo_), iop(BinOp::Mul, ilit(lanes_), ivar(worker_))),
                             ilit(lo_ + lanes_ * groups), lanes_ * workers_, body, s_->span));
    out.push_back(vec);
    if (count % lanes_ != 0) {
      auto rest = copy(s_);
      rest->lo = iadd(ilit(lo_ + lanes_ * groups), ivar(worker_));
      out.push_back(rest);
    }
    return out;
  }

 private:
  const Stmt& s_;
  const std::string& worker_;
  int64_t workers_;
  const std::set<std::string>& aliased_;
  int64_t lo_ = 0, lanes_ = 1;
  std::set<std::string> locals_;                     // defined in the body
  std::map<std::string, int64_t> widths_;            // arrays indexed by the loop variable
  std::map<std::string, std::vector<Expr>> bases_;   // their index minus the loop variable

  bool match_header() {
    const Expr& lo = s_->lo;
    if (s_->step != workers_ || s_->hi->kind != ExprKind::Int || lo->kind != ExprKind::BinOp ||
        lo->binop != BinOp::Add || lo->args[0]->kind != ExprKind::Int || lo->args[1]->kind != ExprKind::Var ||
        lo->args[1]->name != worker_)
      return false;
    lo_ = lo->args[0]->ival;
    return true;
  }

  // `base + j`, `j + base` or `j`: the base, or nothing.
  std::optional<Expr> base_of(const Expr& idx) const {
    if (idx->kind == ExprKind::Var && idx->name == s_->var) return ilit(0);
    if (idx->kind != ExprKind::BinOp || idx->binop != BinOp::Add) return std::nullopt;
    for (int k = 0; k < 2; ++k) {
      const Expr& v = idx->args[static_cast<size_t>(k)];
      const Expr& base = idx->args[static_cast<size_t>(1 - k)];
      if (v->kind == ExprKind::Var && v->name == s_->var && !mentions(base, s_->var)) return base;
    }
    return std::nullopt;
  }

  // Straight-line assignments; every array access is loop-invariant or `base + j`; no array is
  // read after the same iteration wrote it (loads move to the front of the group).
  bool scan_body() {
    std::set<std::string> written;
    int64_t widest = 0;
    auto check_access = [&](const Expr& a) {
      const Expr& idx = a->args[0];
      // Moving loads before stores is only valid when no other name may refer to the array.
      if (aliased_.count(a->name) || mentions_any(idx, locals_)) return false;
      if (!mentions(idx, s_->var)) return true;
      auto base = base_of(idx);
      if (!base) return false;
      widths_[a->name] = elem_bytes(a->ty.elem);
      bases_[a->name].push_back(*base);
      widest = std::max<int64_t>(widest, elem_bytes(a->ty.elem));
      return true;
    };
    for (const auto& st : s_->body) {
      if (st->kind != StmtKind::Assign || st->atomic || refers_to_arrays(st->rhs)) return false;
      bool ok = true;
      visit_expr(st->rhs, [&](const Expr& x) {
        if (x->kind == ExprKind::Access) ok = ok && !written.count(x->name) && check_access(x);
      });
      if (st->lhs->kind == ExprKind::Access) {
        ok = ok && check_access(st->lhs);
        written.insert(st->lhs->name);
      } else if (st->defines) {
        locals_.insert(st->lhs->name);
      }
      if (!ok) return false;
    }
    if (widest == 0 || widest > 8) return false;
    lanes_ = 16 / widest;
    return true;
  }

  Expr at_lane(const Expr& e, int64_t u) const {
    return map_expr(e, [&](const Expr& x) -> Expr {
      if (x->kind == ExprKind::Var && x->name == s_->var) return u == 0 ? x : iadd(x, ilit(u));
      return x;
    });
  }

  // Lane u's loads, in order, into locals; `loaded` maps the printed access to its local.
  void hoist_loads(int64_t u, Block& out, std::map<std::string, Expr>& loaded) {
    for (const auto& st : s_->body)
      visit_expr(st->rhs, [&](const Expr& x) {
        if (!x || x->kind != ExprKind::Access) return;
        Expr a = at_lane(x, u);
        std::string key = print_expr(a);
        if (loaded.count(key)) return;
        Expr v = var("$vl" + std::to_string(counter_++), x->span, Type::scalar(x->ty.elem));
        auto def = copy(assign(v, a, x->span));
        def->defines = true;
        out.push_back(def);
        loaded[key] = v;
      });
  }

  // Lane u's statements: j is j + u, its locals are renamed, its reads come from the loads.
  void lane(int64_t u, Block& out, const std::map<std::string, Expr>& loaded) {
    std::map<std::string, std::string> renamed;
    auto rewrite = [&](const Expr& e) {
      return map_expr(at_lane(e, u), [&](const Expr& x) -> Expr {
        if (x->kind == ExprKind::Var && renamed.count(x->name)) return var(renamed.at(x->name), x->span, x->ty);
        if (x->kind == ExprKind::Access) {
          auto it = loaded.find(print_expr(x));
          if (it != loaded.end()) return it->second;
        }
        return x;
      });
    };
    for (const auto& st : s_->body) {
      auto n = copy(st);
      n->rhs = rewrite(st->rhs);
      if (st->lhs->kind == ExprKind::Access) {
        n->lhs = with_args(st->lhs, {rewrite(st->lhs->args[0])});
      } else if (st->defines) {
        const std::string& name = st->lhs->name;
        // A user's `a` becomes `$a_v1`, a compiler temporary `$a` becomes `$$a_v1`: never the same.
        renamed[name] = "$" + name + "_v" + std::to_string(u);
        n->lhs = var(renamed[name], st->lhs->span, st->lhs->ty);
      } else {
        n->lhs = rewrite(st->lhs);
      }
      out.push_back(n);
    }
  }

  int& counter_;  // numbers the loads' locals within one kernel
};


// Whether an index `a` reads the next element for the next value of `col`, at a base whose other
// terms are multiples of `lanes`: the lanes of a group of columns then lie in aligned chunks of
// `lanes` elements.
bool in_chunks(const Affine& a, const std::string& col, int64_t lanes) {
  if (a.coef(col) != 1) return false;
  for (const auto& [atom, coef] : a.terms)
    if (atom != col && coef % lanes != 0) return false;
  return true;
}

// Whether e holds a read that may not happen when the program runs (under a conditional
// expression, `and` or `or`): such a read may not be loaded ahead.
bool conditional_read(const Expr& e) {
  bool found = false;
  visit_expr(e, [&](const Expr& x) {
    bool lazy = x->kind == ExprKind::BinOp && (x->binop == BinOp::And || x->binop == BinOp::Or);
    if (x->kind == ExprKind::IfExpr || lazy)
      visit_expr(x, [&](const Expr& y) { found = found || y->kind == ExprKind::Access; });
  });
  return found;
}

// The masked form, for the grid-stride loops LoopVectorizer leaves: a lower bound that is not a
// multiple of the lanes (the interior columns 1 .. n - 2 of a stencil), and bodies that hold
// sequential loops (a strip of rows walked down in each column, gpu/strip_rows.h), which are
// unrolled by the lanes and jammed into those loops. Each thread takes the groups of `lanes`
// consecutive columns that start at multiples of the lanes (aligned to 16 bytes), v = 4t, 4t + 1,
// ... (f32); lane u of a group is active when its column lies in the loop's range. Per run of
// straight-line statements:
// - every read is loaded once, at the front of the run; a read of `base + v + c` (base a multiple
//   of the lanes) is a position of its 16-byte chunk. A chunk that every lane reads some position
//   of, in an array whose size is a multiple of the lanes, holds only elements of the array
//   (a group always has an active lane), so all of its positions are loaded unconditionally (the
//   CUDA compiler merges them into one 128-bit load); any other read is loaded only when a lane
//   that reads it is active;
// - the lanes' statements follow, one lane after the other, their locals renamed per lane;
// - the stores come last: all lanes' stores where the whole group is active (merged into 128-bit
//   stores), each active lane's otherwise.
// Valid because the loop is parallel (its iterations may run in any order) and no array it reads
// is written in it.
class GroupVectorizer {
 public:
  // `read_only`: the kernel's arrays share no memory (gpu/strip_rows.h), so whole chunks are
  // loaded through the read-only data path.
  GroupVectorizer(const Stmt& loop, const std::string& worker, int64_t workers, const std::set<std::string>& aliased,
                  const std::map<std::string, int64_t>& sizes, bool read_only, int& counter)
      : s_(loop), v_(loop->var), worker_(worker), workers_(workers), aliased_(aliased), sizes_(sizes),
        read_only_(read_only), counter_(counter) {}

  std::optional<Block> run(std::map<std::string, int64_t>& alignment) {
    const Expr& lo = s_->lo;
    if (s_->step != workers_ || s_->hi->kind != ExprKind::Int || lo->kind != ExprKind::BinOp ||
        lo->binop != BinOp::Add || lo->args[0]->kind != ExprKind::Int || lo->args[1]->kind != ExprKind::Var ||
        lo->args[1]->name != worker_)
      return std::nullopt;
    lo_ = lo->args[0]->ival;
    hi_ = s_->hi->ival;
    if (hi_ <= lo_ || !collect(s_->body)) return std::nullopt;
    for (const auto& r : read_)
      if (written_.count(r)) return std::nullopt;
    if (!scan(s_->body) || widest_ == 0 || widest_ > 8) return std::nullopt;
    lanes_ = 16 / widest_;
    glo_ = py_floordiv(lo_, lanes_) * lanes_;
    int64_t step = 0, end = 0;
    if (__builtin_mul_overflow(lanes_, workers_, &step) || __builtin_add_overflow(hi_, step, &end) ||
        __builtin_sub_overflow(hi_, glo_, &end))
      return std::nullopt;
    Block body = gen(s_->body);
    if (aligned_.empty()) return std::nullopt;  // no 128-bit access
    for (const auto& [name, bytes] : aligned_) alignment[name] = std::max(alignment[name], bytes);
    auto vec = copy(for_loop(v_, iadd(ilit(glo_), iop(BinOp::Mul, ilit(lanes_), ivar(worker_))), ilit(hi_), step,
                             body, s_->span));
    return Block{Stmt(vec)};
  }

 private:
  const Stmt& s_;
  const std::string& v_;
  const std::string& worker_;
  int64_t workers_;
  const std::set<std::string>& aliased_;
  const std::map<std::string, int64_t>& sizes_;
  bool read_only_;
  int& counter_;
  int64_t lo_ = 0, hi_ = 0, glo_ = 0, lanes_ = 1, widest_ = 0;
  std::set<std::string> locals_, read_, written_;
  std::map<std::string, int64_t> aligned_;

  // The locals the body defines and the arrays it reads and writes.
  bool collect(const Block& b) {
    for (const auto& st : b) {
      if (st->kind == StmtKind::For) {
        if (!collect(st->body)) return false;
        continue;
      }
      if (st->kind != StmtKind::Assign) return false;
      visit_expr(st->rhs, [&](const Expr& x) {
        if (x->kind == ExprKind::Access) read_.insert(x->name);
      });
      if (st->lhs->kind == ExprKind::Access) {
        written_.insert(st->lhs->name);
        visit_expr(st->lhs->args[0], [&](const Expr& x) {
          if (x->kind == ExprKind::Access) read_.insert(x->name);
        });
      } else if (st->defines) {
        locals_.insert(st->lhs->name);
      }
    }
    return true;
  }

  // The index of an array access in affine form: variables are atoms, any other term that does
  // not mention the loop's variable an atom of its own; nothing when a term that is not affine
  // mentions the variable.
  std::optional<Affine> index_form(const Expr& idx) const {
    return affine(idx, [&](const Expr& e) -> std::optional<Affine> {
      if (e->kind == ExprKind::Var) return affine_atom(e->name);
      if (mentions(e, v_)) return std::nullopt;
      return affine_atom("$" + print_expr(e));
    });
  }

  bool access_ok(const Expr& a) {
    const Expr& idx = a->args[0];
    if (aliased_.count(a->name) || mentions_any(idx, locals_)) return false;
    bool nested = false;
    visit_expr(idx, [&](const Expr& x) { nested = nested || x->kind == ExprKind::Access; });
    std::optional<Affine> form = index_form(idx);
    if (nested || !form) return false;
    // Columns next to each other in memory, or the same element in every column; a stride
    // (a transposed read) stays in the scalar kernel.
    if (form->coef(v_) != 0 && form->coef(v_) != 1) return false;
    if (mentions(idx, v_)) widest_ = std::max<int64_t>(widest_, elem_bytes(a->ty.elem));
    return true;
  }

  // Straight-line assignments and sequential loops whose ranges are the same in every column;
  // locals defined in the body.
  bool scan(const Block& b) {
    for (const auto& st : b) {
      if (st->kind == StmtKind::For) {
        if (st->par.is_parallel() || st->par.reduction || st->step <= 0 || mentions(st->lo, v_) ||
            mentions(st->hi, v_) || mentions_any(st->lo, locals_) || mentions_any(st->hi, locals_) ||
            st->var == v_ || !scan(st->body))
          return false;
        continue;
      }
      if (st->kind != StmtKind::Assign || st->atomic || refers_to_arrays(st->rhs) || conditional_read(st->rhs))
        return false;
      bool ok = true;
      visit_expr(st->rhs, [&](const Expr& x) {
        if (x->kind == ExprKind::Access) ok = ok && access_ok(x);
      });
      if (st->lhs->kind == ExprKind::Access) {
        // Every column writes its own elements.
        ok = ok && access_ok(st->lhs) && mentions(st->lhs->args[0], v_);
      } else if (st->lhs->kind != ExprKind::Var || !locals_.count(st->lhs->name)) {
        return false;
      }
      if (!ok) return false;
    }
    return true;
  }

  Expr at(const Expr& e, int64_t off) const {
    return map_expr(e, [&](const Expr& x) -> Expr {
      if (x->kind == ExprKind::Var && x->name == v_) return off == 0 ? x : iadd(x, ilit(off));
      return x;
    });
  }

  // Lane u lies in the loop's range (nothing: always).
  Expr active(int64_t u) const {
    Expr c;
    if (u < lo_ - glo_) c = iop(BinOp::Ge, iadd(ivar(v_), ilit(u)), ilit(lo_));
    if (u > 0 && (hi_ - glo_) % lanes_ != 0) {
      Expr h = iop(BinOp::Lt, iadd(ivar(v_), ilit(u)), ilit(hi_));
      c = c ? iop(BinOp::And, c, h) : h;
    }
    return c;
  }

  // Some lane of `lanes` is active (nothing: always; every group has an active lane).
  Expr any_active(const std::set<int64_t>& lanes) const {
    if (static_cast<int64_t>(lanes.size()) == lanes_) return nullptr;
    Expr c;
    for (int64_t u : lanes) {
      Expr a = active(u);
      if (!a) return nullptr;
      c = c ? iop(BinOp::Or, c, a) : a;
    }
    return c;
  }

  static Expr zero(ElemSize e) {
    if (e == ElemSize::Bool) return bool_lit(false, {});
    if (is_float(e)) return float_lit(0.0, {}, false, e);
    return int_lit(0, {}, false, e);
  }

  std::string key(const std::string& array, const Affine& a, bool drop_v) const {
    std::string k = array + "|";
    for (const auto& [atom, coef] : a.terms)
      if (coef != 0 && !(drop_v && atom == v_)) k += atom + "*" + std::to_string(coef) + ",";
    return k;
  }

  struct Read {
    Expr access;             // at lane 0
    int64_t shift = 0;       // ... shifted by this many columns
    std::set<int64_t> users;  // the lanes that read it
  };

  // The statements of a run, vectorised (see the class comment).
  // `held`: elements that registers hold at the top of the run, (group, position) -> register; a
  // chunk whose every position is held is not loaded.
  void flush(const Block& run, Block& out, const std::map<std::pair<std::string, int64_t>, std::string>& held) {
    if (run.empty()) return;
    // Reads: chunked ones by group (array and index without the loop variable and constant) and
    // position (flat offset from the group's base + v); the others by lane and printed form.
    std::map<std::string, std::map<int64_t, Read>> groups;
    std::map<std::string, std::string> group_array;
    std::map<std::string, Read> others;
    std::vector<std::map<std::string, std::pair<std::string, int64_t>>> place(static_cast<size_t>(lanes_));
    for (int64_t u = 0; u < lanes_; ++u)
      for (const auto& st : run)
        visit_expr(st->rhs, [&](const Expr& x) {
          if (!x || x->kind != ExprKind::Access) return;
          Affine a = *index_form(x->args[0]);
          std::string printed = print_expr(at(x, u));
          if (in_chunks(a, v_, lanes_)) {
            std::string g = key(x->name, a, true);
            int64_t pos = a.constant + u;
            Read& r = groups[g][pos];
            if (!r.access) {
              r.access = x;
              r.shift = u;
            }
            r.users.insert(u);
            group_array[g] = x->name;
            place[static_cast<size_t>(u)][printed] = {g, pos};
          } else {
            Affine at_u = *index_form(at(x, u)->args[0]);
            std::string g = key(x->name, at_u, false) + "#" + std::to_string(at_u.constant);
            Read& r = others[g];
            if (!r.access) {
              r.access = x;
              r.shift = u;
            }
            r.users.insert(u);
            place[static_cast<size_t>(u)][printed] = {g, INT64_MIN};
          }
        });
    std::map<std::pair<std::string, int64_t>, Expr> local;  // (group, position) -> local
    // The local of a read: loaded (under `guard` where there is one), or the register that holds it.
    auto load = [&](const Expr& access, Expr guard, std::pair<std::string, int64_t> where,
                    const std::string& reg = "") {
      Type t = Type::scalar(access->ty.elem);
      Expr v = var("$vl" + std::to_string(counter_++), access->span, t);
      Expr rhs = !reg.empty() ? var(reg, access->span, t)
                 : guard      ? if_expr(guard, access, zero(access->ty.elem), access->span)
                              : access;
      auto def = copy(assign(v, rhs, access->span));
      def->defines = true;
      out.push_back(def);
      local[where] = v;
    };
    for (auto& [g, positions] : groups) {
      const std::string& array = group_array[g];
      auto size = sizes_.find(array);
      bool whole = size != sizes_.end() && size->second % lanes_ == 0;
      std::set<int64_t> chunks;
      for (const auto& [pos, r] : positions) chunks.insert(py_floordiv(pos, lanes_));
      for (int64_t q : chunks) {
        std::set<int64_t> readers;
        for (const auto& [pos, r] : positions)
          if (py_floordiv(pos, lanes_) == q) readers.insert(r.users.begin(), r.users.end());
        bool in_registers = true;
        for (int64_t pos = q * lanes_; pos < (q + 1) * lanes_; ++pos)
          in_registers = in_registers && held.count({g, pos});
        if (in_registers) {
          const Read& r0 = positions.lower_bound(q * lanes_)->second;
          for (int64_t pos = q * lanes_; pos < (q + 1) * lanes_; ++pos)
            load(r0.access, nullptr, {g, pos}, held.at({g, pos}));
          continue;
        }
        if (whole && static_cast<int64_t>(readers.size()) == lanes_) {
          // Each position from a read of the chunk (the index as the program writes it).
          const auto& [p0, r0] = *positions.lower_bound(q * lanes_);
          aligned_[array] = std::max<int64_t>(aligned_[array], elem_bytes(r0.access->ty.elem) * lanes_);
          if (read_only_) {  // one statement, the 16 bytes through the read-only path
            Expr first = at(r0.access, q * lanes_ - p0 + r0.shift);
            std::vector<Expr> args = {first};
            for (int64_t pos = q * lanes_; pos < (q + 1) * lanes_; ++pos) {
              Expr v = var("$vl" + std::to_string(counter_++), first->span, Type::scalar(first->ty.elem));
              local[{g, pos}] = v;
              args.push_back(v);
            }
            out.push_back(call_stmt(intrinsic(Intrinsic::ChunkLoad, std::move(args), first->span), first->span));
            continue;
          }
          for (int64_t pos = q * lanes_; pos < (q + 1) * lanes_; ++pos)
            load(at(r0.access, pos - p0 + r0.shift), nullptr, {g, pos});
          continue;
        }
        for (const auto& [pos, r] : positions)
          if (py_floordiv(pos, lanes_) == q) load(at(r.access, r.shift), any_active(r.users), {g, pos});
      }
    }
    for (auto& [g, r] : others) load(at(r.access, r.shift), any_active(r.users), {g, INT64_MIN});
    // The lanes' statements, the stores' values into locals.
    struct Store {
      Expr target;  // lane 0's
      std::vector<Expr> values;
    };
    std::vector<Store> stores;
    for (int64_t u = 0; u < lanes_; ++u) {
      auto rewrite = [&](const Expr& e) {
        return map_expr(at(e, u), [&](const Expr& x) -> Expr {
          if (x->kind == ExprKind::Var && locals_.count(x->name)) return var(renamed(x->name, u), x->span, x->ty);
          if (x->kind == ExprKind::Access) {
            auto it = place[static_cast<size_t>(u)].find(print_expr(x));
            if (it != place[static_cast<size_t>(u)].end()) return local.at(it->second);
          }
          return x;
        });
      };
      size_t nstore = 0;
      for (const auto& st : run) {
        auto n = copy(st);
        n->rhs = rewrite(st->rhs);
        if (st->lhs->kind == ExprKind::Access) {
          Expr t = var("$vs" + std::to_string(counter_++), st->span, Type::scalar(st->lhs->ty.elem));
          n->lhs = t;
          n->defines = true;
          if (u == 0) stores.push_back({st->lhs, {}});
          stores[nstore++].values.push_back(t);
        } else {
          n->lhs = var(renamed(st->lhs->name, u), st->lhs->span, st->lhs->ty);
        }
        out.push_back(n);
      }
    }
    if (stores.empty()) return;
    auto store = [&](const Store& s, int64_t u) {
      return assign(with_args(s.target, {at(s.target->args[0], u)}), s.values[static_cast<size_t>(u)], s.target->span);
    };
    Block all, each;
    for (const auto& s : stores) {
      if (in_chunks(*index_form(s.target->args[0]), v_, lanes_))
        aligned_[s.target->name] =
            std::max<int64_t>(aligned_[s.target->name], elem_bytes(s.target->ty.elem) * lanes_);
      for (int64_t u = 0; u < lanes_; ++u) {
        all.push_back(store(s, u));
        Expr c = active(u);
        each.push_back(c ? if_stmt(c, {store(s, u)}, {}, s.target->span) : store(s, u));
      }
    }
    Expr full;
    if (lo_ != glo_) full = iop(BinOp::Ge, ivar(v_), ilit(lo_));
    if ((hi_ - glo_) % lanes_ != 0) {
      Expr h = iop(BinOp::Le, iadd(ivar(v_), ilit(lanes_)), ilit(hi_));
      full = full ? iop(BinOp::And, full, h) : h;
    }
    if (!full) {
      out.insert(out.end(), all.begin(), all.end());
    } else {
      out.push_back(if_stmt(full, all, each, s_->span));
    }
  }

  std::string renamed(const std::string& name, int64_t u) const {
    // A user's `a` becomes `$a_v1`, a compiler temporary `$a` becomes `$$a_v1`: never the same.
    return "$" + name + "_v" + std::to_string(u);
  }

  // What a register (a local) holds at the top of every iteration of a sequential loop: the element
  // A[e] with the loop's variable i replaced by i + shift.
  struct Held {
    Expr access;
    int64_t shift = 0;
  };

  // The registers a sequential loop rotates (gpu/strip_rows.h): the loop's body starts with loads
  // into registers (`r2 = x[f(i)]`) and ends with moves between registers (`r0 = r1; r1 = r2`),
  // and nothing between assigns them; each register then holds at the top of iteration i what
  // the moves gave it at the end of iteration i - 1. Kept are the registers whose value before
  // the first iteration (their last assignment in `before`, the statements ahead of the loop) is
  // that element for the loop's first value, so that it holds in every iteration.
  std::map<std::string, Held> rotated(const Block& before, const Stmt& loop) const {
    const std::string& i = loop->var;
    const Block& b = loop->body;
    if (loop->step != 1 || b.empty()) return {};
    size_t top = 0, bottom = b.size();
    auto is_local = [&](const Stmt& st) {
      return st->kind == StmtKind::Assign && !st->defines && st->lhs->kind == ExprKind::Var &&
             locals_.count(st->lhs->name);
    };
    auto loads_row = [&](const Stmt& st) {
      return is_local(st) && st->rhs->kind == ExprKind::Access && mentions(st->rhs->args[0], i);
    };
    while (top < b.size() && loads_row(b[top])) ++top;
    while (bottom > top && is_local(b[bottom - 1]) && b[bottom - 1]->rhs->kind == ExprKind::Var &&
           locals_.count(b[bottom - 1]->rhs->name))
      --bottom;
    std::set<std::string> middle;  // registers the statements between assign
    for (size_t k = top; k < bottom; ++k)
      visit_block({b[k]}, [&](const Stmt& st) {
        if (st->kind == StmtKind::Assign && st->lhs->kind == ExprKind::Var) middle.insert(st->lhs->name);
      });
    // At the end of an iteration: a register holds a load of this iteration (shift 0) or what
    // another held at its top (a name).
    std::map<std::string, std::variant<Held, std::string>> end;
    for (size_t k = 0; k < top; ++k) end[b[k]->lhs->name] = Held{b[k]->rhs, 0};
    for (size_t k = bottom; k < b.size(); ++k) {
      const std::string& from = b[k]->rhs->name;
      auto it = end.find(from);
      if (it != end.end())
        end[b[k]->lhs->name] = it->second;
      else
        end[b[k]->lhs->name] = from;
    }
    std::map<std::string, Held> held;
    std::function<std::optional<Held>(const std::string&, size_t)> at_top = [&](const std::string& r,
                                                                                 size_t depth) -> std::optional<Held> {
      auto it = end.find(r);
      if (it == end.end() || middle.count(r) || depth > end.size()) return std::nullopt;
      if (const Held* h = std::get_if<Held>(&it->second)) return Held{h->access, h->shift - 1};
      auto earlier = at_top(std::get<std::string>(it->second), depth + 1);
      if (!earlier) return std::nullopt;
      return Held{earlier->access, earlier->shift - 1};
    };
    for (const auto& [r, _] : end) {
      auto h = at_top(r, 0);
      if (!h) continue;
      // Its value before the loop: the element at i = lo + shift.
      Stmt last;
      for (const auto& st : before)
        if (st->kind == StmtKind::Assign && st->lhs->kind == ExprKind::Var && st->lhs->name == r) last = st;
      if (!last || last->rhs->kind != ExprKind::Access || last->rhs->name != h->access->name) continue;
      Expr first = substitute(h->access->args[0], {{i, iadd(loop->lo, ilit(h->shift))}});
      auto a = index_form(first), c = index_form(last->rhs->args[0]);
      if (!a || !c || key(h->access->name, *a, false) != key(h->access->name, *c, false) || a->constant != c->constant)
        continue;
      held[r] = *h;
    }
    return held;
  }

  // The elements the rotated registers of each lane hold at the top of the loop `loop`'s body:
  // (group, position) -> the lane's register (see flush).
  std::map<std::pair<std::string, int64_t>, std::string> held_elements(const std::map<std::string, Held>& held,
                                                                       const Stmt& loop) const {
    std::map<std::pair<std::string, int64_t>, std::string> out;
    for (const auto& [r, h] : held) {
      Expr idx = substitute(h.access->args[0], {{loop->var, iadd(ivar(loop->var), ilit(h.shift))}});
      auto a = index_form(idx);
      // The lanes' registers are loaded from one chunk, whole (unguarded: see flush), so each holds
      // its element whether or not its lane is in the range.
      auto size = sizes_.find(h.access->name);
      if (!a || !in_chunks(*a, v_, lanes_) || size == sizes_.end() || size->second % lanes_ != 0 ||
          a->constant % lanes_ != 0)
        continue;
      for (int64_t u = 0; u < lanes_; ++u) out[{key(h.access->name, *a, true), a->constant + u}] = renamed(r, u);
    }
    return out;
  }

  Block gen(const Block& b, const std::map<std::pair<std::string, int64_t>, std::string>& held = {}) {
    Block out, run;
    bool first = true;  // the run at the top of the block: the held elements apply
    for (const auto& st : b) {
      if (st->kind != StmtKind::For) {
        run.push_back(st);
        continue;
      }
      auto inner = held_elements(rotated(run, st), st);
      flush(run, out, first ? held : decltype(inner){});
      run.clear();
      first = false;
      auto n = copy(st);
      n->body = gen(st->body, inner);
      out.push_back(n);
    }
    flush(run, out, first ? held : decltype(held){});
    return out;
  }
};

Block rewrite(const Block& b, const std::string& worker, int64_t workers, const std::set<std::string>& aliased,
              const std::map<std::string, int64_t>& sizes, bool read_only, std::map<std::string, int64_t>& alignment,
              bool& changed, int& counter) {
  Block out;
  for (const auto& s : b) {
    if (s->kind == StmtKind::For) {
      auto v = LoopVectorizer(s, worker, workers, aliased, counter).run(alignment);
      if (!v) v = GroupVectorizer(s, worker, workers, aliased, sizes, read_only, counter).run(alignment);
      if (v) {
        out.insert(out.end(), v->begin(), v->end());
        changed = true;
        continue;
      }
    }
    auto n = with_blocks(
        s, [&](const Block& x) {
          return rewrite(x, worker, workers, aliased, sizes, read_only, alignment, changed, counter);
        });
    out.push_back(n);
  }
  return out;
}

}  // namespace

int64_t column_group_lanes(const Block& body, const std::string& col) {
  int64_t widest = 0;
  std::vector<Affine> forms;
  bool ok = true;
  visit_block(body, [&](const Stmt& st) {
    auto check = [&](const Expr& e) {
      if (!e) return;
      visit_expr(e, [&](const Expr& x) {
        if (x->kind != ExprKind::Access || !mentions(x->args[0], col)) return;
        auto a = affine(x->args[0], [&](const Expr& t) -> std::optional<Affine> {
          if (t->kind == ExprKind::Var) return affine_atom(t->name);
          return std::nullopt;
        });
        if (!a) {
          ok = false;
          return;
        }
        widest = std::max<int64_t>(widest, elem_bytes(x->ty.elem));
        forms.push_back(*a);
      });
    };
    check(st->lhs);
    check(st->rhs);
  });
  if (!ok || widest == 0 || widest > 8) return 1;
  int64_t lanes = 16 / widest;
  for (const auto& a : forms)
    if (!in_chunks(a, col, lanes)) return 1;
  return lanes;
}

Vectorized vectorize_inner_loops(const Block& body, const std::string& worker, int64_t workers,
                                 const std::set<std::string>& aliased, const std::map<std::string, int64_t>& sizes) {
  Vectorized v;
  bool changed = false;
  int counter = 0;
  Block b = rewrite(body, worker, workers, aliased, sizes, runs_strips(body), v.alignment, changed, counter);
  if (changed) v.body = std::move(b);
  return v;
}

void vectorize_kernels(GpuProgram& prog) {
  for (auto& k : prog.kernels) {
    std::map<std::string, int64_t> sizes;
    for (const auto& p : k.params)
      if (p.type.is_array()) sizes[p.name] = p.type.numel();
    Vectorized vec = vectorize_inner_loops(k.body, k.inner_worker, k.inner_workers, prog.aliased, sizes);
    k.vector_body = std::move(vec.body);
    k.alignment = std::move(vec.alignment);
  }
}

}  // namespace parpy
