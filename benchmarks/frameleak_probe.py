"""Whether calls made from threads leave references on the threads' frames once they have ended.

    python benchmarks/frameleak_probe.py WHAT THREADS CALLS

WHAT is `parpy` (a Cuda jit call on numpy arrays), `cupy` (a CuPy computation) or `none` (plain
Python). Prints, for each thread's frame, the references to it that remain besides this script's
own; the same number for every WHAT means the calls keep nothing. Under compute-sanitizer, the
test tests/python/test_release.py::test_a_call_in_flight_keeps_the_function_and_its_library[Cuda]
found the calling frames (and the function in them) still referenced after the threads ended.
"""
import gc
import sys
import threading

import numpy as np


def parpy_call():
    import parpy

    @parpy.jit
    def scale(x, y, a, N):
        parpy.label("N")
        for i in range(N):
            y[i] = a * x[i]

    def call():
        o = parpy.par({"N": parpy.threads(16)})
        o.backend = parpy.CompileBackend.Cuda
        x = np.arange(64, dtype=np.float64)
        y = np.zeros(64)
        scale(x, y, 0.5, 64, opts=o)
        assert (y == 0.5 * x).all()

    return call


def cupy_call():
    import cupy

    def call():
        assert int((cupy.arange(64) * 2).sum().get()) == 4032

    return call


def python_call():
    return lambda: sum(range(100))


def main():
    what, nthreads, ncalls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    call = {"parpy": parpy_call, "cupy": cupy_call, "none": python_call}[what]()
    call()  # builds and loads before the threads start
    frames = []

    def work():
        frames.append(sys._getframe())
        for _ in range(ncalls):
            call()

    threads = [threading.Thread(target=work) for _ in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    threads = None
    gc.collect()
    # Not counted: getrefcount's argument, the list's reference.
    extra = [sys.getrefcount(f) - 2 for f in frames]
    print(f"{what}, {nthreads} threads of {ncalls} calls: references left on their frames {extra}")


if __name__ == "__main__":
    main()
