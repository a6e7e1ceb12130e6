"""Races between the iterations of parallel loops (docs/language.md, Races and atomic updates).

A store that every iteration makes to the same element, and a dependence carried across a parallel
loop, are compile-time errors with the store or read marked; a data-dependent `+=`, `-=`, `max` or
`min` update of one element is atomic and gives numpy's answer (np.add.at, np.maximum.at, ...) on
every backend. Valid programs (guarded stores, same-element read-modify-write, dependences inside
one iteration) compile as before. Generated Cuda code with atomics is compiled with nvcc."""

import os

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy import CompileBackend
from parpy import operators as op
from common import make_opts, needs_nvcc, nvcc_compile

LOCATIONS = SourceLocations(__file__)
loc, line = LOCATIONS.loc, LOCATIONS.line
RNG = np.random.default_rng()
BACKENDS = [CompileBackend.Cpu, CompileBackend.Cuda]
NUMERIC = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
           np.float32, np.float64]


pytestmark = pytest.mark.usefixtures("fresh_cache")


def f32(*shape):
    return np.zeros(shape, np.float32)


def store_race(array, var, loop_tag, label):
    return (
        f"This statement writes to {array} at an index that does not depend on {var}, so every iteration "
        f"of the parallel loop over {var} on line {line(loop_tag)} (label '{label}') writes the same element "
        "at the same time (a data race). To combine the values of all iterations, make the loop a reduction "
        "(label it with parpy.threads(n).reduce()) or reduce inside it (a reduce() loop or sum(...)); or swap "
        "the loops so that the parallel loop runs over the written index. A store meant for one iteration "
        f"only needs a condition on {var} (if {var} == 0:)."
    )


FIX = (
    " The iterations of a parallel loop run in any order, at the same time, so they must not depend on each "
    "other. Run this loop sequentially (leave its label out of parpy.par), or write the results to another "
    "array than the one the loop reads."
)


def read_race(array, var, loop_tag, label, write_tag, first, second):
    return (
        f"This reads {array} at an element that another iteration of the parallel loop over {var} on line "
        f"{line(loop_tag)} (label '{label}') writes: iteration {var} = {first} writes (on line "
        f"{line(write_tag)}) the element that iteration {var} = {second} reads here.{FIX}"
    )


# ===== Errors ==================================================================================


@parpy.jit
def column_sums(x, y, N, M):
    parpy.label("N")
    for i in range(N):  # @colsum_loop
        for j in range(M):
            y[j] += x[i, j]  # @colsum


@parpy.jit
def total(x, out, N):
    parpy.label("N")
    for i in range(N):  # @total_loop
        out[0] += x[i]  # @total


@parpy.jit
def cumulative_sum(x, y, N):
    parpy.label("N")
    for i in range(1, N):  # @cumsum_loop
        y[i] = y[i - 1] + x[i]  # @cumsum


@parpy.jit
def shift_right(a, N):
    parpy.label("N")
    for i in range(N - 1):  # @shift_loop
        a[i + 1] = a[i]  # @shift


@parpy.jit
def constant_histogram(b, counts, N):
    # The bin does not depend on i: every iteration updates counts[3].
    parpy.label("N")
    for i in range(N):  # @consthist_loop
        counts[3] += b[i]  # @consthist


@parpy.jit
def column_sums_via_local(x, y, N, M):
    parpy.label("N")
    for i in range(N):  # @local_loop
        for j in range(M):
            k = j
            y[k] = y[k] + x[i, j]  # @local


@parpy.jit
def nested_outer_race(x, z, N, M):
    # Parallel over i and j, but z[j] is written by every i.
    parpy.label("N")
    for i in range(N):  # @nested_outer_loop
        parpy.label("M")
        for j in range(M):
            z[j] = x[i, j]  # @nested_outer


@parpy.jit
def nested_inner_race(x, w, N, M):
    # w[i] is written by every j of the inner parallel loop.
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        for j in range(M):  # @nested_inner_loop
            w[i] = x[i, j]  # @nested_inner


@parpy.jit
def carried_through_local(x, y, N):
    parpy.label("N")
    for i in range(1, N):  # @carried_local_loop
        k = i - 1
        y[i] = x[i] * y[k]  # @carried_local


@parpy.jit
def carried_rows(a, N, M):
    # Row i + 1 is computed from row i.
    parpy.label("N")
    for i in range(N - 1):  # @rows_loop
        for j in range(M):
            a[i + 1, j] = a[i + 1, j] + a[i, j]  # @rows


@parpy.jit
def two_stores(a, N):
    parpy.label("N")
    for i in range(N - 1):  # @two_stores_loop
        a[i] = 1.0  # @two_stores_first
        a[i + 1] = 2.0  # @two_stores_second


@parpy.jit
def reads_first(a, N):
    # Iteration 0 writes a[0], which every iteration reads.
    parpy.label("N")
    for i in range(N):  # @first_loop
        a[i] = a[i] / a[0]  # @first


def race_cases():
    x2 = f32(50, 8)
    return {
        "column_sums": (column_sums, [x2, f32(8), 50, 8], {"N": 50}, store_race("y", "i", "colsum_loop", "N"),
                        "colsum", "y[j] += x[i, j]"),
        "total": (total, [f32(50), f32(1), 50], {"N": 50}, store_race("out", "i", "total_loop", "N"), "total",
                  "out[0] += x[i]"),
        "constant_histogram": (constant_histogram, [np.zeros(50, np.int64), np.zeros(8, np.int64), 50], {"N": 50},
                               store_race("counts", "i", "consthist_loop", "N"), "consthist",
                               "counts[3] += b[i]"),
        "through_local": (column_sums_via_local, [x2, f32(8), 50, 8], {"N": 50},
                          store_race("y", "i", "local_loop", "N"), "local", "y[k] = y[k] + x[i, j]"),
        "nested_outer": (nested_outer_race, [x2, f32(8), 50, 8], {"N": 50, "M": 8},
                         store_race("z", "i", "nested_outer_loop", "N"), "nested_outer", "z[j] = x[i, j]"),
        "nested_inner": (nested_inner_race, [x2, f32(50), 50, 8], {"N": 50, "M": 8},
                         store_race("w", "j", "nested_inner_loop", "M"), "nested_inner", "w[i] = x[i, j]"),
        "cumulative_sum": (cumulative_sum, [f32(50), f32(50), 50], {"N": 50},
                           read_race("y", "i", "cumsum_loop", "N", "cumsum", 1, 2), "cumsum", "y[i - 1]"),
        "shift_right": (shift_right, [f32(50), 50], {"N": 50},
                        read_race("a", "i", "shift_loop", "N", "shift", 0, 1), "shift", "a[i]"),
        "carried_through_local": (carried_through_local, [f32(50), f32(50), 50], {"N": 50},
                                  read_race("y", "i", "carried_local_loop", "N", "carried_local", 1, 2),
                                  "carried_local", "y[k]"),
        "carried_rows": (carried_rows, [f32(50, 8), 50, 8], {"N": 50},
                         read_race("a", "i", "rows_loop", "N", "rows", 0, 1), "rows", "a[i, j]"),
        "reads_first": (reads_first, [f32(50), 50], {"N": 50},
                        read_race("a", "i", "first_loop", "N", "first", 0, 1), "first", "a[0]"),
    }


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("name", list(race_cases()))
def test_race_is_a_compile_error(name, backend):
    fun, args, labels, msg, tag, text, *nth = race_cases()[name]
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(fun, args, make_opts(backend, **labels))
    assert str(e.value) == loc(msg, tag, text, *nth)


def test_two_stores_to_one_element():
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(two_stores, [f32(50), 50], make_opts(CompileBackend.Cpu, N=50))
    msg = (
        f"This statement writes to a at an element that another iteration of the parallel loop over i on line "
        f"{line('two_stores_loop')} (label 'N') also writes: iteration i = 1 writes it (on line "
        f"{line('two_stores_first')}) and iteration i = 0 here.{FIX}"
    )
    assert str(e.value) == loc(msg, "two_stores_second", "a[i + 1] = 2.0")


def test_race_error_at_call(backend):
    # A call reports the error before anything is built or run.
    y = np.zeros(8, np.float32)
    with pytest.raises(RuntimeError, match="does not depend on i"):
        column_sums(np.ones((50, 8), np.float32), y, 50, 8, opts=make_opts(backend, N=50))
    assert not y.any()


@parpy.jit
def local_sums(x, y, N, M):
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        parpy.label("cols")
        for j in range(M):
            s += x[i, j]  # local_sums_update
        y[i] = s


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_update_of_an_outer_local_in_a_parallel_loop_is_an_error(backend):
    # Each thread would accumulate its own copy of s: on a GPU, the row's value was one thread's
    # partial sum, silently. A reduce() label makes the same program right.
    x, y = np.random.default_rng(4).random((4, 64)), np.zeros(4)
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(local_sums, [x, y, 4, 64], make_opts(backend, rows=4, cols=32))
    assert str(e.value).startswith("This statement updates s, a local defined outside the parallel loop over j")
    assert "parpy.threads(n).reduce()" in str(e.value) and "s += x[i, j]" in str(e.value)
    if parpy.backend.is_enabled(backend):
        with pytest.raises(RuntimeError, match="This statement updates s"):
            local_sums(x, y, 4, 64, opts=make_opts(backend, rows=4, cols=32))
        assert not y.any()
        local_sums(x, y, 4, 64, opts=make_opts(backend, {"cols": parpy.threads(32).reduce()}, rows=4))
        np.testing.assert_allclose(y, x.sum(axis=1), rtol=1e-12, atol=0)


# ===== Valid programs stay valid ===============================================================


@parpy.jit
def first_only(x, y, N):
    parpy.label("N")
    for i in range(N):
        if i == 0:
            y[0] = x[0]
        y[i + 1] = x[i] * 2.0


@parpy.jit
def in_place(y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = y[i] * 2.0


@parpy.jit
def scatter(k, x, y, N):
    # Data-dependent indices cannot be proved to collide: no error and no atomic.
    parpy.label("N")
    for i in range(N):
        y[k[i]] = x[i]


@parpy.jit
def row_prefix(a, N, M):
    # The dependence is inside one iteration of the parallel loop.
    parpy.label("N")
    for i in range(N):
        for j in range(1, M):
            a[i, j] = a[i, j] + a[i, j - 1]


@parpy.jit
def pairs(x, y, N):
    # Iterations touch disjoint pairs through a local index.
    parpy.label("N")
    for i in range(N):
        k = 2 * i
        y[k] = x[i]
        y[k + 1] = y[k] + 1.0


@parpy.jit
def odd_from_even(a, N):
    parpy.label("N")
    for i in range(0, N, 2):
        a[i] = a[i + 1]


@parpy.jit
def matmul(a, b, c, N, M, K):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        for j in range(M):
            for k in range(K):
                c[i, j] += a[i, k] * b[k, j]


@parpy.jit
def sparse_rows(rows, cols, vals, out, N):
    # out's first index is the row: different iterations update different rows.
    parpy.label("N")
    for i in range(N):
        for k in range(rows[i], rows[i + 1]):
            out[i, cols[k]] += vals[k]


@parpy.jit
def reduction_loop(x, out, N):
    parpy.label("R")
    for i in range(N):
        out[0] += x[i]


@parpy.jit
def set_flag(x, found, N):
    parpy.label("N")
    for i in range(N):
        if x[i] > 0.5:
            found[0] = 1


@parpy.jit
def one_iteration(x, y, N):
    parpy.label("N")
    for i in range(1):
        for j in range(N):
            y[j] = x[j]


@parpy.jit
def alternating(a, b, N):
    # r names a in even and b in odd iterations: a[i + 1] and b[i] are not the same element.
    parpy.label("N")
    for i in range(N - 1):
        r = a
        if i % 2 == 1:
            r = b
        r[i + 1] = r[i] + 1.0


def valid_programs():
    n = 40
    rows = np.array([0, 3, 3, 7, 10], np.int64)
    return {
        "first_only": (first_only, [f32(n), f32(n + 1), n], {"N": n}),
        "in_place": (in_place, [f32(n), n], {"N": n}),
        "scatter": (scatter, [np.zeros(n, np.int64), f32(n), f32(n), n], {"N": n}),
        "row_prefix": (row_prefix, [f32(n, 8), n, 8], {"N": n}),
        "pairs": (pairs, [f32(n), f32(2 * n), n], {"N": n}),
        "odd_from_even": (odd_from_even, [f32(2 * n), 2 * n], {"N": n}),
        "matmul": (matmul, [f32(8, 6), f32(6, 5), f32(8, 5), 8, 5, 6], {"N": 8, "M": 5}),
        "sparse_rows": (sparse_rows, [rows, np.zeros(10, np.int64), f32(10), f32(4, 6), 4], {"N": 4}),
        "reduction_loop": (reduction_loop, [f32(n), f32(1), n], {"R": parpy.threads(n).reduce()}),
        "set_flag": (set_flag, [f32(n), np.zeros(1, np.int32), n], {"N": n}),
        "one_iteration": (one_iteration, [f32(n), f32(n), n], {"N": 32}),
        "alternating": (alternating, [f32(n), f32(n), n], {"N": n}),
    }


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("name", list(valid_programs()))
def test_valid_program_has_no_race_error_or_atomic(name, backend):
    fun, args, labels = valid_programs()[name]
    par = {k: v for k, v in labels.items() if not isinstance(v, int)}
    threads = {k: v for k, v in labels.items() if isinstance(v, int)}
    code = parpy.print_compiled(fun, args, make_opts(backend, par, **threads))
    assert "parpy_atomic" not in code
    assert "omp atomic" not in code


def test_valid_programs_compute_the_same(backend):
    n = 64
    x = RNG.uniform(-1, 1, n).astype(np.float32)
    y = np.zeros(n + 1, np.float32)
    first_only(x, y, n, opts=make_opts(backend, N=n))
    np.testing.assert_allclose(y, np.concatenate([[x[0]], x * 2]), rtol=1e-6)
    a = RNG.uniform(-1, 1, (n, 9)).astype(np.float32)
    want = np.cumsum(a, axis=1)
    row_prefix(a, n, 9, opts=make_opts(backend, N=n))
    np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-5)
    a = RNG.uniform(-1, 1, 2 * n).astype(np.float32)
    want = a.copy()
    want[0::2] = a[1::2]
    odd_from_even(a, 2 * n, opts=make_opts(backend, N=n))
    np.testing.assert_array_equal(a, want)


# ===== Atomic updates ==========================================================================


@parpy.jit
def histogram(b, counts, N):
    parpy.label("N")
    for i in range(N):
        counts[b[i]] += 1


@parpy.jit
def all_updates(b, x, add, sub, mx, mn, N):
    parpy.label("N")
    for i in range(N):
        add[b[i]] += x[i]
        sub[b[i]] -= x[i]
        mx[b[i]] = op.max(mx[b[i]], x[i])
        mn[b[i]] = op.min(x[i], mn[b[i]])


@parpy.jit
def histogram_2d(b, c, counts, N):
    parpy.label("N")
    for i in range(N):
        counts[b[i], c[i]] += 1


@parpy.jit
def nested_histogram(b, counts, N, M):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        for j in range(M):
            counts[b[i, j]] += 1


@parpy.jit
def count_large(x, count, N):
    # A guarded update of one element: atomic too.
    parpy.label("N")
    for i in range(N):
        if x[i] > 0.5:
            count[0] += 1


@parpy.jit
def histogram_then_total(b, counts, total, N, B):
    # The histogram loop is not fused with the reduction after it.
    parpy.label("N")
    for i in range(N):
        counts[b[i]] += 1
    with parpy.gpu:
        parpy.label("B")
        for k in range(B):
            total[0] += counts[k]


@parpy.jit
def row_histograms(b, counts, total, R, N):
    # Per row: a histogram of b[r, :], then the sum of the counts of the row's values. The
    # histogram's loop is not fused with the reduction (it would forward a value that the atomic
    # update does not store).
    parpy.label("R")
    for r in range(R):
        parpy.label("N")
        for i in range(N):
            counts[r, b[r, i]] += 1
        parpy.label("S")
        for i in range(N):
            total[r] += counts[r, b[r, i]]


def test_row_histograms(backend):
    rows, n = 8, 64
    b = RNG.integers(0, n, (rows, n))
    counts, total = np.zeros((rows, n), np.int64), np.zeros(rows, np.int64)
    row_histograms(b, counts, total, rows, n,
                   opts=make_opts(backend, {"S": parpy.threads(n).reduce()}, R=rows, N=n))
    want = np.stack([np.bincount(r, minlength=n) for r in b])
    np.testing.assert_array_equal(counts, want)
    np.testing.assert_array_equal(total, [want[r][b[r]].sum() for r in range(rows)])


BIG = 100_000
BINS = 16


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.float32])
def test_histogram(backend, dtype):
    b = RNG.integers(0, BINS, BIG)
    counts = np.zeros(BINS, dtype)
    histogram(b, counts, BIG, opts=make_opts(backend, N=BIG))
    np.testing.assert_array_equal(counts, np.bincount(b, minlength=BINS).astype(dtype))


def test_histogram_with_run_time_index_checks(backend):
    # Each access carries its own run-time check: the update is still recognised, and atomic.
    b = RNG.integers(0, BINS, BIG)
    counts = np.zeros(BINS, np.int64)
    o = make_opts(backend, N=BIG)
    o.bounds_check = True
    histogram(b, counts, BIG, opts=o)
    np.testing.assert_array_equal(counts, np.bincount(b, minlength=BINS))
    if backend == parpy.CompileBackend.Cpu:
        code = parpy.print_compiled(histogram, [b, counts, BIG], o)
        assert "#pragma omp atomic" in code and "parpy_bounds_check" in code, code


def values(dtype, n):
    if np.issubdtype(dtype, np.floating):
        # Small integers: every sum is exact whatever the order of the additions.
        return RNG.integers(-4, 5, n).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, n, endpoint=True, dtype=dtype)


@pytest.mark.parametrize("dtype", NUMERIC)
def test_all_updates(backend, dtype):
    # float16 sums stay exact only for fewer elements.
    n = 4000 if dtype == np.float16 else BIG
    b = RNG.integers(0, BINS, n)
    x = values(dtype, n)
    start = [values(dtype, BINS) for _ in range(4)]
    add, sub, mx, mn = (s.copy() for s in start)
    with np.errstate(over="ignore"):
        all_updates(b, x, add, sub, mx, mn, n, opts=make_opts(backend, N=n))
        want_add, want_sub, want_max, want_min = (s.copy() for s in start)
        np.add.at(want_add, b, x)
        np.subtract.at(want_sub, b, x)
    np.maximum.at(want_max, b, x)
    np.minimum.at(want_min, b, x)
    np.testing.assert_array_equal(add, want_add)
    np.testing.assert_array_equal(sub, want_sub)
    np.testing.assert_array_equal(mx, want_max)
    np.testing.assert_array_equal(mn, want_min)


def test_scatter_max_keeps_nan(backend):
    b = RNG.integers(0, BINS, BIG)
    x = RNG.uniform(-1, 1, BIG).astype(np.float32)
    x[RNG.integers(0, BIG, 3)] = np.nan
    mx, mn = np.full(BINS, -np.inf, np.float32), np.full(BINS, np.inf, np.float32)
    all_updates(b, x, f32(BINS), f32(BINS), mx, mn, BIG, opts=make_opts(backend, N=BIG))
    want_max, want_min = np.full(BINS, -np.inf, np.float32), np.full(BINS, np.inf, np.float32)
    np.maximum.at(want_max, b, x)
    np.minimum.at(want_min, b, x)
    np.testing.assert_array_equal(mx, want_max)
    np.testing.assert_array_equal(mn, want_min)


def test_histogram_2d(backend):
    b, c = RNG.integers(0, 4, BIG), RNG.integers(0, 5, BIG)
    counts = np.zeros((4, 5), np.int64)
    histogram_2d(b, c, counts, BIG, opts=make_opts(backend, N=BIG))
    want = np.zeros((4, 5), np.int64)
    np.add.at(want, (b, c), 1)
    np.testing.assert_array_equal(counts, want)


def test_nested_histogram(backend):
    b = RNG.integers(0, BINS, (400, 250))
    counts = np.zeros(BINS, np.int32)
    nested_histogram(b, counts, 400, 250, opts=make_opts(backend, N=400, M=250))
    np.testing.assert_array_equal(counts, np.bincount(b.ravel(), minlength=BINS))


def test_guarded_count(backend):
    x = RNG.uniform(0, 1, BIG).astype(np.float32)
    count = np.zeros(1, np.int64)
    count_large(x, count, BIG, opts=make_opts(backend, N=BIG))
    assert count[0] == np.count_nonzero(x > 0.5)


def test_histogram_then_total(backend):
    b = RNG.integers(0, BINS, BIG)
    counts, total = np.zeros(BINS, np.int64), np.zeros(1, np.int64)
    histogram_then_total(b, counts, total, BIG, BINS,
                         opts=make_opts(backend, {"B": parpy.threads(32).reduce()}, N=BIG))
    np.testing.assert_array_equal(counts, np.bincount(b, minlength=BINS))
    assert total[0] == BIG


@pytest.mark.skipif(os.environ.get("PARPY_BOUNDS_CHECK", "0") not in ("", "0"),
                    reason="the expected code has unchecked indices")
def test_atomic_code():
    b, counts = np.zeros(10, np.int64), np.zeros(4, np.int64)
    cpu = parpy.print_compiled(histogram, [b, counts, 10], make_opts(CompileBackend.Cpu, N=10))
    assert "    #pragma omp atomic\n    v_counts[v_b[v_i]] += 1;\n" in cpu
    cuda = parpy.print_compiled(histogram, [b, counts, 10], make_opts(CompileBackend.Cuda, N=10))
    assert "parpy_atomic_add(&v_counts[v_b[v_i]], (int64_t)1);" in cuda
    x = f32(10)
    cpu = parpy.print_compiled(all_updates, [b, x, f32(4), f32(4), f32(4), f32(4), 10],
                               make_opts(CompileBackend.Cpu, N=10))
    assert "parpy_atomic_max(&v_mx[v_b[v_i]], (float)v_x[v_i]);" in cpu
    assert "parpy_atomic_min(&v_mn[v_b[v_i]], (float)v_x[v_i]);" in cpu
    # No SIMD loop around an atomic update.
    cpu = parpy.print_compiled(nested_histogram, [np.zeros((4, 8), np.int64), counts, 4, 8],
                               make_opts(CompileBackend.Cpu, N=4, M=8))
    assert "simd" not in cpu


@needs_nvcc
def test_cuda_atomics_compile(tmp_path):
    # Every element type's program in one translation unit, renamed apart (half precision first:
    # its header decides what parpy_cuda.h declares).
    n = 1000
    b = np.zeros(n, np.int64)
    code = ""
    for dtype in sorted(NUMERIC, key=lambda t: t != np.float16):
        x, outs = np.zeros(n, dtype), [np.zeros(BINS, dtype) for _ in range(4)]
        one = parpy.print_compiled(all_updates, [b, x, *outs, n], make_opts(CompileBackend.Cuda, N=n))
        for name in ["add", "sub", "max", "min"]:
            assert f"parpy_atomic_{name}(" in one
        code += one.replace("all_updates", "all_updates_" + np.dtype(dtype).name)
    nvcc_compile(code, tmp_path)


def nested_and_fused_programs():
    counts = np.zeros(BINS, np.int64)
    rows = np.zeros((8, 64), np.int64)
    return {
        "nested": (nested_histogram, [np.zeros((40, 300), np.int64), counts, 40, 300], {"N": 40, "M": 300}),
        "guarded": (count_large, [f32(BIG), np.zeros(1, np.int64), BIG], {"N": BIG}),
        "then_total": (histogram_then_total, [np.zeros(BIG, np.int64), counts, np.zeros(1, np.int64), BIG, BINS],
                       {"N": BIG, "B": parpy.threads(32).reduce()}),
        "row_histograms": (row_histograms, [rows, np.zeros((8, 64), np.int64), np.zeros(8, np.int64), 8, 64],
                           {"R": 8, "N": 64, "S": parpy.threads(64).reduce()}),
    }


@needs_nvcc
def test_cuda_nested_and_fused_atomics_compile(tmp_path):
    code = ""
    for fun, args, labels in nested_and_fused_programs().values():
        par = {k: v for k, v in labels.items() if not isinstance(v, int)}
        threads = {k: v for k, v in labels.items() if isinstance(v, int)}
        one = parpy.print_compiled(fun, args, make_opts(CompileBackend.Cuda, par, **threads))
        assert "parpy_atomic_add(" in one
        code += one
    nvcc_compile(code, tmp_path)
