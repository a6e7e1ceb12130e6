"""A jit function as the kernel of a chunked dask array, computed by a LocalCluster of two worker
processes (README, pickling): each worker receives the function by reference and compiles it once,
through the shared disk cache."""

import numpy as np
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
import dask.array as da  # noqa: E402
import parpy  # noqa: E402
import pickled_kernels  # noqa: E402


def scale_block(block, s_block, opts):
    y = np.zeros_like(block)
    pickled_kernels.scale_rows(block, s_block[:, 0], y, block.shape[0], block.shape[1], opts=opts)
    return y


def test_dask_local_cluster_computes_a_chunked_result_equal_to_numpy(tmp_path):
    rng = np.random.default_rng()
    x = rng.standard_normal((64, 48))
    s = rng.standard_normal((64, 1))
    o = parpy.par({"N": parpy.threads(16)})
    o.backend = parpy.CompileBackend.Cpu
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  local_directory=str(tmp_path)) as cluster, distributed.Client(cluster) as client:
        xs = da.from_array(x, chunks=(16, 48))
        ss = da.from_array(s, chunks=(16, 1))
        y = da.map_blocks(scale_block, xs, ss, o, dtype=x.dtype).compute(scheduler=client)
        workers = client.run(lambda: __import__("os").getpid())
    assert len(workers) == 2
    np.testing.assert_array_equal(y, s * x)
