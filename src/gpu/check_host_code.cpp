#include "gpu/check_host_code.h"

namespace parpy {

namespace {

const char* const where =
    " outside parallel code: on a GPU backend that code runs on the CPU, which cannot reach the "
    "array in GPU memory.";

void check_reads(const Expr& e) {
  visit_expr(e, [](const Expr& x) {
    if (x->kind == ExprKind::Access)
      fail(std::string("Found a read of an array") + where +
               " Read it in a `with parpy.gpu:` block or a parallel loop of one thread "
               "(parpy.threads(1)), or read it with numpy before the call and pass the value as an "
               "argument.",
           x->span);
  });
}

}  // namespace

void check_host_code(const Block& b) {
  for (const auto& s : b) {
    if (s->kind == StmtKind::WithGpu || (s->kind == StmtKind::For && s->par.is_parallel())) continue;
    if (s->kind == StmtKind::Assign && s->lhs && s->lhs->kind == ExprKind::Access)
      fail(std::string("Found a write of an array") + where +
               " Write it in a `with parpy.gpu:` block or a parallel loop of one thread "
               "(parpy.threads(1)), or with numpy before or after the call.",
           s->lhs->span);
    for (const Expr* e : {&s->lhs, &s->rhs, &s->cond, &s->lo, &s->hi})
      if (*e) check_reads(*e);
    check_host_code(s->body);
    check_host_code(s->orelse);
  }
}

}  // namespace parpy
