"""parpy and fork (README, "Backends"; docs/howto/distributed.md): importing parpy, making options,
pickling jit functions and running on an explicit Cpu never initialise CUDA, so processes forked
later can use it; a process forked after its parent had initialised CUDA is told so, with the way
out, at its first CUDA use, and Auto there does not silently move to the CPU. Run against the
stand-in driver (tests/python/fake_driver.py), which logs each cuInit with its process id and, like
a real driver, fails in a process forked after cuInit."""

import json
import textwrap

import fake_driver
import parpy
import pytest

pytestmark = pytest.mark.skipif(parpy.backend.host_cxx() is None, reason="no C compiler for the stand-in driver")

FORKED = (
    "CUDA was initialised in the parent process before it forked this one; a forked process cannot use "
    "CUDA. Start worker processes with multiprocessing's 'spawn' or 'forkserver' method "
    "(multiprocessing.get_context('spawn').Pool(...)), or fork them before the parent's first CUDA call."
)

PRELUDE = textwrap.dedent(
    """
    import json, os, pickle
    import numpy as np
    import parpy
    from parpy import CompileBackend

    open(os.environ["FAKE_CUDA_LOG"], "a").close()

    def inits():
        # The stand-in driver's cuInit calls so far, by process id.
        with open(os.environ["FAKE_CUDA_LOG"]) as f:
            return [json.loads(line)["pid"] for line in f if '"init"' in line]

    @parpy.jit
    def scale(x, y, a, N):
        parpy.label("N")
        for i in range(N):
            y[i] = a * x[i]

    def cpu_opts():
        opts = parpy.par({"N": parpy.threads(4)})
        opts.backend = CompileBackend.Cpu
        return opts

    def check_cpu_call(seed):
        x = np.random.default_rng(seed).standard_normal(1000)
        y = np.zeros_like(x)
        scale(x, y, 2.0, 1000, opts=cpu_opts())
        assert np.array_equal(y, 2.0 * x), (y, x)
    """
)

NO_INIT = PRELUDE + textwrap.dedent(
    """
    opts = parpy.par({"N": parpy.threads(4)})
    assert pickle.loads(pickle.dumps(scale)) is scale
    assert pickle.loads(pickle.dumps(opts)).backend == CompileBackend.Auto
    assert parpy.backend.is_enabled(CompileBackend.Cpu)
    assert parpy.backend.resolve(CompileBackend.Cpu, strict=True) == CompileBackend.Cpu
    assert parpy.backend.resolve(CompileBackend.Cuda, strict=False) == CompileBackend.Cuda
    check_cpu_call(1)
    code = parpy.print_compiled(scale, [np.zeros(10), np.zeros(10), 2.0, 10], cpu_opts())
    assert "Cpu backend" in code
    print("BEFORE", json.dumps(inits()))
    # Reading the list of available backends asks about Cuda, which initialises the driver.
    print("AVAILABLE", [b.name for b in parpy.backend.available])
    print("AFTER", json.dumps(inits()), os.getpid())
    """
)


def test_import_options_pickling_and_cpu_calls_leave_cuda_alone(tmp_path):
    r = fake_driver.run(tmp_path, NO_INIT)
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert json.loads(lines["BEFORE"]) == [], r.stdout
    assert "'Cpu'" in lines["AVAILABLE"]
    after, pid = lines["AFTER"].rsplit(" ", 1)
    assert json.loads(after) == [int(pid)]


AUTO_INITIALISES = PRELUDE + textwrap.dedent(
    """
    opts = parpy.par({"N": parpy.threads(4)})
    assert inits() == []
    try:
        parpy.print_compiled(scale, [np.zeros(10), np.zeros(10), 2.0, 10], opts)  # resolves Auto
    except RuntimeError:
        pass  # no NVRTC or nvcc here: Cuda is off, and Auto prints for the CPU
    print("INITS", len(inits()))
    """
)


def test_resolving_auto_initialises_cuda(tmp_path):
    r = fake_driver.run(tmp_path, AUTO_INITIALISES)
    assert "INITS 1" in r.stdout, r.stdout


# A child forked after the parent had used CUDA (a buffer on the GPU): each CUDA use there raises
# the clear error, Cuda is not enabled, Auto raises the same error instead of running on the CPU
# (where the parent would have run on the GPU), and an explicit Cpu works.
FORK_AFTER_INIT = PRELUDE + textwrap.dedent(
    """
    b = parpy.buffer.from_array(np.arange(8, dtype=np.float32), CompileBackend.Cuda)
    parent_auto = parpy.backend.resolve(CompileBackend.Auto, strict=True)
    out = os.path.join(os.path.dirname(os.environ["FAKE_CUDA_LOG"]), "child.json")

    def attempt(f):
        try:
            f()
            return ["ok"]
        except RuntimeError as e:
            return ["error", str(e)]

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            auto = parpy.par({"N": parpy.threads(4)})
            cuda = parpy.par({"N": parpy.threads(4)})
            cuda.backend = CompileBackend.Cuda
            x = np.random.default_rng(2).standard_normal(100).astype(np.float32)
            y = np.zeros_like(x)
            got = {
                "buffer": attempt(lambda: parpy.buffer.from_array(x, CompileBackend.Cuda)),
                "inherited buffer": attempt(lambda: b.numpy()),
                "sync": attempt(lambda: parpy.sync(CompileBackend.Cuda)),
                "enabled": parpy.backend.is_enabled(CompileBackend.Cuda),
                "reason": parpy.backend.reasons()[CompileBackend.Cuda][1],
                "available": [b.name for b in parpy.backend.available],
                "resolve auto": attempt(lambda: parpy.backend.resolve(CompileBackend.Auto, strict=True)),
                "resolve cuda": attempt(lambda: parpy.backend.resolve(CompileBackend.Cuda, strict=True)),
                "call auto": attempt(lambda: scale(x, y, 2.0, 100, opts=auto)),
                "call cuda": attempt(lambda: scale(x, y, 2.0, 100, opts=cuda)),
            }
            check_cpu_call(3)
            got["cpu"] = "ok"
            with open(out, "w") as f:
                json.dump(got, f)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    print("PARENT", parent_auto.name, json.dumps(inits()), os.getpid())
    with open(out) as f:
        print("CHILD", f.read())
    # The parent still works.
    assert b.numpy().tolist() == list(range(8))
    check_cpu_call(4)
    """
)


def test_a_child_forked_after_cuda_was_initialised_is_told_so(tmp_path):
    r = fake_driver.run(tmp_path, FORK_AFTER_INIT)
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    parent_auto, inits, pid = lines["PARENT"].split(" ")
    assert json.loads(inits) == [int(pid)]  # the child never ran cuInit
    got = json.loads(lines["CHILD"])
    for op in ("buffer", "inherited buffer", "sync", "resolve cuda", "call cuda"):
        assert got[op] == ["error", FORKED], op
    assert got["enabled"] is False
    assert got["reason"] == FORKED
    assert "Cuda" not in got["available"] and "Cpu" in got["available"]
    if parent_auto == "Cuda":
        assert got["resolve auto"] == ["error", FORKED]
        assert got["call auto"] == ["error", FORKED]
    else:  # Cuda was off in the parent too (no NVRTC or nvcc): Auto is the CPU in both
        assert got["resolve auto"] == ["ok"]
    assert got["cpu"] == "ok"


# A child forked after the parent had run a jit call with Auto options on the GPU: the options'
# remembered resolution is not trusted in the child.
FORK_AFTER_AUTO_CALL = PRELUDE + textwrap.dedent(
    """
    if not parpy.backend.is_enabled(CompileBackend.Cuda):
        print("SKIP", parpy.backend.reasons()[CompileBackend.Cuda][1])
        raise SystemExit(0)
    os.environ["PARPY_CUDA_BUILD"] = "nvrtc"  # a quick build (or a quick failure without NVRTC)
    auto = parpy.par({"N": parpy.threads(4)})
    x = np.random.default_rng(5).standard_normal(100).astype(np.float32)
    y = np.zeros_like(x)
    try:
        scale(x, y, 2.0, 100, opts=auto)  # the stand-in driver runs no kernel: only the resolution counts
    except RuntimeError:
        pass
    ctx = __import__("multiprocessing").get_context("fork")
    r, w = ctx.Pipe(duplex=False)

    def child():
        try:
            scale(x, y, 2.0, 100, opts=auto)
            w.send("no error")
        except RuntimeError as e:
            w.send(str(e))

    p = ctx.Process(target=child)
    p.start()
    print("CHILD", json.dumps(r.recv()))
    p.join()
    assert p.exitcode == 0
    """
)


def test_remembered_auto_resolution_is_not_trusted_after_fork(tmp_path):
    r = fake_driver.run(tmp_path, FORK_AFTER_AUTO_CALL)
    if r.stdout.startswith("SKIP"):
        pytest.skip(r.stdout)
    child = json.loads(r.stdout.split("CHILD ", 1)[1])
    assert child == FORKED


# Another library (torch, CuPy) initialised CUDA in the parent, which parpy cannot see: the
# driver's cuInit fails with CUDA_ERROR_NOT_INITIALIZED, and the reason says what that means.
INIT_REFUSED = fake_driver.SOURCE.replace("  if (forked) return 3;\n  if (!initialised)", "  return 3;\n  if (!initialised)")


def test_cuinit_refused_says_what_forking_does(tmp_path):
    assert INIT_REFUSED != fake_driver.SOURCE
    r = fake_driver.run(tmp_path, "import parpy\nprint(parpy.backend.reasons()[parpy.CompileBackend.Cuda][1])\n",
                        source=INIT_REFUSED)
    assert r.stdout.splitlines()[-1] == (
        "cuInit: CUDA_ERROR_NOT_INITIALIZED: initialization error (a process forked from one that had already "
        "used CUDA, through any library, cannot use it: start worker processes with multiprocessing's 'spawn' "
        "or 'forkserver' method)"
    )
