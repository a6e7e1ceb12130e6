"""0-dim arrays of every kind are typed scalars wherever a Python scalar is, inside dicts too:
numpy arrays, torch tensors (CPU and CUDA), CuPy arrays and parpy buffers. A host one's value is
part of the specialisation (a loop bound may come from one). A CUDA one stays on the GPU, read by
the kernels, unless its value decides code (a host loop bound, a host condition, a slice bound):
then it is read at call time, after the work queued on its stream, and specialised on. Cases run
on every enabled backend; CUDA arrays need a GPU, except to print the generated code."""

import shutil

import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from test_cuda_language import nvcc_compile

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


# ----- 0-dim CUDA arrays whose value decides no code stay on the GPU ----------------------------

R = 48  # rows of the two-dimensional cases
S = 64  # their columns


@parpy.jit
def scale_by(x, y, g):
    parpy.label("N")
    for i in range(N):
        y[i] = g * x[i]


@parpy.jit
def add_n_times(x, y, n, g):
    for k in range(n):
        parpy.label("N")
        for i in range(N):
            y[i] = y[i] + g * x[i]


@parpy.jit
def rows_scaled(x, y, hmm):
    parpy.label("R")
    for r in range(R):
        parpy.label("S")
        for s in range(hmm["num_states"]):
            y[r, s] = hmm["gamma"] * x[r, s] + hmm["beta"]


def rows_opts():
    o = parpy.par({"R": parpy.threads(R), "S": parpy.threads(S)})
    o.backend = CUDA
    return o


class FakeCudaArray:
    """A __cuda_array_interface__ without memory: enough to print code for, not to run."""

    def __init__(self, typestr, shape=()):
        self.__cuda_array_interface__ = {"data": (0x10000, False), "typestr": typestr, "shape": shape,
                                         "strides": None, "version": 3}


@needs_gpu
def test_cuda_zero_dim_read_in_a_kernel_builds_once():
    torch = pytest.importorskip("torch")
    x = rand(6).astype(np.float32)
    xt = torch.from_numpy(x).cuda()
    before = dict(parpy.parpy.stats())
    for g in (0.5, -2.25, 3.0):
        yt = torch.zeros(N, dtype=torch.float32, device="cuda")
        scale_by(xt, yt, torch.tensor(g, dtype=torch.float32, device="cuda"), opts=opts_for(CUDA))
        np.testing.assert_allclose(yt.cpu().numpy(), np.float32(g) * x, rtol=1e-6, atol=0)
    after = dict(parpy.parpy.stats())
    # The value is not part of the specialisation: one version serves the three values.
    assert scale_by._cache_size() == 1
    assert after["compiles"] - before["compiles"] == 1
    assert after["builds"] - before["builds"] <= 1


@needs_gpu
def test_cuda_zero_dim_host_loop_bound_is_specialised():
    torch = pytest.importorskip("torch")
    x = rand(7)
    xt = torch.from_numpy(x).cuda()
    # n decides how often the host launches the kernel: read and specialised on. g is only read
    # in the kernel: a new value of g alone builds nothing.
    for n, g in [(3, 0.5), (5, 0.5), (5, -1.25)]:
        yt = torch.zeros(N, dtype=torch.float64, device="cuda")
        add_n_times(xt, yt, torch.tensor(n, device="cuda"), torch.tensor(g, dtype=torch.float64, device="cuda"),
                    opts=opts_for(CUDA))
        want = np.zeros(N)
        for _ in range(n):
            want = want + g * x
        np.testing.assert_allclose(yt.cpu().numpy(), want, rtol=1e-12, atol=1e-12)
    assert add_n_times._cache_size() == 2


@parpy.jit
def copy_head(x, y, n):
    parpy.label("N")
    y[:n] = x[:n]


@needs_gpu
def test_cuda_zero_dim_slice_bound_is_specialised():
    torch = pytest.importorskip("torch")
    x = rand(9)
    xt = torch.from_numpy(x).cuda()
    for n in (700, 1500, 700):
        yt = torch.zeros(N, dtype=torch.float64, device="cuda")
        copy_head(xt, yt, torch.tensor(n, device="cuda"), opts=opts_for(CUDA))
        want = np.zeros(N)
        want[:n] = x[:n]
        np.testing.assert_array_equal(yt.cpu().numpy(), want)
    assert copy_head._cache_size() == 2


@needs_gpu
def test_cuda_zero_dim_dict_fields_in_kernels():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(8).standard_normal((R, S))
    xt = torch.from_numpy(x).cuda()
    # num_states bounds a parallel loop inside the kernel (the grid comes from threads(S)).
    for states, gamma in [(40, 1.5), (64, -0.5), (17, 2.0)]:
        yt = torch.zeros((R, S), dtype=torch.float64, device="cuda")
        hmm = {"num_states": torch.tensor(states, device="cuda"),
               "gamma": torch.tensor(gamma, dtype=torch.float64, device="cuda"), "beta": 0.25}
        rows_scaled(xt, yt, hmm, opts=rows_opts())
        want = np.zeros((R, S))
        want[:, :states] = gamma * x[:, :states] + 0.25
        np.testing.assert_allclose(yt.cpu().numpy(), want, rtol=1e-12, atol=1e-12)
    assert rows_scaled._cache_size() == 1


@needs_gpu
def test_print_compiled_shows_the_device_read_of_a_torch_zero_dim():
    torch = pytest.importorskip("torch")
    xt = torch.zeros(N, dtype=torch.float32, device="cuda")
    code = parpy.print_compiled(scale_by, [xt, xt.clone(), torch.tensor(2.0, device="cuda")], opts_for(CUDA))
    assert "float* v_g" in code
    assert "v_g[0]" in code


needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


@needs_nvcc
def test_printed_device_reads_compile(tmp_path):
    # print_compiled needs no GPU for CUDA arrays whose value stays on the GPU.
    x, y = FakeCudaArray("<f4", (N,)), FakeCudaArray("<f4", (N,))
    code = parpy.print_compiled(scale_by, [x, y, FakeCudaArray("<f4")], opts_for(CUDA))
    assert "float* v_g" in code
    assert "parpy_scalar_g = v_g[0];" in code
    assert "(parpy_scalar_g * v_x[v_i])" in code
    nvcc_compile(code, tmp_path)
    xs, ys = FakeCudaArray("<f8", (R, S)), FakeCudaArray("<f8", (R, S))
    hmm = {"num_states": FakeCudaArray("<i8"), "gamma": FakeCudaArray("<f8"), "beta": 0.25}
    code = parpy.print_compiled(rows_scaled, [xs, ys, hmm], rows_opts())
    assert "int64_t* v_hmm_num_states" in code and "double* v_hmm_gamma" in code
    assert "parpy_scalar_hmm_num_states = v_hmm_num_states[0];" in code
    assert "parpy_scalar_hmm_gamma = v_hmm_gamma[0];" in code
    nvcc_compile(code, tmp_path)



@parpy.jit
def zero_dim_values(f64, f32, f16, i32, u16, i64, flag, o64, o32, o16, oi32, ou16, oi64, N):
    parpy.label("N")
    for i in range(N):
        if flag:
            o64[i] = f64
            o32[i] = f32
            o16[i] = f16
            oi32[i] = i32
            ou16[i] = u16
            oi64[i] = i64
        else:
            o64[i] = -1.0


def unaligned_zero_dim(value, dtype):
    """A 0-dim view at an odd address of a byte buffer (numpy allows such views)."""
    dtype = np.dtype(dtype)
    raw = np.zeros(dtype.itemsize + 1, dtype=np.uint8)
    view = raw[1:].view(dtype).reshape(())
    view[()] = value
    assert not view.flags.aligned
    return view


@pytest.mark.parametrize("flag_byte", [1, 2, 255])
def test_unaligned_zero_dim_values_and_non_canonical_bools(backend, flag_byte):
    # Read by copying (the sanitizer build, tools/sanitize_suite.sh, reports a misaligned load
    # otherwise); a numpy bool stored as any non-zero byte is True.
    values = [(2.5, np.float64), (-1.25, np.float32), (0.5, np.float16), (-7, np.int32),
              (40000, np.uint16), (-2**40, np.int64)]
    args = [unaligned_zero_dim(v, t) for v, t in values]
    flag = np.frombuffer(bytes([flag_byte]), dtype=np.bool_).reshape(())
    outs = [np.zeros(N, t) for _, t in values]
    zero_dim_values(*args, flag, *outs, N, opts=opts_for(backend))
    for (v, t), o in zip(values, outs):
        np.testing.assert_array_equal(o, np.full(N, v, t))
    no = np.frombuffer(bytes([0]), dtype=np.bool_).reshape(())
    zero_dim_values(*args, no, *outs, N, opts=opts_for(backend))
    np.testing.assert_array_equal(outs[0], np.full(N, -1.0))
