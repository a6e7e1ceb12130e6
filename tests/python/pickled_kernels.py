"""Jit functions at the top level of a module, for the pickling tests (test_pickling.py)."""

import parpy


@parpy.jit
def scale_rows(x, s, y, N, M):
    parpy.label("N")
    for i in range(N):
        for j in range(M):
            y[i, j] = s[i] * x[i, j]


def run_chunk(args):
    """What a worker process runs: the jit function and its options arrive pickled."""
    fn, x, s, opts = args
    y = x * 0.0
    fn(x, s, y, x.shape[0], x.shape[1], opts=opts)
    return y
