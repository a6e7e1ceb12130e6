"""Python floats are passed when the code runs (docs/language.md, Scalars): a new value compiles
nothing, and the value is weakly typed like a literal. Results compared with numpy."""

import numpy as np
import parpy
from common import make_opts

RNG = np.random.default_rng()


@parpy.jit
def step(x, y, dt, N):
    parpy.label("N")
    for i in range(N):
        y[i] = y[i] + dt * x[i]


@parpy.jit
def blend(p, x, y, N):
    parpy.label("N")
    for i in range(N):
        if x[i] > p["threshold"]:
            y[i] = p["scale"] * x[i]
        else:
            y[i] = x[i]


def test_ten_values_of_a_float_compile_once(backend):
    N = 300
    x = RNG.standard_normal(N).astype(np.float32)
    y = np.zeros(N, np.float32)
    want = np.zeros(N, np.float32)
    o = make_opts(backend, N=N)
    before = parpy.parpy.stats()["compiles"]
    # The function is shared by the backends' runs of this test: count what this run adds.
    entries = step._cache_size()
    for dt in RNG.random(10):
        step(x, y, float(dt), N, opts=o)
        want = want + np.float32(dt) * x
    assert parpy.parpy.stats()["compiles"] - before == 1
    assert step._cache_size() - entries == 1
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_float_dict_fields_are_read_at_run_time(backend):
    N = 200
    x = RNG.standard_normal(N)
    o = make_opts(backend, N=N)
    entries = blend._cache_size()
    for threshold, scale in [(0.0, 2.0), (0.5, -3.0), (-1.0, 0.25)]:
        y = np.zeros(N)
        blend({"threshold": threshold, "scale": scale}, x, y, N, opts=o)
        np.testing.assert_array_equal(y, np.where(x > threshold, scale * x, x))
    assert blend._cache_size() - entries == 1


def test_a_float_keeps_float32_arithmetic_and_the_code_does_not_name_its_value():
    x = np.zeros(8, np.float32)
    o = make_opts(parpy.CompileBackend.Cpu, N=8)
    a = parpy.print_compiled(step, [x, x.copy(), 0.1, 8], o)
    b = parpy.print_compiled(step, [x, x.copy(), 0.7, 8], o)
    assert a == b
    assert "((float)v_dt) * v_x[v_i]" in a, a
