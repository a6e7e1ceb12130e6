"""Index bounds (docs/language.md, Index bounds): indices proved out of range for an iteration
that runs are an IndexError when compiling, with the subscript's location; with
opts.bounds_check (or PARPY_BOUNDS_CHECK=1) the indices that cannot be proved are checked when the
code runs and the call raises an IndexError after it. Programs in range give numpy's results."""

import os
import shutil
import subprocess
import sys

import numpy as np
import parpy
import pytest
from locations import SourceLocations

CPU = parpy.CompileBackend.Cpu
CUDA = parpy.CompileBackend.Cuda
LOCATIONS = SourceLocations(__file__)
loc = LOCATIONS.loc
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


def opts(backend=CPU, bounds_check=False, **labels):
    o = parpy.par({k: parpy.threads(v) for k, v in (labels or {"N": 32}).items()})
    o.backend = backend
    o.bounds_check = bounds_check
    return o


def rand(*shape):
    return np.random.default_rng().random(shape)


# ----- proved out of range when compiling -----------------------------------------------------


@parpy.jit
def add_one(x, a, N):
    for i in range(N):  # @add_one_loop
        a[i] = x[i] + 1.0  # @add_one_store


@parpy.jit
def add_one_to_prefix(x, a, N):
    parpy.label("N")
    for j in range(1):
        add_one(x, a[:8], N)


def test_slice_passed_to_a_helper_is_too_short(backend):
    x, a = rand(10), rand(10)
    with pytest.raises(IndexError) as e:
        add_one_to_prefix(x, a, 10, opts=opts(backend))
    msg = (
        "Index out of bounds: i takes the values 0 to 9, but the slice a[:8] passed for it has 8 "
        "elements (a has shape [10]), so it must lie in 0 to 7.\n"
        "The loop `for i in range(N):` runs from 0 to 9 here.\n"
        "Make the loop's range match the array's shape, guard the access (`if i < 8:`) or pass a "
        "larger array."
    )
    assert str(e.value) == loc(msg, "add_one_store", "a[i]")


def test_slice_passed_to_a_helper_in_range(backend):
    x, a = rand(10), rand(10)
    want = a.copy()
    want[:8] = x[:8] + 1.0
    add_one_to_prefix(x, a, 8, opts=opts(backend))
    np.testing.assert_array_equal(a, want)


@parpy.jit
def add_one_to_middle(x, a, N):
    parpy.label("N")
    for j in range(1):
        add_one(x[2:], a[3:7], N)


def test_slice_with_a_lower_bound(backend):
    x, a = rand(10), rand(10)
    want = a.copy()
    want[3:7] = x[2:6] + 1.0
    add_one_to_middle(x, a, 4, opts=opts(backend))
    np.testing.assert_array_equal(a, want)
    with pytest.raises(IndexError, match=r"the slice a\[3:7\] passed for it has 4 elements"):
        add_one_to_middle(x, a, 5, opts=opts(backend))


@parpy.jit
def fill_all(a, v):
    a[:] = v


@parpy.jit
def fill_part(a, v):
    a[1:] = v  # @fill_part


@parpy.jit
def fill_prefix(a, v):
    parpy.label("N")
    for j in range(1):
        fill_all(a[:4], v)


def test_slices_of_a_slice_passed_to_a_helper(backend):
    a = rand(10)
    want = a.copy()
    want[:4] = 3.0
    fill_prefix(a, 3.0, opts=opts(backend))
    np.testing.assert_array_equal(a, want)
    with pytest.raises(RuntimeError) as e:  # inlined when decorated

        @parpy.jit
        def fill_prefix_part(a, v):
            parpy.label("N")
            for j in range(1):
                fill_part(a[:4], v)
    msg = ("A slice of the slice a[:4] passed to this function is not supported (only [:] is); pass "
           "the slice you need instead.")
    assert str(e.value) == loc(msg, "fill_part", "a[1:]")


@parpy.jit
def copy_shifted(x, y, N):
    parpy.label("N")
    for i in range(N):  # @shift_loop
        y[i] = x[i + 1]  # @shift_read


def test_shifted_index_past_the_end(backend):
    with pytest.raises(IndexError) as e:
        copy_shifted(rand(10), np.zeros(10), 10, opts=opts(backend))
    msg = (
        "Index out of bounds: i + 1 takes the values 1 to 10, but dimension 0 of x has extent 10 "
        "(shape [10]), so it must lie in 0 to 9.\n"
        "The loop `for i in range(N):` runs from 0 to 9 here.\n"
        "Make the loop's range match the array's shape, guard the access (`if i + 1 < 10:`) or pass "
        "a larger array."
    )
    assert str(e.value) == loc(msg, "shift_read", "x[i + 1]")


def test_size_far_past_the_shape(backend):
    # The write comes first in the statement's order of checks: y[i] with i up to 99999.
    with pytest.raises(IndexError) as e:
        copy_shifted(rand(10), np.zeros(10), 100000, opts=opts(backend))
    assert str(e.value).startswith(
        "Index out of bounds: i takes the values 0 to 99999, but dimension 0 of y has extent 10 "
        "(shape [10])"
    )
    assert "The loop `for i in range(N):` runs from 0 to 99999 here." in str(e.value)


def test_shifted_index_in_range(backend):
    x, y = rand(11), np.zeros(10)
    copy_shifted(x, y, 10, opts=opts(backend))
    np.testing.assert_array_equal(y, x[1:])


@parpy.jit
def double_field(d, N):
    parpy.label("N")
    for i in range(N):
        d["y"][i] = d["x"][i] * 2.0  # @dict_store


def test_dict_field_too_short(backend):
    d = {"x": rand(10), "y": np.zeros(5)}
    with pytest.raises(IndexError) as e:
        double_field(d, 10, opts=opts(backend))
    msg = (
        'Index out of bounds: i takes the values 0 to 9, but dimension 0 of d["y"] has extent 5 '
        "(shape [5]), so it must lie in 0 to 4.\n"
        "The loop `for i in range(N):` runs from 0 to 9 here.\n"
        "Make the loop's range match the array's shape, guard the access (`if i < 5:`) or pass a "
        "larger array."
    )
    assert str(e.value) == loc(msg, "dict_store", 'd["y"][i]')
    d = {"x": rand(10), "y": np.zeros(10)}
    double_field(d, 10, opts=opts(backend))
    np.testing.assert_array_equal(d["y"], d["x"] * 2.0)


@parpy.jit
def scale_row(r, M):
    for j in range(M):
        r[j] = r[j] * 2.0


@parpy.jit
def scale_rows(x, N, M):
    parpy.label("N")
    for i in range(N):
        scale_row(x[i], M)


def test_row_index_is_checked_against_the_first_dimension(backend):
    x = rand(4, 5)
    with pytest.raises(IndexError, match=r"i takes the values 0 to 4, but dimension 0 of x has extent 4 "
                                         r"\(shape \[4, 5\]\)"):
        scale_rows(x, 5, 5, opts=opts(backend))
    with pytest.raises(IndexError, match=r"j takes the values 0 to 5, but dimension 1 of x has extent 5"):
        scale_rows(x, 4, 6, opts=opts(backend))
    want = x * 2.0
    scale_rows(x, 4, 5, opts=opts(backend))
    np.testing.assert_array_equal(x, want)


@parpy.jit
def before_start(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i - 1]


def test_negative_index(backend):
    with pytest.raises(IndexError, match=r"i - 1 takes the values -1 to 8, .*\n.*\n.*`if i - 1 >= 0:`"):
        before_start(rand(10), np.zeros(10), 10, opts=opts(backend))


# ----- never an error -------------------------------------------------------------------------


@parpy.jit
def empty_loop(x, N):
    parpy.label("N")
    for i in range(N):
        x[i + 100] = 1.0


@parpy.jit
def never_true(x, N):
    parpy.label("N")
    for i in range(N):
        if i >= N:
            x[i] = 1.0
        x[i] = 2.0


def test_empty_and_unreached_code_is_not_an_error(backend):
    x = rand(10)
    want = x.copy()
    empty_loop(x, 0, opts=opts(backend))
    np.testing.assert_array_equal(x, want)
    never_true(x, 10, opts=opts(backend))
    np.testing.assert_array_equal(x, np.full(10, 2.0))


@parpy.jit
def data_guarded(x, k, y, N):
    parpy.label("N")
    for i in range(N):
        if k[i] > 100:
            y[i] = x[i + 1]
        else:
            y[i] = x[i]


def test_access_under_a_data_dependent_condition_is_not_an_error(backend):
    # x[i + 1] is out of range at i = N - 1, but only runs where k[i] > 100, which the compiler
    # cannot decide: no error, and with bounds_check the index is checked when it runs.
    x, y = rand(10), np.zeros(10)
    k = np.arange(10)
    data_guarded(x, k, y, 10, opts=opts(backend))
    np.testing.assert_array_equal(y, x)
    y[:] = 0
    data_guarded(x, k, y, 10, opts=opts(backend, bounds_check=True))
    np.testing.assert_array_equal(y, x)


# ----- in range: the results are numpy's --------------------------------------------------------


@parpy.jit
def stencils(x, y, z, w, v, N):
    parpy.label("N")
    for i in range(N):
        if i + 1 < N:
            y[i] = x[i + 1] - x[i]
        else:
            y[i] = 0.0
        if i > 0 and i < N - 1:
            z[i] = x[i - 1] + x[i] + x[i + 1]
        else:
            z[i] = x[i]
        w[i] = x[(i + 1) % N] + x[N - 1 - i]
        v[i] = x[i + 1] if i < N - 1 else x[0]


def test_guarded_stencils_match_numpy(backend):
    N = 257
    x = rand(N)
    y, z, w, v = (np.zeros(N) for _ in range(4))
    stencils(x, y, z, w, v, N, opts=opts(backend))
    np.testing.assert_allclose(y, np.append(np.diff(x), 0.0))
    want_z = x.copy()
    want_z[1:-1] = x[:-2] + x[1:-1] + x[2:]
    np.testing.assert_allclose(z, want_z)
    np.testing.assert_allclose(w, np.roll(x, -1) + x[::-1])
    np.testing.assert_allclose(v, np.append(x[1:], x[0]))


@parpy.jit
def lower_triangle(a, b, N):
    parpy.label("N")
    for i in range(N):
        for j in range(i + 1):
            b[i, j] = a[i, j] * 2.0
        k = i + 1
        for j in range(k, N):
            b[i, j] = 0.0


@parpy.jit
def pairs(x, y, N):
    parpy.label("N")
    for i in range(0, N - 1, 2):
        y[i // 2] = x[i] + x[i + 1]


def test_triangular_and_strided_loops_match_numpy(backend):
    N = 33
    a = rand(N, N)
    b = rand(N, N)
    lower_triangle(a, b, N, opts=opts(backend))
    np.testing.assert_allclose(b, np.tril(a) * 2.0)
    x, y = rand(N), np.zeros(N // 2)
    pairs(x, y, N, opts=opts(backend))
    np.testing.assert_allclose(y, x[0:-1:2] + x[1::2])


# ----- checked when the code runs ---------------------------------------------------------------


@parpy.jit
def gather(x, k, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[k[i]]  # @gather_read


def test_data_dependent_index_without_bounds_check(backend):
    x, y = rand(100), np.zeros(50)
    k = np.random.default_rng().integers(0, 100, 50)
    gather(x, k, y, 50, opts=opts(backend))
    np.testing.assert_array_equal(y, x[k])
    code = parpy.print_compiled(gather, [x, k, y, 50], opts(backend))
    assert "parpy_bounds" not in code and "PARPY_BOUNDS" not in code


def test_data_dependent_index_with_bounds_check(backend):
    x, y = rand(100), np.zeros(50)
    k = np.random.default_rng().integers(0, 100, 50)
    gather(x, k, y, 50, opts=opts(backend, bounds_check=True))
    np.testing.assert_array_equal(y, x[k])
    k[17] = 130
    with pytest.raises(IndexError) as e:
        gather(x, k, y, 50, opts=opts(backend, bounds_check=True))
    msg = (
        "Index out of bounds: k[i] is 130, but dimension 0 of x has extent 100 (shape [100]), so it "
        "must lie in 0 to 99.\n"
        "This index was checked when the code ran (bounds_check); the arrays written by the call hold "
        "partial results. Check the values it is computed from, such as array elements used as indices."
    )
    assert str(e.value) == loc(msg, "gather_read", "x[k[i]]")
    k[17] = -1
    with pytest.raises(IndexError, match=r"k\[i\] is -1, but dimension 0 of x has extent 100"):
        gather(x, k, y, 50, opts=opts(backend, bounds_check=True))
    # The function still works after a failure, and the failure is not reported again.
    k[17] = 3
    gather(x, k, y, 50, opts=opts(backend, bounds_check=True))
    np.testing.assert_array_equal(y, x[k])


def test_checked_and_unchecked_builds_are_cached_apart():
    x, y = rand(100), np.zeros(50)
    k = np.zeros(50, np.int64)

    @parpy.jit
    def g(x, k, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = x[k[i]]

    g(x, k, y, 50, opts=opts())
    g(x, k, y, 50, opts=opts(bounds_check=True))
    g(x, k, y, 50, opts=opts())
    assert g._cache_size() == 2
    assert opts()._key() != opts(bounds_check=True)._key()


def test_environment_variable_turns_checks_on(tmp_path):
    script = tmp_path / "env_check.py"
    script.write_text(
        "import numpy as np, parpy\n"
        "@parpy.jit\n"
        "def g(x, k, y, N):\n"
        "    parpy.label('N')\n"
        "    for i in range(N):\n"
        "        y[i] = x[k[i]]\n"
        "o = parpy.par({'N': parpy.threads(4)})\n"
        "o.backend = parpy.CompileBackend.Cpu\n"
        "k = np.full(8, 9)\n"
        "try:\n"
        "    g(np.zeros(8), k, np.zeros(8), 8, opts=o)\n"
        "except IndexError as e:\n"
        "    print('IndexError', str(e).splitlines()[0])\n"
    )
    env = dict(os.environ, PARPY_BOUNDS_CHECK="1")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, check=False)
    assert "IndexError Index out of bounds: k[i] is 9, but dimension 0 of x has extent 8" in r.stdout, (
        r.stdout + r.stderr
    )


@parpy.jit
def scatter_rows(x, k, y, N, M):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        for j in range(M):
            y[k[i], j] = x[i, j] + 1.0


def test_two_dimensional_data_dependent_index(backend):
    x = rand(8, 16)
    k = np.random.default_rng().permutation(8)
    y = np.zeros((8, 16))
    o = opts(backend, bounds_check=True, N=8, M=16)
    scatter_rows(x, k, y, 8, 16, opts=o)
    want = np.zeros((8, 16))
    want[k] = x + 1.0
    np.testing.assert_array_equal(y, want)
    k[5] = 8
    with pytest.raises(IndexError, match=r"k\[i\] is 8, but dimension 0 of y has extent 8 \(shape \[8, 16\]\)"):
        scatter_rows(x, k, y, 8, 16, opts=o)


@needs_nvcc
@pytest.mark.parametrize("graphs", [False, True])
def test_checked_cuda_code_compiles_with_nvcc(graphs, tmp_path):
    x, y = rand(1000), np.zeros(1000)
    k = np.zeros(1000, np.int64)
    o = opts(CUDA, bounds_check=True, N=256)
    o.use_cuda_graphs = graphs
    code = parpy.print_compiled(gather, [x, k, y, 1000], o)
    assert "#define PARPY_BOUNDS_CHECK" in code and "parpy_bounds_check(v_k[" in code
    assert "return parpy_bounds_finish(parpy_bounds_rec, parpy_stream);" in code
    src = tmp_path / "k.cu"
    src.write_text(code)
    cmd = ["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(), str(src),
           "-o", str(tmp_path / "k.o")]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, code + "\n" + r.stderr
    unchecked = parpy.print_compiled(gather, [x, k, y, 1000], opts(CUDA, N=256))
    assert "parpy_bounds" not in unchecked and "PARPY_BOUNDS" not in unchecked
