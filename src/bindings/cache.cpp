// The disk cache's ties to Python: its refusals as PermissionError, its warnings through the
// warnings module, and Ctrl-C (KeyboardInterrupt) ending a compilation in flight.
#include <nanobind/nanobind.h>

#include <cstdio>
#include <exception>

#include "bindings/bind.h"
#include "jit/disk_cache.h"
#include "jit/process.h"

namespace nb = nanobind;

namespace parpy {
namespace {

// The exception a signal handler raised while this thread waited for a compiler (KeyboardInterrupt
// from Ctrl-C), raised again when the Interrupted that ended the wait reaches Python.
struct PendingException {
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* traceback = nullptr;
};
thread_local PendingException pending;

bool python_can_run() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsInitialized() && !Py_IsFinalizing();
#else
  return Py_IsInitialized() && !_Py_IsFinalizing();
#endif
}

// Runs Python's signal handlers (they run in the main thread only). True if one raised.
bool python_interrupt_pending() {
  if (!python_can_run()) return false;
  PyGILState_STATE state = PyGILState_Ensure();
  bool raised = PyErr_CheckSignals() != 0;
  if (raised) {
    Py_XDECREF(pending.type);
    Py_XDECREF(pending.value);
    Py_XDECREF(pending.traceback);
    PyErr_Fetch(&pending.type, &pending.value, &pending.traceback);
  }
  PyGILState_Release(state);
  return raised;
}

void python_warning(const std::string& message) {
  if (!python_can_run()) {
    std::fprintf(stderr, "parpy: warning: %s\n", message.c_str());
    return;
  }
  PyGILState_STATE state = PyGILState_Ensure();
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  if (PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 1) != 0) {
    // Warnings turned into errors: the message still reaches the user.
    PyErr_Clear();
    std::fprintf(stderr, "parpy: warning: %s\n", message.c_str());
  }
  PyErr_Restore(type, value, traceback);
  PyGILState_Release(state);
}

}  // namespace

void bind_cache(nb::module_&) {
  jit::set_interrupt_check(&python_interrupt_pending);
  jit::set_warning_handler(&python_warning);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const jit::Interrupted& e) {
      if (pending.type != nullptr) {
        PyErr_Restore(pending.type, pending.value, pending.traceback);
        pending = PendingException{};
      } else {
        PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
      }
    } catch (const jit::CacheError& e) {
      PyErr_SetString(PyExc_PermissionError, e.what());
    }
  });
}

}  // namespace parpy
