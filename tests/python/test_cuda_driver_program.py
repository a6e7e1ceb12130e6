"""The Cuda path without a toolchain, run against a stand-in CUDA driver (no GPU needed): kernels
compiled by NVRTC, the module loaded and the kernels found by name in the image, the host code's
launches made through cuLaunchKernel in the order and geometry the host-code interpreter gives,
scratch buffers allocated once, the index-check record cleared and read, graphs captured and
replayed. The stand-in driver keeps "device" memory in host memory and runs no kernel: what it
checks is the calls parpy makes. The H200 runs the same programs for real
(test_cuda_without_toolkit.py)."""

import json
import os
import textwrap

import fake_driver
import parpy
import pytest

nvrtc_found = parpy._nvrtc_info()["found"]
pytestmark = [
    pytest.mark.skipif(not nvrtc_found, reason="NVRTC is not installed (pip install nvidia-cuda-nvrtc)"),
    pytest.mark.skipif(parpy.backend.host_cxx() is None, reason="no C compiler for the stand-in driver"),
]


CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import parpy
    sys.path.insert(0, {tests!r})
    from common import make_opts
    from parpy import parpy as native

    CUDA = parpy.CompileBackend.Cuda
    assert parpy.backend.is_enabled(CUDA), parpy.backend.reasons()
    print("BUILD", native.cuda_build())

    @parpy.jit
    def steps(x, y, N, T):
        for t in range(T):
            parpy.label("N")
            for i in range(N):
                y[i] = y[i] * 0.5 + x[i]
            parpy.label("N")
            for i in range(N):
                x[i] = x[i] + 1.0

    @parpy.jit
    def gather(x, idx, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = x[idx[i]]

    @parpy.jit
    def row_sums(x, y, N, M):
        parpy.label("rows")
        for i in range(N):
            parpy.label("cols")
            y[i] = parpy.operators.sum(x[i, :])

    def run(name, f, args, opts):
        print("CALL", json.dumps([name, [list(l[:5]) for l in parpy._host_launches(f, args, opts)]]), flush=True)
        f(*args, opts=opts)
        print("DONE", name, flush=True)

    x, y = np.ones(5000, np.float32), np.zeros(5000, np.float32)
    run("steps", steps, [x, y, 5000, 3], make_opts(CUDA, N=1024))
    o = make_opts(CUDA, par={{"cols": parpy.threads(65536).reduce()}}, rows=2)
    run("multiblock", row_sums, [np.ones((2, 1000000), np.float32), np.zeros(2, np.float32), 2, 1000000], o)
    o = make_opts(CUDA, N=256)
    o.bounds_check = True
    run("checked", gather, [np.ones(100, np.float32), np.arange(100, dtype=np.int64), np.zeros(100, np.float32), 100], o)
    o = make_opts(CUDA, N=1024)
    o.use_cuda_graphs = True
    x, y = np.ones(5000, np.float32), np.zeros(5000, np.float32)
    run("graph", steps, [x, y, 5000, 2], o)
    run("graph again", steps, [x, y, 5000, 2], o)
    """
)


def test_driver_program_calls(tmp_path):
    r = fake_driver.run(tmp_path, CHILD.format(tests=os.path.dirname(__file__)))
    log = tmp_path / "driver.log"
    assert "BUILD kernels by NVRTC" in r.stdout, r.stdout
    calls = [json.loads(line.split(" ", 1)[1]) for line in r.stdout.splitlines() if line.startswith("CALL")]
    driver = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 5

    # The driver's log in call order: each call's launches follow the previous call's.
    launches = [d for d in driver if d["op"] == "launch"]
    pos = 0
    for name, want in calls:
        # The same argument values: the graph is replayed, nothing launched; but the host arrays'
        # device copies may land at other addresses, which are baked into the graph: captured again.
        if name == "graph again" and pos == len(launches):
            continue
        got = launches[pos:pos + len(want)]
        pos += len(want)
        names = ["parpy_kernel_" + k + ("_vec" if vec else "") for k, vec, *_ in want]
        assert [g["kernel"] for g in got] == names, name
        assert [(g["grid"], g["block"]) for g in got] == [(w[2], w[3]) for w in want], name
        assert all(g["captured"] == name.startswith("graph") for g in got), name
    assert pos == len(launches)
    # steps: two kernels per time step, 3 steps; each of the 4 programs loads its module once.
    assert len(calls[0][1]) == 6
    assert sum(d["op"] == "load" for d in driver) == 4
    # The multi-block reduction's scratch buffers: allocated on the first call only.
    assert any(d["op"] == "alloc" for d in driver)
    # The checked call clears the 24-byte record before its kernels.
    assert any(d["op"] == "memset" and d["bytes"] == 24 for d in driver)
    # Graphs: captured on the first call (and again where the copies moved), replayed by both.
    assert sum(d["op"] == "capture" for d in driver) == (2 if pos > 12 else 1)
    assert sum(d["op"] == "graph launch" for d in driver) == 2


# Two devices of different compute capabilities: each has its own context; memory belongs to the device whose context was current
# when it was allocated, and fake_place(lo, hi, device) says that host memory standing in for a CUDA
# array lives on `device`. Launches and module loads are logged with the current context's device.
TWO_DEVICES = fake_driver.SOURCE.replace(
    "int cuDeviceGetCount(int* n) { *n = 1; return 0; }", "int cuDeviceGetCount(int* n) { *n = 2; return 0; }"
).replace(  # device 0 is of compute capability 9.0, device 1 of 8.0
    "*v = a == 75 ? 9 : 0;", "*v = a == 75 ? (d == 1 ? 8 : 9) : 0;"
).replace(
    "int cuDevicePrimaryCtxRetain(void** c, int d) { *c = (void*)0x1234; return 0; }",
    "int cuDevicePrimaryCtxRetain(void** c, int d) { *c = (void*)(0x1000 + (u64)d); return 0; }",
).replace(
    "int cuCtxGetDevice(int* d) { *d = 0; return 0; }",
    "int cuCtxGetDevice(int* d) { *d = current ? (int)((u64)current - 0x1000) : 0; return 0; }",
).replace(
    "int cuPointerGetAttribute(void* v, int a, u64 p) { *(int*)v = 0; return 0; }",
    """static u64 placed_lo[16], placed_hi[16]; static int placed_dev[16], placed_n = 0;
void fake_place(u64 lo, u64 hi, int d) { placed_lo[placed_n] = lo; placed_hi[placed_n] = hi; placed_dev[placed_n++] = d; }
int cuPointerGetAttribute(void* v, int a, u64 p) {
  *(int*)v = 0;
  for (int i = 0; i < placed_n; ++i) if (p >= placed_lo[i] && p < placed_hi[i]) *(int*)v = placed_dev[i];
  return 0;
}""",
).replace(
    '"{\\"op\\": \\"load\\", \\"bytes\\": %llu}\\n", (u64)image_len);',
    '"{\\"op\\": \\"load\\", \\"bytes\\": %llu, \\"device\\": %d, \\"arch\\": %u}\\n", (u64)image_len, '
    '(int)((u64)current - 0x1000), (*(const unsigned*)(image + 0x30) >> 8) & 0xff);',
).replace(
    '"{\\"op\\": \\"launch\\", \\"kernel\\": \\"%s\\", \\"grid\\": %u, \\"block\\": %u, \\"captured\\": %d}\\n",\n          (const char*)f, gx, bx, capturing);',
    '"{\\"op\\": \\"launch\\", \\"kernel\\": \\"%s\\", \\"grid\\": %u, \\"block\\": %u, \\"captured\\": %d, '
    '\\"device\\": %d}\\n",\n          (const char*)f, gx, bx, capturing, (int)((u64)current - 0x1000));',
)

TWO_DEVICES_CHILD = textwrap.dedent(
    """
    import ctypes, os
    import numpy as np
    import parpy

    CUDA = parpy.CompileBackend.Cuda
    driver = ctypes.CDLL(os.environ["PARPY_LIBCUDA"])
    driver.fake_place.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int]

    @parpy.jit
    def add1(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = x[i] + 1.0

    class OnDevice:
        # A CUDA array as the interface describes it, whose memory the driver places on `device`.
        def __init__(self, n, device):
            self.buf = np.zeros(n, np.float32)
            p = self.buf.ctypes.data
            driver.fake_place(p, p + self.buf.nbytes, device)
            self.__cuda_array_interface__ = {"shape": (n,), "typestr": "<f4", "data": (p, False),
                                             "version": 3, "strides": None, "stream": None}

    o = parpy.par({"N": parpy.threads(256)})
    o.backend = CUDA
    for device in [1, 0, 1]:
        add1(OnDevice(1000, device), 1000, opts=o)
        print("CALLED", device, flush=True)
    """
)


def test_driver_program_runs_on_the_device_of_its_arrays(tmp_path):
    fake_driver.run(tmp_path, TWO_DEVICES_CHILD, source=TWO_DEVICES)
    log = tmp_path / "driver.log"
    driver = [json.loads(line) for line in log.read_text().splitlines()]
    # One module per device, loaded in that device's context on its first call there and compiled
    # for its architecture; each call's launch runs in the context of its array's device.
    assert [(d["device"], d["arch"]) for d in driver if d["op"] == "load"] == [(1, 80), (0, 90)]
    assert [d["device"] for d in driver if d["op"] == "launch"] == [1, 0, 1]


NO_NVCC_CHILD = textwrap.dedent(
    """
    import numpy as np
    import parpy

    CUDA = parpy.CompileBackend.Cuda
    print("ENABLED", parpy.backend.is_enabled(CUDA), flush=True)

    @parpy.jit
    def add1(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = x[i] + 1.0

    o = parpy.par({"N": parpy.threads(32)})
    o.backend = CUDA
    add1(np.zeros(8, np.float32), 8, opts=o)
    print("JIT OK", flush=True)
    o.extra_flags = ["-lineinfo"]
    try:
        add1(np.zeros(8, np.float32), 8, opts=o)
    except RuntimeError as e:
        print("FLAGS", str(e).splitlines()[0])
    c = parpy.CompileOptions()
    c.backend = CUDA
    try:
        parpy.compile_string("k", 'extern "C" int32_t k(float* x) { return 0; }', c)(np.zeros(3, np.float32))
    except RuntimeError as e:
        print("USER", str(e).splitlines()[0])
    """
)


def test_nvrtc_alone_enables_cuda_and_says_what_needs_nvcc(tmp_path):
    # NVRTC from the pip wheel, no nvcc: the wheel must be found before parpy first asks which
    # backends it has (at import), and what only nvcc builds says so.
    r = fake_driver.run(tmp_path, NO_NVCC_CHILD, PARPY_NVCC=str(tmp_path / "no-nvcc"))
    assert "ENABLED True" in r.stdout and "JIT OK" in r.stdout, r.stdout
    assert "FLAGS This Cuda program is built by nvcc (asked for by opts.extra_flags" in r.stdout, r.stdout
    assert "USER CUDA code given to compile_string is built by nvcc" in r.stdout, r.stdout


AUTOTUNE = r"""
import json, sys
import numpy as np
import parpy
sys.path.insert(0, %r)
from common import row_sum

N, M = 8, 4096
x, y = np.ones((N, M), np.float32), np.zeros(N, np.float32)
o = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M)}, autotune=True)
o.backend = parpy.CompileBackend.Cuda
row_sum(x, y, N, M, opts=o)
t = parpy.tuned(row_sum, [x, y, N, M], o)
print(json.dumps([[c.spec, c.clusters, c.error] for c in t.candidates]))
"""


def test_autotuning_on_cuda_tries_thread_counts_blocks_and_clusters(tmp_path):
    # The Cuda search against the stand-in driver (its kernels do nothing, so the times mean
    # nothing): every candidate builds with NVRTC and launches; the thread counts are the user's
    # and the powers of two below it in steps of 4 (then, beside the best, which the stand-in's
    # noise picks, others down to 32), then blocks of fewer threads, with clusters as given and the
    # other way.
    r = fake_driver.run(tmp_path, AUTOTUNE % os.path.dirname(os.path.abspath(__file__)), PARPY_AUTOTUNE_PROGRESS="0")
    tried = json.loads(r.stdout.strip().splitlines()[-1])
    assert all(error is None for _, _, error in tried), [e for _, _, e in tried if e]
    cols = {tuple(spec["cols"]) for spec, _, _ in tried}
    assert {(t, False, 1024) for t in (4096, 1024, 256, 64)} <= cols
    assert all(t in (4096, 2048, 1024, 512, 256, 128, 64, 32) for t, _, _ in cols)
    # Blocks of 1024 (the user's) down to 128, those no wider than the widest label's count.
    assert {1024, 128} <= {b for _, _, b in cols} <= {1024, 512, 256, 128}
    assert {c for _, c, _ in tried} == {False, True}
    rows = {spec["rows"][0] for spec, _, _ in tried}
    assert rows == {8}  # below 32 threads: only the user's own count
    assert all(spec["rows"][2] == spec["cols"][2] for spec, _, _ in tried)  # one tpb for the nest
    # The launches: one per candidate run at least.
    launches = [json.loads(line) for line in (tmp_path / "driver.log").read_text().splitlines()
                if '"launch"' in line]
    assert len(launches) >= 4 * len(tried)


COPIES = """
import numpy as np
from parpy import CompileBackend
from parpy.autotune import _copy

x = np.arange(6, dtype=np.float32).reshape(2, 3)
b = _copy(x, "#1", CompileBackend.Cuda)
assert b.src is None, "the candidates' copy writes back into a host array"
np.testing.assert_array_equal(b.numpy(), x)
del b
np.testing.assert_array_equal(x, np.arange(6, dtype=np.float32).reshape(2, 3))
print("ok")
"""


def test_autotuning_copies_host_arrays_to_the_device_only(tmp_path):
    # The candidates run on device copies of a host array: made from the array itself, with no
    # host copy first and nothing copied back when they go (for 2^27 floats the host copies took
    # more than the search's budget).
    r = fake_driver.run(tmp_path, COPIES)
    assert r.stdout.strip().endswith("ok"), r.stdout + r.stderr


def test_diagnostics_say_where_the_driver_came_from(tmp_path):
    # python -m parpy names the driver library it loaded and why that one (README, "Backends").
    r = fake_driver.run(tmp_path, "import runpy, sys\nsys.argv = ['parpy']\n"
                                  "runpy.run_module('parpy', run_name='__main__')\n")
    lib = os.path.realpath(tmp_path / "driver" / "libcuda.so.1")
    assert f"  driver: CUDA 13.0 at {lib} ($PARPY_LIBCUDA)" in r.stdout, r.stdout
