"""parpy's type stubs (python/parpy/parpy.pyi, py.typed) are checked with mypy: the package itself
and a use of the public API type-check, the wrong uses in tests/typing/misuse.py are each
reported, and the checked use runs."""

import os
import re
import subprocess
import sys

import pytest
from common import child_timeout

pytest.importorskip("mypy")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TYPING = os.path.join(ROOT, "tests", "typing")


def mypy(*paths):
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull, *paths],
                       capture_output=True, text=True, cwd=ROOT,
                       timeout=child_timeout(600), check=False)
    return r.returncode, r.stdout + r.stderr


def test_package_and_api_use_type_check():
    code, out = mypy(os.path.join(ROOT, "python", "parpy"), os.path.join(TYPING, "usage.py"))
    assert code == 0, out


def test_wrong_uses_are_reported():
    path = os.path.join(TYPING, "misuse.py")
    with open(path) as f:
        marked = {i + 1 for i, line in enumerate(f) if line.rstrip().endswith("# E")}
    code, out = mypy(path)
    assert code == 1, out
    reported = {int(m) for m in re.findall(r"misuse\.py:(\d+): error", out)}
    assert reported == marked, out


def test_the_checked_use_runs():
    r = subprocess.run([sys.executable, os.path.join(TYPING, "usage.py")], capture_output=True, text=True,
                       timeout=child_timeout(600), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
