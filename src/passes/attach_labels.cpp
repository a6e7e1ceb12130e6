#include "passes/attach_labels.h"

namespace parpy {

Block attach_labels(const Block& b) {
  Block out;
  std::vector<std::string> pending;
  Span pending_span;
  for (const auto& s : b) {
    if (s->kind == StmtKind::Label) {
      if (pending.empty()) pending_span = s->span;
      pending.push_back(s->labels[0]);
      continue;
    }
    auto n = with_blocks(s, [&](const Block& x) { return attach_labels(x); });
    if (!pending.empty()) {
      if (s->kind != StmtKind::For && s->kind != StmtKind::Assign)
        fail("Cannot associate label with non-parallelizable statement", s->span);
      n->labels.insert(n->labels.begin(), pending.begin(), pending.end());
      pending.clear();
    }
    out.push_back(n);
  }
  if (!pending.empty()) fail("Found labels not associated with any statement", pending_span);
  return out;
}

}  // namespace parpy
