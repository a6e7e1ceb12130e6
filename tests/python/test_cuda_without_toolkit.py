"""The Cuda backend without a CUDA toolkit (README, "Backends"): kernels compiled by NVRTC in the
process, the host code run by parpy through the driver API. A child process with no nvcc on PATH
(and PARPY_NVCC naming nothing) runs programs of each kind and compares with numpy. Needs a CUDA
GPU and NVRTC; skipped elsewhere."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import parpy
import pytest
from common import child_timeout

CUDA = parpy.CompileBackend.Cuda
pytestmark = pytest.mark.skipif(not parpy.backend.is_enabled(CUDA), reason="needs a CUDA GPU")

CHILD = textwrap.dedent(
    """
    import numpy as np
    import parpy
    from common import axpy, row_sum, make_opts

    CUDA = parpy.CompileBackend.Cuda
    rng = np.random.default_rng(11)

    @parpy.jit
    def steps(x, y, N, T):
        for t in range(T):
            parpy.label("N")
            for i in range(N):
                y[i] = y[i] * 0.5 + x[i]
            parpy.label("N")
            for i in range(N):
                x[i] = x[i] + 1.0

    n = 100003
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    want = 1.5 * x + y
    axpy(1.5, x, y, n, opts=make_opts(CUDA, N=1024))
    assert np.allclose(y, want, rtol=1e-6, atol=1e-6), "axpy"

    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    wx, wy = x.astype(np.float64), y.astype(np.float64)
    for t in range(3):
        wy = wy * 0.5 + wx
        wx = wx + 1.0
    steps(x, y, n, 3, opts=make_opts(CUDA, N=4096))
    assert np.allclose(y, wy, rtol=1e-5, atol=1e-5) and np.allclose(x, wx, rtol=1e-6), "steps"

    x = rng.standard_normal((3, 2000000)).astype(np.float32)
    y = np.zeros(3, np.float32)
    o = make_opts(CUDA, par={"cols": parpy.threads(65536).reduce()}, rows=3)
    row_sum(x, y, 3, 2000000, opts=o)
    assert np.allclose(y, x.sum(axis=1, dtype=np.float64), rtol=1e-4, atol=1e-2), "multi-block row_sum"

    x = rng.standard_normal((64, 4096)).astype(np.float32)
    y = np.zeros(64, np.float32)
    o = make_opts(CUDA, par={"cols": parpy.threads(1024).reduce()}, rows=64)
    o.bounds_check = True
    row_sum(x, y, 64, 4096, opts=o)
    assert np.allclose(y, x.sum(axis=1), rtol=1e-4, atol=1e-3), "row_sum"
    from parpy import parpy as native

    print("OK", native.cuda_build())
    """
)


def test_programs_run_with_no_nvcc(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ)
    nvcc = shutil.which("nvcc")
    if nvcc:
        hidden = str(Path(nvcc).resolve().parent)
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p).resolve() != Path(hidden))
    env["PARPY_NVCC"] = str(tmp_path / "no-nvcc")
    env.pop("CUDA_HOME", None)
    env.pop("CUDA_PATH", None)
    env["PARPY_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                       timeout=child_timeout(600))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("OK"), r.stdout
    assert "nvrtc" in r.stdout.lower(), r.stdout
