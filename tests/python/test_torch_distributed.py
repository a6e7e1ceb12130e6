"""examples/torch_distributed.py (docs/torch.md): parpy kernels between torch.distributed collectives,
one process per GPU over NCCL where there are GPUs, two CPU processes over gloo elsewhere; the
example checks every element against torch and the test its exit and its report."""

import subprocess
import sys
from pathlib import Path

import pytest
from common import child_timeout

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this torch")
def test_the_torch_distributed_example_runs():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "torch_distributed.py")], capture_output=True,
                       text=True, timeout=child_timeout(600), check=False, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "parpy kernels between collectives, equal to torch" in r.stdout
