"""Builds the C++ unit tests (GoogleTest, tests/cpp) and runs them with ctest."""

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _have_gtest() -> bool:
    return any(
        Path(p).exists()
        for p in ("/usr/include/gtest/gtest.h", "/usr/local/include/gtest/gtest.h")
    )


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
@pytest.mark.skipif(not _have_gtest(), reason="GoogleTest headers are not installed")
def test_cpp_unit_tests():
    build = ROOT / "build" / "cpp-tests"
    build.parent.mkdir(parents=True, exist_ok=True)
    # Two test runs in one checkout at once (memcheck and racecheck side by side on the GPU machine)
    # share the build folder: one rebuilt the binary while the other's ctest started it ("permission
    # denied"). They take turns.
    with open(build.parent / "cpp-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build_and_run(build)


def _build_and_run(build):
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    env = dict(os.environ)
    subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build), *gen, "-DPARPY_BUILD_MODULE=OFF",
         "-DPARPY_BUILD_TESTS=ON", "-DPARPY_WERROR=ON", "-DCMAKE_BUILD_TYPE=Release"],
        check=True, env=env, capture_output=True,
    )
    r = subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)],
                       env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    r = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure"],
                       env=env, capture_output=True, text=True, check=False)
    print(r.stdout[-2000:])
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-2000:]
    assert "tests passed" in r.stdout
