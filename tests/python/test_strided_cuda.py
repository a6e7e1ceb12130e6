"""Non-contiguous CUDA arrays (docs/language.md, Arguments): on the Cuda backend a torch or CuPy
array that is not C-contiguous (a column, a transposed or Fortran-ordered array, a stepped slice)
runs on a contiguous copy made on the GPU by its own library, on the stream the call launches on,
and the copy is written back into the array where the function writes it. A broadcast array
(stride 0) may be read, not written; a copied array may not share memory with another argument;
other CUDA arrays must be contiguous. The calls need a GPU with torch or CuPy; the printed code
(the last tests) does not."""

import json

import numpy as np
import parpy
import pytest
from locations import SourceLocations

CUDA = parpy.CompileBackend.Cuda
SRC = SourceLocations(__file__)
RNG = np.random.default_rng(11)


def opts(**labels):
    o = parpy.par({k: parpy.threads(v) for k, v in labels.items()})
    o.backend = CUDA
    return o


@parpy.jit
def scale_into(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = 2.0 * x[i] + 1.0


@parpy.jit
def row_sums(x, y, N, M):
    parpy.label("N")
    for i in range(N):
        y[i] = parpy.operators.sum(x[i, :])


@parpy.jit
def add_ij(x, N, M):  # @add_ij_def
    parpy.label("N")
    for i in range(N):
        for j in range(M):
            x[i, j] = x[i, j] + parpy.operators.float64(i * 1000 - j)


@parpy.jit
def from_dict(d, N):
    parpy.label("N")
    for i in range(N):
        d["y"][i] = d["x"][i] - d["z"][i]


@parpy.jit
def copy_over(src, dst, N):  # @copy_over_def
    parpy.label("N")
    for i in range(N):
        dst[i] = src[i]


def added_ij(a):
    """What add_ij makes of `a` (numpy)."""
    i = np.arange(a.shape[0])[:, None]
    j = np.arange(a.shape[1])[None, :]
    return a + (i * 1000 - j).astype(np.float64)


# ----- the libraries ---------------------------------------------------------------------------


class Torch:
    name = "torch"

    def __init__(self):
        self.torch = pytest.importorskip("torch")
        if not self.torch.cuda.is_available():
            pytest.skip("torch has no CUDA device")

    def asarray(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a)).cuda()

    def numpy(self, x):
        return x.cpu().numpy()

    def fortran(self, x):
        return x.t().contiguous().t()

    def broadcast(self, row, n):
        return row.expand(n, row.shape[0])

    def stream(self):
        return self.torch.cuda.stream(self.torch.cuda.Stream())

    def copy_of(self, p):
        return f"{p}.contiguous()"


class Cupy:
    name = "cupy"

    def __init__(self):
        self.cp = pytest.importorskip("cupy")
        try:
            if self.cp.cuda.runtime.getDeviceCount() == 0:
                pytest.skip("CuPy finds no CUDA device")
        except self.cp.cuda.runtime.CUDARuntimeError:
            pytest.skip("CuPy finds no CUDA device")

    def asarray(self, a):
        return self.cp.asarray(np.ascontiguousarray(a))

    def numpy(self, x):
        return x.get()

    def fortran(self, x):
        return self.cp.asfortranarray(x)

    def broadcast(self, row, n):
        return self.cp.broadcast_to(row, (n, row.shape[0]))

    def stream(self):
        return self.cp.cuda.Stream(non_blocking=True)

    def copy_of(self, p):
        return f"cupy.ascontiguousarray({p})"


@pytest.fixture(params=["torch", "cupy"])
def lib(request):
    if not parpy.backend.is_enabled(CUDA):
        pytest.skip("no CUDA GPU here")
    return {"torch": Torch, "cupy": Cupy}[request.param]()


# ----- calls -----------------------------------------------------------------------------------


def test_a_column_is_read_and_a_column_written(lib):
    a, out = RNG.standard_normal((50, 5)), RNG.standard_normal((50, 4))
    x, y = lib.asarray(a), lib.asarray(out)
    scale_into(x[:, 3], y[:, 2], 50, opts=opts(N=50))
    want = out.copy()
    want[:, 2] = 2.0 * a[:, 3] + 1.0
    np.testing.assert_array_equal(lib.numpy(y), want)
    np.testing.assert_array_equal(lib.numpy(x), a)


@pytest.mark.parametrize("view", ["transposed", "fortran", "stepped", "column-block"])
def test_two_dimensional_views_read_and_written(lib, view):
    a = RNG.standard_normal((40, 60))
    base = lib.asarray(a)
    x = {"transposed": lambda: base.T,
         "fortran": lambda: lib.fortran(base),
         "stepped": lambda: base[::2],
         "column-block": lambda: base[3:30, 7:41:3]}[view]()
    before = lib.numpy(x)
    n, m = before.shape
    y = lib.asarray(np.zeros(n))
    row_sums(x, y, n, m, opts=opts(N=n))
    np.testing.assert_allclose(lib.numpy(y), before.sum(axis=1), rtol=1e-12, atol=1e-12)
    add_ij(x, n, m, opts=opts(N=n))
    np.testing.assert_array_equal(lib.numpy(x), added_ij(before))
    if view != "fortran":  # a view: the base holds the results, and nothing else changed
        want = a.copy()
        {"transposed": lambda: want.T, "stepped": lambda: want[::2],
         "column-block": lambda: want[3:30, 7:41:3]}[view]()[...] = added_ij(before)
        np.testing.assert_array_equal(lib.numpy(base), want)


def test_a_stepped_slice_read_and_written(lib):
    a, out = RNG.standard_normal(200), RNG.standard_normal(300)
    x, y = lib.asarray(a), lib.asarray(out)
    scale_into(x[::2], y[1::3], 100, opts=opts(N=100))
    want = out.copy()
    want[1::3] = 2.0 * a[::2] + 1.0
    np.testing.assert_array_equal(lib.numpy(y), want)
    np.testing.assert_array_equal(lib.numpy(x), a)


def test_dict_entries(lib):
    a, out = RNG.standard_normal((30, 3)), RNG.standard_normal((30, 2))
    m, y = lib.asarray(a), lib.asarray(out)
    from_dict({"x": m[:, 0], "y": y[:, 1], "z": m[:, 2]}, 30, opts=opts(N=30))
    want = out.copy()
    want[:, 1] = a[:, 0] - a[:, 2]
    np.testing.assert_array_equal(lib.numpy(y), want)


def test_on_a_stream_of_its_own(lib):
    # Everything is queued on a non-default stream: the input is changed there just before the
    # call, and the result read there just after it, so the copies must be ordered on it.
    a = RNG.standard_normal((256, 300))
    with lib.stream():
        base = lib.asarray(a)
        base *= 2.0
        x = base.T
        y = lib.asarray(np.zeros((300, 2)))
        row_sums(x, y[:, 1], 300, 256, opts=opts(N=300))
        add_ij(x, 300, 256, opts=opts(N=300))
        got_sums, got = lib.numpy(y[:, 1]), lib.numpy(base)
    np.testing.assert_allclose(got_sums, (2.0 * a).sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got, added_ij(2.0 * a.T).T)


def test_arrays_of_two_libraries_on_two_streams():
    # The call launches on the first array's stream (torch's); the CuPy array's copy, made on
    # CuPy's stream, is waited for before the launch, and written back after it.
    if not parpy.backend.is_enabled(CUDA):
        pytest.skip("no CUDA GPU here")
    t, c = Torch(), Cupy()
    a, out = RNG.standard_normal((64, 80)), RNG.standard_normal((80, 3))
    with t.stream(), c.stream():
        x = t.asarray(a)
        x *= 3.0
        y = c.asarray(out)
        y *= 2.0
        row_sums(x.T, y[:, 1], 80, 64, opts=opts(N=80))
        got = c.numpy(y)
    want = 2.0 * out
    want[:, 1] = (3.0 * a).sum(axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_a_broadcast_array_is_read_not_written(lib):
    r = RNG.standard_normal(50)
    row = lib.asarray(r)
    b = lib.broadcast(row, 20)
    y = lib.asarray(np.zeros(20))
    row_sums(b, y, 20, 50, opts=opts(N=20))
    np.testing.assert_allclose(lib.numpy(y), np.full(20, r.sum()), rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError) as e:
        add_ij(b, 20, 50, opts=opts(N=20))
    msg = ("Argument #1 (parameter x) is a broadcast array (a dimension of stride 0, as from expand or "
           "broadcast_to), whose elements are shared, and the function writes it: writes to a shared "
           "element would overwrite each other.\nWrite into an array with an element of its own for "
           f"each value, such as the copy {lib.copy_of('x')}, which the function then writes instead.")
    assert str(e.value) == SRC.loc(msg, "add_ij_def", "x")
    np.testing.assert_array_equal(lib.numpy(row), r)
    # The fix.
    c = b.contiguous() if lib.name == "torch" else lib.cp.ascontiguousarray(b)
    add_ij(c, 20, 50, opts=opts(N=20))
    np.testing.assert_array_equal(lib.numpy(c), added_ij(np.tile(r, (20, 1))))


def test_a_copied_array_may_not_share_memory_with_another_argument(lib):
    m = lib.asarray(np.zeros((8, 2)))
    with pytest.raises(RuntimeError) as e:
        copy_over(m[:4, 0], m[::2, 0], 4, opts=opts(N=4))
    msg = ("Argument #1 (parameter src) is a non-contiguous array, which the function reads and "
           "writes through a contiguous copy, and it shares memory with argument #2 (parameter dst): "
           "writes through one would not be seen through the other.\nPass arrays that do not share "
           f"memory, or a contiguous copy of one ({lib.copy_of('src')}).")
    assert str(e.value) == SRC.loc(msg, "copy_over_def", "src")
    # Also with a contiguous array that holds it.
    with pytest.raises(RuntimeError, match=r"shares memory with argument #1 \(parameter src\)"):
        copy_over(m.reshape(-1), m[:, 1], 8, opts=opts(N=8))
    # Two columns of one matrix interleave but share no element: fine.
    a = RNG.standard_normal((8, 3))
    s = lib.asarray(a)
    copy_over(s[:, 0], s[:, 2], 8, opts=opts(N=8))
    want = a.copy()
    want[:, 2] = a[:, 0]
    np.testing.assert_array_equal(lib.numpy(s), want)


def test_contiguous_and_strided_share_one_specialisation(lib):
    n = 33
    o = opts(N=n)
    a = RNG.standard_normal((n, 2))
    x, xs, y = lib.asarray(a[:, 1]), lib.asarray(a)[:, 1], lib.asarray(np.zeros(n))
    assert scale_into._call_key(x, y, n, opts=o) == scale_into._call_key(xs, y, n, opts=o)
    scale_into(x, y, n, opts=o)
    np.testing.assert_array_equal(lib.numpy(y), 2.0 * a[:, 1] + 1.0)
    # Counted after the contiguous call: another parametrisation of this test in the same process
    # may have built the entry already.
    entries = scale_into._cache_size()
    y *= 0.0
    scale_into(xs, y, n, opts=o)
    np.testing.assert_array_equal(lib.numpy(y), 2.0 * a[:, 1] + 1.0)
    assert scale_into._cache_size() == entries


class Interface:
    """Only the __cuda_array_interface__ of an array: no library to copy it with."""

    def __init__(self, arr):
        self.arr = arr
        self.__cuda_array_interface__ = arr.__cuda_array_interface__


def test_other_non_contiguous_cuda_arrays_are_refused(lib):
    x = lib.asarray(RNG.standard_normal((8, 2)))
    y = lib.asarray(np.zeros(8))
    with pytest.raises(RuntimeError, match=r"Argument #1 \(parameter x\): Buffers must only operate on "
                                           r"contiguous memory\.\nA non-contiguous CUDA array runs on a "
                                           r"contiguous copy only where it is a torch or CuPy array"):
        scale_into(Interface(x[:, 0]), y, 8, opts=opts(N=8))


# ----- the printed code (no GPU) ----------------------------------------------------------------


class FakeCudaArray:
    """A __cuda_array_interface__ at an address that is never dereferenced here."""

    def __init__(self, shape, strides=None, ptr=0x7F0000001000):
        self.__cuda_array_interface__ = {"version": 3, "shape": shape, "typestr": "<f8",
                                         "data": (ptr, False), "strides": strides}


class ndarray(FakeCudaArray):  # noqa: N801 - CuPy's name: taken for a CuPy array
    __module__ = "cupy"


def test_printed_code_of_a_strided_array_is_that_of_a_contiguous_one():
    o = opts(N=40)
    y = FakeCudaArray((40,), ptr=0x7F0000100000)
    contiguous = parpy.print_compiled(row_sums, [ndarray((40, 60)), y, 40, 60], o)
    strided = parpy.print_compiled(row_sums, [ndarray((40, 60), (8, 320)), y, 40, 60], o)
    assert strided == contiguous
    with pytest.raises(RuntimeError, match=r"Argument #1 \(parameter x\): Buffers must only operate on "
                                           r"contiguous memory"):
        parpy.print_compiled(row_sums, [FakeCudaArray((40, 60), (8, 320)), y, 40, 60], o)


# ----- the staging, against a stand-in driver and a stand-in CuPy (no GPU) ----------------------

# The stand-in driver (fake_driver.py) keeps "device" memory in host memory and runs no kernel, so
# a stand-in CuPy array is a numpy array. Its copy() holds the array's values plus 100: what the
# write-back puts into the array shows which copies come back, and where. Stream waits are logged.
def staging_driver():
    import fake_driver

    return fake_driver.SOURCE.replace(
        "int cuStreamSynchronize(void* s) { return 0; }",
        'int cuStreamSynchronize(void* s) { fprintf(out(), "{\\"op\\": \\"sync\\", \\"stream\\": %llu}\\n", '
        "(u64)s); return 0; }")


STAGING_CHILD = """
import json, sys, types
import numpy as np
import parpy

events = []
current_stream = [0x55]


class Stream:
    def __init__(self, ptr):
        self.ptr = ptr


cupy = types.ModuleType("cupy")
cupy.cuda = types.SimpleNamespace(get_current_stream=lambda: Stream(current_stream[0]))
sys.modules["cupy"] = cupy


class Device:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class ndarray:
    __module__ = "cupy"

    def __init__(self, a, name, stream=0x55):
        self.a, self.name, self.stream, self.device = a, name, stream, Device()
        ai = a.__array_interface__
        self.__cuda_array_interface__ = {"version": 3, "shape": a.shape, "typestr": a.dtype.str,
                                         "data": (ai["data"][0], False), "strides": ai["strides"],
                                         "stream": stream}
        self.data = types.SimpleNamespace(ptr=ai["data"][0])

    def __getitem__(self, k):
        return ndarray(self.a[k], self.name, self.stream)

    @property
    def T(self):
        return ndarray(self.a.T, self.name, self.stream)

    def copy(self, order="K"):
        assert order == "C"
        events.append(["copy", self.name])
        return ndarray(np.ascontiguousarray(self.a) + 100.0, "copy of " + self.name, self.stream)

    def __setitem__(self, k, v):
        assert k is Ellipsis and v.name == "copy of " + self.name
        events.append(["write", self.name])
        self.a[...] = v.a


@parpy.jit
def scale_into(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = 2.0 * x[i] + 1.0


@parpy.jit
def add_ij(x, N, M):
    parpy.label("N")
    for i in range(N):
        for j in range(M):
            x[i, j] = x[i, j] + parpy.operators.float64(i * 1000 - j)


@parpy.jit
def from_dict(d, N):
    parpy.label("N")
    for i in range(N):
        d["y"][i] = d["x"][i] - d["z"][i]


@parpy.jit
def copy_over(src, dst, N):
    parpy.label("N")
    for i in range(N):
        dst[i] = src[i]


def opts(n):
    o = parpy.par({"N": parpy.threads(n)})
    o.backend = parpy.CompileBackend.Cuda
    return o


def report(name, **arrays):
    print("RESULT", json.dumps([name, events, {k: v.tolist() for k, v in arrays.items()}]), flush=True)
    events.clear()


m, out = np.arange(60.0).reshape(20, 3), np.zeros((20, 3))
scale_into(ndarray(m, "m")[:, 1], ndarray(out, "out")[:, 2], 20, opts=opts(20))
report("column", m=m, out=out)

m, out = np.arange(60.0).reshape(20, 3), np.zeros((20, 2))
from_dict({"x": ndarray(m, "m")[:, 0], "y": ndarray(out, "out")[:, 1], "z": ndarray(m, "m")[:, 2]}, 20,
          opts=opts(20))
report("dict", m=m, out=out)

t = np.arange(12.0).reshape(3, 4)
add_ij(ndarray(t, "t").T, 4, 3, opts=opts(4))
report("transposed", t=t)

row = np.arange(5.0)
b = ndarray(np.lib.stride_tricks.as_strided(row, (4, 5), (0, 8)), "b")
scale_into(b[:, 2], ndarray(np.zeros(4), "y"), 4, opts=opts(4))
try:
    add_ij(b, 4, 5, opts=opts(4))
except RuntimeError as e:
    events.append(["error", str(e).split(chr(10))[0]])
report("broadcast", row=row)

m = np.zeros((8, 2))
try:
    copy_over(ndarray(m, "m")[:4, 0], ndarray(m, "m")[::2, 0], 4, opts=opts(4))
except RuntimeError as e:
    events.append(["error", str(e).split(chr(10))[1]])
report("overlap", m=m)

a, y = np.arange(40.0).reshape(20, 2), np.zeros(20)
contiguous = scale_into._call_key(ndarray(np.ascontiguousarray(a[:, 1]), "c"), ndarray(y, "y"), 20, opts=opts(20))
strided = scale_into._call_key(ndarray(a, "a")[:, 1], ndarray(y, "y"), 20, opts=opts(20))
events.append(["same key", contiguous == strided])
report("key")

print("MARK before", flush=True)
current_stream[0] = 0x66  # the copies are made on another stream than the one the arrays name
out = np.zeros((20, 3))
scale_into(ndarray(np.arange(20.0), "x"), ndarray(out, "out")[:, 2], 20, opts=opts(20))
report("two streams", out=out)
"""


def test_staging_against_a_stand_in_driver(tmp_path):
    import fake_driver

    if not parpy._nvrtc_info()["found"]:
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
    if parpy.backend.host_cxx() is None:
        pytest.skip("no C compiler for the stand-in driver")
    r = fake_driver.run(tmp_path, STAGING_CHILD, source=staging_driver())
    results = {}
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            name, events, arrays = json.loads(line[len("RESULT "):])
            results[name] = (events, {k: np.array(v) for k, v in arrays.items()})

    # A column read (m) and a column written (out): each runs on a copy, and only the written
    # one's copy comes back, into its own column.
    events, arrays = results["column"]
    assert events == [["copy", "m"], ["copy", "out"], ["write", "out"]]
    np.testing.assert_array_equal(arrays["m"], np.arange(60.0).reshape(20, 3))
    want = np.zeros((20, 3))
    want[:, 2] = 100.0
    np.testing.assert_array_equal(arrays["out"], want)

    # Dict entries: copied in key order, the written entry alone written back.
    events, arrays = results["dict"]
    assert events == [["copy", "m"], ["copy", "out"], ["copy", "m"], ["write", "out"]]
    np.testing.assert_array_equal(arrays["m"], np.arange(60.0).reshape(20, 3))
    want = np.zeros((20, 2))
    want[:, 1] = 100.0
    np.testing.assert_array_equal(arrays["out"], want)

    events, arrays = results["transposed"]
    assert events == [["copy", "t"], ["write", "t"]]
    np.testing.assert_array_equal(arrays["t"], np.arange(12.0).reshape(3, 4) + 100.0)

    # A broadcast array is read through a copy, never written back; writing it is refused.
    events, arrays = results["broadcast"]
    assert events == [["copy", "b"], ["copy", "b"],
                      ["error", "Argument #1 (parameter x) is a broadcast array (a dimension of stride 0, as "
                                "from expand or broadcast_to), whose elements are shared, and the function "
                                "writes it: writes to a shared element would overwrite each other."]]
    np.testing.assert_array_equal(arrays["row"], np.arange(5.0))

    events, arrays = results["overlap"]
    assert events == [["copy", "m"], ["copy", "m"],
                      ["error", "Pass arrays that do not share memory, or a contiguous copy of one "
                                "(cupy.ascontiguousarray(src))."]]
    np.testing.assert_array_equal(arrays["m"], np.zeros((8, 2)))

    assert results["key"][0] == [["copy", "a"], ["same key", True]]

    events, arrays = results["two streams"]
    assert events == [["copy", "out"], ["write", "out"]]
    # The arrays name stream 0x55 (the call's); the copy was made on 0x66: the launch waits for
    # 0x66, and the write-back for the launch (0x55). With one stream, nothing waits.
    driver = [json.loads(line) for line in (tmp_path / "driver.log").read_text().splitlines()]
    ops = [(d["op"], d.get("stream")) for d in driver if d["op"] in ("sync", "launch")]
    before = r.stdout.split("MARK before")[0].count("RESULT")
    assert before == 6 and all(op != "sync" for op, _ in ops[:-3]), ops
    assert ops[-3:] == [("sync", 0x66), ("launch", None), ("sync", 0x55)], ops
