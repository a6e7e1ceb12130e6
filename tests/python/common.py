"""Helpers shared by the test files: compiler options for a backend and labels, and kernels."""

import parpy


def make_opts(backend, par=None, **labels):
    """Options for `backend` that run each label of `labels` on that many threads; `par` adds
    labels with their own specs (reductions, tpb)."""
    o = parpy.par(dict(par or {}, **{k: parpy.threads(v) for k, v in labels.items()}))
    o.backend = backend
    return o


def cpu(**labels):
    """make_opts on the Cpu backend."""
    return make_opts(parpy.CompileBackend.Cpu, **labels)


# Kernels that several test files run.


@parpy.jit
def axpy(a, x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = a * x[i] + y[i]


@parpy.jit
def row_sum(x, y, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        y[i] = parpy.operators.sum(x[i, :])
