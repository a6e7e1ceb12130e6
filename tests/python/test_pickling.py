"""Pickling (python/parpy/_pickling.py): jit functions by reference, options, parallel specs and
buffers by value; a jit function and its options run in the worker processes of a pool."""

import multiprocessing
import pickle

import numpy as np
import parpy
import pickled_kernels
import pytest
from common import make_opts

RNG = np.random.default_rng()


def test_jit_function_pickles_by_reference():
    f = pickle.loads(pickle.dumps(pickled_kernels.scale_rows))
    assert f is pickled_kernels.scale_rows


def test_jit_function_defined_in_a_function_says_why_it_cannot_pickle():
    @parpy.jit
    def local(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = 0.0

    with pytest.raises(pickle.PicklingError) as e:
        pickle.dumps(local)
    assert "defined inside another function" in str(e.value)
    assert "Define it at the top level of a module" in str(e.value)


def test_options_and_parallel_specs_pickle_by_value():
    o = parpy.par({"N": parpy.threads(64).tpb(32).reduce(), "M": parpy.threads(8)})
    o.backend = parpy.CompileBackend.Cpu
    o.bounds_check = True
    o.force_int_size = parpy.types.I32
    o.extra_flags = ["-DX=1"]
    o.use_cuda_graphs = True
    c = pickle.loads(pickle.dumps(o))
    assert c is not o
    assert repr(c.parallelize) == repr(o.parallelize)
    for name in ("backend", "bounds_check", "force_int_size", "extra_flags", "use_cuda_graphs",
                 "max_thread_blocks_per_cluster", "debug_print", "fast_math"):
        assert getattr(c, name) == getattr(o, name), name
    p = pickle.loads(pickle.dumps(parpy.threads(128).reduce()))
    assert repr(p) == repr(parpy.threads(128).reduce())


def test_pickled_options_compile_the_same_code(backend):
    x, s = RNG.standard_normal((6, 5)), RNG.standard_normal(6)
    o = make_opts(backend, N=6)
    args = [x, s, np.zeros((6, 5)), 6, 5]
    assert parpy.print_compiled(pickled_kernels.scale_rows, args, pickle.loads(pickle.dumps(o))) == \
        parpy.print_compiled(pickled_kernels.scale_rows, args, o)


def test_buffer_pickles_its_data(backend):
    a = RNG.standard_normal((3, 4))
    b = parpy.buffer.from_array(a.copy(), backend)
    c = pickle.loads(pickle.dumps(b))
    assert type(c) is type(b)
    np.testing.assert_array_equal(c.numpy(), a)


def test_jit_function_runs_in_spawned_worker_processes():
    # Spawned workers import the function's module afresh and compile through the disk cache.
    o = make_opts(parpy.CompileBackend.Cpu, N=4)
    chunks = [(RNG.standard_normal((4, 7)), RNG.standard_normal(4)) for _ in range(3)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(pickled_kernels.run_chunk, [(pickled_kernels.scale_rows, x, s, o) for x, s in chunks])
    for (x, s), y in zip(chunks, results):
        np.testing.assert_array_equal(y, s[:, None] * x)
