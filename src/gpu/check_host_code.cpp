#include "gpu/check_host_code.h"

namespace parpy {

static void check_expr(const Expr& e) {
  visit_expr(e, [](const Expr& x) {
    if (x->kind == ExprKind::Access)
      fail("Assignments are not allowed outside parallel code.", x->span);
  });
}

void check_host_code(const Block& b) {
  for (const auto& s : b) {
    if (s->kind == StmtKind::WithGpu || (s->kind == StmtKind::For && s->par.is_parallel())) continue;
    for (const Expr* e : {&s->lhs, &s->rhs, &s->cond, &s->lo, &s->hi})
      if (*e) check_expr(*e);
    check_host_code(s->body);
    check_host_code(s->orelse);
  }
}

}  // namespace parpy
