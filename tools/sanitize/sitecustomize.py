"""Keeps the preloaded ASan runtime to Python processes in tools/sanitize_suite.sh runs.

The interpreter is not built with ASan, so the runtime is preloaded (LD_PRELOAD) for the sanitized
parpy module to load. Other programs must not inherit it: the compilers parpy and the tests start
(c++, nvcc) would run under ASan, slower, and nvcc crashes under it. So every Python process of the
run removes LD_PRELOAD from its environment at start-up, and points sys.executable at a wrapper
that preloads the runtime again: Python processes started by the tests (subprocess with
sys.executable) and pytest-xdist workers load the sanitized module under ASan too.

Active only when PARPY_SANITIZE_PYTHON names that wrapper (tools/sanitize_suite.sh sets it and puts
this directory on PYTHONPATH).
"""

import os
import sys

_wrapper = os.environ.get("PARPY_SANITIZE_PYTHON")
if _wrapper:
    os.environ.pop("LD_PRELOAD", None)
    sys.executable = _wrapper
