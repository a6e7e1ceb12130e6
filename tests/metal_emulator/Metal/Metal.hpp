// A working stand-in for the parts of metal-cpp's Metal that parpy_metal.h uses, for the Metal
// CPU emulator (see ../metal_emu_kernel.h). The signatures are metal-cpp's. The "GPU" is the
// emulator: newLibrary finds the kernels registered for the MSL text (the harness compiles the
// text as C++ and registers its kernels), buffers are host memory in shared storage, a command
// buffer runs its dispatches in order when committed, and a failed dispatch (as the emulator
// reports it) gives the command buffer an error status and error. Misuse that Metal's API
// validation would report (a buffer index past Metal's 31, more than 4 KB of setBytes, encoding
// after endEncoding or on a committed command buffer) fails the command buffer too.
#pragma once
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../Foundation/Foundation.hpp"
#include "../metal_emu_runtime.h"

namespace MTL {
using ResourceOptions = NS::UInteger;
constexpr ResourceOptions ResourceStorageModeShared = 0;
enum DispatchType : NS::UInteger { DispatchTypeSerial = 0, DispatchTypeConcurrent = 1 };
enum CommandBufferStatus : NS::UInteger {
  CommandBufferStatusNotEnqueued = 0,
  CommandBufferStatusEnqueued = 1,
  CommandBufferStatusCommitted = 2,
  CommandBufferStatusScheduled = 3,
  CommandBufferStatusCompleted = 4,
  CommandBufferStatusError = 5,
};

struct Size {
  Size(NS::UInteger width, NS::UInteger height, NS::UInteger depth) : width(width), height(height), depth(depth) {}
  NS::UInteger width, height, depth;
};

class Function : public NS::Object {
 public:
  explicit Function(const parpy_emu::KernelEntry* k) : kernel(k) {}
  const parpy_emu::KernelEntry* kernel;
};

class Library : public NS::Object {
 public:
  explicit Library(std::string source) : source_(std::move(source)) {}
  Function* newFunction(const NS::String* functionName) {
    const parpy_emu::KernelEntry* k = parpy_emu::find_kernel(source_.c_str(), functionName->utf8String());
    return k ? new Function(k) : nullptr;
  }

 private:
  std::string source_;
};

class CompileOptions : public NS::Object {
 public:
  static CompileOptions* alloc() { return new CompileOptions(); }
  CompileOptions* init() { return this; }
  void setFastMathEnabled(bool fastMathEnabled) { fast_math = fastMathEnabled; }
  bool fast_math = true;  // Metal's default
};

class ComputePipelineState : public NS::Object {
 public:
  explicit ComputePipelineState(const parpy_emu::KernelEntry* k) : kernel(k) {}
  NS::UInteger maxTotalThreadsPerThreadgroup() const { return kernel->max_threads < 1024 ? kernel->max_threads : 1024; }
  NS::UInteger threadExecutionWidth() const { return 32; }
  const parpy_emu::KernelEntry* kernel;
};

class Buffer : public NS::Object {
 public:
  explicit Buffer(NS::UInteger length) : length_(length) {
    // Page-aligned storage like Metal's, 0xcd bytes where nothing was copied in.
    data_ = std::aligned_alloc(16384, (length + 16383) / 16384 * 16384);
    std::memset(data_, 0xcd, length);
  }
  ~Buffer() override { std::free(data_); }
  void* contents() { return data_; }
  NS::UInteger length() const { return length_; }

 private:
  void* data_;
  NS::UInteger length_;
};

namespace emu {
struct Dispatch {
  const parpy_emu::KernelEntry* kernel;
  std::vector<parpy_emu::Binding> bindings;
  std::vector<std::vector<unsigned char>> bytes;  // setBytes copies, by index
  NS::UInteger grid, threads;
};
}  // namespace emu

class CommandBuffer;

class ComputeCommandEncoder : public NS::Object {
 public:
  explicit ComputeCommandEncoder(CommandBuffer* cmd) : cmd_(cmd) {}
  void setComputePipelineState(const ComputePipelineState* state) {
    check_open();
    pipeline_ = state;
  }
  void setBuffer(const Buffer* buffer, NS::UInteger offset, NS::UInteger index) {
    if (!slot(index)) return;
    auto* b = const_cast<Buffer*>(buffer);
    if (!b || offset > b->length()) return invalid("setBuffer with no buffer or an offset past its end");
    bindings_[index] = parpy_emu::Binding();
    bindings_[index].ptr = static_cast<char*>(b->contents()) + offset;
    bindings_[index].avail = b->length() - offset;
    bindings_[index].set = true;
    bytes_[index].clear();
  }
  void setBytes(const void* bytes, NS::UInteger length, NS::UInteger index) {
    if (!slot(index)) return;
    if (length == 0 || length > 4096) return invalid("setBytes of " + std::to_string(length) + " bytes (Metal: 1 to 4096)");
    bytes_[index].assign(static_cast<const unsigned char*>(bytes), static_cast<const unsigned char*>(bytes) + length);
    bindings_[index] = parpy_emu::Binding();
    bindings_[index].bytes = length;
    bindings_[index].set = true;
  }
  inline void dispatchThreadgroups(Size threadgroupsPerGrid, Size threadsPerThreadgroup);
  void endEncoding() { ended_ = true; }

 private:
  inline void invalid(const std::string& what);
  void check_open() {
    if (ended_) invalid("encoding on an encoder after endEncoding");
  }
  bool slot(NS::UInteger index) {
    check_open();
    if (index >= 31) {
      invalid("argument index " + std::to_string(index) + " (Metal has buffer indices 0 to 30)");
      return false;
    }
    if (bindings_.size() <= index) {
      bindings_.resize(index + 1);
      bytes_.resize(index + 1);
    }
    return true;
  }
  CommandBuffer* cmd_;
  const ComputePipelineState* pipeline_ = nullptr;
  std::vector<parpy_emu::Binding> bindings_;
  std::vector<std::vector<unsigned char>> bytes_;
  bool ended_ = false;
};

class CommandBuffer : public NS::Object {
 public:
  ~CommandBuffer() override {
    for (auto* e : encoders_) e->release();
    if (error_) error_->release();
  }
  ComputeCommandEncoder* computeCommandEncoder(DispatchType) {
    if (status_ != CommandBufferStatusNotEnqueued) {
      invalid("a compute command encoder of a committed command buffer");
      return nullptr;
    }
    auto* e = new ComputeCommandEncoder(this);
    encoders_.push_back(e);  // owned by the command buffer, as metal-cpp's autoreleased one is in effect
    return e;
  }
  // Runs the dispatches in order (each sees the writes of the ones before); the first failure
  // ends the command buffer with an error.
  void commit() {
    if (status_ != CommandBufferStatusNotEnqueued) return invalid("commit of a committed command buffer");
    status_ = CommandBufferStatusCommitted;
    if (!invalid_.empty()) return fail(invalid_);
    for (auto& d : dispatches_) {
      for (size_t i = 0; i < d.bindings.size(); ++i)
        if (d.bindings[i].bytes) d.bindings[i].ptr = d.bytes[i].data();
      if (const char* err = parpy_emu::dispatch(d.kernel, d.bindings.data(), d.bindings.size(), d.grid, d.threads))
        return fail(err);
    }
    status_ = CommandBufferStatusCompleted;
  }
  void waitUntilCompleted() {
    if (status_ == CommandBufferStatusNotEnqueued) invalid_ = "waitUntilCompleted before commit";
  }
  CommandBufferStatus status() const { return status_; }
  NS::Error* error() const { return error_; }

  void invalid(const std::string& what) {
    if (invalid_.empty()) invalid_ = "invalid use of the Metal API: " + what;
  }
  void add(emu::Dispatch d) { dispatches_.push_back(std::move(d)); }

 private:
  void fail(const std::string& what) {
    status_ = CommandBufferStatusError;
    error_ = new NS::Error(what);
  }
  CommandBufferStatus status_ = CommandBufferStatusNotEnqueued;
  std::vector<ComputeCommandEncoder*> encoders_;
  std::vector<emu::Dispatch> dispatches_;
  std::string invalid_;
  NS::Error* error_ = nullptr;
};

inline void ComputeCommandEncoder::invalid(const std::string& what) { cmd_->invalid(what); }

inline void ComputeCommandEncoder::dispatchThreadgroups(Size grid, Size threads) {
  check_open();
  if (!pipeline_) return invalid("dispatchThreadgroups without a pipeline");
  if (grid.height != 1 || grid.depth != 1 || threads.height != 1 || threads.depth != 1)
    return invalid("the emulator runs one-dimensional dispatches only");
  emu::Dispatch d{pipeline_->kernel, bindings_, bytes_, grid.width, threads.width};
  cmd_->add(std::move(d));
}

class CommandQueue : public NS::Object {
 public:
  CommandBuffer* commandBuffer() {
    auto* c = new CommandBuffer();
    c->autorelease();
    return c;
  }
};

class Device : public NS::Object {
 public:
  CommandQueue* newCommandQueue() { return new CommandQueue(); }
  Library* newLibrary(const NS::String* source, const CompileOptions*, NS::Error** error) {
    if (!parpy_emu::has_library(source->utf8String())) {
      if (error) {
        *error = new NS::Error("the emulator has no kernels registered for this MSL text");
        (*error)->autorelease();
      }
      return nullptr;
    }
    return new Library(source->utf8String());
  }
  ComputePipelineState* newComputePipelineState(const Function* function, NS::Error**) {
    return new ComputePipelineState(function->kernel);
  }
  Buffer* newBuffer(NS::UInteger length, ResourceOptions) { return length ? new Buffer(length) : nullptr; }
  Buffer* newBuffer(const void* pointer, NS::UInteger length, ResourceOptions) {
    if (!length) return nullptr;
    auto* b = new Buffer(length);
    std::memcpy(b->contents(), pointer, length);
    return b;
  }
};

inline Device* CreateSystemDefaultDevice() {
  static Device* d = new Device();
  return d;
}
}  // namespace MTL
