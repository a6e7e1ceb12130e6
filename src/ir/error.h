// Compile errors carry a kind (mapped to a Python exception class) and a source span.
#pragma once
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace parpy {

// A source location: absolute 1-based lines and 0-based columns in `file`.
struct Span {
  std::shared_ptr<const std::string> file;
  int line = 0, col = 0, end_line = 0, end_col = 0;
  bool known() const { return file != nullptr && line > 0; }
};

// Reads the lines of a source file that is not on disk (code kept in memory, such as notebook
// cells) for error excerpts; none if unknown. The Python module installs one (linecache).
using SourceLines = std::vector<std::string> (*)(const std::string& file);
void set_fallback_source(SourceLines f);

// The source text a one-line span covers ("x[i + 1]"); empty when unknown or on several lines.
std::string source_text(const Span& span);

// Span covering both a and b (the first known one if the other is unknown).
Span merge(const Span& a, const Span& b);

// Index: an index proved out of range (Python's IndexError).
// Parallelism: the parallel spec asks for more than the target gives this loop nest (more
// threads than a block holds where the nest needs a barrier across them); the program is fine.
enum class ErrorKind { Runtime, Type, Name, Index, Parallelism, Internal };

class CompileError : public std::runtime_error {
 public:
  CompileError(ErrorKind kind, std::string msg, Span span = {})
      : std::runtime_error(msg), kind_(kind), msg_(std::move(msg)), span_(std::move(span)) {}
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return msg_; }
  const Span& span() const { return span_; }
  // The message followed by "On line N of file F:", the source and a caret line.
  std::string render() const;

 private:
  ErrorKind kind_;
  std::string msg_;
  Span span_;
};

[[noreturn]] inline void fail(const std::string& msg, const Span& span = {}) {
  throw CompileError(ErrorKind::Runtime, msg, span);
}
[[noreturn]] inline void type_fail(const std::string& msg, const Span& span = {}) {
  throw CompileError(ErrorKind::Type, msg, span);
}
[[noreturn]] inline void name_fail(const std::string& msg, const Span& span = {}) {
  throw CompileError(ErrorKind::Name, msg, span);
}
[[noreturn]] inline void index_fail(const std::string& msg, const Span& span = {}) {
  throw CompileError(ErrorKind::Index, msg, span);
}
[[noreturn]] inline void parallelism_fail(const std::string& msg, const Span& span = {}) {
  throw CompileError(ErrorKind::Parallelism, msg, span);
}
[[noreturn]] inline void internal_fail(const std::string& msg, const Span& span = {}) {
  throw CompileError(ErrorKind::Internal, "Internal error: " + msg, span);
}

}  // namespace parpy
