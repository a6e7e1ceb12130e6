"""Sequential loops between parallel loops of a GPU kernel (docs/gpu.md, Synchronisation and kernel
splits): a barrier follows each of their iterations, whether or not one iteration reads what
another writes (the 7-point stencil ran faster on an H200 with them than without). The programs
write disjoint or overlapping elements, in place or not; each runs on every enabled backend and
in the Metal emulator against plain Python or numpy, every element; the Cuda and Metal code is
checked for its barriers (no GPU needed to print it)."""

import metal_emu
import numpy as np
import parpy
import pytest
from conftest import backends
from parpy import CompileBackend

CUDA, METAL = CompileBackend.Cuda, CompileBackend.Metal
# A block barrier, a cluster barrier, or the barrier of the lanes of one row packed into a warp.
CUDA_BARRIERS = ("parpy_syncthreads()", "parpy_cluster_sync()", "parpy_group_sync(")
METAL_BARRIER = "threadgroup_barrier("
RNG = np.random.default_rng()


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def opts(backend, **labels):
    o = parpy.par({k: parpy.threads(v) for k, v in labels.items()})
    o.backend = backend
    return o


@parpy.jit
def stencil3d(x, y, N, M):
    parpy.label("planes")
    for i in range(1, N - 1):
        for j in range(1, N - 1):
            parpy.label("cols")
            for k in range(1, M - 1):
                y[i, j, k] = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                              + x[i, j, k - 1] + x[i, j, k + 1]) / 6.0


def stencil3d_ref(x, y):
    y = y.copy()
    y[1:-1, 1:-1, 1:-1] = (x[:-2, 1:-1, 1:-1] + x[2:, 1:-1, 1:-1] + x[1:-1, :-2, 1:-1] + x[1:-1, 2:, 1:-1]
                           + x[1:-1, 1:-1, :-2] + x[1:-1, 1:-1, 2:]) / np.float32(6.0)
    return y


@parpy.jit
def sweep(x, y, B, N, M):
    """Row j of y from row j - 1 of x: called with x and y the same array, each row depends on the
    row the previous iteration of the sequential j loop wrote."""
    parpy.label("B")
    for b in range(B):
        for j in range(1, N):
            parpy.label("M")
            for k in range(M):
                y[b, j, k] = x[b, j - 1, k] + 1.0


def sweep_ref(x, y):
    y = y.copy()
    y[:, 1:, :] = x[:, :-1, :] + np.float32(1.0)
    return y


def sweep_in_place_ref(a):
    a = a.copy()
    for j in range(1, a.shape[1]):
        a[:, j, :] = a[:, j - 1, :] + np.float32(1.0)
    return a


@parpy.jit
def running(x, y, B, N, M):
    """y's row j reads y's row j - 1, which other threads wrote in the previous iteration."""
    parpy.label("B")
    for b in range(B):
        for j in range(1, N):
            parpy.label("M")
            for k in range(M):
                y[b, j, k] = y[b, j - 1, k] + x[b, j, k]


def running_ref(x, y):
    y = y.copy()
    for j in range(1, x.shape[1]):
        y[:, j, :] = y[:, j - 1, :] + x[:, j, :]
    return y


@parpy.jit
def diagonals(x, y, B, N, M):
    """Iterations j and j + 1 write the same elements of y (at j + k): the last j's value stays."""
    parpy.label("B")
    for b in range(B):
        for j in range(N):
            parpy.label("M")
            for k in range(M):
                y[b, j + k] = x[b, j, k]


def diagonals_ref(x, y):
    y = y.copy()
    for j in range(x.shape[1]):
        for k in range(x.shape[2]):
            y[:, j + k] = x[:, j, k]
    return y


@parpy.jit
def tiles(x, y, B, T, W, S):
    """Tile t of width W starts at t * S: with S = W the tiles are disjoint (every element written
    once), with S < W they overlap and the last tile's values stay."""
    parpy.label("B")
    for b in range(B):
        for t in range(T):
            parpy.label("W")
            for k in range(W):
                y[b, t * S + k] = x[b, t, k]


def tiles_ref(x, y, S):
    y = y.copy()
    for t in range(x.shape[1]):
        y[:, t * S:t * S + x.shape[2]] = x[:, t, :]
    return y


B, N, M = 3, 9, 64
T, W = 6, 32


def cases():
    """(name, function, fresh args, labels, reference of the written array, barriers expected)"""
    def same():
        a = f32(B, N, M)
        return [a, a, B, N, M]
    return [
        ("stencil3d", stencil3d, lambda: [f32(12, 12, 12), np.zeros((12, 12, 12), np.float32), 12, 12],
         {"planes": 12, "cols": 12}, lambda a: stencil3d_ref(a[0], a[1]), True),
        ("sweep", sweep, lambda: [f32(B, N, M), np.zeros((B, N, M), np.float32), B, N, M],
         {"B": B, "M": M}, lambda a: sweep_ref(a[0], a[1]), True),
        ("sweep in place", sweep, same, {"B": B, "M": M}, lambda a: sweep_in_place_ref(a[0]), True),
        ("running", running, lambda: [f32(B, N, M), f32(B, N, M), B, N, M], {"B": B, "M": M},
         lambda a: running_ref(a[0], a[1]), True),
        ("diagonals", diagonals, lambda: [f32(B, N, M), np.zeros((B, N + M), np.float32), B, N, M],
         {"B": B, "M": M}, lambda a: diagonals_ref(a[0], a[1]), True),
        ("disjoint tiles", tiles, lambda: [f32(B, T, W), np.zeros((B, T * W), np.float32), B, T, W, W],
         {"B": B, "W": W}, lambda a: tiles_ref(a[0], a[1], W), True),
        ("overlapping tiles", tiles, lambda: [f32(B, T, W), np.zeros((B, T * W), np.float32), B, T, W, W - 1],
         {"B": B, "W": W}, lambda a: tiles_ref(a[0], a[1], W - 1), True),
    ]


CASES = cases()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_barriers_in_the_cuda_code(case):
    _, fn, make, labels, _, barriers = case
    code = parpy.print_compiled(fn, make(), opts(CUDA, **labels))
    kernel = code[code.index("__global__"):code.index("static int32_t")]
    assert any(b in kernel for b in CUDA_BARRIERS) == barriers, kernel


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_results(case, backend):
    _, fn, make, labels, ref, _ = case
    args = make()
    want = ref([a.copy() if isinstance(a, np.ndarray) else a for a in args])
    fn(*args, opts=opts(backend, **labels))
    np.testing.assert_allclose(args[1], want, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")
def test_results_in_the_metal_emulator():
    programs, wants = [], []
    for _, fn, make, labels, ref, barriers in CASES:
        args = make()
        wants.append(ref([a.copy() if isinstance(a, np.ndarray) else a for a in args]))
        programs.append((fn, args, opts(METAL, **labels)))
        code = parpy.print_compiled(fn, args, opts(METAL, **labels))
        assert (METAL_BARRIER in code[code.index("kernel void"):]) == barriers, code
    results = metal_emu.run_all(programs)
    for args, want in zip(results, wants):
        np.testing.assert_allclose(args[1], want, rtol=1e-6, atol=1e-6)
