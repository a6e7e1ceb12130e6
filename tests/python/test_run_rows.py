"""Rows in runs with their bounds read ahead on the GPU (docs/gpu.md, Optimisations): a parallel
loop over rows whose lanes' loop runs over a range read from an array at the row (a CSR product's
`range(indptr[i], indptr[i + 1])`) walks each group of lanes down a few consecutive rows, the next
row's bounds loaded while the current row runs and the bounds it shares with the row before kept in
registers. Each program runs on every enabled backend (Cuda on a GPU) and in the Metal emulator
(which runs the GPU layer's kernels) against numpy, every element; the Cuda code (printed without a
GPU) shows where the runs apply and where not."""

import re

import metal_emu
import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from parpy import operators as op

CUDA, METAL = CompileBackend.Cuda, CompileBackend.Metal
RNG = np.random.default_rng()
RUN = "parpy_run"

# Enough rows that the runs still fill half the GPU (8 lanes: Cuda 2^17 threads, Metal 2^14), and
# no multiple of the rows per run: the last run is short.
ROWS = {CUDA: 70001, METAL: 8203}


@parpy.jit
def spmv(indptr, indices, data, x, y, N):
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * x[indices[k]]
        y[i] = s


@parpy.jit
def segments(starts, ends, data, y, N):
    """Bounds from two arrays at the row (one register each), a row's maximum."""
    parpy.label("rows")
    for i in range(N):
        m = -1.0e30
        parpy.label("nz")
        for k in range(starts[i], ends[i]):
            m = op.max(m, data[k])
        y[i] = m


@parpy.jit
def interior(indptr, data, y, N):
    """Rows 1 .. N - 2 (a first row that is not 0), each without its first value, and two loops of
    the lanes over the same bounds."""
    parpy.label("rows")
    for i in range(1, N - 1):
        s = 0.0
        parpy.label("nz")
        for k in range(indptr[i] + 1, indptr[i + 1]):
            s += data[k]
        q = 0.0
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            q += data[k] * data[k]
        y[i] = s - q


@parpy.jit
def bounds_written(starts, ends, data, y, N):
    """The body writes an array the bounds come from: no runs."""
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        parpy.label("nz")
        for k in range(starts[i], ends[i]):
            s += data[k]
        y[i] = s
        starts[i] = ends[i]


def csr(rows, dtype=np.float64, mean=10):
    """Random row lengths: empty rows, short ones and a few far longer than a round of the lanes."""
    lens = RNG.integers(0, 2 * mean, rows)
    lens[RNG.choice(rows, rows // 10, replace=False)] = 0
    lens[RNG.choice(rows, 3, replace=False)] = [33, 100, 257]
    indptr = np.zeros(rows + 1, np.int64)
    indptr[1:] = np.cumsum(lens)
    indices = RNG.integers(0, rows, indptr[-1]).astype(np.int64)
    return indptr, indices, RNG.standard_normal(indptr[-1]).astype(dtype)


def row_sums(indptr, values):
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return np.bincount(rows, weights=values.astype(np.float64), minlength=len(indptr) - 1)


def opts(backend, rows, k=8, tpb=None):
    r = parpy.threads(rows) if tpb is None else parpy.threads(rows).tpb(tpb)
    o = parpy.par({"rows": r, "nz": parpy.threads(k).reduce()})
    o.backend = backend
    return o


# ----- the programs and their numpy results ----------------------------------------------------


# Each case: the arguments (data in `dtype`, the output last but one) and the expected output.
def spmv_case(n, dtype=np.float64):
    indptr, indices, data = csr(n, dtype)
    x = RNG.standard_normal(n).astype(dtype)
    return [indptr, indices, data, x, np.full(n, np.nan, dtype), n], row_sums(indptr, data * x[indices])


def segments_case(n, dtype=np.float64):
    indptr, _, data = csr(n, dtype)
    starts = indptr[:-1] + RNG.integers(0, 2, n)  # some rows skip their first value, some are empty
    ends = np.maximum(starts, indptr[1:])
    want = np.array([data[a:b].max() if b > a else dtype(-1.0e30) for a, b in zip(starts, ends)])
    return [starts, ends, data, np.full(n, np.nan, dtype), n], want


def interior_case(n, dtype=np.float64):
    indptr, _, data = csr(n, dtype)
    y = np.full(n, np.nan, dtype)
    want = y.astype(np.float64)
    d = data.astype(np.float64)
    for i in range(1, n - 1):
        a, b = indptr[i], indptr[i + 1]
        want[i] = d[a + 1:b].sum() - (d[a:b] ** 2).sum()
    return [indptr, data, y, n], want


CASES = [(spmv, spmv_case, 3), (segments, segments_case, 4), (interior, interior_case, 3)]
IDS = [c[0].__name__ for c in CASES]


def check(fn, args, want):
    tol = 1e-12 if args[-2].dtype == np.float64 else 1e-4
    np.testing.assert_allclose(args[-2], want, rtol=tol, atol=tol, err_msg=fn.__name__)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("k", [4, 8, 32])
def test_results(backend, case, k):
    fn, make, _ = case
    args, want = make(ROWS[CUDA])
    fn(*args, opts=opts(backend, ROWS[CUDA], k))
    check(fn, args, want)


@pytest.mark.parametrize("workers", [20000, 17501])
def test_fewer_workers_than_runs(backend, workers):
    # 17501 runs of 4 rows on fewer workers: each walks several runs (grid-stride).
    args, want = spmv_case(ROWS[CUDA])
    spmv(*args, opts=opts(backend, workers, 8))
    check(spmv, args, want)


@pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")
def test_results_in_the_metal_emulator():
    programs, wants = [], []
    for fn, make, _ in CASES:
        for k in (8, 16, 32):
            args, want = make(ROWS[METAL], np.float32)
            o = opts(METAL, ROWS[METAL], k)
            assert RUN in parpy.print_compiled(fn, args, o)
            programs.append((fn, args, o))
            wants.append((fn, want))
    for args, (fn, want) in zip(metal_emu.run_all(programs), wants):
        check(fn, args, want)


@pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")
def test_random_matrices_in_the_metal_emulator():
    # Random sizes (the last run 1 to 4 rows long), row lengths and lanes, against numpy.
    programs, wants = [], []
    for _ in range(6):
        n = int(RNG.integers(8200, 8400))
        k = int(RNG.choice([8, 16, 32]))
        indptr, indices, data = csr(n, np.float32, mean=int(RNG.integers(1, 40)))
        x = RNG.standard_normal(n).astype(np.float32)
        args = [indptr, indices, data, x, np.full(n, np.nan, np.float32), n]
        o = opts(METAL, n, k)
        assert RUN in parpy.print_compiled(spmv, args, o)
        programs.append((spmv, args, o))
        wants.append(row_sums(indptr, data * x[indices]))
    for args, want in zip(metal_emu.run_all(programs), wants):
        check(spmv, args, want)


# ----- the Cuda code, here without a GPU -------------------------------------------------------


def cuda_code(fn, args, o):
    o.backend = CUDA
    return parpy.print_compiled(fn, args, o)


def kernel_of(code):
    return code[code.index("__global__"):code.index("static int32_t")]


def bound_registers(code):
    return sorted(set(re.findall(r"int64_t (parpy_bound\d+_\d+_\w+);", code)))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_runs_in_the_cuda_code(case):
    fn, make, registers = case
    args, _ = make(ROWS[CUDA])
    kern = kernel_of(cuda_code(fn, args, opts(CUDA, ROWS[CUDA])))
    assert RUN in kern, kern
    # Registers: spmv and interior, indptr's rows i and i + 1 and the next row's i + 1; segments,
    # starts and ends at row i and each at the next row.
    assert len(bound_registers(kern)) == registers, kern
    # The next row's bound is loaded at the top of a row but the run's last.
    assert re.search(r"if \(\(\(v_i \+ 1\) < parpy_min<int64_t>\(.*\)\)\) \{\n\s*parpy_bound0_0_next = ", kern), kern


def test_runs_of_four_rows_on_one_worker_each():
    n = 1 << 20
    args, _ = spmv_case(n)
    code = cuda_code(spmv, args, opts(CUDA, n))
    # 2^18 runs of 4 rows, 16 groups of 8 lanes per block of 128 threads.
    assert "<<<dim3(16384), dim3(128), 0, parpy_stream>>>" in code, code
    kern = kernel_of(code)
    assert "parpy_run0 < 262144" in kern and "(parpy_run0 * 4)) + 4), 1048576)" in kern, kern
    # Loads of indptr, which the kernel does not write, need no barrier between the row's lanes;
    # only the store of y does.
    assert kern.count("parpy_group_sync(8);") == 1, kern
    # The user's block size holds.
    code = cuda_code(spmv, args, opts(CUDA, n, tpb=256))
    assert "<<<dim3(8192), dim3(256), 0, parpy_stream>>>" in code, code


def test_bounds_of_a_written_array_are_not_read_ahead():
    args, want = segments_case(ROWS[CUDA])
    kern = kernel_of(cuda_code(bounds_written, args, opts(CUDA, ROWS[CUDA])))
    # ends is read ahead; starts, which the rows write, is read where the program reads it.
    assert re.search(r"parpy_bound\w+ = v_ends\[", kern) and not re.search(r"parpy_bound\w+ = v_starts\[", kern), kern


@pytest.mark.parametrize("what", ["few rows", "shared memory", "sequential inner loop",
                                  "wide inner loop"])
def test_no_runs(what):
    n = ROWS[CUDA]
    args, _ = spmv_case(n)
    fn, o = spmv, opts(CUDA, n)
    if what == "few rows":  # 10000 runs of 8 lanes do not fill half the GPU
        args, _ = spmv_case(40000)
        o = opts(CUDA, 40000)
    elif what == "shared memory":
        args[4] = args[3]
    elif what == "sequential inner loop":
        o = parpy.par({"rows": parpy.threads(n)})
    elif what == "wide inner loop":
        o = opts(CUDA, n, 64)
    assert RUN not in cuda_code(fn, args, o)
