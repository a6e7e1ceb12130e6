// A declaration-only stand-in for the parts of metal-cpp's Metal that parpy_metal.h uses (see
// Foundation/Foundation.hpp). The signatures are metal-cpp's.
#pragma once
#include "../Foundation/Foundation.hpp"

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
  Size(NS::UInteger width, NS::UInteger height, NS::UInteger depth);
  NS::UInteger width, height, depth;
};

class Function : public NS::Object {};

class Library : public NS::Object {
 public:
  Function* newFunction(const NS::String* functionName);
};

class CompileOptions : public NS::Object {
 public:
  static CompileOptions* alloc();
  CompileOptions* init();
  void setFastMathEnabled(bool fastMathEnabled);
};

class ComputePipelineState : public NS::Object {
 public:
  NS::UInteger maxTotalThreadsPerThreadgroup() const;
  NS::UInteger threadExecutionWidth() const;
};

class Buffer : public NS::Object {
 public:
  void* contents();
  NS::UInteger length() const;
};

class ComputeCommandEncoder : public NS::Object {
 public:
  void setComputePipelineState(const ComputePipelineState* state);
  void setBuffer(const Buffer* buffer, NS::UInteger offset, NS::UInteger index);
  void setBytes(const void* bytes, NS::UInteger length, NS::UInteger index);
  void dispatchThreadgroups(Size threadgroupsPerGrid, Size threadsPerThreadgroup);
  void endEncoding();
};

class CommandBuffer : public NS::Object {
 public:
  ComputeCommandEncoder* computeCommandEncoder(DispatchType dispatchType);
  void commit();
  void waitUntilCompleted();
  CommandBufferStatus status() const;
  NS::Error* error() const;
};

class CommandQueue : public NS::Object {
 public:
  CommandBuffer* commandBuffer();
};

class Device : public NS::Object {
 public:
  CommandQueue* newCommandQueue();
  Library* newLibrary(const NS::String* source, const CompileOptions* options, NS::Error** error);
  ComputePipelineState* newComputePipelineState(const Function* function, NS::Error** error);
  Buffer* newBuffer(NS::UInteger length, ResourceOptions options);
  Buffer* newBuffer(const void* pointer, NS::UInteger length, ResourceOptions options);
};

Device* CreateSystemDefaultDevice();
}  // namespace MTL
