"""Grammar-based fuzzing of the compiler on the language of docs/language.md.

The generator and the differential driver are in tools/fuzz.py (`python tools/fuzz.py --help`),
which also runs long fuzz campaigns; these tests are its time-bounded run.

Part A puts >= 10,000 generated programs, valid and invalid, through decoration and Cpu code
generation (`print_compiled`, no C++ build) in one subprocess, so a crash of the native core is seen
as a non-zero exit. Every outcome must be success or a user error (RuntimeError, TypeError,
NameError) whose message does not start with "Internal error".

Part B builds and runs >= 300 programs that are valid and deterministic by construction (see
`Gen` in tools/fuzz.py) in worker processes and compares every output element with the
undecorated Python function run on copies of the same inputs; on a machine with a GPU it does the
same on the Cuda backend. The driver itself is tested too: a crash, a hang and a wrong result
are each reported with their program.

Part C puts >= 2,500 generated programs through Cuda code generation (no GPU needed), with
clusters, graphs and multi-block thread counts among the options, under the same rule, and compiles
a sample of the generated CUDA with nvcc: every GPU pass (fusion, kernel splitting, 128-bit
variants, rows in registers) must either produce code that compiles or report a user error.
"""

import importlib.util
import os
import random
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import parpy
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("parpy_fuzz", ROOT / "tools" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


fuzz = _load_fuzz()
SEED = int(os.environ.get("PARPY_FUZZ_SEED", "0"))  # to explore: a different base seed


# ===== Part A: >= 10,000 programs through decoration and code generation ========================

_DRIVER_A = r"""
import importlib.util, os, sys
import numpy as np
import parpy

outcomes = {"ok": 0, "RuntimeError": 0, "TypeError": 0, "NameError": 0, "IndexError": 0}
opts = parpy.par({"N": parpy.threads(4), "M": parpy.threads(8), "R": parpy.threads(4).reduce()})
opts.backend = parpy.CompileBackend.Cpu
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    for n, (make, args) in enumerate(mod.FUNS):
        try:
            f = make()
            parpy.print_compiled(f, args(), opts)
            outcomes["ok"] += 1
        except (RuntimeError, TypeError, NameError, IndexError) as e:
            msg = str(e)
            if msg.startswith("Internal error"):
                print("INTERNAL", path, n, msg)
                sys.exit(3)
            outcomes[next(c.__name__ for c in type(e).__mro__ if c.__name__ in outcomes)] += 1  # ParallelismError: a RuntimeError
            if os.environ.get("FUZZ_VERBOSE"):
                print(type(e).__name__, msg.split("\n")[0])
print(outcomes)
"""

def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = (
        os.path.dirname(os.path.dirname(parpy.__file__)) + os.pathsep + env.get("PYTHONPATH", "")
    )
    return env


def test_fuzz_decoration_and_codegen(tmp_path):
    rng = random.Random(20250101 + SEED)
    per_file, nfiles = 500, 21
    paths = []
    for m in range(nfiles):
        src = fuzz.mutant_module(rng, m * per_file, per_file)
        p = tmp_path / f"fuzz_a{m}.py"
        p.write_text(src)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(src, str(p), "exec")  # the generator only produces valid Python
        paths.append(str(p))
    t0 = time.time()
    r = subprocess.run(
        [sys.executable, "-W", "ignore::SyntaxWarning", "-c", _DRIVER_A, *paths],
        capture_output=True, text=True, timeout=600, env=_env(), check=False,
    )  # fmt: skip
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    counts = eval(r.stdout.strip().splitlines()[-1])
    total = sum(counts.values())
    print(f"part A: {total} programs in {time.time() - t0:.1f}s: {counts}")
    assert total == per_file * nfiles >= 10_000
    errors = total - counts["ok"]
    assert counts["ok"] >= total // 5 and errors >= total // 5, counts
    assert counts["TypeError"] > 0 and counts["NameError"] > 0, counts


# ===== Part B: >= 300 valid programs built, run and compared with plain Python ==================


def _check(s):
    """Asserts that the run `s` found nothing, showing the first failing program otherwise."""
    print(s.line())
    if s.failed:
        status, _, msg, path = s.failures[0]
        source = Path(path).read_text() if path else ""
        pytest.fail(f"{s.line()}\nfirst failure ({status}):\n{msg}\n{source}")
    assert s.programs > 0


@pytest.mark.parametrize("part", range(2))
def test_fuzz_build_and_run(part, tmp_path):
    # Two worker processes; the time limit only bounds the test on a slow machine (the summary
    # says when it stopped the run).
    s = fuzz.run(150, fuzz.CPU, jobs=2, seed=7000 + 100 * SEED + part, time_limit=900,
                 fail_dir=str(tmp_path / "failures"))  # fmt: skip
    _check(s)
    assert s.programs == 150 or s.stopped_early
    assert s.built == s.programs  # a fresh cache: each program is built


@pytest.mark.skipif(not parpy.backend.is_enabled(parpy.CompileBackend.Cuda), reason="needs a GPU")
def test_fuzz_cuda_build_and_run(tmp_path):
    s = fuzz.run(200, fuzz.CUDA, jobs=4, seed=8000 + SEED, time_limit=900,
                 fail_dir=str(tmp_path / "failures"))  # fmt: skip
    _check(s)
    assert s.programs == 200 or s.stopped_early


def test_fuzz_cuda_mode_generates_code(tmp_path):
    # Without a GPU the Cuda mode still runs its programs up to code generation.
    s = fuzz.run(60, fuzz.CUDA, jobs=2, seed=8100 + SEED, codegen_only=True,
                 fail_dir=str(tmp_path / "failures"))  # fmt: skip
    _check(s)
    assert s.ok == s.programs == 60 and s.built == 0
    if shutil.which("nvcc") is None:
        return
    # nvcc compiles what those programs generate (the Cuda mode builds it so on a GPU).
    failures = []

    def build(indices):
        for i in indices:
            p = fuzz.generate(8100 + SEED, i, fuzz.CUDA)
            src = tmp_path / f"p{i}.cu"
            src.write_text(fuzz.generated_code(p))
            cmd = ["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(), str(src),
                   "-o", str(src) + ".o"]  # fmt: skip
            c = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if c.returncode != 0:
                failures.append(src.read_text() + "\n" + c.stderr[-2000:])

    threads = [threading.Thread(target=build, args=(range(k, 4, 2),)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, f"{len(failures)} of 4 do not compile; first:\n{failures[0]}"


def test_fuzz_driver_reports_crashes_hangs_and_mismatches(tmp_path):
    fails = tmp_path / "failures"
    s = fuzz.run(4, fuzz.CPU, jobs=2, seed=11, fail_dir=str(fails),
                 inject={1: "crash", 2: "mismatch"})  # fmt: skip
    print(s.line())
    assert (s.programs, s.ok, s.counts["crash"], s.counts["mismatch"], s.failed) == (4, 2, 1, 1, 2)
    assert s.line().startswith("fuzz: programs=4 built=")
    assert "mismatches=1 crashes=1 internal=0 errors=0 timeouts=0 time=" in s.line()
    by_status = {status: (i, msg, path) for status, i, msg, path in s.failures}
    i, msg, path = by_status["crash"]
    assert i == 1 and "the worker died (signal SIGSEGV)" in msg and "Fatal Python error" in msg
    i, msg, path = by_status["mismatch"]
    assert i == 2 and msg.startswith("output y differs")
    # Each failing program is written with its source and the command that reproduces it.
    for status, i in [("crash", 1), ("mismatch", 2)]:
        text = (fails / f"{status}-cpu-seed11-{i}.py").read_text()
        assert f"# Reproduce: python tools/fuzz.py --backend cpu --seed 11 --only {i}\n" in text
        assert fuzz.generate(11, i).src in text
    # A program that does not finish is stopped and reported; the run goes on.
    s = fuzz.run(2, fuzz.CPU, jobs=1, seed=11, program_timeout=5, inject={0: "hang"})
    assert (s.programs, s.ok, s.counts["timeout"]) == (2, 1, 1), s.line()
    assert s.failures[0][1] == 0 and "no result after 5 s" in s.failures[0][2]


def test_fuzz_programs_are_reproducible():
    a, b = fuzz.generate(5, 17), fuzz.generate(5, 17)
    assert a.src == b.src and a.spec == b.spec
    for u, v in zip(a.inputs, b.inputs):
        assert (u == v).all() if hasattr(u, "shape") else u == v
    assert fuzz.generate(5, 18).src != a.src and fuzz.generate(6, 17).src != a.src


def test_fuzz_passes_arrays_as_non_contiguous_views():
    # Some programs get their arrays as views (Fortran-ordered, transposed, stepped, a column,
    # reversed) holding the same values, inside larger arrays whose other elements must stay; or x
    # and y as the even and odd columns of one matrix.
    rng = np.random.default_rng(3)
    inputs = fuzz.make_inputs(rng, 5, 3)
    for kind, (dims, _) in fuzz.LAYOUTS.items():
        for pos, name in enumerate("xyzukw"):
            if inputs[pos].ndim not in dims:
                continue
            args, bases = fuzz.as_layouts(fuzz.copy_inputs(inputs), {name: kind})
            assert not args[pos].flags.c_contiguous, (kind, name)
            np.testing.assert_array_equal(args[pos], inputs[pos])
            assert fuzz.sentinels_changed(bases) is None
            if bases:  # a write outside the view is reported
                base = bases[0][1]
                _, inside = fuzz.LAYOUTS[kind][1](np.ones(inputs[pos].shape, dtype=bool), False)
                base[tuple(np.argwhere(~inside)[0])] = 0
                assert "outside the" in fuzz.sentinels_changed(bases), (kind, name)
    args, _ = fuzz.as_layouts(fuzz.copy_inputs(inputs), {"x": "interleaved", "y": "interleaved"})
    assert args[0].base is args[1].base and not np.shares_memory(args[0], args[1])
    np.testing.assert_array_equal(args[0], inputs[0])
    np.testing.assert_array_equal(args[1], inputs[1])
    with_views = [p for p in (fuzz.generate(12, i) for i in range(40)) if p.layouts]
    assert 4 <= len(with_views) <= 30, len(with_views)
    p = with_views[0]
    assert fuzz.execute(p)[0] == "ok"
    assert "non-contiguous views" in p.reproducer()

def test_fuzz_calls_again_with_new_float_arguments():
    # Python floats are passed when the code runs: each program is called a second time with new
    # values of `a` and `d["s"]`, which must compile nothing and match plain Python run with them.
    def depends_on_floats(p):
        inputs = fuzz.copy_inputs(p.inputs)
        inputs[6]["s"], inputs[7] = fuzz.second_values(p)[1], fuzz.second_values(p)[0]
        plain = fuzz._load(p.module(jit=False), p.name, p.filename)
        again = fuzz.reference(plain, inputs)
        return again is not None and any(not np.array_equal(u, v) for u, v in zip(again[:6], p.ref[:6]))

    p = next(q for q in (fuzz.generate(13, i) for i in range(80)) if depends_on_floats(q))
    assert fuzz.execute(p)[0] == "ok"
    f = fuzz._load(p.module(), p.name, p.filename)
    opts = fuzz.make_opts(p.spec, p.backend)
    assert fuzz.second_call(p, f, opts) is None

    def stale(*args, opts):  # a function that kept the first call's floats
        args = list(args)
        args[6] = dict(args[6], s=p.inputs[6]["s"])
        args[7] = p.inputs[7]
        f(*args, opts=opts)

    assert "a second call with a=" in fuzz.second_call(p, stale, opts)

def test_fuzz_command_line(tmp_path):
    cmd = [sys.executable, str(ROOT / "tools" / "fuzz.py"), "--programs", "4", "--jobs", "2",
           "--seed", "3", "--fail-dir", str(tmp_path / "f"), "--progress", "0"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("fuzz: programs=4 built=4 ok=4 skipped=") and " mismatches=0 " in last
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz.py"), "--seed", "3", "--only", "2"],
                       capture_output=True, text=True, env=_env(), timeout=600, check=False)  # fmt: skip
    assert r.returncode == 0 and r.stdout.rstrip().endswith("\nok"), r.stdout + r.stderr
    assert fuzz.generate(3, 2).src in r.stdout


# ===== Part C: Cuda code generation of generated programs (no GPU needed) ========================

_DRIVER_C = r"""
import importlib.util, os, sys
import numpy as np
import parpy

out_dir = sys.argv[1]
outcomes = {"ok": 0, "RuntimeError": 0, "TypeError": 0, "NameError": 0, "IndexError": 0}
variants = []
for n_thr, m_thr, tpb, clusters, graphs in [(4, 8, 1024, False, False), (8, 2048, 512, False, False),
                                            (8, 2048, 512, True, True), (2, 64, 32, False, True)]:
    o = parpy.par({"N": parpy.threads(n_thr), "M": parpy.threads(m_thr).tpb(tpb),
                   "R": parpy.threads(m_thr).tpb(tpb).reduce()})
    o.backend = parpy.CompileBackend.Cuda
    o.use_cuda_thread_block_clusters = clusters
    o.use_cuda_graphs = graphs
    variants.append(o)
saved = 0
k = 0
for path in sys.argv[2:]:
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    for n, (make, args) in enumerate(mod.FUNS):
        k += 1
        try:
            f = make()
            code = parpy.print_compiled(f, args(), variants[k % len(variants)])
            outcomes["ok"] += 1
            if saved < 48 and outcomes["ok"] % 4 == 0:
                with open(os.path.join(out_dir, f"k{saved}.cu"), "w") as fh:
                    fh.write(code)
                saved += 1
        except (RuntimeError, TypeError, NameError, IndexError) as e:
            msg = str(e)
            if msg.startswith("Internal error"):
                print("INTERNAL", path, n, msg)
                sys.exit(3)
            outcomes[next(c.__name__ for c in type(e).__mro__ if c.__name__ in outcomes)] += 1  # ParallelismError: a RuntimeError
print(outcomes)
"""


def test_fuzz_cuda_codegen(tmp_path):
    rng = random.Random(31337 + SEED)
    per_file, nfiles, nvalid = 500, 5, 500
    paths = []
    for m in range(nfiles):
        p = tmp_path / f"fuzz_c{m}.py"
        p.write_text(fuzz.mutant_module(rng, m * per_file, per_file))
        paths.append(str(p))
    # Valid programs too, their bodies in a gpu block: most mutants touch arrays in host code,
    # which the Cuda backend rejects.
    parts = ["import numpy as np\nimport parpy\n\nFUNS = []\n\n"]
    for n in range(nvalid):
        v = fuzz.generate(31337 + SEED, 50_000 + n, fuzz.CUDA)  # the programs of the Cuda mode
        args = fuzz.ARGS_SETS[0].format(N=v.N, M=v.M)
        parts.append(f"def _make{n}():\n    @parpy.jit\n" + textwrap.indent(v.src, "    ")
                     + f"    return {v.name}\n\nFUNS.append((_make{n}, {args}))\n\n")
    p = tmp_path / "fuzz_cvalid.py"
    p.write_text("".join(parts))
    paths.append(str(p))
    out = tmp_path / "cu"
    out.mkdir()
    r = subprocess.run(
        [sys.executable, "-W", "ignore::SyntaxWarning", "-c", _DRIVER_C, str(out), *paths],
        capture_output=True, text=True, timeout=600, env=_env(), check=False,
    )  # fmt: skip
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    counts = eval(r.stdout.strip().splitlines()[-1])
    print(f"part C: {sum(counts.values())} programs: {counts}")
    assert sum(counts.values()) == per_file * nfiles + nvalid and counts["ok"] >= 200, counts
    if shutil.which("nvcc") is None:
        return
    failures = []

    def build(paths):
        for src in paths:
            c = subprocess.run(["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(), str(src),
                                "-o", str(src) + ".o"], capture_output=True, text=True, check=False)
            if c.returncode != 0:
                failures.append(src.read_text() + "\n" + c.stderr[-2000:])

    files = sorted(out.glob("*.cu"))
    assert len(files) >= 40
    threads = [threading.Thread(target=build, args=(files[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, f"{len(failures)} of {len(files)} do not compile; first:\n{failures[0]}"
