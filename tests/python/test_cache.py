"""The in-memory and on-disk caches: what recompiles, what rebuilds, and what is shared."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import parpy
import pytest
from conftest import backends

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
def test_new_shape_or_scalar_recompiles(backend):
    run_axpy(backend, 1.25, 302)
    s0 = stats()
    run_axpy(backend, 1.25, 303)  # new shape (and new N)
    s1 = stats()
    assert s1["compiles"] == s0["compiles"] + 1
    run_axpy(backend, -0.5, 303)  # new scalar value, same shapes
    s2 = stats()
    assert s2["compiles"] == s1["compiles"] + 1
    run_axpy(backend, 1.25, 303, np.float64)  # new dtype
    s3 = stats()
    assert s3["compiles"] == s2["compiles"] + 1
    # All of those are cached now.
    run_axpy(backend, 1.25, 302)
    run_axpy(backend, 1.25, 303)
    run_axpy(backend, -0.5, 303)
    run_axpy(backend, 1.25, 303, np.float64)
    assert stats()["compiles"] == s3["compiles"]


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
    assert results[1] == results[0] + 1
    assert results[2] == results[1] + 1
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
            for i in range(N):
                y[i] = x[i] * 3.0 + 1.0
        return child_sum

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
                          capture_output=True, text=True, timeout=120)
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
