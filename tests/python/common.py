"""Helpers shared by the test files: compiler options for a backend and labels."""

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
