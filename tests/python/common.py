"""Helpers shared by the test files: compiler options for a backend and labels, and kernels."""

import os
import shutil
import subprocess

import parpy
import pytest


def make_opts(backend, par=None, **labels):
    """Options for `backend` that run each label of `labels` on that many threads; `par` adds
    labels with their own specs (reductions, tpb)."""
    o = parpy.par(dict(par or {}, **{k: parpy.threads(v) for k, v in labels.items()}))
    o.backend = backend
    return o


def child_timeout(seconds):
    """A time limit for a child process, scaled by PARPY_TEST_TIMEOUT_SCALE (a sanitizer run, which
    instruments the children too, sets it: their CUDA work is many times slower there)."""
    return seconds * float(os.environ.get("PARPY_TEST_TIMEOUT_SCALE", "1"))


needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


def nvcc_compile(code, tmp_path):
    """Compiles generated CUDA code with nvcc for sm_90 (no GPU needed); fails with nvcc's errors."""
    src = tmp_path / "k.cu"
    src.write_text(code)
    cmd = ["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(), str(src), "-o",
           str(tmp_path / "k.o")]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, code + "\n" + r.stderr


def cpu(**labels):
    """make_opts on the Cpu backend."""
    return make_opts(parpy.CompileBackend.Cpu, **labels)


# Kernels that several test files run.


@parpy.jit
def axpy(a, x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = a * x[i] + y[i]


@parpy.jit
def row_sum(x, y, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        y[i] = parpy.operators.sum(x[i, :])


@parpy.jit
def colsum_by_column(x, y, N, M):
    """Column sums: a parallel loop over columns around the loop down each one."""
    parpy.label("cols")
    for j in range(M):
        y[j] = 0.0
        for i in range(N):
            y[j] += x[i, j]


@parpy.jit
def colsum_by_row(x, y, N, M):
    """Column sums: the rows added one after the other."""
    parpy.label("cols")
    y[:] = 0.0
    for i in range(N):
        parpy.label("cols")
        y[:] += x[i, :]
