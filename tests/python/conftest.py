"""Shared pytest fixtures: a private disk cache and the list of backends that can run here."""

import os
import shutil
import tempfile
import time

import parpy
import pytest

# Point the disk cache at a private directory before anything compiles, so the tests never touch
# ~/.cache/parpy. Set at import time too, since the native module may read it on first use.
_CACHE_DIR = tempfile.mkdtemp(prefix="parpy-test-cache-")
os.environ["PARPY_CACHE_DIR"] = _CACHE_DIR

# Every backend that is enabled here, except Metal: its code is compile-checked
# (tests/python/test_metal_codegen.py) and run in a CPU emulator (test_metal_emulator.py), never
# on a Mac so far.
backends = [
    b
    for b in parpy.backend.backends
    if parpy.backend.is_enabled(b) and b != parpy.CompileBackend.Metal
]


@pytest.fixture(scope="session", autouse=True)
def parpy_cache_dir():
    """The session's private disk cache directory (also exported as PARPY_CACHE_DIR)."""
    os.environ["PARPY_CACHE_DIR"] = _CACHE_DIR
    yield _CACHE_DIR
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


@pytest.fixture(params=backends, ids=lambda b: b.name)
def backend(request):
    """One enabled backend per parametrisation."""
    return request.param



# PARPY_TEST_LOG=<file>: each test's outcome is appended to the file as it ends ("passed 1.2s
# tests/python/test_x.py::test_y", or "passed 1.2s+30.5s ..." where its fixtures' setup took half
# a second or more), failures with their report, so a run stopped by a time limit (a sanitizer
# run on the GPU machine) still says which tests ended, how, and where the time went.
_TEST_LOG = os.environ.get("PARPY_TEST_LOG")
_setup_seconds = {}
_imported_at = time.perf_counter()


def _process_age():
    """Seconds since this process started (Linux), else since this file was loaded."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            return float(f.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _imported_at


def pytest_collection_finish(session):
    # How long this process (an xdist worker) took from its start to a collected suite: a line
    # without a test id, which PARPY_TEST_SKIP ignores.
    if _TEST_LOG:
        with open(_TEST_LOG, "a", encoding="utf-8") as f:
            f.write(f"collected {_process_age():.1f}s {len(session.items)} tests in "
                    f"{os.environ.get('PYTEST_XDIST_WORKER', 'the main process')}\n")

# Each test's start too ("started tests/python/test_x.py::test_y"): the tests a run cut by a time
# limit had started and not ended are those it was cut in. Under pytest-xdist the worker running
# the test writes the line (the controller hears of the start again).
_XDIST_CONTROLLER = False


def pytest_configure(config):
    global _XDIST_CONTROLLER
    _XDIST_CONTROLLER = not os.environ.get("PYTEST_XDIST_WORKER") and bool(getattr(config.option, "numprocesses", None))


def pytest_runtest_logstart(nodeid, location):
    if _TEST_LOG and not _XDIST_CONTROLLER:
        with open(_TEST_LOG, "a", encoding="utf-8") as f:
            f.write(f"started {nodeid}\n")


# PARPY_TEST_SKIP=<log>[:<log>...]: tests that such logs record as ended (any outcome) are
# deselected, so a run cut by a time limit goes on where it stopped. PARPY_TEST_CUT=skip deselects
# the tests the logs record as started and never ended too (those a time limit cut: in a sanitizer
# run, tests whose child processes waited past it), and PARPY_TEST_CUT=only runs only those.
_SKIP_LOGS = [p for p in os.environ.get("PARPY_TEST_SKIP", "").split(os.pathsep) if p]
_CUT = os.environ.get("PARPY_TEST_CUT", "")


def _logged_tests(paths):
    """(ended, started) test ids of the logs."""
    ended, started = set(), set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 2)  # outcome, seconds, test id (may hold spaces)
                if parts[0] == "started" and len(parts) > 1:
                    started.add(line.rstrip("\n").split(" ", 1)[1])
                elif len(parts) == 3 and not line.startswith(" ") and "::" in parts[2]:
                    ended.add(parts[2])
    return ended, started


# PARPY_TEST_SHARD=<i>/<k> (0 <= i < k): after the deselections above, only every k-th test from
# the i-th on runs, so k processes share a suite without pytest-xdist (under a sanitizer, the child
# processes of xdist workers ran 10-30 times slower than those of one pytest process).
_SHARD = os.environ.get("PARPY_TEST_SHARD", "")


def _shard():
    """(i, k) of PARPY_TEST_SHARD, or None."""
    if not _SHARD:
        return None
    try:
        i, k = (int(v) for v in _SHARD.split("/"))
    except ValueError:
        i, k = -1, 0
    if not 0 <= i < k:
        raise pytest.UsageError(f"PARPY_TEST_SHARD is {_SHARD!r}; it must be i/k with 0 <= i < k, as 0/3")
    return i, k


def _deselect(config, items, keep):
    if len(keep) != len(items):
        kept = set(id(item) for item in keep)
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        items[:] = keep


def pytest_collection_modifyitems(config, items):
    shard = _shard()
    if _CUT not in ("", "skip", "only"):
        raise pytest.UsageError(f"PARPY_TEST_CUT is {_CUT!r}; it must be 'skip', 'only' or unset")
    if _CUT and not _SKIP_LOGS:
        raise pytest.UsageError("PARPY_TEST_CUT needs the logs that record the cut tests: set PARPY_TEST_SKIP")
    if _SKIP_LOGS:
        ended, started = _logged_tests(_SKIP_LOGS)
        cut = started - ended
        if _CUT == "skip":
            ended |= cut
        elif _CUT == "only":
            ended = {item.nodeid for item in items} - cut
        _deselect(config, items, [item for item in items if item.nodeid not in ended])
    if shard:
        _deselect(config, items, items[shard[0]::shard[1]])


def pytest_runtest_logreport(report):
    # Under pytest-xdist the controller sees each worker's reports again (with report.node set):
    # the worker that ran the test writes the line.
    if not _TEST_LOG or getattr(report, "node", None) is not None:
        return
    if report.when == "setup" and report.passed:
        _setup_seconds[report.nodeid] = report.duration
        return
    if report.when != "call" and report.passed:
        return
    if report.when != "call" and report.skipped:
        outcome = "skipped"
    else:
        outcome = report.outcome if report.when == "call" else f"{report.outcome}-in-{report.when}"
    seconds = f"{report.duration:.1f}s"
    setup = _setup_seconds.pop(report.nodeid, 0.0)
    if setup >= 0.5:
        seconds += f"+{setup:.1f}s"
    line = f"{outcome} {seconds} {report.nodeid}\n"
    if report.failed:
        line += "".join("    " + l + "\n" for l in str(report.longrepr).splitlines()[-30:])
    with open(_TEST_LOG, "a", encoding="utf-8") as f:
        f.write(line)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A disk cache of the test's own (PARPY_CACHE_DIR), empty when the test starts."""
    path = tmp_path / "cache"
    monkeypatch.setenv("PARPY_CACHE_DIR", str(path))
    return path
