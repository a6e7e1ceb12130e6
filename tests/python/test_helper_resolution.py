"""A call `step(...)` in a jit function calls what `step` is bound to where the function is
decorated (its globals and closure), as Python would, not whichever jit function was last
decorated under that name. Modules A and B (tests/python/helper_pkg) define jit functions and
externals under the same names with different bodies."""

import importlib.util
import itertools
import os
import shutil
import subprocess

import helper_pkg.mod_a
import numpy as np
import parpy
import pytest
from helper_pkg import mod_a, mod_b
from helper_pkg.mod_a import step as step_a
from helper_pkg.mod_b import step as step_b
from locations import SourceLocations
from parpy import CompileBackend, Target
from parpy.types import F32, F64
from common import make_opts

LOCATIONS = SourceLocations(__file__)
loc = LOCATIONS.loc
HELPER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helper_pkg")

RNG = np.random.default_rng(23)
N = 257


pytestmark = pytest.mark.usefixtures("fresh_cache")


def rand(dtype=np.float32):
    return RNG.standard_normal(N).astype(dtype)


# What the helpers of module A and module B compute, in numpy (float32 like the helpers).
def ref_step_a(a, b):
    return a * np.float32(2.0) + b


def ref_step_b(a, b):
    return a - np.float32(3.0) * b


def ref_update_a(x, y):
    return ref_step_a(x, y) - np.float32(1.0)


def ref_update_b(x, y):
    return ref_step_b(y, x) * np.float32(0.5)


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


_fresh = itertools.count()


def load_fresh(name):
    """A new module object from helper_pkg/<name>.py, decorated now (not the cached import)."""
    spec = importlib.util.spec_from_file_location(
        f"helper_fresh_{name}_{next(_fresh)}", os.path.join(HELPER_DIR, name + ".py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def caller_of(step):
    """A jit function calling the `step` given (bound in its closure) in an expression."""

    @parpy.jit
    def f(x, y, out, N):
        parpy.label("N")
        for i in range(N):
            out[i] = step(x[i], y[i])

    return f


def inliner_of(update):
    """A jit function calling the `update` given as a statement (inlined)."""

    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            update(x, y, i)

    return f


# ----- each caller runs the helper its name is bound to ------------------------------------------


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_each_module_calls_its_own_step(backend, order):
    mods = {c: load_fresh("mod_" + c) for c in order}
    a, b = mods["a"], mods["b"]
    x, y = rand(), rand()
    for mod, ref in ((a, ref_step_a), (b, ref_step_b)):
        out = np.zeros(N, np.float32)
        mod.apply_step(x, y, out, N, opts=make_opts(backend, N=64))
        close(out, ref(x, y))


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_caller_runs_the_step_it_imported(backend, order):
    mods = {c: load_fresh("mod_" + c) for c in order}
    with_a, with_b = caller_of(mods["a"].step), caller_of(mods["b"].step)
    x, y = rand(), rand()
    out_a, out_b = np.zeros(N, np.float32), np.zeros(N, np.float32)
    opts = make_opts(backend, N=64)
    with_a(x, y, out_a, N, opts=opts)
    with_b(x, y, out_b, N, opts=opts)
    close(out_a, ref_step_a(x, y))
    close(out_b, ref_step_b(x, y))
    # Same caller source, same helper name: the generated code (the disk cache's key) differs.
    code_a = parpy.print_compiled(with_a, [x, y, out_a, N], opts)
    code_b = parpy.print_compiled(with_b, [x, y, out_b, N], opts)
    assert code_a != code_b


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_inlined_update_runs_its_module(backend, order):
    mods = {c: load_fresh("mod_" + c) for c in order}
    x = rand()
    for mod, ref in ((mods["a"], ref_update_a), (mods["b"], ref_update_b)):
        y = rand()
        expected = ref(x, y)
        mod.apply_update(x, y, N, opts=make_opts(backend, N=64))
        close(y, expected)
        y = rand()
        expected = ref(x, y)
        inliner_of(mod.update)(x, y, N, opts=make_opts(backend, N=64))
        close(y, expected)


# ----- imported, aliased and module-qualified names, both modules in one program -----------------


@parpy.jit
def both_steps(x, y, out_a, out_b, out_sum, N):
    parpy.label("N")
    for i in range(N):
        out_a[i] = mod_a.step(x[i], y[i])
        out_b[i] = helper_pkg.mod_b.step(x[i], y[i])
        out_sum[i] = step_a(x[i], y[i]) + step_b(y[i], x[i])


def test_both_steps_in_one_program(backend):
    x, y = rand(), rand()
    outs = [np.zeros(N, np.float32) for _ in range(3)]
    opts = make_opts(backend, N=64)
    both_steps(x, y, *outs, N, opts=opts)
    close(outs[0], ref_step_a(x, y))
    close(outs[1], ref_step_b(x, y))
    close(outs[2], ref_step_a(x, y) + ref_step_b(y, x))
    code = parpy.print_compiled(both_steps, [x, y, *outs, N], opts)
    # Two helpers named `step`: unique names in the generated code, the same on every print.
    assert "helper_step(" in code and "helper_step_1(" in code and "helper_step_2(" not in code
    assert code == parpy.print_compiled(both_steps, [x, y, *outs, N], opts)


@parpy.jit
def both_updates(x, y, z, out, N):
    parpy.label("N")
    for i in range(N):
        # Inlined bodies keep their module's `step`, next to this module's A `step`.
        mod_a.update(x, y, i)
        helper_pkg.mod_a.update(x, z, i)
        mod_b.update(x, z, i)
        out[i] = step_a(x[i], y[i])


def test_both_inlined_updates_in_one_program(backend):
    x, y, z = rand(), rand(), rand()
    out = np.zeros(N, np.float32)
    y_new = ref_update_a(x, y)
    z_new = ref_update_b(x, ref_update_a(x, z))
    both_updates(x, y, z, out, N, opts=make_opts(backend, N=64))
    close(y, y_new)
    close(z, z_new)
    close(out, ref_step_a(x, y_new))


def test_local_alias_and_module_object(backend):
    # Names bound in the decorating function (its locals) resolve too.
    fresh_b = load_fresh("mod_b")
    plus = fresh_b.step

    @parpy.jit
    def f(x, y, out, N):
        parpy.label("N")
        for i in range(N):
            out[i] = plus(x[i], y[i]) + fresh_b.step(y[i], x[i])

    x, y = rand(), rand()
    out = np.zeros(N, np.float32)
    f(x, y, out, N, opts=make_opts(backend, N=64))
    close(out, ref_step_b(x, y) + ref_step_b(y, x))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("name", ["steps", "updates", "externals"])
def test_generated_cuda_compiles(name, tmp_path):
    # Without a GPU: the Cuda code of programs with same-name helpers and externals builds.
    opts = make_opts(CompileBackend.Cuda, N=64)
    f32, f64 = np.zeros(N, np.float32), np.zeros(N)

    @parpy.jit
    def picks(x, y, lo, hi, N):
        parpy.label("N")
        for i in range(N):
            lo[i] = mod_a.ext_pick(x[i], y[i])
            hi[i] = mod_b.ext_pick(x[i], y[i])

    fun, args = {
        "steps": (both_steps, [f32] * 5 + [N]),
        "updates": (both_updates, [f32] * 4 + [N]),
        "externals": (picks, [f64] * 4 + [N]),
    }[name]
    code = parpy.print_compiled(fun, args, opts)
    src = tmp_path / "k.cu"
    src.write_text(code)
    cmd = ["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(), str(src), "-o",
           str(tmp_path / "k.o")]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, code + "\n" + r.stderr


# ----- externals --------------------------------------------------------------------------------


def test_same_name_externals_of_two_modules(backend):
    @parpy.jit
    def f(x, y, lo, hi, N):
        parpy.label("N")
        for i in range(N):
            lo[i] = mod_a.ext_pick(x[i], y[i])
            hi[i] = mod_b.ext_pick(x[i], y[i])

    x, y = rand(np.float64), rand(np.float64)
    lo, hi = np.zeros(N), np.zeros(N)
    f(x, y, lo, hi, N, opts=make_opts(backend, N=64))
    np.testing.assert_array_equal(lo, np.minimum(x, y))
    np.testing.assert_array_equal(hi, np.maximum(x, y))


def test_external_declared_per_backend_in_separate_definitions(backend):
    # mod_a declares ext_pick for Cuda, then again for Cpu: the name knows both.
    assert {d.backend for d in mod_a.ext_pick._parpy_externals} == {
        CompileBackend.Cuda,
        CompileBackend.Cpu,
    }
    pick = mod_a.ext_pick

    @parpy.jit
    def f(x, y, out, N):
        parpy.label("N")
        for i in range(N):
            out[i] = pick(x[i], y[i])

    x, y = rand(np.float64), rand(np.float64)
    out = np.zeros(N)
    f(x, y, out, N, opts=make_opts(backend, N=64))
    np.testing.assert_array_equal(out, np.minimum(x, y))


@parpy.external("std::fmax", CompileBackend.Cpu, Target.Device, header="<cmath>")
def local_pick(a: F64, b: F64) -> F64:
    return max(a, b)


def test_external_shadowed_by_a_local_jit_function(backend):
    # The module defines external `local_pick`; a local jit function of that name wins here.
    @parpy.jit
    def local_pick(a: F64, b: F64):
        return a + b

    @parpy.jit
    def f(x, y, out, N):
        parpy.label("N")
        for i in range(N):
            out[i] = local_pick(x[i], y[i])

    x, y = rand(np.float64), rand(np.float64)
    out = np.zeros(N)
    f(x, y, out, N, opts=make_opts(backend, N=64))
    np.testing.assert_array_equal(out, x + y)


# ----- names bound after decoration -------------------------------------------------------------


def test_helper_defined_later_in_module(backend):
    x = rand(np.float64)
    out = np.zeros(N)
    mod_a.apply_later(x, out, N, opts=make_opts(backend, N=64))
    np.testing.assert_allclose(out, x * x + 0.5, rtol=1e-15)


def test_helper_defined_later_in_function(backend):
    @parpy.jit
    def f(x, out, N):
        parpy.label("N")
        for i in range(N):
            out[i] = twice_plus_one(x[i])
            bump(out, i)

    @parpy.jit
    def twice_plus_one(a: F32):
        return a * 2.0 + 1.0

    @parpy.jit
    def bump(out, i):
        out[i] = out[i] + 1.0

    x = rand()
    out = np.zeros(N, np.float32)
    opts = make_opts(backend, N=64)
    assert "helper_twice_plus_one(" in parpy.print_compiled(f, [x, out, N], opts)
    f(x, out, N, opts=opts)
    close(out, x * np.float32(2.0) + np.float32(2.0))


def test_unbound_name_is_unknown_at_first_call():
    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = never_defined(x[i])  # @never_defined  # noqa: F821

    with pytest.raises(RuntimeError) as e:
        f(np.zeros(4, np.float32), 4, opts=make_opts(CompileBackend.Cpu, N=2))
    msg = ("Call to unknown function never_defined.\nA jit function can call the builtins of "
           "parpy.operators (exp, log, sin, cos, sqrt, tanh, atan2, abs, min, max, sum, prod and "
           "conversions such as float32), other @parpy.jit functions, and C functions declared "
           "with @parpy.external.")
    assert str(e.value) == loc(msg, "never_defined", "never_defined(x[i])")


def test_recursive_call_is_rejected():
    @parpy.jit
    def rec(a: F32):
        return rec(a)  # @rec_call

    with pytest.raises(RuntimeError) as e:
        rec._ir  # noqa: B018 - converting it reports the recursion
    assert str(e.value) == loc(
        "Recursive call to rec, which is not supported: jit functions cannot call themselves, "
        "directly or through other functions",
        "rec_call",
        "rec(a)",
    )


def test_mutual_recursion_is_rejected():
    @parpy.jit
    def ping(a: F32):
        return pong(a) + 1.0  # @pong_call

    @parpy.jit
    def pong(a: F32):
        return ping(a) * 2.0

    with pytest.raises(RuntimeError) as e:
        pong._ir  # noqa: B018
    assert str(e.value) == loc(
        "Recursive call to pong, which is not supported: jit functions cannot call themselves, "
        "directly or through other functions",
        "pong_call",
        "pong(a)",
    )


# ----- calls to things that are not parpy functions ---------------------------------------------


def plain_python(a):
    return a + 1.0


def test_call_to_plain_python_function_in_expression():
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in range(N):
                x[i] = plain_python(x[i])  # @plain_expr

    msg = ("Cannot call plain_python from jit code: it is a plain Python function. Decorate it "
           "with @parpy.jit (or declare it with @parpy.external)")
    assert str(e.value) == loc(msg, "plain_expr", "plain_python(x[i])")


def test_call_to_plain_python_function_in_statement():
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in range(N):
                mod_a.plain_helper(x, i)  # @plain_stmt

    msg = ("Cannot call mod_a.plain_helper from jit code: it is a plain Python function. "
           "Decorate it with @parpy.jit (or declare it with @parpy.external)")
    assert str(e.value) == loc(msg, "plain_stmt", "mod_a.plain_helper(x, i)")
