"""The printed host part of Cuda programs, compiled against a recording CUDA runtime.

`build(programs, directory)` compiles the host parts (`parpy._host_program(...)["host_code"]`) of
several programs with the host C++ compiler and links them with fake_cudart.cpp into one shared
library; `parpy._host_launches(fun, args, opts, library=path)` then calls one of them and returns
the launches it made, in the form the interpreter's launches have (`library=None`). Each program's
exported symbols get a suffix so that programs of the same function share a library.
Needs a host C++ compiler and the CUDA toolkit's headers (no GPU, no libcudart).
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import shutil
import subprocess

import parpy

HERE = pathlib.Path(__file__).resolve().parent


def cuda_include() -> pathlib.Path | None:
    """The directory of the CUDA toolkit's cuda_runtime.h, or None."""
    roots = [os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(str(pathlib.Path(nvcc).resolve().parent.parent))
    roots.append("/usr/local/cuda")
    for r in roots:
        if r and (pathlib.Path(r) / "include" / "cuda_runtime.h").exists():
            return pathlib.Path(r) / "include"
    return None


def compiler() -> str | None:
    return parpy._native._host_cxx() or shutil.which("g++") or shutil.which("c++")


def available() -> bool:
    return cuda_include() is not None and compiler() is not None


def renamed(info: dict, suffix: str) -> tuple[str, str]:
    """The host code with its exported symbols suffixed, and its entry symbol."""
    entry = info["entry_symbol"]
    name = entry[len("parpy_entry_"):]
    code = info["host_code"]
    for prefix in ("parpy_entry_", "parpy_error_", "parpy_bounds_"):
        code = code.replace(f"{prefix}{name}(", f"{prefix}{name}{suffix}(")
    return code, entry + suffix


def _compile(cxx: str, src: pathlib.Path, obj: pathlib.Path) -> None:
    cmd = [cxx, "-std=c++17", "-O1", "-fPIC", "-w", "-c", f"-I{cuda_include()}", f"-I{parpy.get_include()}",
           str(src), "-o", str(obj)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"compiling {src} failed:\n{r.stderr[-4000:]}")


def build(infos: list[dict], directory: pathlib.Path, jobs: int = 2) -> tuple[str, list[str]]:
    """Compiles the host parts of `infos` (from parpy._host_program) with the fake runtime into
    one library in `directory`; returns its path and each program's entry symbol in it."""
    directory.mkdir(parents=True, exist_ok=True)
    cxx = compiler()
    sources, entries = [HERE / "fake_cudart.cpp"], []
    for i, info in enumerate(infos):
        code, entry = renamed(info, f"_p{i}")
        src = directory / f"host_{i}.cpp"
        src.write_text(code)
        sources.append(src)
        entries.append(entry)
    objs = [directory / f"{s.stem}.o" for s in sources]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for f in [pool.submit(_compile, cxx, s, o) for s, o in zip(sources, objs)]:
            f.result()
    lib = directory / "host_parts.so"
    # -Bsymbolic: the programs call the recording runtime linked in here, even in a process where
    # the real CUDA runtime is loaded (torch) and would otherwise take the calls.
    cmd = [cxx, "-shared", "-Wl,-z,defs", "-Wl,-Bsymbolic", *map(str, objs), "-o", str(lib), "-lpthread"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"linking {lib} failed:\n{r.stderr[-4000:]}")
    return str(lib), entries
