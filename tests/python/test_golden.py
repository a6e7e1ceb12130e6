"""tools/golden.py: the corpus of generated code that a refactoring of the compiler must leave
unchanged."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = [sys.executable, str(ROOT / "tools" / "golden.py")]


def run(*args):
    return subprocess.run([*GOLDEN, *args], capture_output=True, text=True, check=False, cwd=ROOT)


def test_write_then_check_is_identical_and_a_change_is_reported(tmp_path):
    corpus = tmp_path / "corpus"
    w = run("write", str(corpus), "--programs", "6", "--seed", "77")
    assert w.returncode == 0, w.stderr[-3000:]
    assert "golden: wrote 12 programs" in w.stdout
    c = run("check", str(corpus))
    assert c.returncode == 0, c.stdout[-3000:] + c.stderr[-3000:]
    assert "golden: 12 programs, 0 differ" in c.stdout
    # One changed line of one Cuda program is found, with its line number.
    path = corpus / "cuda.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    lines = recs[3]["code"].splitlines()
    lines[1] = lines[1] + " // changed"
    recs[3]["code"] = "\n".join(lines) + "\n"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    c = run("check", str(corpus))
    assert c.returncode == 1
    assert f"cuda seed 77 program {recs[3]['index']} line 2:" in c.stdout
    assert "golden: 12 programs, 1 differ" in c.stdout


def test_names_that_differ_only_in_their_numbers_are_equal_with_names():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import golden
    finally:
        sys.path.pop(0)
    a = "double parpy_acc3 = 0; parpy_acc3 += v_x[parpy_w0]; float parpy_acc7;"
    b = "double parpy_acc1 = 0; parpy_acc1 += v_x[parpy_w0]; float parpy_acc2;"
    c = "double parpy_acc1 = 0; parpy_acc2 += v_x[parpy_w0]; float parpy_acc2;"
    assert golden.normalise_names(a) == golden.normalise_names(b)
    assert golden.normalise_names(a) != golden.normalise_names(c)
