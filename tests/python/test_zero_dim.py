"""0-dim arrays of every kind are typed scalars wherever a Python scalar is, inside dicts too:
numpy arrays, torch tensors (CPU and CUDA), CuPy arrays and parpy buffers. Their value is part of
the specialisation (a loop bound may come from one); CUDA ones are read at call time, after the
work queued on their stream. Cases run on every enabled backend; CUDA arrays need a GPU."""

import numpy as np
import parpy
import pytest
from parpy import CompileBackend

CUDA = CompileBackend.Cuda
needs_gpu = pytest.mark.skipif(not parpy.backend.is_enabled(CUDA), reason="no CUDA GPU here")

N = 2000


@parpy.jit
def scaled_head(x, y, p):
    parpy.label("N")
    for i in range(p["n"]):
        y[i] = p["gamma"] * x[i]


@parpy.jit
def shift_head(x, y, n, c):
    parpy.label("N")
    for i in range(n):
        y[i] = x[i] + c


def opts_for(backend):
    o = parpy.par({"N": parpy.threads(N)})
    o.backend = backend
    return o


def head_ref(x, n, gamma):
    want = np.zeros_like(x)
    want[:n] = gamma * x[:n]
    return want


def rand(seed):
    return np.random.default_rng(seed).standard_normal(N)


@pytest.mark.parametrize("kind", ["numpy", "buffer", "torch"])
def test_host_zero_dim_in_dicts(backend, kind):
    if kind == "torch":
        torch = pytest.importorskip("torch")

        def make(v):
            return torch.tensor(v, dtype=torch.float64 if isinstance(v, float) else torch.int64)
    elif kind == "buffer":
        def make(v):
            return parpy.buffer.from_array(np.array(v), backend)
    else:
        make = np.array
    x = rand(1)
    # Two values of the loop bound: two specialisations, each exact.
    for n, gamma in [(700, 1.5), (1999, -0.25), (700, 1.5)]:
        y = np.zeros(N)
        scaled_head(x, y, {"n": make(n), "gamma": make(gamma)}, opts=opts_for(backend))
        np.testing.assert_array_equal(y, head_ref(x, n, gamma))


def test_zero_dim_keeps_its_dtype(backend):
    # An int16 0-dim bound and a float32 0-dim constant are scalars of their own types.
    x = np.random.default_rng(2).random(N, dtype=np.float32)
    y = np.zeros(N, np.float32)
    shift_head(x, y, np.array(1500, np.int16), np.array(0.5, np.float32), opts=opts_for(backend))
    want = np.zeros(N, np.float32)
    want[:1500] = x[:1500] + np.float32(0.5)
    np.testing.assert_array_equal(y, want)


class Interface:
    """Only the __cuda_array_interface__ of an array: forces the generic argument path."""

    def __init__(self, arr):
        self.arr = arr
        self.__cuda_array_interface__ = arr.__cuda_array_interface__


@needs_gpu
@pytest.mark.parametrize("path", ["torch", "interface"])
def test_torch_cuda_zero_dim_in_dicts(path):
    torch = pytest.importorskip("torch")
    x = rand(3)
    xt = torch.from_numpy(x).cuda()
    wrap = Interface if path == "interface" else (lambda t: t)
    for n, gamma in [(1234, 0.75), (2000, 3.0)]:
        yt = torch.zeros(N, dtype=torch.float64, device="cuda")
        p = {"n": wrap(torch.tensor(n, device="cuda")),
             "gamma": wrap(torch.tensor(gamma, dtype=torch.float64, device="cuda"))}
        scaled_head(xt, yt, p, opts=opts_for(CUDA))
        np.testing.assert_array_equal(yt.cpu().numpy(), head_ref(x, n, gamma))
    # With numpy arrays: the 0-dim tensors are only scalars of the call.
    y = np.zeros(N)
    scaled_head(x, y, {"n": torch.tensor(999, device="cuda"), "gamma": torch.tensor(2.0, device="cuda",
                                                                                    dtype=torch.float64)},
                opts=opts_for(CUDA))
    np.testing.assert_array_equal(y, head_ref(x, 999, 2.0))
    # Top-level 0-dim CUDA tensors of their own dtypes.
    x32 = torch.rand(N, device="cuda")
    y32 = torch.zeros(N, device="cuda")
    shift_head(x32, y32, torch.tensor(321, dtype=torch.int16, device="cuda"),
               torch.tensor(0.5, device="cuda"), opts=opts_for(CUDA))
    want = torch.zeros(N, device="cuda")
    want[:321] = x32[:321] + 0.5
    assert torch.equal(y32, want)


@needs_gpu
def test_cuda_zero_dim_read_after_work_on_its_stream():
    torch = pytest.importorskip("torch")
    x = rand(4)
    xt = torch.from_numpy(x).cuda()
    n = torch.tensor(0, device="cuda")
    st = torch.cuda.Stream()
    with torch.cuda.stream(st):
        for value in (10, 1777, 42):
            yt = torch.zeros(N, dtype=torch.float64, device="cuda")
            torch.cuda._sleep(1_000_000)  # the value below is written after a delay on this stream
            n.fill_(value)
            scaled_head(xt, yt, {"n": n, "gamma": 1.0}, opts=opts_for(CUDA))
            st.synchronize()
            np.testing.assert_array_equal(yt.cpu().numpy(), head_ref(x, value, 1.0))


@needs_gpu
def test_cuda_buffer_and_cupy_zero_dim():
    x = rand(5)
    y = np.zeros(N)
    p = {"n": parpy.buffer.from_array(np.array(1500), CUDA),
         "gamma": parpy.buffer.from_array(np.array(-1.5), CUDA)}
    scaled_head(x, y, p, opts=opts_for(CUDA))
    np.testing.assert_array_equal(y, head_ref(x, 1500, -1.5))
    cp = pytest.importorskip("cupy")
    yc = cp.zeros(N)
    scaled_head(cp.asarray(x), yc, {"n": cp.array(77), "gamma": cp.array(4.0)}, opts=opts_for(CUDA))
    np.testing.assert_array_equal(cp.asnumpy(yc), head_ref(x, 77, 4.0))
