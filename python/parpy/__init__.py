"""parpy: plain Python loops, compiled to parallel code at call time.

Decorate a function with :func:`jit`, mark statements with :func:`label`, and choose how each
labelled loop runs when calling it: ``f(x, y, opts=parpy.par({'N': parpy.threads(N)}))``.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import sys
import textwrap
import weakref
from collections.abc import Callable
from typing import Any

from . import parpy as _native

# Where pip installs NVRTC and the CUDA runtime headers (nvidia-cuda-nvrtc, nvidia-cuda-runtime),
# for the Cuda backend's search (python -m parpy says what it found): set before anything asks
# which backends are available, as parpy.backend does when it is imported.
_native._set_python_paths([p for p in sys.path if p and os.path.isdir(p)])

from . import autotune as _autotune  # noqa: E402
from . import backend, buffer, operators, types  # noqa: E402
from .buffer import sync
from .operators import gpu, label
from .parpy import (
    CompileBackend,
    CompileOptions,
    ElemSize,
    JitFunction,
    LoopPar,
    ParallelismError,
    Target,
    par,
)

__version__ = "0.1.3"

_native._set_autotuner(_autotune.choose)

__all__ = [
    "CompileBackend",
    "CompileOptions",
    "ElemSize",
    "ParallelismError",
    "Target",
    "backend",
    "buffer",
    "clear_cache",
    "compile_string",
    "external",
    "get_include",
    "gpu",
    "jit",
    "label",
    "operators",
    "par",
    "print_compiled",
    "reduce",
    "sync",
    "threads",
    "tuned",
    "types",
]


def get_include() -> str:
    """The directory of the headers that generated code includes."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


_native._set_include_dir(get_include())

from . import _pickling  # noqa: E402 - after the native module is set up

_pickling.install()

# Registries: jit wrapper -> IR (of the functions converted at decoration), and the external
# declarations by backend and Python name. Calls do not look names up here: a jit function calls
# what its name is bound to in the function's own namespaces (see README, "Helper functions").
# Weak keys: a jit function and its compiled libraries go with the program's last reference.
_ir_asts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_ext_decls: dict[Any, dict[str, Any]] = {}
_ext_tops: dict[str, Any] = {}
# The external declarations made under one name in one scope (module and qualified name), by
# backend: the wrapper bound to the name knows them all, so one Python name may be declared once
# per backend (the last declaration for a backend wins).
_ext_scopes: dict[tuple[str, str], dict[Any, Any]] = {}


def threads(n: int) -> LoopPar:
    """A loop parallelised over ``n`` threads."""
    return LoopPar().threads(n)


def reduce() -> LoopPar:
    """A loop that performs a reduction."""
    return LoopPar().reduce()


def _parse(fun: Callable[..., Any], globals_: dict[str, Any], locals_: Any,
           defer_unbound: bool = False) -> Any:
    try:
        lines, first_line = inspect.getsourcelines(fun)
    except OSError as e:
        # Python keeps no source for code typed at the prompt or given to exec() as a string;
        # IPython and Jupyter keep each cell's source in linecache, which inspect reads.
        code = getattr(fun, "__code__", None)
        where = f" (defined in {code.co_filename}, line {code.co_firstlineno})" if code else ""
        name = getattr(fun, "__name__", repr(fun))
        raise OSError(
            f"parpy.jit needs the source code of {name}{where}, but Python has none: functions "
            "typed at the interactive prompt or built with exec() from a string keep no source. "
            "Define the function in a file (a script or an imported module) or in a Jupyter or "
            "IPython cell."
        ) from e
    path = inspect.getsourcefile(fun) or "<unknown>"
    path = os.path.abspath(path) if os.path.exists(path) else path
    first = lines[0]
    col_offset = len(first) - len(first.lstrip())
    tree = ast.parse(textwrap.dedent("".join(lines)))
    # Anything else (a lambda, say) is reported natively as an unexpected AST shape.
    fdef = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), tree.body[0])
    return _native.python_to_ir(
        fdef, path, first_line - 1, col_offset, globals_, locals_, defer_unbound
    )


def _caller_namespaces(depth: int) -> tuple[dict[str, Any], Any]:
    """The globals and locals of the frame ``depth`` calls above our caller, where names
    resolve (docs/language.md, Names)."""
    frame = inspect.currentframe()
    caller = frame
    for _ in range(depth + 1):
        caller = caller.f_back if caller is not None else None
    try:
        if caller is None:
            return {}, {}
        return caller.f_globals, caller.f_locals
    finally:
        del frame, caller


def _parse_in_caller(fun: Callable[..., Any]) -> Any:
    """Parses ``fun`` with the namespaces of the frame that called our caller."""
    globals_, locals_ = _caller_namespaces(2)
    return _parse(fun, globals_, locals_)


def _deferred(fun: Callable[..., Any], globals_: dict[str, Any], locals_: Any) -> Any:
    """Converts ``fun`` at its first call, when a name it calls was not bound at decoration
    (a helper defined further down the module): names then resolve in the function's globals and
    its closure as they are at that call, the rest of the decorating frame's locals as they were."""
    snapshot = None if locals_ is globals_ else dict(locals_)

    def resolve(strict: bool) -> Any:
        now = fun.__globals__ if snapshot is None else dict(snapshot)
        for name, cell in zip(fun.__code__.co_freevars, fun.__closure__ or ()):
            try:
                now[name] = cell.cell_contents
            except ValueError:  # a closure variable not assigned yet
                pass
        return _parse(fun, fun.__globals__, now, defer_unbound=not strict)

    return resolve


def jit(fun: Callable[..., Any]) -> Any:
    """Compiles ``fun`` at each call for the call's argument types, shapes and int values.

    Call the result with the function's arguments and ``opts=``, the compiler options, which say
    how each labelled statement runs in parallel::

        f(x, y, N, opts=parpy.par({"N": parpy.threads(N)}))

    (``parpy.CompileOptions`` lists the other options: backend, bounds checks, build flags). Each
    new combination of dtypes, shapes, int values and options is compiled once and cached, in
    memory and on disk; later calls run the cached code. Float arguments are passed when the code
    runs: a new float value compiles nothing.

    A call ``step(...)`` or ``mod.step(...)`` in ``fun`` calls what that name is bound to where
    ``fun`` is decorated, as Python would: a ``@parpy.jit`` function or a ``@parpy.external``
    declaration. A name bound only later (a helper defined further down) is resolved at the
    first call. Jit functions pickle by reference, as plain functions do."""
    globals_, locals_ = _caller_namespaces(1)
    ir = _parse(fun, globals_, locals_, defer_unbound=True)
    wrapper = JitFunction(ir) if ir is not None else JitFunction(_deferred(fun, globals_, locals_))
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        if hasattr(fun, attr):
            setattr(wrapper, attr, getattr(fun, attr))
    wrapper.__wrapped__ = fun
    if ir is not None:
        _ir_asts[wrapper] = ir
    return wrapper


_default_opts = CompileOptions()


def external(
    ext_name: str,
    backend: CompileBackend,
    target: Target,
    header: str | None = None,
    parallelize: LoopPar | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declares the decorated function as ``ext_name`` of ``backend``, callable by its Python name
    in jit expressions; its parameters and return must be annotated with ``parpy.types``
    (docs/language.md, Functions). The generated code includes ``header`` when given. The decorated
    function still runs its Python body when called from Python."""
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    env_globals = caller.f_globals if caller is not None else {}
    env_locals = dict(caller.f_locals) if caller is not None else {}
    del frame, caller
    par = LoopPar() if parallelize is None else parallelize

    def annotation(ann: Any) -> Any:
        if ann is inspect.Parameter.empty:
            return None
        if isinstance(ann, str):
            try:
                return eval(ann, env_globals, env_locals)
            except Exception:  # noqa: BLE001 - an unknown annotation is reported natively
                return None
        return ann

    def decorate(fun: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fun)
        params = [(p.name, annotation(p.annotation)) for p in sig.parameters.values()]
        decl = _native.declare_external(
            fun.__name__, ext_name, backend, target, header, par, params,
            annotation(sig.return_annotation),
        )
        _ext_decls.setdefault(backend, {})[fun.__name__] = decl
        _ext_tops[fun.__name__] = decl
        scope = (getattr(fun, "__module__", None) or "", getattr(fun, "__qualname__", fun.__name__))
        same_name = _ext_scopes.setdefault(scope, {})
        same_name[backend] = decl

        @functools.wraps(fun)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fun(*args, **kwargs)

        wrapper._parpy_external = decl  # type: ignore[attr-defined]
        # Every backend's declaration of this name so far: a jit call resolves to this wrapper.
        wrapper._parpy_externals = tuple(same_name.values())  # type: ignore[attr-defined]
        return wrapper

    return decorate


def print_compiled(fun: Callable[..., Any], args: list[Any] | tuple[Any, ...],
                   opts: CompileOptions = _default_opts) -> str:
    """The code generated for calling ``fun`` with ``args`` and ``opts`` (nothing is built)."""
    if isinstance(fun, JitFunction):
        ir = fun._ir
    elif getattr(fun, "_parpy_external", None) is not None:
        raise RuntimeError(
            f"Expected {fun.__name__} to be a function definition, but it is an external "
            "function declaration"
        )
    else:
        ir = _parse_in_caller(fun)
    if opts.autotune and isinstance(fun, JitFunction):
        # The spec autotuning chose for this call, where it has tuned it (nothing is timed here).
        t = _autotune.tuned(fun, tuple(args), opts)
        if t is not None:
            code = _native.print_compiled(ir, tuple(args), _autotune._options(opts, t.spec, t.clusters))
            return f"// Autotuned: {t.source()}\n{code}"
        code = _native.print_compiled(ir, tuple(args), opts)
        return f"// Autotuning has not tuned this call yet: the spec as given.\n{code}"
    return _native.print_compiled(ir, tuple(args), opts)


def tuned(fun: Callable[..., Any], args: list[Any] | tuple[Any, ...],
          opts: CompileOptions) -> _autotune.Tuning | None:
    """What autotuning chose for calling ``fun`` with ``args`` and ``opts`` (``opts.autotune``
    set), in this process or an earlier one, or None when that call has not been tuned yet:
    ``.par()`` is the chosen spec as a ``parpy.par`` dict, ``.source()`` the same as code to
    paste, ``.candidates`` each spec tried with its time per call or why it failed."""
    if not isinstance(fun, JitFunction):
        raise TypeError("parpy.tuned expects a @parpy.jit function")
    return _autotune.tuned(fun, tuple(args), opts)


def _host_ir(fun: Any) -> Any:
    if not isinstance(fun, JitFunction):
        raise TypeError("Expected a @parpy.jit function")
    return fun._ir


def _host_launches(fun: Callable[..., Any], args: list[Any] | tuple[Any, ...],
                   opts: CompileOptions = _default_opts, library: str | None = None,
                   entry: str | None = None, raw: bool = False) -> list[Any]:
    """Private, for tests and tools: the kernel launches that the host code of ``fun``'s Cuda
    program asks for when called with ``args``, run without a GPU by the host-code interpreter
    (src/gpu/host_program.h), or with ``library`` by the printed host part compiled against the
    recording runtime of tools/host_program (calling ``entry``, by default the program's entry
    symbol). One tuple per launch: (kernel name, vector variant,
    grid blocks, block threads, cluster blocks, parameter values); arrays are their host addresses,
    scratch buffers 1 << 32, 2 << 32, ...; ``raw``: each value as the bytes the kernel receives."""
    return _native._host_launches(_host_ir(fun), tuple(args), opts, library, entry, raw)


def _host_program(fun: Callable[..., Any], args: list[Any] | tuple[Any, ...],
                  opts: CompileOptions = _default_opts, iterations: int = 0) -> dict[str, Any]:
    """Private: the printed host part of ``fun``'s Cuda program for ``args``, its entry symbol,
    a census of its host code, and with ``iterations`` the interpreter's time per run in ns."""
    return _native._host_program(_host_ir(fun), tuple(args), opts, iterations)


def _print_compiled_parts(fun: Callable[..., Any], args: list[Any] | tuple[Any, ...],
                          opts: CompileOptions = _default_opts) -> tuple[str, str, str]:
    """print_compiled's code, with the Cuda backend's device and host parts (empty elsewhere)."""
    ir = fun._ir if isinstance(fun, JitFunction) else _parse_in_caller(fun)
    return _native._print_compiled_parts(ir, tuple(args), opts)


def _nvrtc_info() -> dict[str, Any]:
    """The NVRTC library the Cuda backend found: found, path, source, version (major, minor),
    archs, fp16_include_dir, fp16_source, why_missing, and compiles (NVRTC runs so far)."""
    return _native._nvrtc_info()


def _nvrtc_compile(code: str, major: int, minor: int, fast_math: bool = False,
                   includes: list[str] | tuple[str, ...] = ()) -> tuple[bytes, str, str, bool]:
    """Device code compiled by NVRTC for compute capability major.minor, with the include
    directories `includes` and parpy's, through the disk cache: (image, "cubin" or "ptx", the
    architecture, whether NVRTC ran). RuntimeError with NVRTC's log on failure."""
    return _native._nvrtc_compile(code, major, minor, fast_math, list(includes))


def clear_cache() -> None:
    """Forgets every compiled function, in memory and on disk. Builds in flight (in other threads
    or processes) are not disturbed: they finish and store their libraries."""
    _native.clear_cache()
    _autotune.forget()


def compile_string(fun_name: str, code: str, opts: CompileOptions = _default_opts) -> Any:
    """Builds ``code``, which defines ``extern "C" int32_t fun_name(...)`` in the generated
    calling convention (arrays as pointers, scalars by value, dicts expanded by sorted key),
    and returns a callable ``inner(*args)`` (docs/language.md, Arguments). ``print_compiled`` output
    round-trips.
    """
    return _native.StringFunction(fun_name, code, opts)
