"""parpy: plain Python loops, compiled to parallel code at call time.

Decorate a function with :func:`jit`, mark statements with :func:`label`, and choose how each
labelled loop runs when calling it: ``f(x, y, opts=parpy.par({'N': parpy.threads(N)}))``.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import textwrap
from collections.abc import Callable
from typing import Any

from . import backend, buffer, operators, types
from . import parpy as _native
from .buffer import sync
from .operators import gpu, label
from .parpy import (
    CompileBackend,
    CompileOptions,
    ElemSize,
    JitFunction,
    LoopPar,
    Target,
    par,
)

__version__ = "0.1.3"

__all__ = [
    "CompileBackend",
    "CompileOptions",
    "ElemSize",
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
    "types",
]


def get_include() -> str:
    """The directory of the headers that generated code includes."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


_native._set_include_dir(get_include())

# Registries (SPEC B 1.1): jit wrapper -> IR, and Python name -> IR for inlining.
_ir_asts: dict[Any, Any] = {}
_ir_by_name: dict[str, Any] = {}
_ext_decls: dict[Any, dict[str, Any]] = {}
_ext_tops: dict[str, Any] = {}


def threads(n: int) -> LoopPar:
    """A loop parallelised over ``n`` threads."""
    return LoopPar().threads(n)


def reduce() -> LoopPar:
    """A loop that performs a reduction."""
    return LoopPar().reduce()


def _parse(fun: Callable[..., Any], frame: Any) -> Any:
    lines, first_line = inspect.getsourcelines(fun)
    path = inspect.getsourcefile(fun) or "<unknown>"
    path = os.path.abspath(path) if os.path.exists(path) else path
    first = lines[0]
    col_offset = len(first) - len(first.lstrip())
    tree = ast.parse(textwrap.dedent("".join(lines)))
    # Anything else (a lambda, say) is reported natively as an unexpected AST shape.
    fdef = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), tree.body[0])
    return _native.python_to_ir(
        fdef,
        path,
        first_line - 1,
        col_offset,
        frame.f_globals,
        frame.f_locals,
        _ir_by_name,
        _ext_decls,
    )


def _parse_in_caller(fun: Callable[..., Any]) -> Any:
    """Parses ``fun`` with the namespaces of the frame that called our caller (SPEC B 1.2)."""
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
    try:
        return _parse(fun, caller)
    finally:
        del frame, caller


def jit(fun: Callable[..., Any]) -> Any:
    """Compiles ``fun`` at each call for the call's argument types, shapes and scalar values."""
    ir = _parse_in_caller(fun)
    wrapper = JitFunction(ir)
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        if hasattr(fun, attr):
            setattr(wrapper, attr, getattr(fun, attr))
    wrapper.__wrapped__ = fun
    _ir_asts[wrapper] = ir
    _ir_by_name[fun.__name__] = ir
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
    (SPEC B 1.5). The generated code includes ``header`` when given. The decorated function
    still runs its Python body when called from Python."""
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

        @functools.wraps(fun)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fun(*args, **kwargs)

        wrapper._parpy_external = decl  # type: ignore[attr-defined]
        return wrapper

    return decorate


def print_compiled(fun: Callable[..., Any], args: list[Any] | tuple[Any, ...],
                   opts: CompileOptions = _default_opts) -> str:
    """The code generated for calling ``fun`` with ``args`` and ``opts`` (nothing is built)."""
    if fun in _ir_asts:
        ir = _ir_asts[fun]
    elif getattr(fun, "_parpy_external", None) is not None:
        raise RuntimeError(
            f"Expected {fun.__name__} to be a function definition, but it is an external "
            "function declaration"
        )
    else:
        ir = _parse_in_caller(fun)
    return _native.print_compiled(ir, tuple(args), opts)


def clear_cache() -> None:
    """Forgets every compiled function, in memory and on disk. Builds in flight (in other threads
    or processes) are not disturbed: they finish and store their libraries."""
    _native.clear_cache()


def compile_string(fun_name: str, code: str, opts: CompileOptions = _default_opts) -> Any:
    """Builds ``code``, which defines ``extern "C" int32_t fun_name(...)`` in the generated
    calling convention (arrays as pointers, scalars by value, dicts expanded by sorted key),
    and returns a callable ``inner(*args)`` (SPEC B 1.5). ``print_compiled`` output round-trips.
    """
    return _native.StringFunction(fun_name, code, opts)
