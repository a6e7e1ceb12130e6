"""Support for tools/sanitize_suite.sh, the Python suite against an ASan + UBSan build of the core.

Two roles:

* a pytest plugin (``-p sanitize_support`` with tools/sanitize on PYTHONPATH): at the end of each pytest
  process (the main one and every xdist worker) it runs LeakSanitizer once, while the interpreter
  is still alive. Everything Python still uses is reachable then, so what LeakSanitizer reports is
  memory nobody points to any more. Leak checking at exit is off (ASAN_OPTIONS
  leak_check_at_exit=0): at exit the interpreter leaves objects behind on purpose, and the
  compilers that parpy starts inherit the preloaded runtime and leak on purpose too.
* a report (``python tools/sanitize/sanitize_support.py LOG_DIR PYTEST_LOG``): reads ASan's logs
  (ASAN_OPTIONS log_path points into LOG_DIR) and the suite's output (UBSan prints there), prints
  every error and every leak allocated by parpy's own code, and exits with 1 if there is any.
  Leaks allocated only by the interpreter or other extensions (no parpy frame in the allocation's
  stack) are counted, not failed on: they are not ours to fix.
"""

from __future__ import annotations

import ctypes
import gc
import re
import sys
from pathlib import Path


def pytest_sessionfinish(session, exitstatus):
    gc.collect()
    try:
        check = ctypes.CDLL(None).__lsan_do_recoverable_leak_check
    except AttributeError:
        return  # not running under the sanitizer runtime
    check()


# A frame of parpy's own code: its sources (src/) or the extension module.
_OURS = re.compile(r"/src/(ir|passes|codegen|gpu|jit|runtime|frontend|bindings|backends?|lower)|parpy\.cpython")
_LEAK_START = re.compile(r"^(Direct|Indirect) leak of (\d+) byte")


def _leaks(text: str) -> list[str]:
    """The leak reports of one log, one string each."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if _LEAK_START.match(line):
            blocks.append([line])
        elif blocks and line.startswith("    #"):
            blocks[-1].append(line)
        elif blocks and blocks[-1][-1] != "":
            blocks[-1].append("")
    return ["\n".join(b).rstrip() for b in blocks]


def report(log_dir: Path, pytest_log: Path) -> int:
    errors: list[str] = []
    ours: list[str] = []
    others = 0
    lines = pytest_log.read_text(errors="replace").splitlines()
    for k, line in enumerate(lines):
        if ": runtime error: " in line or "ERROR: AddressSanitizer" in line:
            errors.append(f"--- {pytest_log.name}\n" + "\n".join(lines[k : k + 12]))
    for log in sorted(log_dir.glob("*")):
        text = log.read_text(errors="replace")
        if "ERROR: LeakSanitizer" not in text or re.search(r"ERROR: AddressSanitizer|runtime error|CHECK failed", text):
            errors.append(f"--- {log.name}\n{text}")
            continue
        for leak in _leaks(text):
            if _OURS.search(leak):
                ours.append(f"--- {log.name}\n{leak}")
            else:
                others += 1
    for item in errors + ours:
        print(item)
    print(
        f"sanitizers: {len(errors)} error report(s), {len(ours)} leak(s) in parpy's code, "
        f"{others} leak(s) outside it (interpreter, numpy: ignored)"
    )
    return 1 if errors or ours else 0


if __name__ == "__main__":
    sys.exit(report(Path(sys.argv[1]), Path(sys.argv[2])))
