"""A parpy kernel on each chunk of a Dask array, computed by a local cluster of two worker
processes, compared with numpy (docs/howto/distributed.md).

Run: pip install "dask[distributed]" && python examples/dask_chunks.py

Each worker receives the jit function by reference (chunk_kernels.scale_rows), imports it and
compiles it once per chunk shape; the disk cache is shared, so a shape one worker built is loaded,
not built again, by the other.
"""

import os
import sys

import numpy as np
import parpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chunk_kernels  # noqa: E402


def main():
    try:
        import dask.array as da
        import distributed
    except ImportError:
        print('This example needs Dask: pip install "dask[distributed]"')
        return
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 256))
    s = rng.standard_normal((2048, 1))
    opts = parpy.par({"N": parpy.threads(64)})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        xs = da.from_array(x, chunks=(256, 256))
        ss = da.from_array(s, chunks=(256, 1))
        y = da.map_blocks(chunk_kernels.scale_block, xs, ss, opts, dtype=x.dtype).compute(scheduler=client)
        workers = len(client.scheduler_info()["workers"])
    assert np.array_equal(y, s * x)
    print(f"{xs.numblocks[0]} chunks on {workers} worker processes: equal to numpy")


if __name__ == "__main__":
    main()
