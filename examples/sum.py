"""Sums a vector three ways, and a softmax, comparing with numpy.

Run: python examples/sum.py
"""

import numpy as np
import parpy


@parpy.jit
def sum_loop(x, y, N):
    y[0] = 0.0
    parpy.label("N")
    for i in range(N):
        y[0] += x[i]


@parpy.jit
def sum_op(x, y, N):
    parpy.label("N")
    y[0] = parpy.operators.sum(x[:])


@parpy.jit
def sum_gpu(x, y, N):
    with parpy.gpu:
        y[0] = 0.0
        parpy.label("N")
        for i in range(N):
            y[0] += x[i]


@parpy.jit
def row_softmax(x, out, N, M):
    parpy.label("rows")
    for i in range(N):
        m = parpy.operators.max(x[i, :])
        parpy.label("cols")
        out[i, :] = parpy.operators.exp(x[i, :] - m)
        s = parpy.operators.sum(out[i, :])
        parpy.label("cols")
        out[i, :] = out[i, :] / s


def main():
    N = 1_000_000
    x = np.random.randn(N).astype(np.float32)
    y = np.zeros(1, dtype=np.float32)
    reduce_opts = parpy.par({"N": parpy.threads(N).reduce()})
    try:
        sum_loop(x, y, N, opts=reduce_opts)
        print(f"sum_loop: {y[0]:.4f}   numpy: {x.sum():.4f}")
    except RuntimeError as e:
        # On a GPU the host cannot write y[0]; sum_op and sum_gpu are the two fixes.
        print(f"sum_loop is rejected by the {reduce_opts.backend} backend:\n{e}")
    sum_gpu(x, y, N, opts=reduce_opts)
    print(f"sum_gpu:  {y[0]:.4f}   numpy: {x.sum():.4f}")
    sum_op(x, y, N, opts=parpy.par({"N": parpy.threads(N)}))
    print(f"sum_op:   {y[0]:.4f}   numpy: {x.sum():.4f}")

    a = np.random.randn(256, 1000).astype(np.float32)
    out = np.empty_like(a)
    opts = parpy.par({"rows": parpy.threads(256), "cols": parpy.threads(1000)})
    row_softmax(a, out, 256, 1000, opts=opts)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    ref = e / e.sum(axis=1, keepdims=True)
    print("softmax max abs error:", float(np.abs(out - ref).max()))
    print("backend:", opts.backend)


if __name__ == "__main__":
    main()
