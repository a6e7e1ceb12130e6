"""The README's example and the examples/ scripts run as documented."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_python_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks, "the README has no python example"
    script = tmp_path / "readme_example.py"
    script.write_text(blocks[0])
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_readme_quick_start_names_existing_files():
    text = (ROOT / "README.md").read_text()
    for path in re.findall(r"python (examples/\S+\.py)", text):
        assert (ROOT / path).exists(), path


def test_examples_run():
    for example in sorted((ROOT / "examples").glob("*.py")):
        r = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, check=False)
        assert r.returncode == 0, f"{example.name}: {r.stderr}"
