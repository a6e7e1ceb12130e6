"""A Cuda call runs on the device that holds its arrays (README, "Devices"): torch tensors on
cuda:1 are computed on cuda:1, arrays on two devices are an error naming both, calls from two
threads on two devices at once are safe, and numpy arrays and parpy buffers use the current
device. Needs two CUDA GPUs and torch with CUDA; everything here is skipped elsewhere."""

import threading

import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from common import axpy, row_sum

torch = pytest.importorskip("torch")

CUDA = CompileBackend.Cuda
pytestmark = pytest.mark.skipif(
    not (parpy.backend.is_enabled(CUDA) and torch.cuda.is_available() and torch.cuda.device_count() >= 2),
    reason="needs two CUDA GPUs and torch with CUDA",
)


@parpy.jit
def scaled_head(x, y, p):
    parpy.label("N")
    for i in range(p["n"]):
        y[i] = p["gamma"] * x[i]


def opts(graphs=False, **labels):
    o = parpy.par({k: v for k, v in labels.items()})
    o.backend = CUDA
    o.use_cuda_graphs = graphs
    return o


def axpy_opts(n, graphs=False):
    return opts(graphs, N=parpy.threads(n))


# The multi-block reduction keeps scratch memory in the generated module, one per device.
ROWS, COLS = 4, 20000
ROW_SUM_OPTS = dict(rows=parpy.threads(ROWS), cols=parpy.threads(2048).reduce().tpb(256))


def on(device, arr):
    return torch.from_numpy(arr).to(f"cuda:{device}")


def setup_module():
    # Both devices get their primary context first, so torch.cuda.device switches eagerly.
    for d in (0, 1):
        torch.zeros(1, device=f"cuda:{d}")
        torch.cuda.synchronize(d)


def test_axpy_on_the_second_device():
    rng = np.random.default_rng(1)
    n = 10000
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    xt, yt = on(1, x), on(1, y)
    axpy(2.5, xt, yt, n, opts=axpy_opts(n))
    torch.cuda.synchronize(1)
    assert yt.device.index == 1
    np.testing.assert_allclose(yt.cpu().numpy(), 2.5 * x + y, rtol=1e-12, atol=1e-12)


def test_one_entry_with_scratch_on_both_devices():
    rng = np.random.default_rng(2)
    x = rng.random((ROWS, COLS), dtype=np.float32)
    want = x.astype(np.float64).sum(axis=1)
    # The same specialisation on device 0, 1, then 0 again: its scratch memory is per device.
    for device in (0, 1, 0, 1):
        out = torch.zeros(ROWS, dtype=torch.float32, device=f"cuda:{device}")
        row_sum(on(device, x), out, ROWS, COLS, opts=opts(**ROW_SUM_OPTS))
        torch.cuda.synchronize(device)
        np.testing.assert_allclose(out.cpu().numpy(), want, rtol=1e-4, atol=1e-3)


def test_arrays_on_two_devices_are_an_error():
    x0 = torch.zeros(100, dtype=torch.float64, device="cuda:0")
    y1 = torch.zeros(100, dtype=torch.float64, device="cuda:1")
    with pytest.raises(RuntimeError, match=r"Arguments #2 and #3 are on different CUDA devices "
                                           r"\(cuda:0 and cuda:1\)"):
        axpy(1.0, x0, y1, 100, opts=axpy_opts(100))
    # Also through the generic __cuda_array_interface__ path (a parpy buffer on device 1).
    b1 = parpy.buffer.from_array(y1, CUDA)
    with pytest.raises(RuntimeError, match=r"Arguments #2 and #3 are on different CUDA devices"):
        axpy(1.0, x0, b1, 100, opts=axpy_opts(100))
    # Inside a dict too.
    with pytest.raises(RuntimeError, match=r'Arguments #1\["x"\] and #1\["y"\] are on different CUDA devices'):
        dict_axpy({"x": x0, "y": y1}, 100, opts=axpy_opts(100))


@parpy.jit
def dict_axpy(d, N):
    parpy.label("N")
    for i in range(N):
        d["y"][i] = d["x"][i] + d["y"][i]


@pytest.mark.parametrize("graphs", [False, True], ids=["launches", "graphs"])
def test_two_threads_on_two_devices(graphs):
    rng = np.random.default_rng(3)
    n, calls = 100000, 200
    # Integer values: every sum below is exact in float64.
    xs = [rng.integers(-100, 100, n).astype(np.float64) for _ in range(2)]
    mats = [rng.integers(0, 10, (ROWS, COLS)).astype(np.float32) for _ in range(2)]
    failures = []
    results = [None, None]

    def work(device):
        try:
            x = on(device, xs[device])
            y = torch.zeros(n, dtype=torch.float64, device=f"cuda:{device}")
            m = on(device, mats[device])
            want_rows = mats[device].astype(np.float64).sum(axis=1)
            for call in range(calls):
                axpy(1.0, x, y, n, opts=axpy_opts(n, graphs))
                if call % 20 == 0:
                    out = torch.zeros(ROWS, dtype=torch.float32, device=f"cuda:{device}")
                    row_sum(m, out, ROWS, COLS, opts=opts(graphs, **ROW_SUM_OPTS))
                    torch.cuda.synchronize(device)
                    np.testing.assert_array_equal(out.cpu().numpy(), want_rows)
            torch.cuda.synchronize(device)
            results[device] = y.cpu().numpy()
        except BaseException as e:  # reported by the main thread
            failures.append((device, e))

    threads = [threading.Thread(target=work, args=(d,)) for d in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    for device in (0, 1):
        np.testing.assert_array_equal(results[device], calls * xs[device])


def test_numpy_and_buffers_use_the_current_device():
    rng = np.random.default_rng(4)
    n = 5000
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    with torch.cuda.device(1):
        assert parpy.parpy._cuda_current_device() == 1
        out = y.copy()
        axpy(3.0, x, out, n, opts=axpy_opts(n))
        np.testing.assert_allclose(out, 3.0 * x + y, rtol=1e-12, atol=1e-12)
        xb = parpy.buffer.from_array(x, CUDA)
        yb = parpy.buffer.from_array(y.copy(), CUDA)
        assert xb.device == 1 and yb.device == 1
        axpy(1.0, xb, yb, n, opts=axpy_opts(n))
        np.testing.assert_allclose(yb.numpy(), x + y, rtol=1e-12, atol=1e-12)
    assert parpy.parpy._cuda_current_device() == 0
    # Back on device 0, buffers of device 1 still run there.
    axpy(1.0, xb, yb, n, opts=axpy_opts(n))
    np.testing.assert_allclose(yb.numpy(), 2 * x + y, rtol=1e-12, atol=1e-12)
    zb = yb.copy()
    assert zb.device == 1
    np.testing.assert_array_equal(zb.numpy(), yb.numpy())
    assert yb.torch().device.index == 1


def test_zero_dim_tensors_on_the_second_device():
    rng = np.random.default_rng(5)
    n = 3000
    x = rng.standard_normal(n)
    xt = on(1, x)
    yt = torch.zeros(n, dtype=torch.float64, device="cuda:1")
    p = {"n": torch.tensor(1234, device="cuda:1"), "gamma": torch.tensor(0.75, dtype=torch.float64, device="cuda:1")}
    scaled_head(xt, yt, p, opts=axpy_opts(n))
    torch.cuda.synchronize(1)
    want = np.zeros(n)
    want[:1234] = 0.75 * x[:1234]
    np.testing.assert_array_equal(yt.cpu().numpy(), want)
    # A 0-dim tensor is a scalar: it may live on another device than the arrays.
    p0 = {"n": torch.tensor(1000, device="cuda:0"), "gamma": torch.tensor(2.0, dtype=torch.float64, device="cuda:0")}
    yt.zero_()
    scaled_head(xt, yt, p0, opts=axpy_opts(n))
    torch.cuda.synchronize(1)
    want = np.zeros(n)
    want[:1000] = 2.0 * x[:1000]
    np.testing.assert_array_equal(yt.cpu().numpy(), want)


def test_buffers_on_a_chosen_device():
    # parpy.buffer(..., device=1) from device 0: the memory is on device 1 and calls run there.
    rng = np.random.default_rng(6)
    n = 7000
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    assert parpy.parpy._cuda_current_device() == 0
    xb = parpy.buffer.from_array(x, CUDA, device=1)
    yb = parpy.buffer.zeros(n, parpy.ElemSize.F64, CUDA, device=1)
    assert xb.device == 1 and yb.device == 1
    assert torch.as_tensor(yb, device="cuda:1").device.index == 1
    axpy(2.0, xb, yb, n, opts=axpy_opts(n))
    np.testing.assert_allclose(yb.numpy(), 2.0 * x, rtol=1e-12, atol=1e-12)
    zb = parpy.buffer.from_array(y, CUDA, device=0)
    with pytest.raises(RuntimeError, match=r"Arguments #2 and #3 are on different CUDA devices \(cuda:1 and cuda:0\)"):
        axpy(1.0, xb, zb, n, opts=axpy_opts(n))
    assert parpy.parpy._cuda_current_device() == 0
