"""Runs generated Metal programs in the CPU emulator of tests/metal_emulator (a test harness, not a
backend; README, "Backends"; docs/gpu.md, Metal).

A program is the text `parpy.print_compiled` prints for CompileBackend.Metal: host C++ with the
Metal Shading Language of its kernels embedded (the `parpy_msl` string). `build(codes)` compiles
a batch of programs into one shared library with g++:
- the MSL of every program as C++14 against the emulator's `metal_stdlib` (the one change to the
  text: `threadgroup T a[n];` declarations in kernels become PARPY_EMU_THREADGROUP(T, a, n), one
  array per threadgroup), each program in its own namespace, with a table that registers its
  kernels by name under its MSL text (what the fake MTL::Device::newLibrary looks up);
- the host code as C++17 against python/parpy/include/parpy_metal.h and the emulator's working
  metal-cpp (Metal/Metal.hpp, Foundation/Foundation.hpp);
- the scheduler (metal_emu_runtime.cpp), built once per session.
Each `Emulated` calls the program's generated entry (int32_t entry(void** args)) with numpy
arrays and scalars as the Metal backend's call path would; a non-zero status raises
RuntimeError with the program's error message. Builds are cached per batch of codes for the
session.
"""

import ctypes
import hashlib
import inspect
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EMU = ROOT / "tests" / "metal_emulator"
INCLUDE = ROOT / "python" / "parpy" / "include"
CXX = shutil.which("g++") or shutil.which("clang++")

MSL_RE = re.compile(r'R"PARPY_MSL\((.*?)\)PARPY_MSL"', re.S)
KERNEL_RE = re.compile(r"\[\[max_total_threads_per_threadgroup\((\d+)\)\]\] kernel void (\w+)\(")
THREADGROUP_RE = re.compile(r"^(\s*)threadgroup ([\w:]+) (\w+)\[(\d+)\];", re.M)
ENTRY_RE = re.compile(r'extern "C" int32_t (\w+)\(void\*\* args\) \{\n  return (\w+)\((.*)\);\n\}', re.M)
ERROR_RE = re.compile(r'extern "C" const char\* (\w+)\(\)')
ARG_RE = re.compile(r"\*\(([\w: ]+\*?)\*\)args\[(\d+)\]")

SCALARS = {
    "bool": np.bool_, "int8_t": np.int8, "int16_t": np.int16, "int32_t": np.int32, "int64_t": np.int64,
    "uint8_t": np.uint8, "uint16_t": np.uint16, "uint32_t": np.uint32, "uint64_t": np.uint64,
    "parpy_f16": np.float16, "float": np.float32, "double": np.float64,
}  # fmt: skip

_tmp = None
_builds = {}
_runtime = None


def _dir():
    global _tmp
    if _tmp is None:
        _tmp = Path(tempfile.mkdtemp(prefix="parpy-metal-emu-"))
    return _tmp


def msl_of(code):
    m = MSL_RE.search(code)
    assert m, "no embedded MSL"
    return m.group(1)


def _run(cmds):
    """Runs compiler commands two at a time; raises with the output of the first that fails."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in cmds]
    errors = []
    for c, p in zip(cmds, procs):
        out, _ = p.communicate()
        if p.returncode != 0:
            errors.append(" ".join(map(str, c)) + "\n" + out[-8000:])
    if errors:
        raise RuntimeError("the Metal emulator build failed:\n" + errors[0])


def _runtime_object():
    global _runtime
    if _runtime is None:
        obj = _dir() / "metal_emu_runtime.o"
        _run([[CXX, "-std=c++17", "-O2", "-fPIC", "-c", str(EMU / "metal_emu_runtime.cpp"), "-o", str(obj)]])
        _runtime = obj
    return _runtime


def kernels_source(msls):
    """The kernels of every program as one C++14 translation unit, with their registrations."""
    parts = ["#include <metal_stdlib>\n"]
    for i, msl in enumerate(msls):
        body = THREADGROUP_RE.sub(r"\1PARPY_EMU_THREADGROUP(\2, \3, \4);", msl)
        parts.append(f"namespace parpy_emu_prog_{i} {{\n{body}\n}}\n")
        entries = ", ".join(
            f'{{"{name}", &parpy_emu::Invoker<decltype(&parpy_emu_prog_{i}::{name})>::launch<&parpy_emu_prog_{i}::{name}>, {t}}}'
            for t, name in KERNEL_RE.findall(msl)
        )
        parts.append(f'static const char parpy_emu_src_{i}[] = R"PARPY_MSL({msl})PARPY_MSL";\n')
        parts.append(f"static parpy_emu::Registrar parpy_emu_reg_{i}(parpy_emu_src_{i}, {{{entries}}});\n")
    return "".join(parts)


def host_source(codes, indices):
    """The host code of the programs `indices` as one C++17 translation unit, each in its own
    namespace, with entries parpy_emu_entry_<i> and parpy_emu_error_<i>."""
    checked = "#define PARPY_BOUNDS_CHECK\n" in codes[indices[0]]
    parts = [("#define PARPY_BOUNDS_CHECK\n" if checked else "") + '#include "parpy_metal.h"\n']
    for i in indices:
        code = codes[i]
        entry = ENTRY_RE.search(code).group(1)
        error = ERROR_RE.search(code).group(1)
        body = code.replace('extern "C" ', "")
        parts.append(f"namespace parpy_emu_host_{i} {{\n{body}\n}}\n")
        parts.append(f'extern "C" int32_t parpy_emu_entry_{i}(void** a) {{ return parpy_emu_host_{i}::{entry}(a); }}\n')
        parts.append(f'extern "C" const char* parpy_emu_error_{i}() {{ return parpy_emu_host_{i}::{error}(); }}\n')
    return "".join(parts)


class CallError(RuntimeError):
    """A program's non-zero status (1: an error, with the program's message; run-time index checks
    have their own status)."""

    def __init__(self, status, message):
        super().__init__(f"status {status}: {message}")
        self.status = status


class Emulated:
    """One program of a built batch: call it with the jit function's arguments."""

    def __init__(self, lib, index, code):
        self.entry = getattr(lib, f"parpy_emu_entry_{index}")
        self.entry.restype = ctypes.c_int32
        self.entry.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.error = getattr(lib, f"parpy_emu_error_{index}")
        self.error.restype = ctypes.c_char_p
        m = ENTRY_RE.search(code)
        self.types = [t.strip() for t, _ in ARG_RE.findall(m.group(3))]
        sig = re.search(rf"static int32_t {m.group(2)}\((.*)\) \{{", code).group(1)
        self.names = [p.strip().rsplit(" ", 1)[1] for p in sig.split(",")] if sig.strip() else []
        assert len(self.names) == len(self.types), (self.names, self.types)

    def _flatten(self, fun, args):
        """The values of the entry's parameters, by name (dict entries are parameters of their own)."""
        f = getattr(fun, "__wrapped__", fun)
        names = list(inspect.signature(f).parameters)
        by_name, flat = {}, []
        for n, v in zip(names, args):
            if isinstance(v, dict):
                for k, x in v.items():
                    by_name[f"v_{n}_{k}"] = x
                    flat.append(x)
            else:
                by_name[f"v_{n}"] = v
                flat.append(v)
        if all(n in by_name for n in self.names):
            return [by_name[n] for n in self.names]
        assert len(flat) == len(self.names), (self.names, names)
        return flat

    def __call__(self, fun, args):
        # A Metal buffer is host memory (parpy.buffer): its numpy view is the array.
        values = [v.numpy() if hasattr(v, "backend") and hasattr(v, "numpy") else v
                  for v in self._flatten(fun, args)]
        keep, argv = [], (ctypes.c_void_p * len(values))()
        for i, (t, v) in enumerate(zip(self.types, values)):
            if t.endswith("*"):
                assert isinstance(v, np.ndarray) and v.flags.c_contiguous, f"argument {self.names[i]}: a C-contiguous array"
                assert v.dtype == SCALARS[t[:-1].strip()], f"argument {self.names[i]}: {v.dtype} for {t}"
                cell = ctypes.c_void_p(v.ctypes.data)
                keep.append(cell)
                argv[i] = ctypes.addressof(cell)
            else:
                cell = np.array([v], dtype=SCALARS[t])
                keep.append(cell)
                argv[i] = cell.ctypes.data
        rc = self.entry(argv)
        if rc != 0:
            raise CallError(rc, (self.error() or b"").decode())


def build(codes, defines=()):
    """The programs `codes` (print_compiled's Metal output), built in one library; `defines` are
    macros of the kernels' translation unit (__METAL_VERSION__=320)."""
    if CXX is None:
        raise RuntimeError("no C++ compiler")
    key = hashlib.sha256("\0".join([*codes, *defines]).encode()).hexdigest()[:20]
    if key not in _builds:
        d = _dir() / key
        d.mkdir(exist_ok=True)
        kernels = d / "kernels.cpp"
        kernels.write_text(kernels_source([msl_of(c) for c in codes]))
        flags = ["-O1", "-fPIC", "-w", f"-I{EMU}"]
        defs = [f"-D{d}" for d in defines]
        cmds = [[CXX, "-std=c++14", *flags, *defs, "-c", str(kernels), "-o", str(d / "kernels.o")]]
        objs = [_runtime_object(), d / "kernels.o"]
        # Programs with run-time index checks include parpy_metal.h with PARPY_BOUNDS_CHECK.
        for checked in (False, True):
            idx = [i for i, c in enumerate(codes) if ("#define PARPY_BOUNDS_CHECK\n" in c) == checked]
            if idx:
                src = d / f"host{int(checked)}.cpp"
                src.write_text(host_source(codes, idx))
                cmds.append([CXX, "-std=c++17", *flags, f"-I{INCLUDE}", "-c", str(src), "-o", str(src.with_suffix(".o"))])
                objs.append(src.with_suffix(".o"))
        _run(cmds)
        lib = d / "libprograms.so"
        _run([[CXX, "-shared", "-o", str(lib), *map(str, objs), "-lpthread"]])
        _builds[key] = ctypes.CDLL(str(lib))
    lib = _builds[key]
    return [Emulated(lib, i, c) for i, c in enumerate(codes)]


def run_all(programs):
    """programs: a list of (fun, args, opts) with Metal options. Prints, builds (one batch) and runs
    each with its args (numpy arrays updated in place); returns the args."""
    import parpy

    codes = [parpy.print_compiled(f, a, o) for f, a, o in programs]
    for (f, a, _), prog in zip(programs, build(codes)):
        prog(f, a)
    return [a for _, a, _ in programs]


available = CXX is not None and os.name == "posix"
