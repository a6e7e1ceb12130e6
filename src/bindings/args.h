// Argument marshalling of a jit call (docs/language.md, Arguments): one walk over the call's
// arguments builds the specialisation key and the entry's argument vector, and on a cache miss
// describes them for the compiler.
#pragma once
#include <nanobind/nanobind.h>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "ir/options.h"
#include "ir/abi.h"
#include "backend/backend.h"

namespace parpy {

// Raises `cls(msg)` in Python from C++ (the exception propagates through nanobind).
[[noreturn]] void py_fail(PyObject* cls, const std::string& msg);

struct DLManagedTensor;

class ArgPack : public CallArgs {
 public:
  ArgPack(const CompileOptions& opts, bool describe)
      : opts_(opts),
        describe_(describe),
        device_memory_(opts.backend != CompileBackend::Auto && backend_of(opts.backend).device_memory()) {}
  ~ArgPack();
  ArgPack(const ArgPack&) = delete;
  ArgPack& operator=(const ArgPack&) = delete;

  // Appends argument `a`, named `name` ("#1", ...) in error messages.
  void add(nanobind::handle a, const std::string& name);
  // After the last argument of a call: settles the device and stream that the 0-dim CUDA arrays
  // left on the GPU leave open (see add_device_element), checks that no array run on a copy
  // shares memory with another argument, and orders the copies of CUDA arrays before the call.
  void finish();
  // Before calling entry `e`: refuses a broadcast CUDA array (a dimension of stride 0) that the
  // code writes.
  void check_written(const Entry& e) const {
    if (!device_staged_.empty()) check_broadcast_written(e);
  }
  // After the call: writes the contiguous copies of non-contiguous arrays back into them (CUDA
  // arrays only where `e` may write them). Where the call failed (`ok` false), a failed write-back
  // of a CUDA array is ignored: the call's error is the one raised.
  void write_back(const Entry& e, bool ok);

  std::string key;
  std::vector<ArgValue> values;  // only when describing
  // (argv, host_arrays, stream and device: CallArgs)
  // The called function's parameters, when known: messages about an argument then name it.
  const std::vector<Param>* params = nullptr;
  // Which 0-dim CUDA arrays are read at call time (their value is specialised on): null, all of
  // them; else those whose paths ("#1", "#2[\"k\"]") are listed, the others staying on the GPU
  // (passed as a pointer to the element, keyed by their dtype alone).
  const std::vector<std::string>* read_paths = nullptr;

 private:
  const CompileOptions& opts_;
  bool describe_;
  bool device_memory_;  // the backend's arrays live in GPU memory (Backend::device_memory)
  std::deque<Py_buffer> views_;
  std::deque<uint64_t> slots_;  // argv storage; a deque so pointers into it stay valid
  std::vector<DLManagedTensor*> dlpack_;
  bool on_device_ = false;
  bool torch_stream_read_ = false;
  std::string device_arg_;  // the argument that set `device`, for the error about a second one
  size_t args_added_ = 0;  // top-level arguments seen so far
  // 0-dim CUDA arrays left on the GPU, by their index in argv (not when describing).
  struct DeviceElement {
    size_t index;
    void* data;
    ElemSize elem;
    int device;
    void* stream;  // the one the array names (when not torch's)
    bool torch;    // a torch tensor: on torch's current stream of its device
    std::string name;
  };
  std::vector<DeviceElement> device_elements_;

  // A non-contiguous host array runs on a contiguous copy (docs/language.md, Arguments): gathered
  // when it is added, scattered back by write_back.
  struct Staged {
    char* original;
    std::vector<Py_ssize_t> shape, strides;  // strides in bytes
    size_t itemsize;
    std::unique_ptr<char, void (*)(void*)> copy{nullptr, &std::free};
  };
  std::deque<Staged> staged_;
  // A non-contiguous torch or CuPy array runs on a contiguous copy that its library makes on the
  // GPU (python/parpy/_device_copies.py), written back after the call where the code may write it.
  struct DeviceStaged {
    nanobind::object array, copy;
    size_t index;    // in argv
    void* stream;    // the stream its library made the copy on, and writes it back on
    bool broadcast;  // a dimension of stride 0 (torch's expand): its elements share memory
    char lib;        // 't' torch, 'c' CuPy
    std::string name;
    size_t arg;
  };
  std::vector<DeviceStaged> device_staged_;
  // What add_array passes for the non-contiguous CUDA array being added (add_device_array).
  void* device_copy_ = nullptr;
  char device_lib_ = 0;
  // The memory of each array argument, to find a copied one sharing memory with another.
  struct Memory {
    uintptr_t lo, hi;  // [lo, hi): from its lowest element to the end of its highest
    bool copied;
    std::string name;
    size_t arg;  // its top-level argument's position, from 1
    char* data;  // for a copied array: where its elements are
    std::vector<Py_ssize_t> shape, strides;
    size_t itemsize;
    char lib;  // for a copied array, whose copy the fix names: 'n' numpy, 't' torch, 'c' CuPy
  };
  std::vector<Memory> memory_;

  struct Who {
    std::string who, param;
    Span where;
  };
  Who who(const std::string& name, size_t arg) const;
  [[noreturn]] void not_contiguous(const std::string& name) const;
  void* staged_copy(char* data, int ndim, const Py_ssize_t* shape, const Py_ssize_t* strides, size_t itemsize);
  void check_copies_alone() const;
  void* device_copy(nanobind::handle a, const std::vector<Py_ssize_t>& shape,
                    const std::vector<Py_ssize_t>& strides, const std::string& name, char& lib);
  void check_broadcast_written(const Entry& e) const;
  void settle_device_elements();
  void wait_for_stream(void* s, int dev);

  void* slot();
  void put_bytes(const void* p, size_t n) { key.append(static_cast<const char*>(p), n); }

  void add(nanobind::handle a, const std::string& name, ArgValue& v, bool in_dict);
  void add_int(PyObject* o, const std::string& name, ArgValue& v);
  void add_float(PyObject* o, ArgValue& v);
  void add_dict(PyObject* o, const std::string& name, ArgValue& v, bool in_dict);
  void add_array(void* data, const char* fmt, Py_ssize_t itemsize, int ndim, const Py_ssize_t* shape,
                 const Py_ssize_t* strides, bool readonly, const std::string& name, ArgValue& v);
  void add_device_array(void* data, ElemSize elem, const std::vector<Py_ssize_t>& shape,
                        const Py_ssize_t* strides, bool readonly, const std::string& name, ArgValue& v,
                        void* copy = nullptr, char lib = 0);
  void add_dlpack(nanobind::handle a, const std::string& name, ArgValue& v);
  void add_cuda_array(nanobind::handle a, const std::string& name, ArgValue& v);
  bool add_torch_cuda(PyObject* o, const std::string& name, ArgValue& v);
  void add_array_interface(nanobind::handle a, const std::string& name, ArgValue& v);
  void add_device_scalar(void* data, ElemSize elem, int device, void* array_stream, const std::string& name,
                         ArgValue& v);
  void add_device_element(void* data, ElemSize elem, int device, void* array_stream, bool torch,
                          const std::string& name, ArgValue& v);
  void read_element(void* out, void* data, ElemSize elem, int device, void* array_stream,
                    const std::string& name);
  bool reads_value(const std::string& name) const;
  void on_device(int device, const std::string& name);
  void read_torch_stream(int device);
};

}  // namespace parpy
