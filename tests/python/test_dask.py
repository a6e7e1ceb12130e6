"""A jit function as the kernel of a chunked dask array, computed by a LocalCluster of two worker
processes (README, pickling): each worker receives the function by reference and compiles it once,
through the shared disk cache. The cluster runs in a child process, so that the threads Dask
leaves behind stay out of the test process."""

import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from common import child_timeout

pytest.importorskip("dask")
pytest.importorskip("distributed")

HERE = pathlib.Path(__file__).resolve().parent

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import dask.array as da
    import distributed
    import parpy
    import pickled_kernels

    def scale_block(block, s_block, opts):
        y = np.zeros_like(block)
        pickled_kernels.scale_rows(block, s_block[:, 0], y, block.shape[0], block.shape[1], opts=opts)
        return y

    if __name__ == "__main__":
        x, s = np.load(sys.argv[1]), np.load(sys.argv[2])
        o = parpy.par({"N": parpy.threads(16)})
        o.backend = parpy.CompileBackend.Cpu
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      local_directory=sys.argv[4]) as cluster, distributed.Client(cluster) as client:
            xs = da.from_array(x, chunks=(16, 48))
            ss = da.from_array(s, chunks=(16, 1))
            y = da.map_blocks(scale_block, xs, ss, o, dtype=x.dtype).compute(scheduler=client)
            pids = set(client.run(lambda: __import__("os").getpid()).values())
        assert len(pids) == 2, pids
        np.save(sys.argv[3], y)
""")


def test_dask_local_cluster_computes_a_chunked_result_equal_to_numpy(tmp_path):
    rng = np.random.default_rng()
    x = rng.standard_normal((64, 48))
    s = rng.standard_normal((64, 1))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "s.npy", s)
    script = tmp_path / "run_dask.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "x.npy"), str(tmp_path / "s.npy"),
                        str(tmp_path / "y.npy"), str(tmp_path / "dask")],
                       env=env, capture_output=True, text=True,
                       timeout=child_timeout(300), check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), s * x)


def test_the_dask_example_runs():
    # examples/dask_chunks.py (docs/howto/distributed.md) as a user runs it.
    example = HERE.parents[1] / "examples" / "dask_chunks.py"
    r = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                       timeout=child_timeout(300), check=False,
                       cwd=HERE.parents[1])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "8 chunks on 2 worker processes: equal to numpy" in r.stdout
