"""End-to-end programs: compile, run and compare every output element against numpy."""

import numpy as np
import parpy
import pytest
from conftest import backends

RNG = np.random.default_rng(20240601)

ROW_SHAPES = [(1, 1), (33, 77), (1000, 513)]
VEC_SIZES = [1, 77, 100_003]
FLOATS = [np.float32, np.float64]


def make_opts(backend, parallelize=None):
    opts = parpy.par(parallelize or {})
    opts.backend = backend
    return opts


def rand(shape, dtype, lo=None, hi=None):
    if lo is None:
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.uniform(lo, hi, shape).astype(dtype)


def elem_rtol(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


def assert_sums_close(actual, x, axis=None):
    """Sums compared against a float64 reference, with an error bound scaled by sum(|x|)."""
    x64 = x.astype(np.float64)
    expected = x64.sum(axis=axis)
    scale = np.abs(x64).sum(axis=axis)
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    assert actual.shape == np.shape(expected)
    np.testing.assert_array_less(np.abs(actual - expected), tol * scale + 1e-30)


# ----- 1. the seed's three summation programs -------------------------------------------------


@parpy.jit
def sum_loop(x, y, N):
    y[0] = 0.0
    parpy.label('N')
    for i in range(N):
        y[0] += x[i]


@parpy.jit
def sum_op(x, y, N):
    parpy.label('N')
    y[0] = parpy.operators.sum(x[:])


@parpy.jit
def sum_gpu(x, y, N):
    with parpy.gpu:
        parpy.label('N')
        y[0] = parpy.operators.sum(x[:])


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("N", [100, 10**6, 10**7])
@pytest.mark.parametrize("fun", [sum_loop, sum_op, sum_gpu], ids=lambda f: f.__name__)
def test_seed_sums(backend, N, fun):
    # Positive data keeps the float32 sum well conditioned at N = 10**7.
    x = np.random.default_rng().random(N, dtype=np.float32)
    y = np.full(1, 123.0, dtype=np.float32)
    par = parpy.threads(N).reduce() if fun is sum_loop else parpy.threads(N)
    if fun is sum_loop and backend == parpy.CompileBackend.Cuda:
        # Host code cannot touch GPU memory: the seed's error, pointing at `y[0] = 0.0`.
        with pytest.raises(RuntimeError, match=r"^Found a write of an array outside parallel "
                           r"code: .* or with numpy before or after the call\.\n\nOn line \d+ of "
                           r"file .*\n    y\[0\] = 0\.0\n    \^\^\^\^\n$"):
            fun(x, y, N, opts=make_opts(backend, {'N': par}))
        return
    fun(x, y, N, opts=make_opts(backend, {'N': par}))
    expected = x.astype(np.float64).sum()
    assert abs(float(y[0]) - expected) / abs(expected) < 1e-3
    # Against numpy's own float32 sum, as the seed's example compares.
    assert abs(float(y[0]) - float(x.sum())) / abs(float(x.sum())) < 1e-3


# ----- 2. row sum, axpy, normalize, softmax, matrix-vector ------------------------------------


@parpy.jit
def rowsum_loop(x, y, N, M):
    parpy.label('outer')
    for i in range(N):
        y[i] = 0.0
        parpy.label('inner')
        for j in range(M):
            y[i] += x[i, j]


@parpy.jit
def rowsum_slice(x, y, N, M):
    parpy.label('outer')
    for i in range(N):
        parpy.label('inner')
        y[i] = parpy.operators.sum(x[i, :])


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=str)
@pytest.mark.parametrize("fun", [rowsum_loop, rowsum_slice], ids=lambda f: f.__name__)
def test_row_sum(backend, dtype, shape, fun):
    N, M = shape
    x = rand(shape, dtype)
    y = np.full(N, 7.0, dtype=dtype)
    inner = parpy.threads(min(M, 128))
    if fun is rowsum_loop:
        inner = inner.reduce()
    fun(x, y, N, M, opts=make_opts(backend, {'outer': parpy.threads(N), 'inner': inner}))
    assert_sums_close(y, x, axis=1)


@parpy.jit
def axpy_loop(a, x, y, N):
    parpy.label('N')
    for i in range(N):
        y[i] = a * x[i] + y[i]


@parpy.jit
def axpy_slice(a, x, y, N):
    parpy.label('N')
    y[:] = a * x[:] + y[:]


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("N", VEC_SIZES)
@pytest.mark.parametrize("fun", [axpy_loop, axpy_slice], ids=lambda f: f.__name__)
def test_axpy(backend, dtype, N, fun):
    a = 2.5
    x = rand(N, dtype)
    y = rand(N, dtype)
    expected = dtype(a) * x + y
    fun(a, x, y, N, opts=make_opts(backend, {'N': parpy.threads(N)}))
    assert y.dtype == dtype
    np.testing.assert_allclose(y, expected, rtol=elem_rtol(dtype), atol=1e-6)


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
def test_axpy_0dim_scalar(backend, dtype):
    N = 77
    a = np.array(-1.75, dtype=dtype)
    x = rand(N, dtype)
    y = rand(N, dtype)
    expected = a * x + y
    axpy_loop(a, x, y, N, opts=make_opts(backend, {'N': parpy.threads(N)}))
    np.testing.assert_allclose(y, expected, rtol=elem_rtol(dtype), atol=1e-6)


@parpy.jit
def normalize_rows(x, N, M):
    parpy.label('N')
    for i in range(N):
        s = 0.0
        parpy.label('R')
        for j in range(M):
            s += x[i, j]
        parpy.label('C')
        for j in range(M):
            x[i, j] = x[i, j] / s


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=str)
def test_normalize_rows(backend, dtype, shape):
    N, M = shape
    x = rand(shape, dtype, 0.5, 1.5)
    x64 = x.astype(np.float64)
    expected = x64 / x64.sum(axis=1, keepdims=True)
    t = min(M, 64)
    opts = make_opts(backend, {
        'N': parpy.threads(N),
        'R': parpy.threads(t).reduce(),
        'C': parpy.threads(t),
    })
    normalize_rows(x, N, M, opts=opts)
    np.testing.assert_allclose(x, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(x.sum(axis=1), np.ones(N), rtol=1e-4)


@parpy.jit
def softmax_rows(x, y, N, M):
    parpy.label('N')
    for i in range(N):
        parpy.label('M')
        m = parpy.operators.max(x[i, :])
        parpy.label('M')
        y[i, :] = parpy.operators.exp(x[i, :] - m)
        parpy.label('M')
        s = parpy.operators.sum(y[i, :])
        parpy.label('M')
        y[i, :] = y[i, :] / s


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=str)
def test_softmax_rows(backend, dtype, shape):
    N, M = shape
    x = rand(shape, dtype) * dtype(4.0)
    y = np.full(shape, np.nan, dtype=dtype)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    expected = e / e.sum(axis=1, keepdims=True)
    opts = make_opts(backend, {'N': parpy.threads(N), 'M': parpy.threads(min(M, 128))})
    softmax_rows(x, y, N, M, opts=opts)
    np.testing.assert_allclose(y, expected, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-7 if dtype == np.float32 else 1e-15)


@parpy.jit
def matvec_loop(A, x, y, N, M):
    parpy.label('N')
    for i in range(N):
        y[i] = 0.0
        parpy.label('M')
        for j in range(M):
            y[i] += A[i, j] * x[j]


@parpy.jit
def matvec_slice(A, x, y, N, M):
    parpy.label('N')
    for i in range(N):
        parpy.label('M')
        y[i] = parpy.operators.sum(A[i, :] * x[:])


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=str)
@pytest.mark.parametrize("fun", [matvec_loop, matvec_slice], ids=lambda f: f.__name__)
def test_matvec(backend, dtype, shape, fun):
    N, M = shape
    A = rand(shape, dtype)
    x = rand(M, dtype)
    y = np.full(N, np.nan, dtype=dtype)
    inner = parpy.threads(min(M, 128))
    if fun is matvec_loop:
        inner = inner.reduce()
    fun(A, x, y, N, M, opts=make_opts(backend, {'N': parpy.threads(N), 'M': inner}))
    prod = A.astype(np.float64) * x.astype(np.float64)[None, :]
    expected = prod.sum(axis=1)
    scale = np.abs(prod).sum(axis=1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_array_less(np.abs(y - expected), tol * scale + 1e-30)


# ----- 3. print_compiled ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_print_compiled_cpu_openmp(backend):
    N = 1000
    x = rand(N, np.float32)
    y = np.zeros(1, dtype=np.float32)
    opts = make_opts(parpy.CompileBackend.Cpu, {'N': parpy.threads(N).reduce()})
    code = parpy.print_compiled(sum_loop, [x, y, N], opts)
    assert isinstance(code, str)
    assert "#pragma omp" in code
    assert "reduction(" in code

    opts = make_opts(parpy.CompileBackend.Cpu, {'N': parpy.threads(N)})
    code = parpy.print_compiled(axpy_loop, [2.0, x, x.copy(), N], opts)
    assert "#pragma omp" in code


# ----- 5. integers, Python arithmetic, scalar/0-dim/dict arguments ----------------------------


@parpy.jit
def max_op(x, y, N):
    parpy.label('N')
    y[0] = parpy.operators.max(x[:])


@parpy.jit
def min_op(x, y, N):
    parpy.label('N')
    y[0] = parpy.operators.min(x[:])


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=lambda d: d.__name__)
def test_int_sum(backend, dtype):
    N = 10_001
    x = RNG.integers(-1000, 1000, N).astype(dtype)
    y = np.full(1, 99, dtype=dtype)
    sum_op(x, y, N, opts=make_opts(backend, {'N': parpy.threads(256)}))
    assert int(y[0]) == int(x.astype(np.int64).sum())


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=lambda d: d.__name__)
def test_int_max_min_neutral_elements(backend, dtype):
    info = np.iinfo(dtype)
    N = 1000
    opts = make_opts(backend, {'N': parpy.threads(256)})
    y = np.zeros(1, dtype=dtype)
    # All negative: a neutral element of 0 (or a truncated one) would be visible.
    x = RNG.integers(info.min, -1, N, dtype=dtype)
    max_op(x, y, N, opts=opts)
    assert y[0] == x.max()
    x = np.full(N, info.min, dtype=dtype)
    max_op(x, y, N, opts=opts)
    assert y[0] == info.min
    x = RNG.integers(1, info.max, N, dtype=dtype)
    min_op(x, y, N, opts=opts)
    assert y[0] == x.min()
    x = np.full(N, info.max, dtype=dtype)
    min_op(x, y, N, opts=opts)
    assert y[0] == info.max


@parpy.jit
def int_loop_reductions(x, out, N):
    with parpy.gpu:
        out[0] = 0
    parpy.label('N')
    for i in range(N):
        out[0] += x[i]
    parpy.label('N')
    for i in range(N):
        out[1] = parpy.operators.max(out[1], x[i])
    parpy.label('N')
    for i in range(N):
        out[2] = parpy.operators.min(out[2], x[i])


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=lambda d: d.__name__)
def test_int_reduce_loops(backend, dtype):
    info = np.iinfo(dtype)
    N = 4099
    x = RNG.integers(-50_000, 50_000, N).astype(dtype)
    out = np.array([123, info.min, info.max], dtype=dtype)
    int_loop_reductions(x, out, N, opts=make_opts(backend, {'N': parpy.threads(256).reduce()}))
    np.testing.assert_array_equal(out, [x.astype(np.int64).sum(), x.max(), x.min()])


@parpy.jit
def floordiv_mod(a, b, q, r, N):
    parpy.label('N')
    for i in range(N):
        q[i] = a[i] // b[i]
        r[i] = a[i] % b[i]


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=lambda d: d.__name__)
def test_int_floordiv_mod_python_semantics(backend, dtype):
    vals = [-7, 7, -6, 6, -1, 1, 0, -13, 13]
    divs = [2, -2, 3, -3, 1, -1, 5, -5]
    pairs = [(a, b) for a in vals for b in divs]
    a = np.array([p[0] for p in pairs], dtype=dtype)
    b = np.array([p[1] for p in pairs], dtype=dtype)
    N = len(pairs)
    q = np.zeros(N, dtype=dtype)
    r = np.zeros(N, dtype=dtype)
    floordiv_mod(a, b, q, r, N, opts=make_opts(backend, {'N': parpy.threads(N)}))
    np.testing.assert_array_equal(q, [x // y for x, y in pairs])
    np.testing.assert_array_equal(r, [x % y for x, y in pairs])


@parpy.jit
def floordiv_mod_literals(out):
    with parpy.gpu:
        out[0] = -7 // 2
        out[1] = -7 % 2
        out[2] = 7 // -2
        out[3] = 7 % -2
        out[4] = -7 // -2
        out[5] = -7 % -2


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_floordiv_mod_constant_folding(backend):
    out = np.zeros(6, dtype=np.int64)
    floordiv_mod_literals(out, opts=make_opts(backend))
    np.testing.assert_array_equal(out, [-7 // 2, -7 % 2, 7 // -2, 7 % -2, -7 // -2, -7 % -2])


@parpy.jit
def floordiv_mod_scalar(a, q, r, d, N):
    parpy.label('N')
    for i in range(N):
        q[i] = a[i] // d
        r[i] = a[i] % d


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("d", [3, -3])
def test_int_floordiv_mod_scalar_divisor(backend, d):
    a = np.arange(-10, 11, dtype=np.int64)
    N = a.size
    q = np.zeros(N, dtype=np.int64)
    r = np.zeros(N, dtype=np.int64)
    floordiv_mod_scalar(a, q, r, d, N, opts=make_opts(backend, {'N': parpy.threads(N)}))
    np.testing.assert_array_equal(q, [int(v) // d for v in a])
    np.testing.assert_array_equal(r, [int(v) % d for v in a])


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
def test_float_floordiv_mod_python_semantics(backend, dtype):
    a = (rand(200, dtype) * dtype(10)).astype(dtype)
    b = rand(200, dtype, 0.5, 3.0) * np.where(RNG.random(200) < 0.5, -1, 1).astype(dtype)
    N = a.size
    q = np.zeros(N, dtype=dtype)
    r = np.zeros(N, dtype=dtype)
    floordiv_mod(a, b, q, r, N, opts=make_opts(backend, {'N': parpy.threads(N)}))
    np.testing.assert_array_equal(q, np.floor_divide(a, b))
    np.testing.assert_allclose(r, np.remainder(a, b), rtol=elem_rtol(dtype), atol=1e-6)


@parpy.jit
def scale_prefix(x, y, N):
    parpy.label('N')
    for i in range(N):
        y[i] = x[i] * 2.0


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("bound", [
    37,
    np.array(37, dtype=np.int64),
    np.array(37, dtype=np.int32),
], ids=["int", "0dim-int64", "0dim-int32"])
def test_scalar_and_0dim_loop_bound(backend, bound):
    x = rand(100, np.float32)
    y = np.full(100, -1.0, dtype=np.float32)
    scale_prefix(x, y, bound, opts=make_opts(backend, {'N': parpy.threads(64)}))
    np.testing.assert_allclose(y[:37], x[:37] * np.float32(2.0), rtol=1e-6)
    np.testing.assert_array_equal(y[37:], np.full(63, -1.0, dtype=np.float32))


@parpy.jit
def dict_axpy(d, y):
    parpy.label('N')
    for i in range(d["n"]):
        y[i] = d["a"] * d["x"][i] + y[i]


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_dict_arguments(backend):
    for n in [5, 50]:
        x = rand(64, np.float32)
        y = rand(64, np.float32)
        expected = y.copy()
        expected[:n] = np.float32(1.5) * x[:n] + y[:n]
        dict_axpy({"n": n, "a": 1.5, "x": x}, y,
                  opts=make_opts(backend, {'N': parpy.threads(32)}))
        # GPUs contract a * x + y into one FMA: allow its rounding difference.
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


# ----- calling conventions --------------------------------------------------------------------


def test_opts_omitted_uses_defaults():
    N = 1000
    x = rand(N, np.float32)
    y = np.zeros(1, dtype=np.float32)
    sum_gpu(x, y, N)
    assert abs(float(y[0]) - x.astype(np.float64).sum()) <= 1e-5 * np.abs(x).sum()


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_unknown_keyword(backend):
    x = rand(10, np.float32)
    y = np.zeros(1, dtype=np.float32)
    with pytest.raises(RuntimeError,
                       match=r"Received unsupported keyword arguments: \{'foo': 1\}"):
        sum_op(x, y, 10, opts=make_opts(backend, {'N': parpy.threads(10)}), foo=1)


@pytest.mark.parametrize("bad", [5, "opts", {'N': 3}])
def test_wrong_opts_type(bad):
    x = rand(10, np.float32)
    y = np.zeros(1, dtype=np.float32)
    with pytest.raises(TypeError, match=type(bad).__name__):
        sum_op(x, y, 10, opts=bad)


@parpy.jit
def f(x, y):
    parpy.label('N')
    y[:] = x[:]


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_wrong_argument_count(backend):
    x = rand(10, np.float32)
    y = np.zeros(10, dtype=np.float32)
    opts = make_opts(backend, {'N': parpy.threads(10)})
    with pytest.raises(TypeError, match="Function f expected 2 arguments but received 3"):
        f(x, y, 10, opts=opts)
    with pytest.raises(TypeError, match="Function f expected 2 arguments but received 1"):
        f(x, opts=opts)
    f(x, y, opts=opts)
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_debug_print(backend, capfd):
    N = 100
    x = rand(N, np.float32)
    y = np.zeros(1, dtype=np.float32)
    opts = make_opts(backend, {'N': parpy.threads(N)})
    opts.debug_print = True
    sum_op(x, y, N, opts=opts)
    out, err = capfd.readouterr()
    lines = [ln for ln in (out + err).splitlines() if ln.startswith("===== ")]
    assert len(lines) >= 2, out + err
    assert abs(float(y[0]) - x.astype(np.float64).sum()) <= 1e-5 * np.abs(x).sum()


@parpy.jit
def debug_twice(v: parpy.types.F64) -> parpy.types.F64:
    return v * 2.0


@parpy.jit
def debug_calls_helper(x, y, N):
    parpy.label('N')
    for i in range(N):
        y[i] = debug_twice(x[i])


def test_debug_print_shows_the_helper_passes(capfd):
    # The passes over a helper are stages of their own, named after it (no build needed).
    opts = make_opts(parpy.CompileBackend.Cpu, {'N': parpy.threads(4)})
    opts.debug_print = True
    x = np.zeros(4)
    parpy.print_compiled(debug_calls_helper, [x, x, 4], opts)
    out, err = capfd.readouterr()
    stages = [ln.split(" (time")[0][6:] for ln in (out + err).splitlines() if ln.startswith("===== ")]
    helper = ["helper: constant_fold", "helper: type_array_locals", "helper: typecheck", "helper: constant_fold",
              "helper: flatten_indices"]
    i = stages.index(helper[0])
    assert stages[i:i + len(helper)] == helper, stages
    assert stages.index("lower_slices") < i < stages.index("typecheck"), stages
    text = out + err
    assert "def debug_twice" in text[text.index("===== helper: typecheck"):], text
