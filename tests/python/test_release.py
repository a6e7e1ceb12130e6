"""A jit function's compiled libraries are unloaded when the last reference to it goes: the
process-wide registries hold it weakly and the loaded libraries are shared, reference-counted."""

import gc
import random
import threading
import time
import weakref

import numpy as np
import parpy


def opts(backend):
    o = parpy.par({"N": parpy.threads(16)})
    o.backend = backend
    return o


def make_scale():
    @parpy.jit
    def scale(x, y, a, N):
        parpy.label("N")
        for i in range(N):
            y[i] = a * x[i]

    return scale


def loaded():
    return parpy.parpy._loaded_library_count()


def mapped_libraries():
    """The generated libraries mapped into this process (each loaded from a private copy)."""
    with open("/proc/self/maps") as fh:
        return {line.split(None, 5)[-1].strip() for line in fh if ".tmp-load-" in line}


def released(ref, seconds=10.0):
    """Whether the object behind weak reference `ref` is gone within `seconds` of collections; one
    that stays is a leak. Under compute-sanitizer with host backtraces on (its default), it stays:
    the tool keeps a reference to the Python frame of every CUDA launch, here the calling threads'
    frames that hold the function (benchmarks/frameleak_probe.py); tools/gpu_check.sh runs this
    file with --show-backtrace no."""
    deadline = time.monotonic() + seconds
    while True:
        gc.collect()
        if ref() is None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def holders(obj, depth=6):
    """What still refers to `obj`, for a failure message: its referrers (a frame's function, line
    and references, a dict's keys), `depth` levels up, each with its reference count; a count above
    its tracked referrers means references held from native code."""
    import sys
    import types

    mine = set()

    def describe(o):
        n = sys.getrefcount(o) - 3  # getrefcount's argument, describe's and walk's loop variable
        if isinstance(o, types.FrameType):
            what = f"frame {o.f_code.co_name} at {o.f_code.co_filename}:{o.f_lineno}"
        elif isinstance(o, types.TracebackType):
            what = f"traceback at line {o.tb_lineno}"
        elif isinstance(o, dict):
            what = f"dict with keys {list(o)[:8]}"
        elif isinstance(o, (list, tuple)):
            what = f"{type(o).__name__} of {len(o)}"
        elif isinstance(o, BaseException):
            what = f"{type(o).__qualname__}: {o}"
        else:
            what = type(o).__qualname__
        return f"{what} ({n} references)"

    lines, seen = [], set()

    def walk(o, level):
        refs = [r for r in gc.get_referrers(o) if id(r) not in mine]
        mine.add(id(refs))
        for r in refs:
            lines.append("  " * level + describe(r))
            if level + 1 < depth and id(r) not in seen:
                seen.add(id(r))
                walk(r, level + 1)

    mine.update({id(lines), id(seen), id(mine)})
    me = sys._getframe()
    mine.add(id(me))
    lines.append(f"{sys.getrefcount(obj) - 2} references, tracked referrers:")
    walk(obj, 1)
    return "\n".join(lines[:60])


def call(f, backend, a):
    x = np.arange(64, dtype=np.float64)
    y = np.zeros(64)
    f(x, y, a, 64, opts=opts(backend))
    np.testing.assert_array_equal(y, a * x)


def test_deleting_a_jit_function_unloads_its_libraries(backend):
    f = make_scale()
    gc.collect()
    base, base_maps = loaded(), mapped_libraries()
    # Ints are compiled in: three values, three libraries no other test has loaded.
    values = [random.randrange(2, 2**40) * 3 + k for k in range(3)]
    for a in values:
        call(f, backend, a)
    assert loaded() == base + 3
    if backend == parpy.CompileBackend.Cpu:
        assert len(mapped_libraries() - base_maps) == 3
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None
    assert loaded() == base
    if backend == parpy.CompileBackend.Cpu:
        assert not mapped_libraries() - base_maps


def test_a_call_in_flight_keeps_the_function_and_its_library(backend):
    f = make_scale()
    ref = weakref.ref(f)
    a = random.random()
    errors = []

    def work(g):
        try:
            for _ in range(20):
                call(g, backend, a)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f,)) for _ in range(3)]
    # Functions of earlier tests that wait in reference cycles are unloaded now, not during the test
    # (seen on an H200: the count ended one below the base).
    gc.collect()
    base = loaded()
    call(f, backend, a)
    for t in threads:
        t.start()
    del f
    for t in threads:
        t.join()
    assert not errors
    threads = None
    assert released(ref), holders(ref())
    assert loaded() == base
