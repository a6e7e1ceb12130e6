"""CompileOptions that change what happens at a call, on the Cpu backend: write_output on a failed
build, verbose_backend_resolution, force_int_size / force_float_size, includes and extra_flags."""

import os

import numpy as np
import parpy
import pytest
from parpy import CompileBackend, Target
from parpy.types import F64
from common import axpy

CPU = CompileBackend.Cpu


@parpy.external("parpy_test_missing_fn", CPU, Target.Device, header="parpy_test_missing.h")
def missing(x: F64) -> F64:
    return x


@parpy.jit
def uses_missing(x, N):
    parpy.label("N")
    for i in range(N):
        x[i] = missing(x[i])


def cpu_opts(**par):
    opts = parpy.par({k: parpy.threads(v) for k, v in par.items()})
    opts.backend = CPU
    return opts


def test_failed_build_reports_compiler_output_and_writes_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x = np.zeros(8)
    opts = cpu_opts(N=8)
    with pytest.raises(RuntimeError) as e:
        uses_missing(x, 8, opts=opts)
    msg = str(e.value)
    assert msg.startswith("Compilation of generated C++ code failed with exit code ")
    assert "parpy_test_missing.h" in msg and "Standard error:" in msg
    assert not list(tmp_path.glob("*.cpp"))
    opts.write_output = True
    with pytest.raises(RuntimeError) as e:
        uses_missing(x, 8, opts=opts)
    written = list(tmp_path.glob("*.cpp"))
    assert len(written) == 1
    assert f"The generated code was written to {written[0]}" in str(e.value)
    assert "parpy_test_missing_fn" in written[0].read_text()


def test_includes_and_extra_flags_reach_the_compiler(tmp_path):
    (tmp_path / "parpy_test_missing.h").write_text(
        "#pragma once\nstatic inline double parpy_test_missing_fn(double v) { return SCALE * v; }\n")
    x = np.arange(8, dtype=np.float64)
    opts = cpu_opts(N=8)
    opts.includes = [str(tmp_path)]
    opts.extra_flags = ["-DSCALE=3.0"]
    uses_missing(x, 8, opts=opts)
    np.testing.assert_array_equal(x, 3.0 * np.arange(8))


def test_verbose_backend_resolution_explains_disabled_backends(capsys):
    opts = cpu_opts(N=4)
    opts.verbose_backend_resolution = True
    axpy(1.0, np.zeros(4), np.zeros(4), 4, opts=opts)
    out = capsys.readouterr().out
    assert "Backend CompileBackend.Metal is not enabled: " in out


def test_forced_scalar_sizes():
    x = np.random.default_rng(0).random(16, dtype=np.float32)
    y = np.zeros(16, np.float32)
    opts = cpu_opts(N=16)
    opts.force_float_size = parpy.types.F32
    opts.force_int_size = parpy.types.I32
    code = parpy.print_compiled(axpy, [0.5, x, y, 16], opts)
    assert "double" not in code and "float v_a" in code and "int32_t v_N" in code
    axpy(0.5, x, y, 16, opts=opts)
    np.testing.assert_allclose(y, np.float32(0.5) * x, rtol=1e-7)


def test_unavailable_backend_is_rejected_when_calling():
    if parpy.backend.is_enabled(CompileBackend.Cuda):
        pytest.skip("Cuda is available here")
    opts = cpu_opts(N=4)
    opts.backend = CompileBackend.Cuda
    with pytest.raises(RuntimeError, match="Specified backend CompileBackend.Cuda is not available"):
        axpy(1.0, np.zeros(4), np.zeros(4), 4, opts=opts)
    # Generating code needs no GPU.
    assert "__global__" in parpy.print_compiled(axpy, [1.0, np.zeros(4), np.zeros(4), 4], opts)
    assert os.path.isdir(parpy.get_include())


@parpy.jit
def axpy_auto(a, x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = a * x[i] + y[i]


def test_a_call_never_changes_the_options_it_is_given():
    # Auto is resolved for the call, in a copy: the caller's object stays Auto (it used to become
    # the backend chosen), and a call with other options in the same object resolves them anew.
    opts = parpy.par({"N": parpy.threads(4)})
    assert opts.backend == CompileBackend.Auto
    before = str(opts)
    x = np.random.rand(6)
    y = np.random.rand(6)
    want = 2.0 * x + y
    axpy_auto(2.0, x, y, 6, opts=opts)
    np.testing.assert_allclose(y, want, rtol=1e-15)
    assert opts.backend == CompileBackend.Auto and str(opts) == before
    axpy_auto(2.0, x, y, 6, opts=opts)  # the same options again: the same library
    np.testing.assert_allclose(y, 2.0 * x + want, rtol=1e-15)
    assert axpy_auto._cache_size() == 1
    opts.force_float_size = parpy.types.F32  # other options in the same object
    y32 = np.random.rand(6).astype(np.float32)
    x32 = np.random.rand(6).astype(np.float32)
    want32 = np.float32(2.0) * x32 + y32
    axpy_auto(2.0, x32, y32, 6, opts=opts)
    np.testing.assert_allclose(y32, want32, rtol=1e-6)
    assert opts.backend == CompileBackend.Auto
    assert axpy_auto._cache_size() == 2
    # print_compiled resolves in a copy too.
    parpy.print_compiled(axpy_auto, [2.0, x, y, 6], opts)
    assert opts.backend == CompileBackend.Auto
