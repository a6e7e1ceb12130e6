"""The documentation site (mkdocs.yml, docs/): every Python example in docs/ runs as shown, and
`mkdocs build --strict` (broken links, missing pages, API references that do not resolve) passes
where MkDocs, its Material theme and mkdocstrings are installed (CI installs them)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each Python example of a page, with the text block the page says it prints (after "prints"), if any.
EXAMPLE_RE = re.compile(r"```python\n(.*?)```(?:\s*prints\s*```text\n(.*?)```)?", re.DOTALL)
EXAMPLES = [(page, i, code, printed) for page in sorted((ROOT / "docs").glob("*.md"))
            for i, (code, printed) in enumerate(EXAMPLE_RE.findall(page.read_text()))]


def test_the_docs_have_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("page, index, code, printed", EXAMPLES, ids=[f"{p.stem}-{i}" for p, i, _, _ in EXAMPLES])
def test_example_runs(page, index, code, printed, tmp_path):
    for module in re.findall(r"^import (\w+)", code, re.MULTILINE):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the example needs {module}")
    script = tmp_path / f"{page.stem}_{index}.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                       check=False)
    assert r.returncode == 0, f"{page.name}, example {index + 1}:\n{code}\n{r.stdout}{r.stderr}"
    # What the page shows it printing, up to the location line (whose file name differs).
    for line in printed.split("\n\nOn line")[0].splitlines():
        assert line in r.stdout, f"{page.name}, example {index + 1} no longer prints:\n{line}\n\n{r.stdout}"


def test_site_builds_strictly(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None or (
                "." in module and importlib.util.find_spec(module) is None):
            pytest.skip(f"{module} is not installed")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                       capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("parpy.jit", "parpy.par", "parpy.threads", "parpy.CompileOptions", "parpy.print_compiled"):
        assert f'id="{name}"' in api, name
