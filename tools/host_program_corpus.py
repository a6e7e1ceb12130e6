#!/usr/bin/env python3
"""Corpus checks of the host-code interpreter (src/gpu/host_program.h).

    python tools/host_program_corpus.py suite LOG [-n 2]      # the test suite's Cuda programs
    python tools/host_program_corpus.py summary LOG           # the census of a log
    python tools/host_program_corpus.py fuzz --programs 200 [--seed 1] [--compare] [--host-loops]

`suite` runs the test suite with PARPY_HOST_PROGRAM_LOG=LOG: every Cuda lowering (print_compiled
here, jit calls too on a machine with a GPU) writes what its host code contains and whether the
interpreter accepts it; then prints the census: each construct with its total count and the number
of programs that contain it, and every program the interpreter refused (there must be none).

`fuzz` does the same for the fuzzer's Cuda programs (tools/fuzz.py), and with `--host-loops` for
generated programs whose host code has loops, branches, while loops and scalar arithmetic of every
kind around their launches (`HostGen`). With `--compare` each program's printed host part is
compiled against the recording CUDA runtime (tools/host_program/) and its launches are compared
byte for byte with the interpreter's. The last line is the summary; the exit status is 0 only if
every program was accepted and (with --compare) every comparison agreed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "host_program"))

import numpy as np  # noqa: E402
import parpy  # noqa: E402

import fuzz  # noqa: E402
import harness  # noqa: E402


def census(records):
    """Prints each construct's total and the programs containing it; returns the refused ones."""
    total, programs = collections.Counter(), collections.Counter()
    for r in records:
        for k, n in r["constructs"].items():
            total[k] += n
            programs[k] += 1
    print(f"{'construct':44s} {'count':>8s} {'programs':>9s}")
    for k in sorted(total):
        print(f"{k:44s} {total[k]:8d} {programs[k]:9d}")
    refused = [r for r in records if r.get("error")]
    for r in refused:
        print(f"REFUSED {r.get('key', '?')}: {r['error']}")
    return refused


def read_log(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]


def run_suite(log, workers):
    log = pathlib.Path(log)
    if log.exists():
        log.unlink()
    env = dict(os.environ, PARPY_HOST_PROGRAM_LOG=str(log))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "python")]
    if workers > 1:
        cmd[4:4] = ["-n", str(workers)]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in r.stdout.splitlines() if " passed" in line or " failed" in line]
    print(f"test suite: {lines[-1] if lines else r.returncode}")
    records = read_log(log)
    refused = census(records)
    print(f"host_program_corpus: suite programs={len(records)} refused={len(refused)}")
    return not refused


# ---- Programs with host code ----

class HostGen:
    """`def h<i>(x, y, a, b, N)`: host statements (loops, while loops, branches, int, float, int8,
    uint16, float32, float16 and bool locals) around parallel loops over N that read the host
    scalars in scope. x and y are float64 arrays of N elements, a and b Python floats (passed at
    run time), N an int (compiled in)."""

    def __init__(self, rng):
        self.rng = rng
        self.lines = []
        self.n = 0
        self.launches = 0

    def fresh(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def emit(self, ind, s):
        self.lines.append("    " * ind + s)

    def iexpr(self, scope, d=0):
        r = self.rng
        ints = [v for v, t in scope.items() if t == "i"]
        if d > 2 or r.random() < 0.3:
            return r.choice(ints + [str(r.randint(-9, 9))]) if ints else str(r.randint(-9, 9))
        a, b = self.iexpr(scope, d + 1), self.iexpr(scope, d + 1)
        return r.choice([f"({a} + {b})", f"({a} - {b})", f"({a} * {b})", f"({a} // {b})", f"({a} % {b})",
                         f"({a} / {b})", f"parpy.operators.max({a}, {b})", f"parpy.operators.min({a}, {b})",
                         f"abs({a})", f"(-{a})", f"({a} if {self.cond(scope, d + 1)} else {b})"])

    def fexpr(self, scope, d=0):
        r = self.rng
        floats = [v for v, t in scope.items() if t == "f"] + ["a", "b"]
        if d > 2 or r.random() < 0.3:
            return r.choice(floats + [repr(r.choice([0.5, 1.25, -3.0, 0.1]))])
        a, b = self.fexpr(scope, d + 1), self.fexpr(scope, d + 1)
        return r.choice([f"({a} + {b})", f"({a} - {b})", f"({a} * {b})", f"({a} / {b})",
                         f"parpy.operators.float64({self.iexpr(scope, d + 1)})", f"parpy.operators.max({a}, {b})",
                         f"parpy.operators.exp(parpy.operators.min({a}, 3.0))"])

    def cond(self, scope, d=0):
        r = self.rng
        bools = [v for v, t in scope.items() if t == "b"]
        k = r.random()
        if bools and k < 0.25:
            return r.choice(bools)
        if k < 0.6:
            return f"{self.iexpr(scope, d + 1)} {r.choice(['<', '<=', '==', '!=', '>'])} {self.iexpr(scope, d + 1)}"
        return f"{self.fexpr(scope, d + 1)} {r.choice(['<', '>='])} {self.fexpr(scope, d + 1)}"

    def launch(self, ind, scope):
        self.launches += 1
        terms = []
        for v, t in scope.items():
            if self.rng.random() < 0.5:
                terms.append(f"parpy.operators.float64({v})" if t != "b" else f"(1.0 if {v} else 0.0)")
        self.emit(ind, 'parpy.label("N")')
        self.emit(ind, "for i in range(N):")
        self.emit(ind + 1, f"y[i] = x[i] * 0.5 + {' + '.join(terms) if terms else '1.0'}")

    def block(self, ind, scope, n, depth):
        scope = dict(scope)
        for _ in range(n):
            r, k = self.rng, self.rng.random()
            if k < 0.25:
                self.launch(ind, scope)
            elif k < 0.55:
                kind = r.choice("ifFub8h")
                v = self.fresh("v")
                rhs = {"i": lambda: self.iexpr(scope), "f": lambda: self.fexpr(scope),
                       "F": lambda: f"parpy.operators.float32({self.fexpr(scope)})",
                       "u": lambda: f"parpy.operators.uint16({self.iexpr(scope)})",
                       "b": lambda: self.cond(scope),
                       "8": lambda: f"parpy.operators.int8({self.iexpr(scope)})",
                       "h": lambda: f"parpy.operators.float16({self.fexpr(scope)})"}[kind]()
                self.emit(ind, f"{v} = {rhs}")
                # float32, uint16, int8 and float16 locals are only passed on (they mix with no
                # other kind of value); ints, floats and bools are also computed with.
                scope[v] = {"F": "x", "u": "x", "8": "x", "h": "x"}.get(kind, kind)
            elif k < 0.7 and depth < 3:
                t = self.fresh("t")
                lo, hi = r.randint(-4, 3), r.randint(-2, 6)
                step = r.choice([1, 1, 2, -1, 3])
                if step < 0:
                    lo, hi = hi, lo
                self.emit(ind, f"for {t} in range({lo}, {hi}, {step}):")
                self.block(ind + 1, {**scope, t: "i"}, r.randint(1, 3), depth + 1)
            elif k < 0.85 and depth < 3:
                self.emit(ind, f"if {self.cond(scope)}:")
                self.block(ind + 1, scope, r.randint(1, 2), depth + 1)
                if r.random() < 0.5:
                    self.emit(ind, "else:")
                    self.block(ind + 1, scope, r.randint(1, 2), depth + 1)
            elif depth < 3:
                c = self.fresh("c")
                self.emit(ind, f"{c} = {r.randint(-3, 2)}")
                self.emit(ind, f"while {c} < {r.randint(-1, 4)}:")
                self.block(ind + 1, {**scope, c: "i"}, r.randint(1, 2), depth + 1)
                self.emit(ind + 1, f"{c} = {c} + {r.randint(1, 2)}")
                scope[c] = "i"
            else:
                self.launch(ind, scope)

    def program(self, name):
        self.emit(0, f"def {name}(x, y, a, b, N):")
        self.block(1, {}, self.rng.randint(2, 6), 0)
        if self.launches == 0:
            self.launch(1, {})
        return "\n".join(self.lines) + "\n"


def host_program(seed, index):
    """(function, args, opts) of HostGen program `index` of `seed`, or None if the compiler
    rejects it (a type mix the generator did not rule out)."""
    rng = random.Random(f"parpy-host/{seed}/{index}")
    name = f"h{index}"
    src = HostGen(rng).program(name)
    n = rng.choice([1, 7, 64, 1000, 3000])
    nprng = np.random.default_rng([seed, index])
    args = [nprng.random(n), nprng.random(n), rng.uniform(-2, 2), rng.uniform(-2, 2), n]
    opts = parpy.par({"N": parpy.threads(n)})
    opts.backend = parpy.CompileBackend.Cuda
    f = fuzz._load("import parpy\n\n@parpy.jit\n" + src, name, f"<parpy-host seed {seed} program {index}>")
    try:
        parpy.print_compiled(f, args, opts)
    except (RuntimeError, TypeError, NameError) as e:
        if str(e).startswith("Internal error"):
            raise
        return None
    return f, args, opts


def fuzz_program(seed, index):
    p = fuzz.generate(seed, index, fuzz.CUDA)
    f = fuzz._load(p.module(), p.name, p.filename)
    return f, fuzz.copy_inputs(p.inputs), fuzz.make_opts(p.spec, p.backend)


def run_fuzz(programs, seed, compare, host_loops, batch=40):
    make = host_program if host_loops else fuzz_program
    cases, records = [], []
    index = 0
    while len(cases) < programs:
        c = make(seed, index)
        index += 1
        if c is None:
            continue
        info = parpy._host_program(*c)
        records.append({"key": f"{seed}/{index - 1}", "error": info.get("error"), "constructs": info["constructs"]})
        cases.append(c)
    refused = census(records)
    differ = compared = launches = 0
    if compare:
        for start in range(0, len(cases), batch):
            part = cases[start:start + batch]
            with tempfile.TemporaryDirectory(prefix="parpy-host-") as tmp:
                lib, entries = harness.build([parpy._host_program(*c) for c in part], pathlib.Path(tmp))
                for c, entry in zip(part, entries):
                    got = parpy._host_launches(*c, raw=True)
                    want = parpy._host_launches(*c, library=lib, entry=entry, raw=True)
                    compared += 1
                    launches += len(want)
                    if got != want:
                        differ += 1
                        print(f"DIFFER {entry}: interpreter {got[:3]}... compiled {want[:3]}...")
            print(f"compared {compared}/{len(cases)}", flush=True)
    kind = "host-loop" if host_loops else "fuzz"
    print(f"host_program_corpus: {kind} programs={len(cases)} (candidates {index}) refused={len(refused)} "
          f"compared={compared} launches={launches} differ={differ} (seed {seed})")
    return not refused and differ == 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("suite")
    s.add_argument("log")
    s.add_argument("-n", type=int, default=2)
    m = sub.add_parser("summary")
    m.add_argument("log")
    f = sub.add_parser("fuzz")
    f.add_argument("--programs", type=int, default=200)
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--compare", action="store_true")
    f.add_argument("--host-loops", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.cmd == "suite":
        ok = run_suite(args.log, args.n)
    elif args.cmd == "summary":
        records = read_log(args.log)
        refused = census(records)
        print(f"host_program_corpus: logged programs={len(records)} refused={len(refused)}")
        ok = not refused
    else:
        ok = run_fuzz(args.programs, args.seed, args.compare, args.host_loops)
    print(f"time {time.time() - t0:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
