"""Autotuning: the parallel spec chosen by measurement (docs/howto/autotuning.md).

With ``opts.autotune`` (or ``parpy.par(spec, autotune=True)``), the first call of a jit function
for a specialisation (argument types, shapes, int values and options) comes here before anything
is built. Candidates around the user's spec are timed on copies of the arguments, one label at a
time (coordinate search: the number of threads, then the threads per block on Cuda, then
thread-block clusters), within ``opts.autotune_budget_s`` seconds, builds included. The candidates
of a step whose specs are known together (a label's thread counts, the block sizes) are built at
once on a few threads, then timed one at a time, as the search would time them. The fastest is
returned to the call, which runs it once on the arguments themselves and keeps it under the call's
key: later calls pay nothing. The choice is also an entry of the disk cache (``<key>-tuned.json``,
with the cache's trust checks), keyed by the function's source, the specialisation, the device and
parpy's version, so that later processes reuse it without timing anything.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import json
import logging
import os
import platform
import statistics
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import parpy as _native
from .parpy import CompileBackend, CompileOptions, DataType, LoopPar, ParallelismError

log = logging.getLogger("parpy.autotune")

# A spec as data: {label: (threads, reduce, tpb)}.
Spec = dict[str, tuple[int, bool, int]]

_RECORD_VERSION = 1
# How many times the search goes over the labels at most (coordinate_search).
_SWEEPS = 3


@dataclass
class Candidate:
    """One spec tried: its time per call (the median of its runs) or why it could not run."""

    spec: Spec
    clusters: bool
    seconds: float | None = None
    error: str | None = None


@dataclass
class Tuning:
    """What a search chose for one specialisation, and what it tried."""

    spec: Spec
    clusters: bool
    candidates: list[Candidate] = field(default_factory=list)
    search_seconds: float = 0.0
    from_disk: bool = False

    def par(self) -> dict[str, LoopPar]:
        """The chosen spec as a ``parpy.par`` dict."""
        return {label: _loop_par(*t) for label, t in self.spec.items()}

    def __repr__(self) -> str:
        timed = sum(c.seconds is not None for c in self.candidates)
        failed = sum(c.error is not None for c in self.candidates)
        return (f"<parpy tuning: {self.source()}; {timed} candidates timed, {failed} failed, "
                f"{self.search_seconds:.2f} s{' (from the disk cache)' if self.from_disk else ''}>")

    def source(self) -> str:
        """The chosen spec as Python source to paste into code."""
        items = ", ".join(f"{label!r}: {_loop_par_source(*t)}" for label, t in sorted(self.spec.items()))
        return "parpy.par({" + items + "})" + (
            "  # with opts.use_cuda_thread_block_clusters = True" if self.clusters else "")


# Per function (weakly: a dropped function takes its choices with it), per call key.
_memory: weakref.WeakKeyDictionary[Any, dict[bytes, Tuning]] = weakref.WeakKeyDictionary()


def forget() -> None:
    """Forgets the choices in memory (clear_cache removes the disk's)."""
    _memory.clear()


def _loop_par(threads: int, reduce: bool, tpb: int) -> LoopPar:
    p = LoopPar().threads(threads)
    if reduce:
        p = p.reduce()
    if tpb != 1024:
        p = p.tpb(tpb)
    return p


def _loop_par_source(threads: int, reduce: bool, tpb: int) -> str:
    return f"parpy.threads({threads})" + (".reduce()" if reduce else "") + (f".tpb({tpb})" if tpb != 1024 else "")


def _spec_of(opts: CompileOptions) -> Spec:
    out: Spec = {}
    for label, p in opts.parallelize.items():
        threads, reduce, tpb = p.__getstate__()
        out[label] = (int(threads), bool(reduce), int(tpb))
    return out


def _options(base: CompileOptions, spec: Spec, clusters: bool) -> CompileOptions:
    o = CompileOptions()
    for name in ("verbose_backend_resolution", "debug_print", "write_output", "backend",
                 "max_thread_blocks_per_cluster", "use_cuda_graphs", "force_int_size", "force_float_size",
                 "includes", "libs", "extra_flags", "fast_math", "bounds_check"):
        setattr(o, name, getattr(base, name))
    o.parallelize = {label: _loop_par(*t) for label, t in spec.items()}
    o.use_cuda_thread_block_clusters = clusters
    o.autotune = False
    return o


# ---- copies of the arguments ----------------------------------------------------------------


def _copy(a: Any, where: str, backend: CompileBackend) -> Any:
    """A copy of argument `a` that a candidate may write, or `a` itself for a value. On Cuda a
    host array's copy is a parpy buffer on the device, so that the candidates' times are their
    kernels', not the copies to the device and back that each call of a host array makes."""
    if isinstance(a, (bool, int, float, complex, str, type(None), np.generic)):
        return a
    if isinstance(a, dict):
        return {k: _copy(v, f"{where}[{k!r}]", backend) for k, v in a.items()}
    if isinstance(a, np.ndarray):
        if backend == CompileBackend.Cuda and a.ndim > 0 and a.flags.c_contiguous:
            from .buffer import _cuda_from_host

            # Copied to the device only: no host copy first, and none back when the copy goes.
            return _cuda_from_host(a, DataType(a.dtype.str), None)
        return a.copy()
    module = type(a).__module__.split(".")[0]
    if module == "torch" and hasattr(a, "clone"):
        return a.detach().clone()
    if module == "cupy" and hasattr(a, "copy"):
        return a.copy()
    if module == "parpy" and hasattr(a, "copy"):  # parpy.buffer
        return a.copy()
    if hasattr(a, "__cuda_array_interface__"):  # a device copy, used in place like the original
        from .buffer import _cuda_from_array

        return _cuda_from_array(a).copy()
    if hasattr(a, "__array_interface__") or hasattr(a, "__array__"):
        return np.array(a, copy=True)
    try:  # the buffer protocol (array.array, memoryview, bytearray)
        return np.array(memoryview(a), copy=True)
    except TypeError:
        pass
    if hasattr(a, "__dlpack__"):
        return np.from_dlpack(a).copy()
    raise RuntimeError(
        f"Autotuning runs its candidates on copies of the arguments, and argument {where} (of type "
        f"{type(a).__module__}.{type(a).__qualname__}) cannot be copied. Pass a numpy, torch or CuPy "
        "array or a parpy buffer, or turn opts.autotune off and choose the spec by hand.")


def _on_gpu(a: Any) -> bool:
    if isinstance(a, dict):
        return any(_on_gpu(v) for v in a.values())
    return hasattr(a, "__cuda_array_interface__")


def _gpu_device(args: tuple[Any, ...]) -> int:
    """The CUDA device of the first GPU array among `args` (where the call runs), else -1 (the
    current device)."""
    for a in args:
        if isinstance(a, dict):
            d = _gpu_device(tuple(a.values()))
            if d >= 0:
                return d
        elif hasattr(a, "__cuda_array_interface__"):
            ptr = a.__cuda_array_interface__["data"][0]
            if ptr:
                return int(_native._cuda_pointer_device(ptr))
    return -1


def _sync(backend: CompileBackend, device: int = -1) -> None:
    if backend == CompileBackend.Cuda:
        _native._cuda_sync(device)


# ---- candidates ------------------------------------------------------------------------------


def _powers_of_two(low: int, high: int) -> list[int]:
    out, p = [], 1
    while p <= high:
        if p >= low:
            out.append(p)
        p *= 2
    return out


def _thread_counts(n: int, backend: CompileBackend, reduce: bool = False) -> list[int]:
    """Candidate thread counts for a label the user gave `n` threads: n itself and the powers of
    two below it, the user's first. On Cpu a team never has more threads than cores (and an inner
    label is a SIMD loop for any count above 1): the powers of two up to the core count, and the
    core count. On a GPU, from 32 up; a reduce() label (an inner reduction, whose rows the GPU
    packs several to a block below 32 threads: docs/gpu.md) from 4 up."""
    if backend == CompileBackend.Cpu:
        cores = os.cpu_count() or 1
        others = _powers_of_two(1, min(n, cores)) + ([cores] if cores <= n else [])
    else:
        others = _powers_of_two(4 if reduce else 32, n)
    return [n] + sorted(set(others) - {n}, reverse=True)


def _block_sizes(threads: int, backend: CompileBackend) -> list[int]:
    if backend != CompileBackend.Cuda:
        return [1024]
    return [t for t in (1024, 512, 256, 128) if t <= max(threads, 128)]


# ---- the search ------------------------------------------------------------------------------


def _build_threads() -> int:
    """How many candidates are built at once: $PARPY_AUTOTUNE_BUILD_THREADS, else the number of
    cores, at most 8. With 1, each candidate is built when it is timed."""
    given = os.environ.get("PARPY_AUTOTUNE_BUILD_THREADS", "").strip()
    if not given:
        return max(1, min(os.cpu_count() or 1, 8))
    try:
        n = int(given)
    except ValueError:
        n = 0
    if n < 1:
        raise RuntimeError(
            f"PARPY_AUTOTUNE_BUILD_THREADS is {given!r}; it must be a whole number of threads of at "
            "least 1 (1: autotuning builds each candidate when it times it). Set it so, or unset it.")
    return n


Key = tuple[tuple[tuple[str, tuple[int, bool, int]], ...], bool]


def _key(spec: Spec, clusters: bool) -> Key:
    """A candidate as a dict key."""
    return tuple(sorted(spec.items())), clusters


class _Search:
    def __init__(self, fn: Any, args: tuple[Any, ...], opts: CompileOptions) -> None:
        self.fn, self.opts = fn, opts
        self.backend = opts.backend
        self.budget = opts.autotune_budget_s
        self.start = time.perf_counter()
        # Host arrays are copied to the GPU only where no argument is a GPU array already (whose
        # device the call must run on: the copies would go to the current device).
        host_only = self.backend if not any(_on_gpu(a) for a in args) else CompileBackend.Cpu
        self.copies = tuple(_copy(a, f"#{i + 1}", host_only) for i, a in enumerate(args))
        # The candidates run on the device of the GPU arrays: that device is waited for.
        self.device = _gpu_device(self.copies) if self.backend == CompileBackend.Cuda else -1
        self.tried: dict[Key, Candidate] = {}
        self.progress = sys.stderr.isatty() or os.environ.get("PARPY_AUTOTUNE_PROGRESS") == "1"
        self.shown = False
        # The candidates' entries in the function's memory cache, by candidate.
        self.keys: dict[Key, bytes] = {}
        self.tried_before = False  # whether the candidate being timed is not the first (the user's)
        self.user_error: Exception | None = None  # the user's spec's ParallelismError, if any
        self.build_threads = _build_threads()
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.builds: dict[Key, concurrent.futures.Future[bool]] = {}  # built ahead, not timed yet
        self.ready: set[Key] = set()  # candidates built ahead within the budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def prebuild(self, specs: list[Spec], clusters: bool) -> None:
        """Builds the candidates of `specs` not tried yet on several threads at once (a build
        releases the GIL), in their order, and waits for them within the budget; time() then
        times them one at a time, in the search's order, with no build beside them to disturb the
        timing. A build that fails is not reported here: time() raises its error, and the
        candidate is skipped as a candidate that fails to build when timed is."""
        if self.build_threads < 2 or len(specs) < 2:
            return  # each built when timed
        todo: dict[Key, CompileOptions] = {}
        for spec in specs:
            key = _key(spec, clusters)
            if key in self.tried or key in self.builds or key in todo:
                continue
            try:
                o = _options(self.opts, spec, clusters)
                call_key = self.fn._call_key(*self.copies, opts=o)
            except Exception:  # time() meets the same error and skips the candidate
                continue
            self.keys[key] = call_key
            todo[key] = o
        if len(todo) < 2:
            return
        if self.pool is None:
            self.pool = concurrent.futures.ThreadPoolExecutor(self.build_threads, "parpy-autotune-build")
        for key, o in todo.items():
            self.builds[key] = self.pool.submit(self.build_ahead, o)
        concurrent.futures.wait([self.builds[key] for key in todo], timeout=max(self.left(), 0.0))
        for key in todo:
            f = self.builds[key]
            if f.done() and (f.exception() is not None or f.result()):
                self.ready.add(key)

    def build_ahead(self, o: CompileOptions) -> bool:
        """On a thread of the pool: builds a candidate and keeps it in the function's memory
        cache, where its timing finds it; not once the budget has run out (time() builds it then,
        if it times it). Whether it built it."""
        if self.left() <= 0:
            return False
        self.fn._build(*self.copies, opts=o)
        return True

    def time(self, spec: Spec, clusters: bool) -> Candidate:
        key = _key(spec, clusters)
        if key in self.tried:
            return self.tried[key]
        c = Candidate(dict(spec), clusters)
        self.tried_before = bool(self.tried)
        self.tried[key] = c
        built = self.builds.pop(key, None)
        try:
            o = _options(self.opts, spec, clusters)
            if key not in self.keys:  # else computed when it was built ahead
                self.keys[key] = self.fn._call_key(*self.copies, opts=o)
            if built is not None:
                built.result()  # the error of a build that failed
            self.fn(*self.copies, opts=o)  # builds (or finds) it, and warms up
            _sync(self.backend, self.device)
            c.seconds = self.measure(o)
        except Exception as e:  # a candidate that does not build or run is skipped
            if not self.tried_before:
                # The user's own spec fails: that error, as without autotuning, unless it asks
                # for more parallelism than the target gives (a ParallelismError): the search
                # then looks below it, and the error is raised if nothing runs.
                if not isinstance(e, ParallelismError):
                    raise
                self.user_error = e
            c.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            log.debug("autotune %s: %s failed: %s", self.name(), spec, c.error)
        self.show(c)
        return c

    def measure(self, o: CompileOptions) -> float:
        """Seconds per call: the median of at least three runs, more while they are short, within
        a share of the budget. A run is a batch of calls with one wait for the device at its end,
        as calls in a loop go, so that a GPU kernel's time is not lost in the wait's latency."""
        t0 = time.perf_counter()
        self.fn(*self.copies, opts=o)
        _sync(self.backend, self.device)
        once = time.perf_counter() - t0
        batch = max(1, min(100, int(0.002 / max(once, 1e-7))))  # about 2 ms per run
        runs: list[float] = []
        spent = once
        while len(runs) < 3 or (spent < min(0.05, self.left() / 8) and len(runs) < 50):
            t0 = time.perf_counter()
            for _ in range(batch):
                self.fn(*self.copies, opts=o)
            _sync(self.backend, self.device)
            runs.append((time.perf_counter() - t0) / batch)
            spent += runs[-1] * batch
        return statistics.median(runs)

    def name(self) -> str:
        return getattr(self.fn, "__qualname__", "function")

    def show(self, c: Candidate) -> None:
        elapsed = time.perf_counter() - self.start
        if self.progress and elapsed > 1.0:
            best = self.best()
            sys.stderr.write(f"\rparpy: tuning {self.name()}: {len(self.tried)} candidates in {elapsed:.1f} s"
                             + (f", best {best.seconds * 1e3:.3f} ms" if best and best.seconds else ""))
            sys.stderr.flush()
            self.shown = True

    def best(self) -> Candidate | None:
        timed = [c for c in self.tried.values() if c.seconds is not None]
        return min(timed, key=lambda c: c.seconds or 0.0) if timed else None

    def run(self) -> Tuning:
        try:
            self.search()
            return self.result()
        finally:
            if self.pool is not None:
                # Builds the budget left no time for: those not started are cancelled, those
                # running are waited for. That is at most about one build's time (the running
                # builds started together), as the search without threads runs over its budget by
                # the candidate it started last; in exchange no build outlives the call, to add
                # an entry to the function's memory cache after the one below or to compete for
                # the cores with the call's own run.
                self.pool.shutdown(wait=True, cancel_futures=True)
            # The candidates' compiled code leaves memory (the chosen one stays in the disk cache
            # and is loaded again for the call).
            for call_key in self.keys.values():
                self.fn._drop_cached(call_key)

    def labels(self, spec: Spec) -> list[str]:
        """The labels with the most threads first (their choice usually matters most, and they
        have the most candidates: searched first, they are searched within a small budget too);
        labels with as many threads in the order they first appear in the function's source,
        the others after them by name."""
        try:
            source = inspect.getsource(self.fn.__wrapped__)
        except (AttributeError, OSError, TypeError):
            source = ""

        def first(label: str) -> int:
            i = min((j for j in (source.find(f'"{label}"'), source.find(f"'{label}'")) if j >= 0), default=-1)
            return i if i >= 0 else len(source) + 1

        return sorted(spec, key=lambda label: (-spec[label][0], first(label), label))

    def search(self) -> None:
        user, clusters = _spec_of(self.opts), self.opts.use_cuda_thread_block_clusters
        self.time(user, clusters)  # the user's own spec first: always a valid choice
        # On Cuda, the search runs with clusters as given, then the other way: where a reduction
        # spans several blocks (a .reduce() label or a sum over a slice), a cluster keeps the row
        # in one kernel, and the best thread counts differ; elsewhere the code is the same.
        settings = [clusters]
        if self.backend == CompileBackend.Cuda:
            settings.append(not clusters)
        for c in settings:
            self.coordinate_search(user, c)

    def coordinate_search(self, spec: Spec, clusters: bool) -> None:
        """The thread counts of one label at a time, the others at their best so far: the user's
        count and every other power of two below it (steps of 4), then the two counts beside the
        best of those. A label is searched again (up to _SWEEPS times in all) while the best
        counts of the other labels differ from those it was searched with: the best rows count
        for 32 lanes per row is not the one for 8. Then the threads per block, one value for
        every label (the labels of a parallel nest must agree on it)."""
        self.time(spec, clusters)
        user = dict(spec)
        searched_with: dict[str, Spec] = {}  # the other labels' values when a label was searched
        for _ in range(_SWEEPS):
            changed = False
            for label in self.labels(spec):
                threads, reduce, tpb = spec[label]
                others = {k: v for k, v in spec.items() if k != label}
                if threads <= 0 or searched_with.get(label) == others:
                    continue
                searched_with[label] = others
                counts = _thread_counts(user[label][0], self.backend, reduce)
                coarse = [{**spec, label: (t, reduce, tpb)} for t in counts[:1] + counts[2::2]]
                if not self.time_all(coarse, clusters):
                    return
                best = self.best_spec(spec, clusters)[label][0]
                if best in counts:
                    k = counts.index(best)
                    beside = [{**spec, label: (t, reduce, tpb)} for t in counts[max(k - 1, 0):k + 2]]
                    if not self.time_all(beside, clusters):
                        return
                new = self.best_spec(spec, clusters)
                changed = changed or new != spec
                spec = new
            if not changed:
                break
        widest = max((t for t, _, _ in spec.values()), default=0)
        self.time_all([{label: (t, r, b) for label, (t, r, _) in spec.items()}
                       for b in _block_sizes(widest, self.backend)], clusters)

    def time_all(self, specs: list[Spec], clusters: bool) -> bool:
        """Times `specs` in order (built together first), while the budget lasts: False when it
        ran out. Where it runs out while they build, the candidates built within it are timed
        still (their builds took the budget, timing is the lesser part), and the first one not
        tried yet, started within the budget, is finished, as the candidate in progress is
        without threads."""
        if self.left() <= 0:
            return False
        self.prebuild(specs, clusters)
        started = False
        for spec in specs:
            if _key(spec, clusters) in self.tried:
                continue
            if started and self.left() <= 0 and _key(spec, clusters) not in self.ready:
                return False
            started = True
            self.time(spec, clusters)
        return True

    def result(self) -> Tuning:
        best = self.best()
        if self.shown:
            sys.stderr.write("\n")
        if best is None:
            if self.user_error is not None:
                raise self.user_error
            errors = "; ".join(f"{c.spec}: {c.error}" for c in self.tried.values())
            raise RuntimeError(f"Autotuning {self.name()} found no candidate that runs: {errors}")
        return Tuning(best.spec, best.clusters, list(self.tried.values()), time.perf_counter() - self.start)

    def best_spec(self, spec: Spec, clusters: bool) -> Spec:
        """The fastest spec tried so far with these clusters, else `spec`."""
        timed = [c for c in self.tried.values() if c.seconds is not None and c.clusters == clusters]
        return dict(min(timed, key=lambda c: c.seconds or 0.0).spec) if timed else spec


# ---- the disk record -------------------------------------------------------------------------


def _device(backend: CompileBackend) -> str:
    if backend == CompileBackend.Cuda:
        d = _native._cuda_device()
        return f"cuda {d['name']} {d['major']}.{d['minor']}"
    return f"{backend} {platform.machine()} {platform.processor()} {os.cpu_count()} cores"


def _function_id(fn: Any) -> str:
    wrapped = getattr(fn, "__wrapped__", None)
    try:
        source = inspect.getsource(wrapped) if wrapped is not None else ""
    except (OSError, TypeError):
        source = ""
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}\n{source}"


def _record_key(fn: Any, key: bytes, backend: CompileBackend) -> list[str]:
    """The disk cache's key of the record of a call's choice (the cache adds parpy's version)."""
    return [f"tuning v{_RECORD_VERSION}", _function_id(fn), _device(backend), key.hex()]


_RECORD_SUFFIX = "-tuned.json"


def _encode(t: Tuning) -> bytes:
    def spec(s: Spec) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in s.items()}

    return json.dumps({"spec": spec(t.spec), "clusters": t.clusters, "search_seconds": t.search_seconds,
                       "candidates": [{"spec": spec(c.spec), "clusters": c.clusters, "seconds": c.seconds,
                                       "error": c.error} for c in t.candidates]}).encode()


def _decode(payload: bytes, from_disk: bool) -> Tuning | None:
    def spec_of(d: dict[str, Any]) -> Spec:
        return {str(k): (int(v[0]), bool(v[1]), int(v[2])) for k, v in d.items()}

    try:
        data = json.loads(payload)
        candidates = [Candidate(spec_of(c["spec"]), bool(c["clusters"]), c.get("seconds"), c.get("error"))
                      for c in data.get("candidates", [])]
        return Tuning(spec_of(data["spec"]), bool(data["clusters"]), candidates,
                      float(data.get("search_seconds", 0.0)), from_disk)
    except (ValueError, KeyError, TypeError, IndexError):
        return None


# ---- entry points ----------------------------------------------------------------------------


def choose(fn: Any, args: tuple[Any, ...], opts: CompileOptions, key: bytes) -> CompileOptions:
    """Called by a jit function's first call with opts.autotune for this key: the options to use.
    The choice is a record of the disk cache (its trust checks, one search per key at a time
    across processes, atomic publication): a valid one is used, else the search makes it."""
    known = _memory.setdefault(fn, {})
    t = known.get(key)
    if t is None:
        def search() -> bytes:
            found = _Search(fn, args, opts).run()
            log.info("autotune %s: %s in %.2f s over %d candidates", getattr(fn, "__qualname__", "?"),
                     found.source(), found.search_seconds, len(found.candidates))
            return _encode(found)

        payload, searched = _native._cache_record(_record_key(fn, key, opts.backend), _RECORD_SUFFIX, search)
        t = _decode(payload, from_disk=not searched)
        if t is None:
            raise RuntimeError(f"Autotuning record of {getattr(fn, '__qualname__', '?')} is not readable")
        known[key] = t
    return _options(opts, t.spec, t.clusters)


def tuned(fn: Any, args: list[Any] | tuple[Any, ...], opts: CompileOptions) -> Tuning | None:
    """The choice autotuning made for calling `fn` with `args` and `opts` (in this process or
    one before it), or None when it has not tuned that call yet."""
    key = fn._call_key(*args, opts=opts)
    t = _memory.get(fn, {}).get(key)
    if t is None:
        from .backend import resolve

        payload = _native._cached_record(_record_key(fn, key, resolve(opts.backend, True)), _RECORD_SUFFIX)
        t = _decode(payload, from_disk=True) if payload is not None else None
    return t
