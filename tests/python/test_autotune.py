"""Autotuning (docs/howto/autotuning.md) on the Cpu backend, so that it runs without a GPU: the
search picks the fastest candidate it timed, the call's result is one run's result, the budget
bounds the search, a broken candidate is skipped with its reason, the choice is kept in memory and
on disk (a second process times nothing), print_compiled shows it."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from common import child_timeout

pytestmark = [pytest.mark.usefixtures("fresh_cache"),
              pytest.mark.skipif(not parpy.backend.is_enabled(CompileBackend.Cpu), reason="needs the Cpu backend")]

RNG = np.random.default_rng(5)


@parpy.jit
def scale_add(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = y[i] + 2.0 * x[i]


def tuning_opts(n, budget=30.0):
    o = parpy.par({"N": parpy.threads(n)}, autotune=True)
    o.backend = CompileBackend.Cpu
    o.autotune_budget_s = budget
    return o


def test_options():
    o = parpy.par({"N": parpy.threads(8)}, autotune=True)
    assert o.autotune and o.autotune_budget_s == 5.0
    assert not parpy.par({"N": parpy.threads(8)}).autotune
    assert "autotune: true, autotune_budget_s: 5" in str(o)
    assert "autotune" not in str(parpy.par({"N": parpy.threads(8)}))  # the original's form when off
    with pytest.raises(RuntimeError, match="The autotuning budget must be a positive number of seconds"):
        o.autotune_budget_s = 0


def test_search_picks_the_fastest_and_the_call_runs_once():
    n = 50000
    x, y = RNG.standard_normal(n), RNG.standard_normal(n)
    want = y + 2.0 * x
    o = tuning_opts(n)
    assert parpy.tuned(scale_add, [x, y, n], o) is None
    entries = scale_add._cache_size()
    scale_add(x, y, n, opts=o)
    # Candidates ran on copies: y was updated exactly once.
    np.testing.assert_allclose(y, want, rtol=1e-15, atol=0)
    t = parpy.tuned(scale_add, [x, y, n], o)
    assert t is not None and not t.from_disk
    timed = [c for c in t.candidates if c.seconds is not None]
    # The user's spec first, then the other thread counts (powers of two up to the core count, and
    # the core count), coarse to fine: every other count, then the two beside the fastest of those.
    assert t.candidates[0].spec == {"N": (n, False, 1024)}
    tried = {c.spec["N"][0] for c in t.candidates}
    cores = os.cpu_count() or 1
    counts = [n] + sorted(set([2 ** k for k in range(cores.bit_length()) if 2 ** k <= cores] + [cores]), reverse=True)
    coarse = set(counts[:1] + counts[2::2])
    assert coarse <= tried <= set(counts) and len(timed) == len(t.candidates)
    best_coarse = min((c for c in timed if c.spec["N"][0] in coarse), key=lambda c: c.seconds).spec["N"][0]
    k = counts.index(best_coarse)
    assert set(counts[max(k - 1, 0):k + 2]) <= tried
    fastest = min(timed, key=lambda c: c.seconds)
    assert t.spec == fastest.spec and t.par()["N"].__getstate__() == (t.spec["N"][0], False, 1024)
    assert t.source() == f"parpy.par({{'N': parpy.threads({t.spec['N'][0]})}})"
    # The candidates' compiled code was dropped: the function keeps one entry, the choice's.
    assert scale_add._cache_size() == entries + 1
    # Later calls use the choice without tuning again, and stay correct.
    before = len(t.candidates)
    want = y + 2.0 * x
    scale_add(x, y, n, opts=o)
    np.testing.assert_allclose(y, want, rtol=1e-15, atol=0)
    assert len(parpy.tuned(scale_add, [x, y, n], o).candidates) == before


@parpy.jit
def rows_then_cols(x, y, N, M):
    parpy.label("z_rows")
    for i in range(N):
        parpy.label("a_cols")
        for j in range(M):
            y[i, j] = x[i, j] * 3.0


def search_order(monkeypatch, spec):
    """The specs a Cuda search from `spec` times, in order, with a stand-in timer whose fastest
    spec is a_cols = 4096 threads, z_rows = 64 (nothing is built)."""
    import math

    S = parpy.autotune._Search
    s = S.__new__(S)
    s.fn, s.backend, s.budget, s.start, s.tried = rows_then_cols, CompileBackend.Cuda, 1e9, 0.0, {}
    monkeypatch.setattr(parpy.autotune.time, "perf_counter", lambda: 0.0)
    order = []

    def fake_time(self, sp, clusters):
        key = (tuple(sorted(sp.items())), clusters)
        if key not in self.tried:
            cost = abs(math.log2(sp["a_cols"][0]) - 12) + abs(math.log2(sp["z_rows"][0]) - 6) + 1
            self.tried[key] = parpy.autotune.Candidate(dict(sp), clusters, cost)
            order.append((sp["z_rows"][0], sp["a_cols"][0], sp["a_cols"][2]))
        return self.tried[key]

    monkeypatch.setattr(S, "time", fake_time)
    monkeypatch.setattr(S, "prebuild", lambda self, specs, clusters: None)
    s.coordinate_search(spec, False)
    return order


def test_the_widest_label_is_tuned_first_coarse_then_fine(monkeypatch):
    # a_cols has more threads than z_rows: it is tuned first (within a small budget its choice
    # matters most), in steps of 4 from the user's count, then the counts beside the best; then
    # z_rows with a_cols at its best; then the threads per block.
    order = search_order(monkeypatch, {"z_rows": (1024, False, 1024), "a_cols": (65536, False, 1024)})
    assert order[:9] == [(1024, c, 1024) for c in (65536, 16384, 4096, 1024, 256, 64, 8192, 2048)] + [
        (256, 4096, 1024)]
    assert order[8:12] == [(r, 4096, 1024) for r in (256, 64, 128, 32)]
    # z_rows moved: a_cols is searched again with z_rows at 64 (its best stays 4096, so z_rows is
    # not searched again), then the threads per block.
    assert order[12:20] == [(64, c, 1024) for c in (65536, 16384, 1024, 256, 64, 8192, 2048)] + [(64, 4096, 512)]


def test_labels_are_searched_again_while_the_others_move(monkeypatch):
    # A stand-in cost shaped like CSR SpMV with rows (z_rows) and lanes per row (a_cols): the best
    # rows count depends on the lanes. One pass over the labels stops at (2^15 rows, 16 lanes);
    # searching rows again with 16 lanes, then lanes with the rows found, reaches (2^20, 8).
    import math

    def cost(rows, lanes):
        r = math.log2(rows)
        return {32: 10 + abs(r - 15), 16: 5 + abs(r - 20) / 2, 8: 2 * abs(r - 20), 4: 1 + 2 * abs(r - 20)}[lanes]

    S = parpy.autotune._Search
    s = S.__new__(S)
    s.fn, s.backend, s.budget, s.start, s.tried = rows_then_cols, CompileBackend.Cuda, 1e9, 0.0, {}
    monkeypatch.setattr(parpy.autotune.time, "perf_counter", lambda: 0.0)

    def fake_time(self, sp, clusters):
        key = (tuple(sorted(sp.items())), clusters)
        if key not in self.tried:
            self.tried[key] = parpy.autotune.Candidate(dict(sp), clusters, cost(sp["z_rows"][0], sp["a_cols"][0]))
        return self.tried[key]

    monkeypatch.setattr(S, "time", fake_time)
    monkeypatch.setattr(S, "prebuild", lambda self, specs, clusters: None)
    s.coordinate_search({"z_rows": (2**20, False, 1024), "a_cols": (32, True, 1024)}, False)
    best = s.best()
    assert (best.spec["z_rows"][0], best.spec["a_cols"][0]) == (2**20, 8) and best.seconds == 0
    # The first pass's choice was tried on the way.
    assert any(c.spec["z_rows"][0] == 2**15 and c.spec["a_cols"][0] == 16 for c in s.tried.values())


def test_labels_with_as_many_threads_are_tuned_in_source_order(monkeypatch):
    # The same counts: the order of the labels in the function (z_rows first), not their names.
    order = search_order(monkeypatch, {"z_rows": (1024, False, 1024), "a_cols": (1024, False, 1024)})
    assert [r for r, c, _ in order[:4]] == [1024, 256, 64, 128] and {c for _, c, _ in order[:4]} == {1024}


def test_labels_and_candidates_on_cpu():
    # A real search on Cpu: results are right and both labels were tuned.
    n, m = 64, 256
    x, y = RNG.standard_normal((n, m)), np.zeros((n, m))
    o = parpy.par({"z_rows": parpy.threads(n), "a_cols": parpy.threads(m)}, autotune=True)
    o.backend = CompileBackend.Cpu
    # Time enough for every candidate of both labels (on 16 cores each label has several builds).
    o.autotune_budget_s = 600.0
    rows_then_cols(x, y, n, m, opts=o)
    np.testing.assert_allclose(y, x * 3.0, rtol=1e-15, atol=0)
    c = parpy.tuned(rows_then_cols, [x, y, n, m], o).candidates
    assert c[1].spec["a_cols"][0] != m and c[1].spec["z_rows"][0] == n  # the wider label first
    assert any(x.spec["z_rows"][0] != n for x in c)


def test_gpu_thread_counts_go_below_a_warp_for_reductions():
    # Rows whose reduction runs on fewer than 32 threads are packed several to a block on the GPU
    # (8 lanes per row of a sparse matrix-vector product ran at 0.73x cuSPARSE where 32 ran at
    # 0.42x on an H200): reduce() labels try 16, 8 and 4 threads too, other labels stop at 32.
    counts = parpy.autotune._thread_counts
    assert counts(64, CompileBackend.Cuda, reduce=True) == [64, 32, 16, 8, 4]
    assert counts(64, CompileBackend.Cuda) == [64, 32]
    assert counts(48, CompileBackend.Cuda, reduce=True) == [48, 32, 16, 8, 4]
    assert counts(3, CompileBackend.Cuda, reduce=True) == [3]


def test_budget_bounds_the_search():
    n = 40000
    x, y = RNG.standard_normal(n), RNG.standard_normal(n)
    want = y + 2.0 * x
    o = tuning_opts(n, budget=1e-6)
    scale_add(x, y, n, opts=o)
    np.testing.assert_allclose(y, want, rtol=1e-15, atol=0)
    # Over budget after the first candidate: only the user's own spec was tried.
    t = parpy.tuned(scale_add, [x, y, n], o)
    assert [c.spec for c in t.candidates] == [{"N": (n, False, 1024)}] and t.spec == {"N": (n, False, 1024)}


def tune_with_failures(monkeypatch, n, failure):
    """Tunes scale_add on n elements where candidates for which `failure(spec)` gives an exception
    raise it instead of building; checks the call's result; returns the tuning."""
    real = parpy.autotune._options

    def options(base, spec, clusters):
        e = failure(spec)
        if e is not None:
            raise e
        return real(base, spec, clusters)

    monkeypatch.setattr(parpy.autotune, "_options", options)
    x, y = RNG.standard_normal(n), RNG.standard_normal(n)
    want = y + 2.0 * x
    o = tuning_opts(n)
    scale_add(x, y, n, opts=o)
    np.testing.assert_allclose(y, want, rtol=1e-15, atol=0)
    return parpy.tuned(scale_add, [x, y, n], o)


def test_a_broken_candidate_is_skipped_with_its_reason(monkeypatch):
    t = tune_with_failures(monkeypatch, 30000, lambda spec: RuntimeError(
        "this candidate does not build\nsecond line") if spec["N"][0] == 2 else None)
    broken = [c for c in t.candidates if c.spec["N"][0] == 2]
    assert len(broken) == 1 and broken[0].seconds is None
    assert broken[0].error == "RuntimeError: this candidate does not build"
    assert t.spec["N"][0] != 2 and "1 failed" in repr(t)


def test_errors_of_the_users_spec_are_raised_as_without_autotuning():
    # A program the user's own spec cannot run (a race here) raises its error, not a search's.
    @parpy.jit
    def racy(x, out, N):
        parpy.label("N")
        for i in range(N):
            out[0] += x[i]

    x, out = RNG.standard_normal(64), np.zeros(1)
    plain = parpy.par({"N": parpy.threads(64)})
    plain.backend = CompileBackend.Cpu
    with pytest.raises(RuntimeError) as want:
        racy(x, out, 64, opts=plain)
    with pytest.raises(RuntimeError) as got:
        racy(x, out, 64, opts=tuning_opts(64))
    assert str(got.value) == str(want.value) and parpy.tuned(racy, [x, out, 64], tuning_opts(64)) is None


def test_a_spec_asking_too_much_parallelism_is_an_upper_bound(monkeypatch):
    # The user's spec raises ParallelismError (more parallelism than the target gives the nest;
    # a stand-in here, as only the GPU backends raise it): the search goes on below it.
    n = 30001  # a key no other test tuned (choices stay in memory)
    t = tune_with_failures(monkeypatch, n, lambda spec: parpy.ParallelismError(
        "too many threads for this nest") if spec["N"][0] == n else None)
    assert t.candidates[0].spec["N"][0] == n and t.candidates[0].error.startswith("ParallelismError")
    assert t.spec["N"][0] < n


def test_a_spec_asking_too_much_parallelism_raises_if_nothing_runs(monkeypatch):
    def options(base, spec, clusters):
        raise parpy.ParallelismError(f"too many threads: {spec['N'][0]}")

    monkeypatch.setattr(parpy.autotune, "_options", options)
    n = 30002
    x, y = RNG.standard_normal(n), RNG.standard_normal(n)
    before = y.copy()
    with pytest.raises(parpy.ParallelismError, match=f"too many threads: {n}$"):
        scale_add(x, y, n, opts=tuning_opts(n))
    assert np.array_equal(y, before)  # never written


def test_print_compiled_shows_the_choice():
    n = 20000
    x, y = RNG.standard_normal(n), RNG.standard_normal(n)
    o = tuning_opts(n)
    before = parpy.print_compiled(scale_add, [x, y, n], o)
    assert before.startswith("// Autotuning has not tuned this call yet: the spec as given.\n")
    scale_add(x, y, n, opts=o)
    t = parpy.tuned(scale_add, [x, y, n], o)
    code = parpy.print_compiled(scale_add, [x, y, n], o)
    assert code.startswith(f"// Autotuned: {t.source()}\n")
    plain = parpy.par(t.par())
    plain.backend = CompileBackend.Cpu
    assert code.split("\n", 1)[1] == parpy.print_compiled(scale_add, [x, y, n], plain)


def test_arguments_of_other_kinds_are_copied_too():
    # Candidates run on copies whatever the array kind: y (a Python array.array, the buffer
    # protocol) and the dict's array are written by exactly one run.
    import array

    @parpy.jit
    def g(x, y, d, N):
        parpy.label("N")
        for i in range(N):
            y[i] = y[i] + x[i]
            d["acc"][i] = d["acc"][i] * 2.0

    n = 20000
    x = RNG.standard_normal(n)
    y = array.array("d", RNG.standard_normal(n))
    acc = RNG.standard_normal(n)
    want_y, want_acc = np.array(y) + x, acc * 2.0
    g(x, y, {"acc": acc}, n, opts=tuning_opts(n))
    np.testing.assert_allclose(np.array(y), want_y, rtol=1e-15, atol=0)
    np.testing.assert_allclose(acc, want_acc, rtol=1e-15, atol=0)
    assert len(parpy.tuned(g, [x, y, {"acc": acc}, n], tuning_opts(n)).candidates) > 1


SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import parpy
    sys.path.insert(0, {tests!r})
    from test_autotune import scale_add, tuning_opts

    if sys.argv[1] == "second":
        def no_search(self):
            raise AssertionError("the second process timed candidates")
        parpy.autotune._Search.run = no_search
    n = 30000
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    want = y + 2.0 * x
    o = tuning_opts(n)
    scale_add(x, y, n, opts=o)
    assert np.allclose(y, want, rtol=1e-15, atol=0)
    t = parpy.tuned(scale_add, [x, y, n], o)
    print(t.from_disk, t.spec["N"][0], len(t.candidates))
""")


def test_a_second_process_reuses_the_choice_from_disk(fresh_cache):
    script = SCRIPT.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "PARPY_CACHE_DIR": str(fresh_cache)}
    outs = []
    for which in ("first", "second"):
        r = subprocess.run([sys.executable, "-c", script, which], capture_output=True, text=True, env=env,
                           timeout=child_timeout(300), check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        outs.append(r.stdout.split()[-3:])
    (disk1, spec1, n1), (disk2, spec2, n2) = outs
    assert (disk1, disk2) == ("False", "True") and spec1 == spec2 and n1 == n2 and int(n1) > 1
    # Damaged or foreign records are not trusted: tuned again.
    records = list(fresh_cache.glob("*-tuned.json"))
    assert len(records) == 1
    records[0].write_bytes(records[0].read_bytes().replace(b'"spec"', b'"spek"', 1))  # damaged
    r = subprocess.run([sys.executable, "-c", script, "first"], capture_output=True, text=True, env=env,
                       timeout=child_timeout(300), check=False)
    assert r.returncode == 0 and r.stdout.split()[-3] == "False", r.stdout + r.stderr
    os.chmod(records[0], 0o666)
    r = subprocess.run([sys.executable, "-c", script, "second"], capture_output=True, text=True, env=env,
                       timeout=child_timeout(300), check=False)
    assert r.returncode != 0 and "the second process timed candidates" in r.stderr


def test_clear_cache_forgets_the_choice():
    n = 20000
    x, y = RNG.standard_normal(n), RNG.standard_normal(n)
    o = tuning_opts(n, budget=1e-6)
    scale_add(x, y, n, opts=o)
    assert parpy.tuned(scale_add, [x, y, n], o) is not None
    parpy.clear_cache()
    assert parpy.tuned(scale_add, [x, y, n], o) is None


def test_the_search_waits_for_the_device_of_the_arrays(monkeypatch):
    # Candidates run on the device of the GPU arrays: timing waits for that device, not the
    # current one (a stand-in for the native functions; the arrays are never touched).
    waited = []

    class Native:
        @staticmethod
        def _cuda_sync(device=-1):
            waited.append(device)

        @staticmethod
        def _cuda_pointer_device(ptr):
            return {0x1000: 1, 0x2000: 0}[ptr]

    class GpuArray:
        def __init__(self, ptr):
            self.__cuda_array_interface__ = {"data": (ptr, False), "shape": (4,), "typestr": "<f4", "version": 3}

    monkeypatch.setattr(parpy.autotune, "_native", Native)
    assert parpy.autotune._gpu_device((3, {"a": GpuArray(0x1000)}, GpuArray(0x2000))) == 1
    assert parpy.autotune._gpu_device((np.zeros(3), 2.0)) == -1
    parpy.autotune._sync(CompileBackend.Cuda, 1)
    parpy.autotune._sync(CompileBackend.Cpu, 1)  # nothing to wait for on Cpu
    assert waited == [1]


# ---- candidates built on several threads ------------------------------------------------------


@parpy.jit
def two_loops(x, y, z, N):
    parpy.label("first")
    for i in range(N):
        y[i] = y[i] + 2.0 * x[i]
    parpy.label("second")
    for i in range(N):
        z[i] = z[i] - 0.5 * x[i]


_options, _build_ahead, _prebuild = (parpy.autotune._options, parpy.autotune._Search.build_ahead,
                                     parpy.autotune._Search.prebuild)


def tune_two_loops(monkeypatch, build_threads, n, budget=600.0, fail=None, build_ahead=_build_ahead):
    """Tunes two_loops on n elements (every candidate timed unless `budget` runs out) with
    PARPY_AUTOTUNE_BUILD_THREADS=`build_threads`, from an empty cache and nothing in memory;
    candidates for which `fail(spec)` is true get a compiler flag that does not exist. The thread
    counts are those of a 32-core host, so that a label has several candidates to build at once,
    and a candidate's time is a stand-in given by its spec (the same in every search), fastest at
    8 threads on `first` and 2 on `second`. Checks the call's result; returns the tuning, the
    specs built on a build thread, and the number of builds."""
    import math
    import threading

    monkeypatch.setenv("PARPY_AUTOTUNE_BUILD_THREADS", str(build_threads))
    monkeypatch.setattr(parpy.autotune, "_thread_counts",
                        lambda n, backend, reduce=False: [n] + [t for t in (32, 16, 8, 4, 2, 1) if t < n])

    def measure(self, o):
        s = parpy.autotune._spec_of(o)
        return 1e-3 * (1 + abs(math.log2(s["first"][0]) - 3) + abs(math.log2(s["second"][0]) - 1))

    monkeypatch.setattr(parpy.autotune._Search, "measure", measure)
    def options(base, spec, clusters):
        o = _options(base, spec, clusters)
        if fail is not None and fail(spec):
            o.extra_flags = ["-fparpy-no-such-option"]
        return o

    monkeypatch.setattr(parpy.autotune, "_options", options)
    ahead = []

    def spy(self, o):
        assert threading.current_thread().name.startswith("parpy-autotune-build")
        ahead.append(parpy.autotune._spec_of(o))
        return build_ahead(self, o)

    monkeypatch.setattr(parpy.autotune._Search, "build_ahead", spy)
    parpy.autotune.forget()
    parpy.clear_cache()
    x, y, z = RNG.standard_normal(n), RNG.standard_normal(n), RNG.standard_normal(n)
    want_y, want_z = y + 2.0 * x, z - 0.5 * x
    o = parpy.par({"first": parpy.threads(n), "second": parpy.threads(n)}, autotune=True)
    o.backend = CompileBackend.Cpu
    o.autotune_budget_s = budget
    builds = parpy.parpy.stats()["builds"]
    two_loops(x, y, z, n, opts=o)
    builds = parpy.parpy.stats()["builds"] - builds
    # Each array was written by exactly one run.
    np.testing.assert_allclose(y, want_y, rtol=1e-15, atol=0)
    np.testing.assert_allclose(z, want_z, rtol=1e-15, atol=0)
    # No build outlives the call, and the candidates' compiled code left memory: the function
    # keeps one entry, the choice's (clear_cache emptied its memory cache).
    assert not [t for t in threading.enumerate() if t.name.startswith("parpy-autotune-build")]
    assert two_loops._cache_size() == 1
    return parpy.tuned(two_loops, [x, y, z, n], o), ahead, builds


def outcomes(t):
    return [(c.spec, c.clusters, c.seconds, c.error) for c in t.candidates]


def test_candidates_built_on_threads_give_the_search_of_one_thread(monkeypatch):
    n = 4096
    one, ahead1, builds1 = tune_two_loops(monkeypatch, 1, n)
    two, ahead2, builds2 = tune_two_loops(monkeypatch, 2, n)
    assert ahead1 == [] and len(ahead2) > 2  # built when timed, or ahead on build threads
    # The same candidates in the same order, the same choice, each built once.
    assert outcomes(two) == outcomes(one) and two.spec == one.spec == {
        "first": (8, False, 1024), "second": (2, False, 1024)}
    assert builds2 == builds1 == len(one.candidates)
    # The first label's coarse counts were built together: every other count below n.
    assert [s["first"][0] for s in ahead2[:3]] == [16, 4, 1]


def test_a_candidate_that_fails_to_build_on_a_build_thread_is_skipped(monkeypatch):
    n = 4096

    def fail(spec):
        return spec["first"][0] == 4

    one, _, _ = tune_two_loops(monkeypatch, 1, n, fail=fail)
    two, ahead, _ = tune_two_loops(monkeypatch, 2, n, fail=fail)
    assert {"first": (4, False, 1024), "second": (n, False, 1024)} in ahead
    assert outcomes(two) == outcomes(one) and two.spec == one.spec
    # first = 4 was tried with second at n, and again with second at its best (a second pass).
    broken = [c for c in two.candidates if c.spec["first"][0] == 4]
    assert [c.spec["second"][0] for c in broken] == [n, 2]
    assert all(c.seconds is None and
               c.error == "RuntimeError: Compilation of generated C++ code failed with exit code 1:" for c in broken)


def test_builds_running_when_the_budget_runs_out(monkeypatch):
    # The budget runs out while the first label's coarse counts build (one of them slow): the
    # first of them is still timed, as the candidate in progress; the search stops there. The
    # slow build, running still, is waited for and its entry dropped (tune_two_loops checks).
    import time

    def prebuild(self, specs, clusters):
        self.budget = time.perf_counter() - self.start + 0.05
        _prebuild(self, specs, clusters)

    def build_ahead(self, o):
        if parpy.autotune._spec_of(o)["first"][0] == 4:
            time.sleep(0.5)
            self.fn._build(*self.copies, opts=o)  # whatever the budget
            return True
        return _build_ahead(self, o)

    monkeypatch.setattr(parpy.autotune._Search, "prebuild", prebuild)
    n = 4096
    t, _, _ = tune_two_loops(monkeypatch, 2, n, build_ahead=build_ahead)
    assert [c.spec["first"][0] for c in t.candidates] == [n, 16]
    assert all(c.seconds is not None for c in t.candidates)


def test_candidates_built_within_the_budget_are_timed(monkeypatch):
    # The budget runs out once the first label's coarse counts are built, before they are timed:
    # all of them are timed (on one thread, where the first is built when timed, only the first),
    # and the search stops there.
    import time

    def prebuild(self, specs, clusters):
        _prebuild(self, specs, clusters)
        self.budget = time.perf_counter() - self.start

    monkeypatch.setattr(parpy.autotune._Search, "prebuild", prebuild)
    n = 4096
    two, _, _ = tune_two_loops(monkeypatch, 2, n)
    one, _, _ = tune_two_loops(monkeypatch, 1, n)
    assert [c.spec for c in two.candidates] == [{"first": (t, False, 1024), "second": (n, False, 1024)}
                                                for t in (n, 16, 4, 1)]
    assert [c.spec for c in one.candidates] == [c.spec for c in two.candidates[:2]]
    assert all(c.seconds is not None for c in two.candidates)


def test_the_number_of_build_threads_is_checked(monkeypatch):
    n = 4096
    x, y = RNG.standard_normal(n), RNG.standard_normal(n)
    for bad in ("0", "two"):
        monkeypatch.setenv("PARPY_AUTOTUNE_BUILD_THREADS", bad)
        with pytest.raises(RuntimeError, match="PARPY_AUTOTUNE_BUILD_THREADS is .* it must be a whole number"):
            scale_add(x, y, n, opts=tuning_opts(n + int(bad == "0")))
