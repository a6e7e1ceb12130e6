"""The API objects: options, enums, types, operators, backends and `python -m parpy`."""

import ctypes
import os
import shutil
import subprocess
import sys

import numpy as np
import parpy.backend
import parpy.operators as ops
import parpy.types
import pytest
from parpy import parpy as native
from common import child_timeout

CompileBackend = native.CompileBackend
CompileOptions = native.CompileOptions
ElemSize = native.ElemSize
LoopPar = native.LoopPar
DataType = native.DataType

ALL_ELEMS = [
    ("Bool", "b1"), ("I8", "i1"), ("I16", "i2"), ("I32", "i4"), ("I64", "i8"),
    ("U8", "u1"), ("U16", "u2"), ("U32", "u4"), ("U64", "u8"),
    ("F16", "f2"), ("F32", "f4"), ("F64", "f8"),
]  # fmt: skip


# ----- CompileBackend / Target ---------------------------------------------------------------


def test_compile_backend_members():
    assert [b.name for b in CompileBackend] == ["Auto", "Cuda", "Metal", "Cpu"]
    assert str(CompileBackend.Cuda) == "CompileBackend.Cuda"
    assert f"{CompileBackend.Cpu}" == "CompileBackend.Cpu"
    assert CompileBackend.Cuda == 1 and CompileBackend.Auto == 0
    assert {CompileBackend.Cuda: 1}[CompileBackend.Cuda] == 1
    assert CompileBackend.Metal != CompileBackend.Cpu


def test_target():
    assert str(native.Target.Host) == "Target.Host"
    assert native.Target.Device != native.Target.Host


# ----- ElemSize --------------------------------------------------------------------------------


@pytest.mark.parametrize("name,code", ALL_ELEMS)
def test_elem_size_codes(name, code):
    e = getattr(ElemSize, name)
    assert str(e) == code
    assert ElemSize(code[0], code[1]) is e
    assert ElemSize(code[0], int(code[1])) is e
    assert e.size() == int(code[1])
    assert ctypes.sizeof(e.to_ctype()) == e.size()
    if name == "Bool":
        assert e.to_numpy() is bool
    else:
        assert np.dtype(e.to_numpy()).str[1:] == code


def test_elem_size_from_numpy_dtype():
    for dt in [np.float32, np.int64, np.uint8, np.float16, np.bool_]:
        d = np.dtype(dt)
        assert str(ElemSize(d.kind, d.itemsize)) == d.str[1:]


def test_elem_size_hash_and_int_compare():
    assert ElemSize.F32 == ElemSize(10)
    assert ElemSize.F32 == 10
    assert len({ElemSize.F32, ElemSize("f", 4)}) == 1
    assert repr(ElemSize.I64) == "ElemSize.I64"


def test_elem_size_ctypes():
    assert ElemSize.F16.to_ctype() is ctypes.c_uint16
    assert ElemSize.Bool.to_ctype() is ctypes.c_bool
    assert ElemSize.F64.to_ctype() is ctypes.c_double


@pytest.mark.parametrize("tyid,size", [("c", 8), ("f", 3), ("x", "4"), ("ff", 4)])
def test_elem_size_unknown(tyid, size):
    with pytest.raises(RuntimeError, match="Unknown type identifier"):
        ElemSize(tyid, size)


def test_elem_size_to_torch():
    torch = pytest.importorskip("torch")
    assert ElemSize.F32.to_torch() is torch.float32
    assert ElemSize.U32.to_torch() is torch.int32
    assert ElemSize.Bool.to_torch() is torch.bool


# ----- ExtType and parpy.types -----------------------------------------------------------------


def test_types_aliases_and_pointer():
    for name, _ in ALL_ELEMS:
        assert getattr(parpy.types, name) is getattr(ElemSize, name)
    p = parpy.types.pointer(parpy.types.F32)
    assert isinstance(p, native.ExtType)
    assert p == native.ExtType.Pointer(ElemSize.F32)
    assert p != native.ExtType.Pointer(ElemSize.F64)
    assert p.elem is ElemSize.F32
    assert repr(p) == "ExtType.Pointer(F32)"
    assert hash(p) == hash(native.ExtType.Pointer(ElemSize.F32))


def test_pointer_rejects_non_elem_size():
    with pytest.raises(RuntimeError, match=r"^Provided type 3 must be an ExtType\.$"):
        parpy.types.pointer(3)


# ----- DataType --------------------------------------------------------------------------------


def test_data_type_from_numpy_arrays():
    for dt in [np.float32, np.float64, np.int8, np.int32, np.uint16, np.bool_, np.float16]:
        a = np.zeros(3, dtype=dt)
        d = DataType(a.__array_interface__["typestr"])
        assert str(d) == a.__array_interface__["typestr"]
        assert d == DataType.from_elem_size(d.sz)
        assert d.size() == a.itemsize
        assert str(d.sz) == np.dtype(dt).str[1:]


def test_data_type_predicates():
    f, i, u, b = DataType("<f4"), DataType("<i8"), DataType("|u1"), DataType("|b1")
    assert f.is_floating_point() and not f.is_integer()
    assert i.is_signed_integer() and i.is_integer() and not i.is_unsigned_integer()
    assert u.is_unsigned_integer() and u.is_integer() and not u.is_signed_integer()
    assert not b.is_integer() and not b.is_floating_point()
    assert f.to_numpy() is np.float32
    assert b.to_numpy() is bool
    assert f.to_ctype() is ctypes.c_float
    assert f.sz is ElemSize.F32


def test_data_type_eq_compares_byteorder():
    assert DataType("<f4") == DataType("<f4")
    assert DataType("<f4") != DataType(">f4")
    assert DataType("<f4") != DataType("<f8")
    assert DataType("<f4") != "<f4"


@pytest.mark.parametrize(
    "s,msg",
    [
        ("f4", "Unknown format of type specification: f4"),
        ("", "Unknown format of type specification: "),
        ("xf4", "Unknown byteorder x"),
        ("<c8", "Unknown type identifier c8"),
        ("<f3", "Unknown type identifier f3"),
    ],
)
def test_data_type_errors(s, msg):
    with pytest.raises(RuntimeError) as e:
        DataType(s)
    assert str(e.value) == msg


# ----- LoopPar ---------------------------------------------------------------------------------


def test_loop_par_basics():
    p = LoopPar()
    assert str(p) == "LoopPar { nthreads: 0, reduction: false, tpb: 1024 }"
    assert not p.is_parallel()
    q = p.threads(128).reduce().tpb(64)
    assert repr(q) == "LoopPar { nthreads: 128, reduction: true, tpb: 64 }"
    assert q.is_parallel()
    assert str(p) == "LoopPar { nthreads: 0, reduction: false, tpb: 1024 }"  # copies


def test_loop_par_errors():
    with pytest.raises(RuntimeError, match="^The number of threads can only be set once$"):
        LoopPar().threads(4).threads(8)
    msg = "^The number of threads per block must be a positive integer divisible by 32.$"
    for bad in [0, -32, 48]:
        with pytest.raises(RuntimeError, match=msg):
            LoopPar().tpb(bad)


# ----- CompileOptions --------------------------------------------------------------------------


def test_options_defaults():
    o = CompileOptions()
    assert o.parallelize == {}
    assert o.verbose_backend_resolution is False
    assert o.debug_print is False
    assert o.write_output is False
    assert o.backend == CompileBackend.Auto
    assert o.use_cuda_thread_block_clusters is False
    assert o.max_thread_blocks_per_cluster == 8
    assert o.use_cuda_graphs is False
    assert o.force_int_size is None
    assert o.force_float_size is None
    assert o.includes == [] and o.libs == [] and o.extra_flags == []
    assert o.fast_math is False
    assert o.bounds_check is False


def test_options_str():
    o = native.par({"N": LoopPar().threads(10)})
    assert str(o) == (
        'CompileOptions { parallelize: {"N": LoopPar { nthreads: 10, reduction: false, '
        "tpb: 1024 }}, verbose_backend_resolution: false, debug_print: false, "
        "write_output: false, backend: Auto, use_cuda_thread_block_clusters: false, "
        "max_thread_blocks_per_cluster: 8, use_cuda_graphs: false, force_int_size: None, "
        "force_float_size: None, includes: [], libs: [], extra_flags: [], fast_math: false, "
        "bounds_check: false }"
    )


def test_options_setters_roundtrip():
    o = CompileOptions()
    o.verbose_backend_resolution = True
    o.debug_print = True
    o.write_output = True
    o.backend = CompileBackend.Cpu
    o.use_cuda_thread_block_clusters = True
    o.max_thread_blocks_per_cluster = 16
    o.use_cuda_graphs = True
    o.force_int_size = ElemSize.I32
    o.force_float_size = ElemSize.F32
    o.includes = ["/a"]
    o.libs = ["/b"]
    o.extra_flags = ["-O2"]
    o.fast_math = True
    assert o.backend == CompileBackend.Cpu
    assert o.max_thread_blocks_per_cluster == 16
    assert o.force_int_size is ElemSize.I32 and o.force_float_size is ElemSize.F32
    assert (o.includes, o.libs, o.extra_flags) == (["/a"], ["/b"], ["-O2"])
    s = str(o)
    assert "force_int_size: Some(I32)" in s and "force_float_size: Some(F32)" in s
    assert 'includes: ["/a"]' in s and "backend: Cpu" in s and "fast_math: true" in s
    o.force_int_size = None
    o.force_float_size = None
    assert o.force_int_size is None and o.force_float_size is None


def test_options_getters_return_copies():
    o = CompileOptions()
    o.includes.append("/lost")
    o.parallelize["N"] = LoopPar().threads(4)
    assert o.includes == [] and o.parallelize == {}
    o.includes += ["/kept"]
    assert o.includes == ["/kept"]
    o.parallelize = {"N": LoopPar().threads(4)}
    assert str(o.parallelize["N"]) == "LoopPar { nthreads: 4, reduction: false, tpb: 1024 }"


def test_options_setter_errors():
    o = CompileOptions()
    for bad in [0, 3, 6, -4]:
        with pytest.raises(RuntimeError) as e:
            o.max_thread_blocks_per_cluster = bad
        assert str(e.value) == "The number of thread blocks per cluster must be a power of two."
    assert o.max_thread_blocks_per_cluster == 8
    for bad in [ElemSize.F32, ElemSize.Bool]:
        with pytest.raises(RuntimeError) as e:
            o.force_int_size = bad
        assert str(e.value) == "Cannot use a non integer type for integer scalars."
    for bad in [ElemSize.I32, ElemSize.Bool]:
        with pytest.raises(RuntimeError) as e:
            o.force_float_size = bad
        assert str(e.value) == "Cannot use a non floating-point type for floating-point scalars."
    assert o.force_int_size is None and o.force_float_size is None
    o.force_int_size = ElemSize.U16  # unsigned integers are integers
    with pytest.raises(TypeError):
        o.backend = "Cuda"


def test_options_key_changes_with_every_field():
    o = CompileOptions()
    keys = {o._key()}
    changes = [
        ("verbose_backend_resolution", True),
        ("debug_print", True),
        ("write_output", True),
        ("backend", CompileBackend.Cuda),
        ("use_cuda_thread_block_clusters", True),
        ("max_thread_blocks_per_cluster", 2),
        ("use_cuda_graphs", True),
        ("force_int_size", ElemSize.I32),
        ("force_float_size", ElemSize.F32),
        ("includes", ["x"]),
        ("libs", ["y"]),
        ("extra_flags", ["z"]),
        ("fast_math", True),
        ("bounds_check", True),
        ("parallelize", {"N": LoopPar().threads(3)}),
        ("parallelize", {"N": LoopPar().threads(3).tpb(64)}),
    ]
    for field, value in changes:
        setattr(o, field, value)
        k = o._key()
        assert k not in keys, field
        keys.add(k)
    assert CompileOptions()._key() == CompileOptions()._key()


def test_par():
    p = {"N": LoopPar().threads(10), "M": LoopPar().reduce()}
    o = native.par(p)
    assert isinstance(o, CompileOptions)
    assert sorted(o.parallelize) == ["M", "N"]
    assert o.backend == CompileBackend.Auto


def test_scalar_sizes():
    o = CompileOptions()
    s = native.ScalarSizes(o)
    assert (s.int, s.float) == (ElemSize.I64, ElemSize.F64)
    for b in [CompileBackend.Cuda, CompileBackend.Cpu]:
        o.backend = b
        assert native.ScalarSizes(o).int is ElemSize.I64
    o.backend = CompileBackend.Metal
    s = native.ScalarSizes(o)
    assert (s.int, s.float) == (ElemSize.I32, ElemSize.F32)
    o.force_int_size = ElemSize.I16
    o.force_float_size = ElemSize.F64
    s = native.ScalarSizes(o)
    assert (s.int, s.float) == (ElemSize.I16, ElemSize.F64)
    with pytest.raises(AttributeError):
        s.int = ElemSize.I8


# ----- operators -------------------------------------------------------------------------------


def test_operator_aliases():
    assert ops.abs is abs
    assert ops.cos is np.cos and ops.sin is np.sin and ops.exp is np.exp
    assert ops.log is np.log and ops.sqrt is np.sqrt and ops.tanh is np.tanh
    assert ops.atan2 is np.arctan2
    assert ops.inf == float("inf")


def test_operator_reductions():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    y = np.flip(x)
    assert ops.min(x) == np.min(x) and ops.max(x) == np.max(x)
    assert np.array_equal(ops.min(x, axis=1), np.min(x, axis=1))
    assert np.array_equal(ops.max(x, axis=0), np.max(x, axis=0))
    assert np.array_equal(ops.min(x, y), np.minimum(x, y))
    assert np.array_equal(ops.max(x, y), np.maximum(x, y))
    assert ops.max(2, 3) == 3 and ops.min(2.5, -1.0) == -1.0
    assert ops.sum(x) == np.sum(x) and np.array_equal(ops.sum(x, axis=0), np.sum(x, axis=0))
    assert ops.prod(x + 6) == np.prod(x + 6)
    assert np.array_equal(ops.prod(x, axis=1), np.prod(x, axis=1))
    with pytest.raises(AssertionError):
        ops.min(x, y, axis=0)


def test_operator_conversions():
    for f in [ops.float16, ops.float32, ops.float64]:
        assert f(3) == 3.0 and isinstance(f(np.int32(3)), float)
    for f in [ops.int8, ops.int16, ops.int32, ops.int64,
              ops.uint8, ops.uint16, ops.uint32, ops.uint64]:  # fmt: skip
        assert f(3.7) == 3 and isinstance(f(np.float32(2.0)), int)


def test_label_and_gpu():
    assert ops.label("N") is None
    with pytest.raises(AssertionError):
        ops.label(None)
    with ops.gpu:
        pass
    with ops.gpu:  # reusable
        pass


# ----- backend ---------------------------------------------------------------------------------


def test_backend_lists():
    b = parpy.backend
    assert b.backends == [CompileBackend.Cuda, CompileBackend.Metal, CompileBackend.Cpu]
    assert isinstance(b.available, list)
    assert all(x in b.backends for x in b.available)


def test_cpu_backend_enabled_here():
    assert parpy.backend.is_enabled(CompileBackend.Cpu)
    assert CompileBackend.Cpu in parpy.backend.available
    assert parpy.backend.host_cxx() is not None


def test_is_enabled_verbose(capsys):
    b = parpy.backend
    assert not b.is_enabled(CompileBackend.Auto, verbose=True)
    out = capsys.readouterr().out
    assert out.startswith("Backend CompileBackend.Auto is not enabled: ")
    if sys.platform != "darwin":
        assert not b.is_enabled(CompileBackend.Metal, verbose=True)
        assert "Backend CompileBackend.Metal is not enabled: " in capsys.readouterr().out
    assert b.is_enabled(CompileBackend.Cpu, verbose=True)
    assert capsys.readouterr().out == ""


def test_reasons():
    r = parpy.backend.reasons()
    assert list(r) == parpy.backend.backends
    for backend, (enabled, reason) in r.items():
        assert enabled == (backend in parpy.backend.available)
        assert (reason == "") == enabled


def test_resolve():
    b = parpy.backend
    assert b.resolve(CompileBackend.Auto, strict=True) == b.available[0]
    assert b.resolve(CompileBackend.Cpu, strict=True) == CompileBackend.Cpu
    for x in b.backends:
        assert b.resolve(x, strict=False) == x  # non-strict accepts unavailable backends
        if x not in b.available:
            with pytest.raises(RuntimeError) as e:
                b.resolve(x, strict=True)
            assert str(e.value) == (
                f"Specified backend CompileBackend.{x.name} is not available. For more "
                "information, enable the 'verbose_backend_resolution' flag in the compiler "
                "options."
            )


def test_resolve_none_available(monkeypatch):
    monkeypatch.setattr(parpy.backend, "available", [])
    with pytest.raises(RuntimeError) as e:
        parpy.backend.resolve(CompileBackend.Auto, strict=False)
    assert str(e.value) == (
        "Found no enabled GPU backends. For detailed information on why this is, enable the "
        "'verbose_backend_resolution' flag in the compiler options."
    )


def test_resolve_verbose_prints_reasons(capsys):
    parpy.backend.resolve(CompileBackend.Cpu, strict=False, verbose=True)
    out = capsys.readouterr().out
    for x in parpy.backend.backends:
        if x not in parpy.backend.available:
            assert f"Backend {x} is not enabled: " in out


# ----- python -m parpy -------------------------------------------------------------------------


def test_main_diagnostics(tmp_path):
    env = dict(os.environ, PARPY_CACHE_DIR=str(tmp_path))
    (tmp_path / "entry.so").write_bytes(b"x" * 100)
    r = subprocess.run(
        [sys.executable, "-m", "parpy"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=child_timeout(120),
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for name in ["Cuda", "Metal", "Cpu"]:
        assert f"  {name}: " in out
    assert "  Cpu: on" in out
    assert "host C++ compiler" in out
    if shutil.which("nvcc"):
        nvrtc = parpy._nvrtc_info()["found"]
        assert ("  Cuda build: kernels by NVRTC" if nvrtc else "  Cuda build: two parts: kernels by nvcc -cubin") \
            in out or "  Cuda build: nvcc builds" in out, out
        r = subprocess.run([sys.executable, "-m", "parpy"], check=False, capture_output=True, text=True,
                           env=dict(env, PARPY_CUDA_BUILD="nvcc"), timeout=child_timeout(120))
        assert "  Cuda build: nvcc builds the whole program: PARPY_CUDA_BUILD=nvcc" in r.stdout, r.stdout
    assert str(tmp_path) in out and "1 files" in out


def test_help_explains_opts_and_every_option():
    assert "opts=" in parpy.jit.__doc__ and "parpy.par(" in parpy.jit.__doc__
    assert "opts=" in parpy.CompileOptions.__doc__
    fields = [n for n, v in vars(parpy.CompileOptions).items() if not n.startswith("_") and hasattr(v, "__set__")]
    assert len(fields) >= 15, fields
    for name in fields:
        doc = getattr(parpy.CompileOptions, name).__doc__
        assert doc and len(doc) > 30, (name, doc)
