"""The public API used as the documentation shows, checked by mypy against parpy's type stubs
(tests/python/test_typing.py) and run by that test too."""

import numpy as np

import parpy
from parpy import CompileBackend, types


@parpy.jit
def scale(x, y, a, N):
    parpy.label("N")
    for i in range(N):
        y[i] = a * x[i]


def main() -> None:
    spec: parpy.LoopPar = parpy.threads(64).tpb(128)
    opts: parpy.CompileOptions = parpy.par({"N": spec, "R": parpy.threads(32).reduce()})
    opts.backend = CompileBackend.Cpu
    opts.force_float_size = types.F32
    opts.bounds_check = True
    x = np.arange(64, dtype=np.float32)
    y = np.zeros(64, np.float32)
    scale(x, y, 2.0, 64, opts=opts)
    assert (y == 2 * x).all()
    code: str = parpy.print_compiled(scale, [x, y, 2.0, 64], opts)
    assert "parpy_entry_scale" in code
    enabled: bool = parpy.backend.is_enabled(CompileBackend.Cpu)
    assert enabled
    n: int = parpy.parpy.stats()["compiles"]
    assert n >= 1


if __name__ == "__main__":
    main()
