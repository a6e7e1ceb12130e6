"""Golden corpus of generated code: a refactoring of the compiler must leave what it generates
unchanged (except, optionally, for the numbering of generated names).

    python tools/golden.py write DIR [--programs 600] [--seed 4242]   # before the change
    python tools/golden.py check DIR [--names]                       # after it
    python tools/golden.py suite-write DIR [-n 2]                    # the test suite's programs
    python tools/golden.py suite-check DIR [-n 2] [--names]

`write` takes the differential fuzzer's programs (tools/fuzz.py) for every backend that has code
generation here (the Cpu backend, and the Cuda backend, whose code needs no GPU), and stores each
program's identity (seed, index, attempt) with the code `parpy.print_compiled` gives for it. `check`
rebuilds exactly those programs and compares the code byte for byte; with `--names`, generated names
that differ only in their numbers (`parpy_acc3` for `parpy_acc1`) count as equal. It prints one line
per difference (the first differing line of each program) and a summary, and exits with 0 only if
nothing differs.

`suite-write` runs the test suite (tests/python) with PARPY_DUMP_CODE set, so that every program the
tests compile (jit calls and print_compiled, on the backends this machine runs) is stored with the
test, function, backend and turn that made it; `suite-check` runs the suite again and compares the
programs made under the same name. Programs only one run made are counted, not compared; tests that
pass random scalar values (specialised into the code) or compile from several threads differ in every
run, and are listed like any difference.
"""

import argparse
import json
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import fuzz  # noqa: E402

BACKENDS = {"cpu": fuzz.CPU, "cuda": fuzz.CUDA}
# Generated names end in a number that a counter chose: parpy_acc3, v_x_inline_2, parpy_slice_dim0.
_NUMBERED = re.compile(r"\b((?:parpy|v)_[A-Za-z0-9_]*?[A-Za-z_])(\d+)\b")


def normalise_names(code):
    """`code` with each numbered generated name renumbered in order of first appearance."""
    seen = {}

    def rename(m):
        key = m.group(0)
        if key not in seen:
            seen[key] = f"{m.group(1)}#{sum(1 for k in seen if k.startswith(m.group(1)))}"
        return seen[key]

    return _NUMBERED.sub(rename, code)


def _code(p):
    try:
        return fuzz.generated_code(p)
    except Exception as e:  # noqa: BLE001 - a rejection is part of what is compared
        return f"<error> {type(e).__name__}: {e}"


def write(directory, programs, seed):
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, backend in BACKENDS.items():
        with open(directory / f"{name}.jsonl", "w") as out:
            for i in range(programs):
                p = fuzz.generate(seed, i, backend)
                attempt = p.skipped + p.rejected
                out.write(json.dumps({"seed": seed, "index": i, "attempt": attempt, "code": _code(p)}) + "\n")
                count += 1
    print(f"golden: wrote {count} programs ({programs} per backend, seed {seed}) to {directory}")


def check(directory, names):
    total = differ = 0
    for name, backend in BACKENDS.items():
        path = directory / f"{name}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            p = fuzz.candidate(rec["seed"], rec["index"], rec["attempt"], backend)
            now, before = _code(p), rec["code"]
            if names:
                now, before = normalise_names(now), normalise_names(before)
            total += 1
            if now == before:
                continue
            differ += 1
            a, b = before.splitlines(), now.splitlines()
            k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
            old = a[k] if k < len(a) else "<end>"
            new = b[k] if k < len(b) else "<end>"
            print(f"{name} seed {rec['seed']} program {rec['index']} line {k + 1}:\n  was: {old}\n  now: {new}")
    print(f"golden: {total} programs, {differ} differ" + (" (names normalised)" if names else ""))
    return differ == 0 and total > 0


ROOT = pathlib.Path(__file__).resolve().parents[1]


def dump_suite(directory, workers):
    """Runs the test suite with its generated code written to `directory`; the programs by name."""
    import os
    import subprocess

    directory.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PARPY_DUMP_CODE=str(directory))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "python")]
    if workers > 1:
        cmd[4:4] = ["-n", str(workers)]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    results = [line for line in r.stdout.splitlines() if " passed" in line or " failed" in line]
    summary = results[-1] if results else "(no summary; exit status %d)" % r.returncode
    print(f"golden: test suite: {summary}")
    programs = {}
    for f in directory.glob("*.txt"):
        key, _, code = f.read_text().partition("\n")
        programs[key] = code
    return programs


def suite_check(directory, workers, names):
    import tempfile

    before = {}
    for f in directory.glob("*.txt"):
        key, _, code = f.read_text().partition("\n")
        before[key] = code
    with tempfile.TemporaryDirectory(prefix="parpy-golden-") as tmp:
        now = dump_suite(pathlib.Path(tmp), workers)
    common = sorted(set(before) & set(now))
    differ = 0
    for key in common:
        a, b = before[key], now[key]
        if names:
            a, b = normalise_names(a), normalise_names(b)
        if a != b:
            differ += 1
            la, lb = a.splitlines(), b.splitlines()
            k = next((j for j in range(min(len(la), len(lb))) if la[j] != lb[j]), min(len(la), len(lb)))
            print(f"{key} line {k + 1}:\n  was: {la[k] if k < len(la) else '<end>'}\n"
                  f"  now: {lb[k] if k < len(lb) else '<end>'}")
    print(f"golden: test suite: {len(common)} programs, {differ} differ"
          + (" (names normalised)" if names else "")
          + f"; {len(set(before) - set(now))} made only before, {len(set(now) - set(before))} only now")
    return differ == 0 and len(common) > 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="store the corpus")
    w.add_argument("dir", type=pathlib.Path)
    w.add_argument("--programs", type=int, default=600, help="programs per backend (default 600)")
    w.add_argument("--seed", type=int, default=4242)
    c = sub.add_parser("check", help="compare with a stored corpus")
    c.add_argument("dir", type=pathlib.Path)
    c.add_argument("--names", action="store_true", help="ignore the numbering of generated names")
    sw = sub.add_parser("suite-write", help="store the test suite's programs")
    sw.add_argument("dir", type=pathlib.Path)
    sw.add_argument("-n", type=int, default=2, help="pytest-xdist workers (default 2)")
    sc = sub.add_parser("suite-check", help="compare the test suite's programs with stored ones")
    sc.add_argument("dir", type=pathlib.Path)
    sc.add_argument("-n", type=int, default=2, help="pytest-xdist workers (default 2)")
    sc.add_argument("--names", action="store_true", help="ignore the numbering of generated names")
    args = ap.parse_args(argv)
    if args.cmd == "write":
        write(args.dir, args.programs, args.seed)
        return 0
    if args.cmd == "suite-write":
        programs = dump_suite(args.dir, args.n)
        print(f"golden: test suite: wrote {len(programs)} programs to {args.dir}")
        return 0 if programs else 1
    if args.cmd == "suite-check":
        return 0 if suite_check(args.dir, args.n, args.names) else 1
    return 0 if check(args.dir, args.names) else 1


if __name__ == "__main__":
    sys.exit(main())
