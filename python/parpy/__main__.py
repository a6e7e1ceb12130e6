"""`python -m parpy`: what this installation can do here, and why.

Prints the version, each backend with whether it is enabled and why not, the toolchains (NVRTC
with its version and where it was found, or why none was), the CUDA devices and the disk cache.
Always exits with status 0.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path


def _version() -> str:
    try:
        import parpy

        return str(parpy.__version__)
    except (ImportError, AttributeError):
        pass
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("parpy")
    except PackageNotFoundError:
        return "unknown"


def _first_line(cmd: list[str], containing: str = "") -> str:
    try:
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"(failed to run: {e})"
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    if not lines:
        return "(no version output)"
    for ln in lines:
        if containing in ln:
            return ln.strip()
    return lines[0]


def _cuda_driver() -> tuple[ctypes.CDLL | None, str]:
    """The initialised CUDA driver library for listing devices, or None and why not."""
    try:
        lib = ctypes.CDLL(os.environ.get("PARPY_LIBCUDA") or "libcuda.so.1")
    except OSError:
        return None, "Could not load the CUDA driver library (libcuda.so.1)"
    rc = lib.cuInit(0)
    if rc != 0:
        return None, f"The CUDA driver could not be initialised (cuInit returned {rc})"
    return lib, ""


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _driver_origin(lib: ctypes.CDLL) -> str:
    """Where the driver library was loaded from, and why that one."""
    why = "$PARPY_LIBCUDA" if os.environ.get("PARPY_LIBCUDA") else "the system library path"
    try:
        info = _DlInfo()
        symbol = ctypes.cast(lib.cuInit, ctypes.c_void_p)
        if ctypes.CDLL(None).dladdr(symbol, ctypes.byref(info)) and info.dli_fname:
            return f"{os.path.realpath(info.dli_fname.decode())} ({why})"
    except (OSError, AttributeError):
        pass
    return why


def _cuda_devices(lib: ctypes.CDLL) -> list[str]:
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    devices = []
    for i in range(count.value):
        dev = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(dev), i) != 0:
            continue
        name = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(name, 256, dev)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
        lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)
        label = name.value.decode("utf-8", "replace")
        devices.append(f"{i}: {label} (compute capability {major.value}.{minor.value})")
    return devices


def _dir_size(path: Path) -> tuple[int, int]:
    total, files = 0, 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                total += os.stat(os.path.join(root, n)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def main() -> None:
    print(f"parpy {_version()}")
    print(f"Python {sys.version.split()[0]} on {sys.platform}")

    print("Backends:")
    backend: types.ModuleType | None = None
    try:
        from parpy import backend
    except Exception as e:  # noqa: BLE001 - diagnostics report any failure
        for name in ("Cuda", "Metal", "Cpu"):
            print(f"  {name}: unknown (could not import parpy.backend: {e})")
    if backend is not None:
        for b, (enabled, reason) in backend.reasons().items():
            name = str(b).split(".")[-1]
            print(f"  {name}: on" if enabled else f"  {name}: off ({reason})")

    print("Toolchains:")
    cxx = None
    if backend is not None:
        cxx = backend.host_cxx()
    if cxx:
        print(f"  host C++ compiler: {cxx}: {_first_line(shlex.split(cxx) + ['--version'])}")
    else:
        print("  host C++ compiler: not found")
    nvcc = shutil.which("nvcc")
    if nvcc:
        print(f"  nvcc: {nvcc}: {_first_line([nvcc, '--version'], containing='release')}")
    else:
        print("  nvcc: not found")
    try:
        from parpy import parpy as native

        print(f"  Cuda build: {native.cuda_build()}")
    except Exception as e:  # noqa: BLE001 - diagnostics report any failure
        print(f"  Cuda build: unknown ({e})")
    try:
        from parpy import parpy as native

        print(f"  NVRTC: {native.nvrtc()}")
    except Exception as e:  # noqa: BLE001 - diagnostics report any failure
        print(f"  NVRTC: unknown ({e})")

    print("CUDA devices:")
    try:
        lib, reason = _cuda_driver()
        devices = _cuda_devices(lib) if lib is not None else []
        if lib is not None:
            ver = ctypes.c_int(0)
            lib.cuDriverGetVersion(ctypes.byref(ver))
            print(f"  driver: CUDA {ver.value // 1000}.{(ver.value % 1000) // 10} at {_driver_origin(lib)}")
        for d in devices:
            print(f"  {d}")
        if not devices:
            print(f"  none ({reason})" if reason else "  none")
    except Exception as e:  # noqa: BLE001 - diagnostics report any failure
        print(f"  unknown ({e})")

    try:
        # The module's own rules: the directory it would use, created private if missing.
        from parpy import parpy as native

        cache = Path(native.cache_dir())
    except Exception as e:  # noqa: BLE001 - diagnostics report any failure
        print(f"Cache: unusable ({e})")
    else:
        size, files = _dir_size(cache)
        print(f"Cache: {cache} ({files} files, {_human(size)})")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - diagnostics must never fail
        print(f"error while gathering diagnostics: {e}")
    sys.exit(0)
