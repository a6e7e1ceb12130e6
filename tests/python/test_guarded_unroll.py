"""Register-only innermost loops of Cuda kernels run four iterations at a time, each under its own
guard (docs/gpu.md, Optimisations): a CSR row's lanes issue the loads of a short row together. The Cuda
code is checked as printed (no GPU needed); the programs run on every enabled backend against
numpy or plain Python, every element."""

import re

import numpy as np
import parpy
import pytest
from common import make_opts as opts
from conftest import backends
from parpy import CompileBackend
from test_warp_rows import spmv, spmv_ref

CUDA = CompileBackend.Cuda
RNG = np.random.default_rng()
# A round of four guarded iterations: (the round's stride, the iteration variable, its step).
GUARDED = re.compile(r"for \(int64_t parpy_g\d+ = .*\+= (\d+)\) \{\n\s*#pragma unroll\n"
                     r"\s*for \(int64_t parpy_u\d+ = 0; parpy_u\d+ < 4; \+\+parpy_u\d+\) \{\n"
                     r"\s*int64_t (\w+) = parpy_g\d+ \+ parpy_u\d+ \* (\d+);\n"
                     r"\s*if \(\2 < ")


@parpy.jit
def row_max_sum(x, y, N, M):
    """A sequential loop updating two registers, one under a condition."""
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        m = x[i, 0]
        for j in range(M):
            s += x[i, j] * x[i, j]
            if x[i, j] > m:
                m = x[i, j]
        y[i] = s + m


@parpy.jit
def scale_rows(x, y, N, M):
    """The innermost loop stores: it stays `#pragma unroll 4`."""
    parpy.label("rows")
    for i in range(N):
        for j in range(M):
            y[i, j] = x[i, j] * 2.0


def csr(rows, cols):
    lens = RNG.integers(0, 40, rows)
    lens[RNG.random(rows) < 0.1] = 0  # empty rows
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    indices = RNG.integers(0, cols, int(indptr[-1])).astype(np.int64)
    data = RNG.standard_normal(int(indptr[-1])).astype(np.float32)
    return indptr, indices, data


@pytest.mark.parametrize("lanes", [1, 4, 8, 32])
def test_lanes_loops_are_guarded_in_the_cuda_code(lanes):
    indptr, indices, data = csr(300, 50)
    x, y = RNG.standard_normal(50).astype(np.float32), np.zeros(300, np.float32)
    spec = {"rows": parpy.threads(300)}
    if lanes > 1:
        spec["nz"] = parpy.threads(lanes).reduce()
    code = parpy.print_compiled(spmv, [indptr, indices, data, x, y, 300], opts(CUDA, spec))
    m = GUARDED.search(code)
    assert m, code
    # Four of the loop's iterations per round: lanes apart each.
    assert int(m.group(1)) == 4 * int(m.group(3)) and int(m.group(3)) == lanes, code


def test_loops_that_store_keep_the_unroll_pragma():
    x, y = RNG.standard_normal((64, 40)), np.zeros((64, 40))
    code = parpy.print_compiled(scale_rows, [x, y, 64, 40], opts(CUDA, {"rows": parpy.threads(64)}))
    assert "#pragma unroll 4" in code and not GUARDED.search(code), code
    code = parpy.print_compiled(row_max_sum, [x, np.zeros(64), 64, 40], opts(CUDA, {"rows": parpy.threads(64)}))
    assert GUARDED.search(code), code


@pytest.mark.parametrize("lanes", [1, 2, 8, 32])
@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_spmv_results(backend, lanes):
    rows, cols = 1000, 300
    indptr, indices, data = csr(rows, cols)
    x, y = RNG.standard_normal(cols).astype(np.float32), np.zeros(rows, np.float32)
    spec = {"rows": parpy.threads(rows)}
    if lanes > 1:
        spec["nz"] = parpy.threads(lanes).reduce()
    spmv(indptr, indices, data, x, y, rows, opts=opts(backend, spec))
    np.testing.assert_allclose(y, spmv_ref(indptr, indices, data, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("M", [1, 3, 4, 5, 37])
@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_register_loop_results(backend, M):
    N = 50
    x, y = RNG.standard_normal((N, M)), np.zeros(N)
    row_max_sum(x, y, N, M, opts=opts(backend, {"rows": parpy.threads(N)}))
    np.testing.assert_allclose(y, (x * x).sum(axis=1) + x.max(axis=1), rtol=1e-12)
