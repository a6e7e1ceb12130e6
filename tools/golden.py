"""Golden corpus of generated code: a refactoring of the compiler must leave what it generates
unchanged (except, optionally, for the numbering of generated names).

    python tools/golden.py write DIR [--programs 600] [--seed 4242]   # before the change
    python tools/golden.py check DIR [--names]                       # after it

`write` takes the differential fuzzer's programs (tools/fuzz.py) for every backend that has code
generation here (the Cpu backend, and the Cuda backend, whose code needs no GPU), and stores each
program's identity (seed, index, attempt) with the code `parpy.print_compiled` gives for it. `check`
rebuilds exactly those programs and compares the code byte for byte; with `--names`, generated names
that differ only in their numbers (`parpy_acc3` for `parpy_acc1`) count as equal. It prints one line
per difference (the first differing line of each program) and a summary, and exits with 0 only if
nothing differs.
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
    args = ap.parse_args(argv)
    if args.cmd == "write":
        write(args.dir, args.programs, args.seed)
        return 0
    return 0 if check(args.dir, args.names) else 1


if __name__ == "__main__":
    sys.exit(main())
