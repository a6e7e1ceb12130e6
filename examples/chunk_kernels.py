"""The jit function examples/dask_chunks.py runs on each chunk. It lives in a module of its own
so that worker processes can import it: jit functions pickle by reference (module and name), as
plain functions do."""

import numpy as np
import parpy


@parpy.jit
def scale_rows(x, s, y, N, M):
    parpy.label("N")
    for i in range(N):
        for j in range(M):
            y[i, j] = s[i] * x[i, j]


def scale_block(block, s_block, opts):
    """What a worker runs on one chunk: a new output block, the kernel, the block back."""
    y = np.zeros_like(block)
    scale_rows(block, s_block[:, 0], y, block.shape[0], block.shape[1], opts=opts)
    return y
