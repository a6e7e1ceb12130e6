"""The documentation site (mkdocs.yml, docs/): every Python example in docs/ (and its folders, such
as docs/howto/) runs as shown, and `mkdocs build --strict` (broken links, missing pages, API
references that do not resolve) passes where MkDocs, its Material theme and mkdocstrings are
installed (CI installs them).

An example is skipped where a module it imports is missing, and an example whose first line is
`# Needs the <Backend> backend ...` (Cuda, Metal) where that backend is not enabled; each runs
wherever it can, a Cuda example on a machine with an NVIDIA GPU."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from common import child_timeout

ROOT = Path(__file__).resolve().parents[2]
# Each Python example of a page, with the text block the page says it prints (after "prints"), if any.
EXAMPLE_RE = re.compile(r"```python\n(.*?)```(?:\s*prints\s*```text\n(.*?)```)?", re.DOTALL)
# The first line of an example that runs on one backend only.
NEEDS_RE = re.compile(r"# Needs the (\w+) backend")
PAGES = sorted((ROOT / "docs").rglob("*.md"))
EXAMPLES = [(page, i, code, printed) for page in PAGES
            for i, (code, printed) in enumerate(EXAMPLE_RE.findall(page.read_text()))]


def page_id(page):
    return page.relative_to(ROOT / "docs").with_suffix("").as_posix()


def test_the_docs_have_examples():
    assert len(EXAMPLES) >= 2
    # Each how-to page shows what it says with examples that run.
    howtos = [p for p in PAGES if p.parent.name == "howto"]
    assert len(howtos) >= 5
    for page in howtos:
        assert any(p == page for p, _, _, _ in EXAMPLES), f"{page_id(page)} has no ```python example"


@pytest.mark.parametrize("page, index, code, printed", EXAMPLES,
                         ids=[f"{page_id(p)}-{i}" for p, i, _, _ in EXAMPLES])
def test_example_runs(page, index, code, printed, tmp_path):
    for module in re.findall(r"^import (\w+)", code, re.MULTILINE):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the example needs {module}")
    needs = NEEDS_RE.match(code)
    if needs:
        import parpy

        backend = getattr(parpy.CompileBackend, needs.group(1))
        if not parpy.backend.is_enabled(backend):
            pytest.skip(f"the example needs the {needs.group(1)} backend")
    script = tmp_path / f"{page.stem}_{index}.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=child_timeout(600),
                       check=False)
    assert r.returncode == 0, f"{page_id(page)}.md, example {index + 1}:\n{code}\n{r.stdout}{r.stderr}"
    # What the page shows it printing, up to the location line (whose file name differs).
    for line in printed.split("\n\nOn line")[0].splitlines():
        assert line in r.stdout, f"{page_id(page)}.md, example {index + 1} no longer prints:\n{line}\n\n{r.stdout}"


def test_site_builds_strictly(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None or (
                "." in module and importlib.util.find_spec(module) is None):
            pytest.skip(f"{module} is not installed")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                       capture_output=True, text=True, cwd=ROOT,
                       timeout=child_timeout(600), check=False,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    # Every page is in the navigation (mkdocs lists the others in its output) and built.
    assert "not included in the \"nav\"" not in r.stdout + r.stderr, r.stdout + r.stderr
    for page in PAGES:
        assert (tmp_path / "site" / page_id(page).removesuffix("index") / "index.html").exists(), page_id(page)
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("parpy.jit", "parpy.par", "parpy.threads", "parpy.CompileOptions", "parpy.print_compiled"):
        assert f'id="{name}"' in api, name
