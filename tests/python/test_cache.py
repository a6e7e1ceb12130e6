"""The in-memory and on-disk caches: what recompiles, what rebuilds, and what is shared."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import parpy
import pytest
from conftest import backends
from common import child_timeout

RNG = np.random.default_rng(7)


def stats():
    return dict(parpy.parpy.stats())


def make_opts(backend, parallelize):
    opts = parpy.par(parallelize)
    opts.backend = backend
    return opts


@parpy.jit
def cached_axpy(a, x, y, N):
    parpy.label('N')
    for i in range(N):
        y[i] = a * x[i] + y[i]


def run_axpy(backend, a, N, dtype=np.float32):
    x = RNG.standard_normal(N).astype(dtype)
    y = RNG.standard_normal(N).astype(dtype)
    expected = dtype(a) * x + y
    cached_axpy(a, x, y, N, opts=make_opts(backend, {'N': parpy.threads(N)}))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_stats_shape(backend):
    s = stats()
    assert set(s) == {"compiles", "builds"}
    assert all(isinstance(v, int) and v >= 0 for v in s.values())


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_repeated_call_does_not_recompile(backend):
    run_axpy(backend, 1.25, 301)
    before = stats()
    for _ in range(3):
        run_axpy(backend, 1.25, 301)  # fresh data, same shapes and scalars
    after = stats()
    assert after["compiles"] == before["compiles"]
    assert after["builds"] == before["builds"]


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_new_shape_dtype_or_int_recompiles_a_new_float_does_not(backend):
    run_axpy(backend, 1.25, 302)
    s0 = stats()
    run_axpy(backend, 1.25, 303)  # new shape (and new N)
    s1 = stats()
    assert s1["compiles"] == s0["compiles"] + 1
    run_axpy(backend, -0.5, 303)  # new float value, same shapes: passed when the code runs
    s2 = stats()
    assert s2["compiles"] == s1["compiles"]
    run_axpy(backend, 2, 303)  # an int is compiled in
    s3 = stats()
    assert s3["compiles"] == s2["compiles"] + 1
    run_axpy(backend, 1.25, 303, np.float64)  # new dtype
    s4 = stats()
    assert s4["compiles"] == s3["compiles"] + 1
    # All of those are cached now.
    run_axpy(backend, 1.25, 302)
    run_axpy(backend, 1.25, 303)
    run_axpy(backend, -0.5, 303)
    run_axpy(backend, 2, 303)
    run_axpy(backend, 1.25, 303, np.float64)
    assert stats()["compiles"] == s4["compiles"]


@parpy.jit
def cached_dict(d, y):
    parpy.label('N')
    for i in range(d["n"]):
        y[i] = d["x"][i] + d["a"]


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_dict_contents_are_part_of_the_key(backend):
    opts = make_opts(backend, {'N': parpy.threads(16)})
    x = RNG.standard_normal(40).astype(np.float32)
    results = []
    for n, a in [(10, 1.0), (20, 1.0), (20, 3.0), (10, 1.0)]:
        y = np.zeros(40, dtype=np.float32)
        cached_dict({"n": n, "a": a, "x": x}, y, opts=opts)
        expected = np.zeros(40, dtype=np.float32)
        expected[:n] = x[:n] + np.float32(a)
        np.testing.assert_allclose(y, expected, rtol=1e-6)
        results.append(stats()["compiles"])
    assert results[1] == results[0] + 1  # a new int field value compiles again
    assert results[2] == results[1]  # a new float field value does not
    assert results[3] == results[2]


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_clear_cache_forces_rebuild(backend, tmp_path, monkeypatch):
    # A private cache directory, so clearing it does not slow down the other tests.
    monkeypatch.setenv("PARPY_CACHE_DIR", str(tmp_path / "cache"))
    run_axpy(backend, 0.75, 411)
    s0 = stats()
    run_axpy(backend, 0.75, 411)
    assert stats() == s0
    parpy.clear_cache()
    run_axpy(backend, 0.75, 411)
    s1 = stats()
    assert s1["compiles"] == s0["compiles"] + 1
    assert s1["builds"] == s0["builds"] + 1


CHILD = textwrap.dedent('''
    import json
    import sys

    import numpy as np
    import parpy

    backend = getattr(parpy.CompileBackend, sys.argv[1])
    mode = sys.argv[2]

    def define():
        @parpy.jit
        def child_sum(x, y, N):
            parpy.label('N')
            y[:] = x[:] * 3.0
            parpy.label('N')
            for i in range(N):
                y[i] = y[i] + 1.0
        return child_sum

    @parpy.jit
    def other(x, y, N):
        parpy.label('N')
        y[:] = x[:] - 1.0

    def run(fun):
        N = 517
        x = np.random.randn(N).astype(np.float32)
        y = np.zeros(N, dtype=np.float32)
        opts = parpy.par({'N': parpy.threads(N)})
        opts.backend = backend
        fun(x, y, N, opts=opts)
        np.testing.assert_allclose(y, x * np.float32(3.0) + np.float32(1.0), rtol=1e-6, atol=1e-6)

    if mode == "one":
        run(define())
    elif mode == "after-other":
        x = np.zeros(3, dtype=np.float32)
        opts = parpy.par({'N': parpy.threads(3)})
        opts.backend = backend
        other(x, x.copy(), 3, opts=opts)
        run(define())
    else:
        # Two distinct function objects (two decorations) with identical code.
        f1, f2 = define(), define()
        assert f1 is not f2
        run(f1)
        run(f2)
    print("STATS " + json.dumps(dict(parpy.parpy.stats())))
''')


def run_child(tmp_path, cache_dir, backend, mode):
    script = tmp_path / "child_prog.py"
    script.write_text(CHILD)
    env = dict(os.environ)
    env["PARPY_CACHE_DIR"] = str(cache_dir)
    here = os.path.dirname(os.path.abspath(parpy.__file__))
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(here)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, str(script), backend.name, mode], check=False, env=env,
                          capture_output=True, text=True, timeout=child_timeout(120))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("STATS "))
    return json.loads(line[len("STATS "):])


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_new_process_reuses_disk_cache(backend, tmp_path):
    cache_dir = tmp_path / "cache"
    first = run_child(tmp_path, cache_dir, backend, "one")
    assert first == {"compiles": 1, "builds": 1}
    second = run_child(tmp_path, cache_dir, backend, "one")
    assert second == {"compiles": 1, "builds": 0}


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_new_process_reuses_disk_cache_whatever_it_compiled_before(backend, tmp_path):
    """The code of a program (its disk cache key) does not depend on what the process compiled
    before it."""
    cache_dir = tmp_path / "cache"
    assert run_child(tmp_path, cache_dir, backend, "one") == {"compiles": 1, "builds": 1}
    assert run_child(tmp_path, cache_dir, backend, "after-other") == {"compiles": 2, "builds": 1}


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_identical_functions_share_disk_artifact(backend, tmp_path):
    cache_dir = tmp_path / "cache"
    s = run_child(tmp_path, cache_dir, backend, "two")
    assert s == {"compiles": 2, "builds": 1}
    # And a later process finds that one artifact for both.
    s = run_child(tmp_path, cache_dir, backend, "two")
    assert s == {"compiles": 2, "builds": 0}


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_cache_dir_is_private(backend, parpy_cache_dir):
    assert os.environ["PARPY_CACHE_DIR"] == parpy_cache_dir
    assert parpy.parpy.cache_dir() == parpy_cache_dir
    home_cache = os.path.join(os.path.expanduser("~"), ".cache", "parpy")
    assert os.path.realpath(parpy.parpy.cache_dir()) != os.path.realpath(home_cache)


@parpy.jit
def _threaded_scale(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = 2.0 * x[i]


def test_concurrent_calls_from_threads():
    # Calls release the GIL while compiling and running: many threads, shared and new shapes.
    import threading

    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for k in range(20):
                n = int(rng.integers(1, 4)) * 16
                x = rng.random(n)
                y = np.zeros(n)
                opts = parpy.par({"N": parpy.threads(n)})
                opts.backend = parpy.CompileBackend.Cpu
                _threaded_scale(x, y, n, opts=opts)
                np.testing.assert_array_equal(y, 2.0 * x)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# ---- The disk cache can be neither planted, nor damaged, nor broken by concurrency ----

CPU = parpy.CompileBackend.Cpu


def make_axpy():
    """A fresh function object: its first call misses the in-memory cache and reads the disk."""

    @parpy.jit
    def disk_axpy(a, x, y, N):
        parpy.label('N')
        for i in range(N):
            y[i] = a * x[i] + y[i]

    return disk_axpy


def call_axpy(fun, a, N=64):
    x = RNG.standard_normal(N).astype(np.float32)
    y = RNG.standard_normal(N).astype(np.float32)
    expected = np.float32(a) * x + y
    fun(a, x, y, N, opts=make_opts(CPU, {'N': parpy.threads(N)}))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def new_entry(cache, before):
    """The one library entry added since the directory listing `before` (the precompiled support
    header, made by the first Cpu build, is not a library)."""
    added = [n for n in os.listdir(cache)
             if not n.startswith(".") and not n.endswith("-cpu.pch") and n not in before]  # fmt: skip
    assert len(added) == 1, added
    return cache / added[0]


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("PARPY_CACHE_DIR", str(cache))
    return cache


def test_cache_dir_is_created_private(own_cache):
    assert parpy.parpy.cache_dir() == str(own_cache)
    assert os.stat(own_cache).st_mode & 0o777 == 0o700


@pytest.mark.parametrize("problem", ["group-writable", "other-user", "symlink"])
def test_untrusted_cache_dir_is_refused(own_cache, tmp_path, problem):
    if problem == "symlink":
        real = tmp_path / "real"
        real.mkdir(mode=0o700)
        own_cache.symlink_to(real)
        expected = "is a symbolic link"
    else:
        own_cache.mkdir(mode=0o700)
        if problem == "group-writable":
            os.chmod(own_cache, 0o770)
            expected = f"Run `chmod 700 {own_cache}`"
        else:
            if os.geteuid() != 0:
                pytest.skip("giving a directory to another user needs root")
            os.chown(own_cache, 12345, 12345)
            expected = "belongs to user id 12345"
    with pytest.raises(PermissionError, match=f"The parpy cache directory {own_cache}") as info:
        call_axpy(make_axpy(), 0.5)
    assert expected in str(info.value)
    assert "PARPY_CACHE_DIR" in str(info.value)


PLANTED = '''
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
  FILE* f = fopen("%s", "w");
  if (f) { fputs("planted code ran", f); fclose(f); }
}
'''


@pytest.mark.parametrize("how", ["other-user", "world-writable", "symlink", "unsealed"])
def test_planted_library_is_never_loaded(own_cache, tmp_path, how):
    if how == "other-user" and os.geteuid() != 0:
        pytest.skip("planting a file of another user needs root")
    marker = tmp_path / "planted-code-ran"
    source = tmp_path / "planted.c"
    source.write_text(PLANTED % marker)
    planted = tmp_path / "planted.so"
    subprocess.run([shutil.which("cc") or "c++", "-x", "c", "-shared", "-fPIC", str(source), "-o",
                    str(planted)], check=True)

    call_axpy(make_axpy(), 0.25)
    entry = new_entry(own_cache, [])
    entry.unlink()
    if how == "symlink":
        entry.symlink_to(planted)
    else:
        entry.write_bytes(planted.read_bytes())
        if how == "other-user":
            os.chown(entry, 12345, 12345)
        os.chmod(entry, 0o666 if how == "world-writable" else 0o600)

    before = stats()
    call_axpy(make_axpy(), 0.25)  # rebuilt, never loaded
    assert not marker.exists()
    assert stats()["builds"] == before["builds"] + 1
    assert not entry.is_symlink()
    assert entry.stat().st_uid == os.geteuid()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other-specialisation"])
def test_damaged_entry_is_rebuilt(own_cache, damage):
    # Int scalars are compiled in: 5 and -3 are two specialisations, two entries.
    call_axpy(make_axpy(), 5)
    entry = new_entry(own_cache, [])
    call_axpy(make_axpy(), -3)
    other = new_entry(own_cache, [entry.name])
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    elif damage == "garbage":
        entry.write_bytes(np.random.default_rng(3).bytes(20000))
    else:
        entry.write_bytes(other.read_bytes())  # computes -3 * x + y
    before = stats()
    call_axpy(make_axpy(), 5)
    assert stats()["builds"] == before["builds"] + 1
    before = stats()
    call_axpy(make_axpy(), 5)  # and the repaired entry is used from now on
    assert stats()["builds"] == before["builds"]


def host_cxx_is_gcc():
    """Whether parpy's host compiler ($CXX, else c++, g++ or clang++) is GCC."""
    words = os.environ.get("CXX", "").split()
    cxx = words[0] if words else next(filter(None, map(shutil.which, ["c++", "g++", "clang++"])))
    r = subprocess.run([cxx, "-dM", "-E", "-x", "c++", "/dev/null"], capture_output=True, text=True,
                       check=False)  # fmt: skip
    macros = r.stdout
    return "#define __GNUC__ " in macros and "__clang__" not in macros and "__INTEL" not in macros


def pch_entries(cache):
    return sorted(n for n in os.listdir(cache) if n.endswith("-cpu.pch"))


def assert_sealed(entry):
    """`entry` is a regular file of ours, private, and ends with the trailer of its name."""
    assert not entry.is_symlink() and entry.stat().st_uid == os.geteuid()
    assert entry.stat().st_mode & 0o777 == 0o600
    trailer = entry.read_bytes().rsplit(b"\n", 2)[-2]
    assert trailer.startswith(f"parpy-cache-entry v2 {entry.name} sha256=".encode()), trailer


def test_cpu_builds_share_one_precompiled_support_header(own_cache):
    parpy.clear_cache()  # also forgets the precompiled header this process has read
    call_axpy(make_axpy(), 1)  # ints are compiled in: three specialisations
    call_axpy(make_axpy(), 2)
    call_axpy(make_axpy(), -1, N=100)
    libraries = [n for n in os.listdir(own_cache) if n.endswith("-cpu.so")]
    assert len(libraries) == 3
    if not host_cxx_is_gcc():
        assert pch_entries(own_cache) == []
        return
    (pch,) = pch_entries(own_cache)
    assert_sealed(own_cache / pch)
    assert (own_cache / pch).stat().st_size > 100_000
    # Hand-written code (compile_string) is built without it: the support header's names (here
    # parpy_num_threads) stay free for it.
    hand = """
#include <cstdint>
static const int64_t parpy_num_threads = 3;
extern "C" int32_t add_three(double* x) {
  x[0] += parpy_num_threads;
  return 0;
}
"""
    x = np.zeros(1)
    parpy.compile_string("add_three", hand, make_opts(CPU, {}))(x)
    assert x[0] == 3.0


@pytest.mark.parametrize("how", ["symlink", "world-writable", "truncated", "unsealed"])
def test_planted_or_damaged_precompiled_header_is_rebuilt(own_cache, tmp_path, how):
    if not host_cxx_is_gcc():
        pytest.skip("parpy precompiles the support header with GCC only")
    parpy.clear_cache()
    call_axpy(make_axpy(), 0.5)
    (name,) = pch_entries(own_cache)
    entry = own_cache / name
    sealed = entry.read_bytes()
    parpy.clear_cache()  # removes the entry and forgets the copy this process has read
    assert not entry.exists()
    payload = sealed[: sealed.rstrip(b"\n").rfind(b"\n")]
    if how == "symlink":
        (tmp_path / "planted.gch").write_bytes(sealed)
        entry.symlink_to(tmp_path / "planted.gch")
    else:
        entry.write_bytes({"world-writable": sealed, "truncated": sealed[: len(sealed) // 2],
                           "unsealed": payload}[how])  # fmt: skip
        os.chmod(entry, 0o666 if how == "world-writable" else 0o600)
    call_axpy(make_axpy(), 0.75)  # the header is precompiled again
    assert pch_entries(own_cache) == [name]
    assert_sealed(entry)


def test_threads_compile_a_new_specialisation_once(own_cache):
    import threading

    fun = make_axpy()
    barrier = threading.Barrier(8)
    errors = []

    def work():
        try:
            barrier.wait()
            call_axpy(fun, 3.75, 96)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    before = stats()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert stats()["builds"] == before["builds"] + 1


BUILDER = textwrap.dedent('''
    import sys
    import numpy as np
    import parpy

    index, rounds, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

    def make():
        @parpy.jit
        def builder_fun(a, x, y, N):
            parpy.label('N')
            for i in range(N):
                y[i] = a * x[i] + 1.0
        return builder_fun

    if kind == "clear":
        import os, time
        clears = 0
        while not os.path.exists(sys.argv[4]):
            parpy.clear_cache()
            clears += 1
            time.sleep(0.02)
        print("CLEARS", clears)
        sys.exit(0)

    for r in range(rounds):
        # Two functions per process and round, each shared with another process.
        for k in range(2):
            a = r * 10 + (index + k) % 4 + 0.5
            x = np.random.randn(32).astype(np.float32)
            y = np.zeros(32, dtype=np.float32)
            opts = parpy.par({'N': parpy.threads(32)})
            opts.backend = parpy.CompileBackend.Cpu
            make()(a, x, y, 32, opts=opts)
            np.testing.assert_allclose(y, np.float32(a) * x + np.float32(1.0), rtol=1e-5, atol=1e-6)
    print("BUILT", index, parpy.parpy.stats())
''')


def child_env(cache_dir, **extra):
    env = dict(os.environ)
    env["PARPY_CACHE_DIR"] = str(cache_dir)
    here = os.path.dirname(os.path.abspath(parpy.__file__))
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(here)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


def test_clear_cache_never_breaks_builds_in_other_processes(tmp_path):
    # 20 rounds with PARPY_TEST_HEAVY=1; a few by default, to keep the suite quick.
    rounds = 20 if os.environ.get("PARPY_TEST_HEAVY") else 2
    cache = tmp_path / "cache"
    script = tmp_path / "builder.py"
    script.write_text(BUILDER)
    stop = tmp_path / "stop"
    env = child_env(cache)

    def start(*args):
        return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    clearer = start(0, 0, "clear", stop)
    builders = [start(i, rounds, "build") for i in range(8)]
    outputs = [b.communicate(timeout=child_timeout(600))[0] for b in builders]
    stop.touch()
    cleared = clearer.communicate(timeout=child_timeout(60))[0]
    for b, out in zip(builders, outputs):
        assert b.returncode == 0, out
    assert clearer.returncode == 0, cleared
    assert "CLEARS" in cleared


FAKE_CXX = '''#!/bin/sh
# The real compiler, except for parpy's optimised builds: those hang until killed.
for arg in "$@"; do
  if [ "$arg" = "-O3" ]; then
    echo $$ > "%s"
    exec sleep 40
  fi
done
exec c++ "$@"
'''

HANGING = textwrap.dedent('''
    import faulthandler, os, signal, sys, threading, time
    import numpy as np
    import parpy

    mode, pid_file = sys.argv[1], sys.argv[2]
    # Ctrl-C raises KeyboardInterrupt here even when the test runs with SIGINT ignored (a
    # background job of a shell without job control: the child would inherit that and hang).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    faulthandler.dump_traceback_later(40, exit=True)  # a hang shows where it is

    @parpy.jit
    def hanging(x, y, N):
        parpy.label('N')
        for i in range(N):
            y[i] = x[i] + 1.0

    def interrupt_when_compiling():
        while not os.path.exists(pid_file) or not open(pid_file).read().strip():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    if mode == "interrupt":
        threading.Thread(target=interrupt_when_compiling, daemon=True).start()
    opts = parpy.par({'N': parpy.threads(8)})
    opts.backend = parpy.CompileBackend.Cpu
    try:
        hanging(np.ones(8), np.zeros(8), 8, opts=opts)
    except KeyboardInterrupt:
        print("KEYBOARD-INTERRUPT")
    except RuntimeError as e:
        print("ERROR", e)
    compiler = int(open(pid_file).read())
    try:
        os.kill(compiler, 0)
        print("COMPILER-ALIVE")
    except ProcessLookupError:
        print("COMPILER-GONE")
''')


@pytest.mark.parametrize("mode", ["interrupt", "timeout"])
def test_a_hanging_compiler_is_stopped(tmp_path, mode):
    pid_file = tmp_path / "compiler.pid"
    fake = tmp_path / "fake-cxx"
    fake.write_text(FAKE_CXX % pid_file)
    fake.chmod(0o755)
    script = tmp_path / "hanging.py"
    script.write_text(HANGING)
    env = child_env(tmp_path / "cache", CXX=str(fake), PARPY_COMPILE_TIMEOUT="1")
    if mode == "interrupt":
        env["PARPY_COMPILE_TIMEOUT"] = "30"
    proc = subprocess.run([sys.executable, str(script), mode, str(pid_file)], env=env,
                          capture_output=True, text=True, timeout=child_timeout(60))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if mode == "interrupt":
        assert "KEYBOARD-INTERRUPT" in proc.stdout, proc.stdout + proc.stderr
    else:
        assert "did not finish within 1 s" in proc.stdout, proc.stdout
        assert "PARPY_COMPILE_TIMEOUT" in proc.stdout
    assert "COMPILER-GONE" in proc.stdout, proc.stdout


NO_OPENMP_CXX = '''#!/bin/sh
# The real compiler, less OpenMP (as Apple's clang, or a clang without libomp).
for arg in "$@"; do
  if [ "$arg" = "-fopenmp" ]; then
    echo "fake-cxx: error: unsupported option '-fopenmp'" >&2
    exit 1
  fi
done
exec c++ "$@"
'''

NO_OPENMP = textwrap.dedent('''
    import numpy as np
    import parpy

    @parpy.jit
    def no_openmp(x, y, N):
        parpy.label('N')
        for i in range(N):
            y[i] = x[i] + 1.0

    opts = parpy.par({'N': parpy.threads(8)})
    opts.backend = parpy.CompileBackend.Cpu
    try:
        no_openmp(np.ones(8), np.zeros(8), 8, opts=opts)
        print("NO ERROR")
    except RuntimeError as e:
        print("ERROR", e)
''')


def test_a_compiler_without_openmp_is_named_with_the_fix(tmp_path):
    fake = tmp_path / "fake-cxx"
    fake.write_text(NO_OPENMP_CXX)
    fake.chmod(0o755)
    script = tmp_path / "no_openmp.py"
    script.write_text(NO_OPENMP)
    proc = subprocess.run([sys.executable, str(script)], env=child_env(tmp_path / "cache", CXX=str(fake)),
                          capture_output=True, text=True, timeout=child_timeout(120))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"ERROR The C++ compiler {fake} (" in out, out
    assert "cannot build OpenMP code" in out and "unsupported option '-fopenmp'" in out, out
    assert "libgomp" in out and "set CXX to a compiler that has it" in out, out
    assert "The failed build: Compilation of generated C++ code failed" in out, out


READ_ONLY = textwrap.dedent('''
    import os, sys, warnings
    import numpy as np
    import numpy.testing
    import parpy

    if os.geteuid() == 0:
        # Root writes anywhere: become a user for whom the directory is read-only.
        os.setgid(65534)
        os.setuid(65534)
        include = os.path.join(os.path.dirname(parpy.__file__), "include")
        if not os.access(include, os.R_OK | os.X_OK):
            print("SKIP: that user cannot read", include)
            sys.exit(0)

    @parpy.jit
    def read_only(x, y, N):
        parpy.label('N')
        for i in range(N):
            y[i] = x[i] * 2.0

    opts = parpy.par({'N': parpy.threads(8)})
    opts.backend = parpy.CompileBackend.Cpu
    x = np.arange(8.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            y = np.zeros(8)
            read_only(x, y, 8, opts=opts)
            np.testing.assert_array_equal(y, 2.0 * x)
    print("WARNINGS", len(caught))
    for w in caught:
        print("WARNING", w.message)
    print("CACHE", parpy.parpy.cache_dir())
''')


def test_read_only_cache_dir_falls_back_to_a_private_one():
    import tempfile

    # Under /tmp itself, since the user below cannot enter pytest's private directories.
    base = Path(tempfile.mkdtemp(prefix="parpy-read-only-"))
    try:
        os.chmod(base, 0o755)
        cache = base / "cache"
        cache.mkdir(mode=0o500)
        private_tmp = base / "tmp"
        private_tmp.mkdir(mode=0o700)
        if os.geteuid() == 0:
            os.chown(cache, 65534, 65534)
            os.chown(private_tmp, 65534, 65534)
        script = base / "read_only.py"
        script.write_text(READ_ONLY)
        os.chmod(script, 0o644)
        proc = subprocess.run([sys.executable, str(script)],
                              env=child_env(cache, TMPDIR=str(private_tmp)),
                              capture_output=True, text=True, timeout=child_timeout(120))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if "SKIP: " in proc.stdout:
            pytest.skip(proc.stdout[proc.stdout.index("SKIP: ") + 6:].strip())
        assert "WARNINGS 1" in proc.stdout, proc.stdout
        assert f"The parpy cache directory {cache} cannot be written" in proc.stdout
        used = next(ln for ln in proc.stdout.splitlines() if ln.startswith("CACHE "))[6:]
        assert used.startswith(str(private_tmp / "parpy-cache-")), used
        assert os.listdir(private_tmp) == []  # removed at exit
        assert os.listdir(cache) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


RELATIVE = textwrap.dedent('''
    import numpy as np
    import parpy

    @parpy.jit
    def add_rows(x, y, N, M):
        parpy.label('N')
        for i in range(N):
            for j in range(M):
                y[i, j] = x[i, j] + x[i, 0]

    opts = parpy.par({'N': parpy.threads(37)})
    opts.backend = parpy.CompileBackend.Cpu
    x = np.random.default_rng(5).random((37, 11))
    y = np.zeros_like(x)
    add_rows(x, y, 37, 11, opts=opts)
    np.testing.assert_array_equal(y, x + x[:, :1])
    print("CACHE", parpy.parpy.cache_dir())
    print("STATS", dict(parpy.parpy.stats()))
''')


def test_relative_cache_dir_is_made_absolute(tmp_path):
    """A relative PARPY_CACHE_DIR names a directory of the current directory: Cpu builds run the
    compiler in a build directory of their own (with GCC's precompiled header), where the relative
    path would name nothing."""
    script = tmp_path / "relative.py"
    script.write_text(RELATIVE)
    work = tmp_path / "work"
    work.mkdir()
    for _ in range(2):  # builds, then finds the library there
        proc = subprocess.run([sys.executable, str(script)], env=child_env("relcache"), cwd=work,
                              capture_output=True, text=True, timeout=child_timeout(120))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"CACHE {work / 'relcache'}\n" in proc.stdout, proc.stdout
    assert "'builds': 0" in proc.stdout, proc.stdout
    assert any(n.endswith("-cpu.so") for n in os.listdir(work / "relcache"))


HEADER_CHILD = textwrap.dedent('''
    import sys
    import numpy as np
    import parpy
    from parpy.types import F64

    include, k = sys.argv[1], float(sys.argv[2])

    @parpy.external("header_scale", parpy.CompileBackend.Cpu, parpy.Target.Device,
                    header="scale.h")
    def header_scale(x: F64) -> F64:
        return k * x

    @parpy.jit
    def scaled(x, y, N):
        parpy.label('N')
        for i in range(N):
            y[i] = header_scale(x[i])

    opts = parpy.par({'N': parpy.threads(64)})
    opts.backend = parpy.CompileBackend.Cpu
    opts.includes = [include]
    x = np.random.default_rng().random(1000)
    y = np.zeros(1000)
    scaled(x, y, 1000, opts=opts)
    np.testing.assert_array_equal(y, k * x)
    print("BUILDS", parpy.parpy.stats()["builds"])
''')


def write_scale_header(include, k):
    """scale.h (the external's header) takes its constant from constant.h, which it includes."""
    (include / "scale.h").write_text('#pragma once\n#include "constant.h"\n'
                                     'static inline double header_scale(double x) { return K * x; }\n')
    (include / "constant.h").write_text(f"#define K {k!r}\n")


def test_editing_a_header_rebuilds_in_a_new_process(tmp_path):
    """The disk cache's key covers the generated code, not the headers it includes: the entry
    records the user's headers with their hashes, and one whose headers changed is rebuilt (and
    replaced), never run."""
    include = tmp_path / "include"
    include.mkdir()
    script = tmp_path / "header_child.py"
    script.write_text(HEADER_CHILD)
    cache = tmp_path / "cache"

    def child(k):
        proc = subprocess.run([sys.executable, str(script), str(include), repr(k)],
                              env=child_env(cache), capture_output=True, text=True,
                              timeout=child_timeout(120))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return int(next(ln for ln in proc.stdout.splitlines() if ln.startswith("BUILDS "))[7:])

    write_scale_header(include, 3.0)
    assert child(3.0) == 1
    assert child(3.0) == 0  # unchanged: found on disk
    write_scale_header(include, 5.5)  # the header that the external's header includes
    assert child(5.5) == 1
    assert child(5.5) == 0
    assert len([n for n in os.listdir(cache) if n.endswith("-cpu.so")]) == 1  # replaced


def test_editing_a_header_rebuilds_after_clear_cache_or_for_a_new_function(own_cache, tmp_path):
    """Within a process, a jit function keeps what it compiled (a cached call checks no files);
    parpy.clear_cache(), or a function decorated again, picks up the edited header."""
    include = tmp_path / "include"
    include.mkdir()
    k = [2.0]

    def define():
        @parpy.external("header_scale", CPU, parpy.Target.Device, header="scale.h")
        def header_scale(x: parpy.types.F64) -> parpy.types.F64:
            return k[0] * x

        @parpy.jit
        def scaled(x, y, N):
            parpy.label('N')
            for i in range(N):
                y[i] = header_scale(x[i])

        return scaled

    def call(fun):
        opts = parpy.par({'N': parpy.threads(64)})
        opts.backend = CPU
        opts.includes = [str(include)]
        x = RNG.random(500)
        y = np.zeros(500)
        fun(x, y, 500, opts=opts)
        return y, x

    write_scale_header(include, 2.0)
    f = define()
    y, x = call(f)
    np.testing.assert_array_equal(y, 2.0 * x)
    write_scale_header(include, 7.0)
    y, x = call(f)
    np.testing.assert_array_equal(y, 2.0 * x)  # the function's own compiled code, as documented
    before = stats()["builds"]
    y, x = call(define())  # the same code, decorated again: found on disk, but its header changed
    np.testing.assert_array_equal(y, 7.0 * x)
    assert stats()["builds"] == before + 1
    write_scale_header(include, -1.5)
    parpy.clear_cache()
    y, x = call(f)
    np.testing.assert_array_equal(y, -1.5 * x)


LOGGING_CXX = '''#!/bin/sh
# The real compiler, logging each run.
echo "$@" >> "%s"
exec c++ "$@"
'''

PREFILLED = textwrap.dedent('''
    import os, sys, warnings
    import numpy as np
    import numpy.testing  # before becoming a user that may not read all of Python's library
    import parpy

    mode, log = sys.argv[1], sys.argv[2]
    if os.geteuid() == 0:
        # Root writes anywhere: become a user for whom the directory is read-only.
        os.setgid(65534)
        os.setuid(65534)
        include = os.path.join(os.path.dirname(parpy.__file__), "include")
        if not os.access(include, os.R_OK | os.X_OK):
            print("SKIP: that user cannot read", include)
            sys.exit(0)

    def builds():
        """The compiler's runs that built something (not its version or other probes)."""
        if not os.path.exists(log):
            return 0
        with open(log) as lines:
            return sum(".tmp-build-" in line for line in lines)

    @parpy.jit
    def prefilled(x, y, N):
        parpy.label('N')
        for i in range(N):
            y[i] = x[i] * 3.0

    @parpy.jit
    def not_prefilled(x, y, N):
        parpy.label('N')
        for i in range(N):
            y[i] = x[i] + 4.0

    def random():
        # Not numpy.random, which that user may not be able to import.
        return np.frombuffer(os.urandom(8000), np.uint64) / 2.0**64

    opts = parpy.par({'N': parpy.threads(64)})
    opts.backend = parpy.CompileBackend.Cpu
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y = random(), np.zeros(1000)
        prefilled(x, y, 1000, opts=opts)
        np.testing.assert_array_equal(y, x * 3.0)
        print("PREFILLED BUILDS", builds())
        if mode == "use":
            x, y = random(), np.zeros(1000)
            not_prefilled(x, y, 1000, opts=opts)
            np.testing.assert_array_equal(y, x + 4.0)
            print("NEW BUILDS", builds())
            print("CACHE", parpy.parpy.cache_dir())
    print("WARNINGS", len(caught))
    for w in caught:
        print("WARNING", w.message)
''')


def test_read_only_cache_dir_is_used_for_lookups():
    """A cache filled in advance, then made read-only (files and directory), is used: its
    libraries are loaded (no compiler runs for them), and new builds go to a private cache."""
    import tempfile

    # Under /tmp itself, since the user below cannot enter pytest's private directories.
    base = Path(tempfile.mkdtemp(prefix="parpy-read-only-"))
    try:
        os.chmod(base, 0o755)
        cache = base / "cache"
        cache.mkdir(mode=0o700)
        private_tmp = base / "tmp"
        private_tmp.mkdir(mode=0o700)
        log = private_tmp / "compiler.log"
        log.touch()
        if os.geteuid() == 0:
            for path in (cache, private_tmp, log):
                os.chown(path, 65534, 65534)
        cxx = base / "logging-cxx"
        cxx.write_text(LOGGING_CXX % log)
        cxx.chmod(0o755)
        script = base / "prefilled.py"
        script.write_text(PREFILLED)
        os.chmod(script, 0o644)

        def child(mode):
            proc = subprocess.run([sys.executable, str(script), mode, str(log)],
                                  env=child_env(cache, TMPDIR=str(private_tmp), CXX=str(cxx)),
                                  capture_output=True, text=True, timeout=child_timeout(120))
            assert proc.returncode == 0, proc.stdout + proc.stderr
            if "SKIP: " in proc.stdout:
                pytest.skip(proc.stdout[proc.stdout.index("SKIP: ") + 6:].strip())
            return proc.stdout

        out = child("fill")
        assert "PREFILLED BUILDS 0" not in out and "WARNINGS 0" in out, out
        filled = sorted(os.listdir(cache))
        assert any(n.endswith("-cpu.so") for n in filled), filled
        for name in filled:
            os.chmod(cache / name, 0o400)
        os.chmod(cache, 0o500)
        log.write_text("")

        out = child("use")
        assert "PREFILLED BUILDS 0\n" in out, out  # loaded from the read-only cache
        assert "NEW BUILDS 0\n" not in out, out  # built, into the private cache
        assert "WARNINGS 1" in out, out
        assert f"The parpy cache directory {cache} cannot be written" in out, out
        assert "uses the libraries it finds there" in out, out
        used = next(ln for ln in out.splitlines() if ln.startswith("CACHE "))[6:]
        assert used.startswith(str(private_tmp / "parpy-cache-")), used
        assert sorted(os.listdir(cache)) == filled
        assert os.listdir(private_tmp) == ["compiler.log"]  # the private cache is gone
    finally:
        shutil.rmtree(base, ignore_errors=True)
