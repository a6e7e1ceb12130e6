"""How many candidates autotuning fits in its budget with candidates built on one thread and on
several (PARPY_AUTOTUNE_BUILD_THREADS, docs/howto/autotuning.md).

    python benchmarks/autotune_builds.py [--budget S] [--reps N] [--cuda] [--cores N]

Each search runs in a fresh process with an empty cache, alternating one build thread and the
default, on a function of four parallel loops (each thread count of a label is different code).
--cores N gives the Cpu backend the thread counts of an N-core host (on a machine of few cores a
label has few candidates to build at once); the number of build threads is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def child(budget: float, cuda: bool, cores: int) -> None:
    import numpy as np
    import parpy

    if cores:
        os.cpu_count = lambda: cores

    @parpy.jit
    def four_loops(x, a, b, c, d, N):
        parpy.label("a")
        for i in range(N):
            a[i] = parpy.operators.sin(x[i]) * parpy.operators.cos(x[i]) + parpy.operators.exp(-x[i] * x[i])
        parpy.label("b")
        for i in range(N):
            b[i] = parpy.operators.sqrt(a[i] * a[i] + 1.0) * parpy.operators.tanh(x[i])
        parpy.label("c")
        for i in range(N):
            c[i] = parpy.operators.log(b[i] * b[i] + 2.0) + a[i] / (x[i] * x[i] + 3.0)
        parpy.label("d")
        for i in range(N):
            d[i] = parpy.operators.max(a[i], b[i]) - parpy.operators.min(c[i], x[i])

    n = 4096
    x = np.random.default_rng(1).standard_normal(n)
    a, b, c, d = (np.zeros(n) for _ in range(4))
    o = parpy.par({k: parpy.threads(n) for k in "abcd"}, autotune=True)
    o.backend = parpy.CompileBackend.Cuda if cuda else parpy.CompileBackend.Cpu
    o.autotune_budget_s = budget
    t0 = time.perf_counter()
    four_loops(x, a, b, c, d, n, opts=o)
    call = time.perf_counter() - t0
    np.testing.assert_allclose(d, np.maximum(a, b) - np.minimum(c, x))
    t = parpy.tuned(four_loops, [x, a, b, c, d, n], o)
    print(json.dumps({"candidates": len(t.candidates), "timed": sum(c.seconds is not None for c in t.candidates),
                      "search": t.search_seconds, "call": call, "builds": parpy.parpy.stats()["builds"]}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", type=float, default=3.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cuda", action="store_true")
    p.add_argument("--cores", type=int, default=0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.budget, args.cuda, args.cores)
        return
    results: dict[str, list[dict]] = {"1": [], "default": []}
    for _ in range(args.reps):
        for threads in results:
            cache = tempfile.mkdtemp(prefix="parpy-autotune-builds-")
            env = {**os.environ, "PARPY_CACHE_DIR": cache}
            env.pop("PARPY_AUTOTUNE_BUILD_THREADS", None)
            if threads != "default":
                env["PARPY_AUTOTUNE_BUILD_THREADS"] = threads
            cmd = [sys.executable, __file__, "--child", "--budget", str(args.budget), "--cores", str(args.cores)]
            r = subprocess.run(cmd + (["--cuda"] if args.cuda else []), env=env, capture_output=True, text=True,
                               check=True)
            shutil.rmtree(cache, ignore_errors=True)
            results[threads].append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(f"build threads {threads:>7}: {results[threads][-1]}", flush=True)
    for threads, rs in results.items():
        print(f"build threads {threads:>7}: candidates timed in {args.budget} s: "
              f"{[r['timed'] for r in rs]}, mean {statistics.mean(r['timed'] for r in rs):.1f}; "
              f"search {statistics.mean(r['search'] for r in rs):.2f} s")


if __name__ == "__main__":
    main()
