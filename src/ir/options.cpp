// CompileOptions and LoopPar: debug forms, cache key and scalar sizes.
#include "ir/options.h"

#include <sstream>

namespace parpy {

const char* backend_name(CompileBackend b) {
  switch (b) {
    case CompileBackend::Auto: return "Auto";
    case CompileBackend::Cuda: return "Cuda";
    case CompileBackend::Metal: return "Metal";
    case CompileBackend::Cpu: return "Cpu";
  }
  return "Auto";
}

std::string LoopPar::str() const {
  std::ostringstream os;
  os << "LoopPar { nthreads: " << nthreads << ", reduction: " << (reduction ? "true" : "false")
     << ", tpb: " << tpb << " }";
  return os.str();
}

namespace {

// Rust's Debug form of a string: quoted, with quotes, backslashes and controls escaped.
void debug_string(std::ostream& os, const std::string& s) {
  os << '"';
  for (char c : s) {
    switch (c) {
      case '"': os << "\\\""; break;
      case '\\': os << "\\\\"; break;
      case '\n': os << "\\n"; break;
      case '\r': os << "\\r"; break;
      case '\t': os << "\\t"; break;
      default: os << c;
    }
  }
  os << '"';
}

void debug_list(std::ostream& os, const std::vector<std::string>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) os << ", ";
    debug_string(os, v[i]);
  }
  os << ']';
}

void debug_elem(std::ostream& os, const std::optional<ElemSize>& e) {
  if (e) os << "Some(" << elem_name(*e) << ')';
  else os << "None";
}

const char* debug_bool(bool b) { return b ? "true" : "false"; }

}  // namespace

std::string CompileOptions::str() const {
  std::ostringstream os;
  os << "CompileOptions { parallelize: {";
  bool first = true;
  for (const auto& [k, v] : parallelize) {
    if (!first) os << ", ";
    first = false;
    debug_string(os, k);
    os << ": " << v.str();
  }
  os << "}, verbose_backend_resolution: " << debug_bool(verbose_backend_resolution)
     << ", debug_print: " << debug_bool(debug_print)
     << ", write_output: " << debug_bool(write_output)
     << ", backend: " << backend_name(backend)
     << ", use_cuda_thread_block_clusters: " << debug_bool(use_cuda_thread_block_clusters)
     << ", max_thread_blocks_per_cluster: " << max_thread_blocks_per_cluster
     << ", use_cuda_graphs: " << debug_bool(use_cuda_graphs) << ", force_int_size: ";
  debug_elem(os, force_int_size);
  os << ", force_float_size: ";
  debug_elem(os, force_float_size);
  os << ", includes: ";
  debug_list(os, includes);
  os << ", libs: ";
  debug_list(os, libs);
  os << ", extra_flags: ";
  debug_list(os, extra_flags);
  os << ", fast_math: " << debug_bool(fast_math) << ", bounds_check: " << debug_bool(bounds_check);
  // Shown only when on, so that the form of every other option set stays the original library's.
  if (autotune) os << ", autotune: true, autotune_budget_s: " << autotune_budget_s;
  os << " }";
  return os.str();
}

const std::string& CompileOptions::key() const {
  // The debug form names every field unambiguously (strings are escaped and quoted).
  if (key_cache_.empty()) key_cache_ = str();
  return key_cache_;
}

ElemSize CompileOptions::int_size() const {
  if (force_int_size) return *force_int_size;
  return backend == CompileBackend::Metal ? ElemSize::I32 : ElemSize::I64;
}

ElemSize CompileOptions::float_size() const {
  if (force_float_size) return *force_float_size;
  return backend == CompileBackend::Metal ? ElemSize::F32 : ElemSize::F64;
}

}  // namespace parpy
