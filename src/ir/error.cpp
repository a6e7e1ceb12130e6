#include "ir/error.h"

#include <fstream>
#include <sstream>
#include <vector>

namespace parpy {

Span merge(const Span& a, const Span& b) {
  if (!a.known()) return b;
  if (!b.known()) return a;
  Span s = a;
  if (b.line < s.line || (b.line == s.line && b.col < s.col)) {
    s.line = b.line;
    s.col = b.col;
  }
  if (b.end_line > s.end_line || (b.end_line == s.end_line && b.end_col > s.end_col)) {
    s.end_line = b.end_line;
    s.end_col = b.end_col;
  }
  return s;
}

namespace {
SourceLines g_fallback_source = nullptr;
}

void set_fallback_source(SourceLines f) { g_fallback_source = f; }

namespace {

std::vector<std::string> source_lines(const std::string& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  if (in) {
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  } else if (g_fallback_source) {
    lines = g_fallback_source(file);
  }
  return lines;
}
}  // namespace

std::string source_text(const Span& span) {
  if (!span.known() || span.end_line != span.line || span.end_col <= span.col) return "";
  std::vector<std::string> lines = source_lines(*span.file);
  if (span.line > static_cast<int>(lines.size())) return "";
  const std::string& l = lines[span.line - 1];
  if (span.col >= static_cast<int>(l.size())) return "";
  return l.substr(span.col, span.end_col - span.col);
}

std::string CompileError::render() const {
  if (!span_.known()) return msg_;
  std::vector<std::string> lines = source_lines(*span_.file);
  int end_line = span_.end_line >= span_.line ? span_.end_line : span_.line;
  if (span_.line < 1 || end_line > static_cast<int>(lines.size())) return msg_;
  std::ostringstream os;
  os << msg_ << "\n\n";
  if (end_line == span_.line)
    os << "On line " << span_.line;
  else
    os << "On lines " << span_.line << "-" << end_line;
  os << " of file " << *span_.file << ":\n";
  for (int l = span_.line; l <= end_line; ++l) os << lines[l - 1] << "\n";
  int width = span_.end_col - span_.col;
  if (width < 0) width = -width;
  os << std::string(span_.col, ' ') << std::string(width, '^') << "\n";
  return os.str();
}

}  // namespace parpy
