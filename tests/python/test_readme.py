"""The README's example and the examples/ scripts run as documented."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def _top_level_imports(path):
    """The top-level packages a script imports at its top level (not inside functions)."""
    return {m.group(1) for m in re.finditer(r"^(?:import|from) (\w+)", path.read_text(), re.MULTILINE)}


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_examples_run(example):
    missing = sorted(m for m in _top_level_imports(example)
                     if not (example.parent / f"{m}.py").exists() and importlib.util.find_spec(m) is None)
    if missing:  # an optional peer (torch): the README's test command runs without it
        pytest.skip(f"{example.name} needs {', '.join(missing)}")
    r = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"{example.name}: {r.stderr}"
