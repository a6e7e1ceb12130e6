# The jit bodies below are deliberately invalid Python-subset code.
"""Messages for a new user's first tries: each says what to write instead, with the location.

Slice statements whose shapes do not broadcast, Python/numpy functions instead of parpy's
builtins, array shapes read inside the function, non-contiguous arguments, label typos,
Python-level type names, and functions without source (interactive prompt, exec, notebooks).
Lines are found by ``# @tag`` comments as in test_errors.py.
"""

import builtins
import math
import runpy
import subprocess
import sys
import textwrap

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from common import child_timeout, cpu

LOCATIONS = SourceLocations(__file__)
loc = LOCATIONS.loc


pytestmark = pytest.mark.usefixtures("fresh_cache")


def f64(*shape):
    return np.random.rand(*shape)


def use_instead(op, shown):
    return (f".\nUse parpy.operators.{op} instead: inside a jit function only parpy.operators "
            f"builtins are compiled, not {shown}.")


# ===== Slice statements: shapes are checked first, a TypeError on the statement ===============


def test_slice_copy_of_other_length():
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[:] = x[:]  # @copy_len

    with pytest.raises(TypeError) as e:
        f(f64(10), f64(12), opts=cpu(N=12))
    assert str(e.value) == loc("Found incompatible shapes [12] and [10]", "copy_len", "y[:] = x[:]")


def test_slice_augmented_assignment_with_mismatched_extents():
    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            y[i, :] += x[:, i]  # @aug_extents

    with pytest.raises(TypeError) as e:
        f(f64(5, 6), f64(6, 7), 6, opts=cpu(N=6))
    msg = "Found incompatible shapes [7], [7] and [5]"
    assert str(e.value) == loc(msg, "aug_extents", "y[i, :] += x[:, i]")


def test_slice_shapes_are_checked_before_the_slice_count():
    # The right-hand side has more slices than the target, and the shapes do not broadcast
    # either: the shapes are reported (TypeError), not the slice count (RuntimeError).
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[:] = x[:, :]  # @more_slices

    with pytest.raises(TypeError) as e:
        f(f64(3, 4), f64(5), opts=cpu(N=5))
    msg = "Found incompatible shapes [5] and [3, 4]"
    assert str(e.value) == loc(msg, "more_slices", "y[:] = x[:, :]")
    # Shapes that broadcast still get the slice-count rule.
    with pytest.raises(RuntimeError, match="Slice statements cannot have more slice dimensions"):
        f(f64(3, 5), f64(5), opts=cpu(N=5))


def test_slice_reduction_result_shape_checked_before_labels():
    # One label for two loops, and a result of shape [4] stored into [5]: the shapes first.
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[:] = parpy.operators.sum(x[:, :], axis=0)  # @red_shape

    with pytest.raises(TypeError) as e:
        f(f64(3, 4), f64(5), opts=cpu(N=5))
    msg = "Found incompatible shapes [5] and [4]"
    assert str(e.value) == loc(msg, "red_shape", "y[:] = parpy.operators.sum(x[:, :], axis=0)")


def test_slice_statements_that_broadcast_still_run():
    # The checks reject nothing numpy accepts.
    @parpy.jit
    def f(x, y, z):
        parpy.label("N")
        parpy.label("M")
        z[:, :] = x[:, :] * y[:] + 1.0

    x, y, z = f64(4, 6), f64(6), np.zeros((4, 6))
    f(x, y, z, opts=cpu(N=4, M=6))
    np.testing.assert_allclose(z, x * y + 1.0, rtol=1e-15, atol=0)  # a fused multiply-add


# ===== Calls to Python and numpy functions =====================================================


def test_math_exp_names_parpy_exp():
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, y, N):
            parpy.label("N")
            for i in range(N):
                y[i] = math.exp(x[i])  # @math_exp

    assert str(e.value) == loc("Unsupported call target type" + use_instead("exp", "math.exp"),
                               "math_exp", "math.exp")


def test_function_imported_from_math_names_parpy_exp():
    from math import exp as mexp

    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, y, N):
            parpy.label("N")
            for i in range(N):
                y[i] = mexp(x[i])  # @mexp

    msg = "Call to unknown function mexp" + use_instead("exp", "mexp")
    assert str(e.value) == loc(msg, "mexp", "mexp(x[i])")


def test_numpy_exp_is_already_parpy_exp():
    # np.exp is parpy.operators.exp: it compiles (no hint needed).
    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = np.exp(x[i])

    x, y = f64(16), np.zeros(16)
    f(x, y, 16, opts=cpu(N=16))
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-15)


def test_numpy_sum_names_parpy_sum():
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, y, N):
            parpy.label("N")
            for i in range(N):
                y[i] = np.sum(x[i, :])  # @np_sum

    msg = ("Unsupported call target type" + use_instead("sum", "np.sum") +
           " Reductions take a slice, as in s = parpy.operators.sum(x[i, :]) or "
           "y[:] = parpy.operators.sum(x[:, :], axis=1).")
    assert str(e.value) == loc(msg, "np_sum", "np.sum")


@pytest.mark.parametrize("fun, op", [("np.maximum", "max"), ("np.float32", "float32"),
                                     ("math.fabs", "abs"), ("np.minimum", "min")])
def test_numpy_spellings_name_their_parpy_builtin(fun, op, tmp_path):
    path = tmp_path / "spelling.py"
    path.write_text(textwrap.dedent(f"""
        import math
        import numpy as np
        import parpy

        @parpy.jit
        def f(x, y, N):
            parpy.label("N")
            for i in range(N):
                y[i] = {fun}(x[i])
        """))
    with pytest.raises(RuntimeError) as e:
        runpy.run_path(str(path))
    assert str(e.value) == (f"Unsupported call target type{use_instead(op, fun)}\n\nOn line 10 of "
                            f"file {path}:\n        y[i] = {fun}(x[i])\n"
                            f"{' ' * 15}{'^' * len(fun)}\n")


def test_builtins_max_names_parpy_max():
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, y, N):
            parpy.label("N")
            for i in range(N):
                y[i] = builtins.max(x[i], 0.0)  # @builtins_max

    msg = "Unsupported call target type" + use_instead("max", "builtins.max")
    assert str(e.value) == loc(msg, "builtins_max", "builtins.max")


def test_undecorated_python_function_says_decorate_it():
    def plain(v):
        return v

    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, y, N):
            parpy.label("N")
            for i in range(N):
                y[i] = plain(x[i])  # @plain

    msg = ("Cannot call plain from jit code: it is a plain Python function. Decorate it with "
           "@parpy.jit (or declare it with @parpy.external)")
    assert str(e.value) == loc(msg, "plain", "plain(x[i])")


def test_undecorated_python_function_as_statement_says_decorate_it():
    def plain(v):
        v[0] = 1.0

    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                plain(x)  # @plain_stmt

    msg = ("Cannot call plain from jit code: it is a plain Python function. Decorate it with "
           "@parpy.jit (or declare it with @parpy.external)")
    assert str(e.value) == loc(msg, "plain_stmt", "plain(x)")


# ===== Array shapes inside the function ========================================================


def test_shape_attribute_says_pass_the_size():
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(a, y):
            parpy.label("N")
            for i in range(a.shape[0]):  # @shape0
                y[i] = a[i]

    msg = ("Unsupported expression: a.shape.\nThe shape of an array is not available inside a jit "
           "function: pass the size as an argument (def f(x, N): ..., called as f(x, x.shape[0])).")
    assert str(e.value) == loc(msg, "shape0", "a.shape")


def test_len_says_pass_the_size():
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(a, y):
            parpy.label("N")
            for i in range(len(a)):  # @len_a
                y[i] = a[i]

    msg = ("Call to unknown function len.\nThe length of an array is not available inside a jit "
           "function: pass it as an argument (def f(x, N): ..., called as f(x, len(x))).")
    assert str(e.value) == loc(msg, "len_a", "len(a)")


# ===== Non-contiguous arguments sharing memory ===================================================


@parpy.jit
def copy_rows(src, dst, N):  # @copy_rows_def
    parpy.label("N")
    for i in range(N):
        dst[i] = src[i]


def _shared_memory_message(a, b):
    (pa, na), (pb, nb) = a, b
    msg = (f"Argument #{pa} (parameter {na}) is a non-contiguous array, which the function reads and "
           f"writes through a contiguous copy, and it shares memory with argument #{pb} (parameter "
           f"{nb}): writes through one would not be seen through the other.\nPass arrays that do not "
           f"share memory, or a contiguous copy of one (np.ascontiguousarray({na})).")
    return loc(msg, "copy_rows_def", na)


def test_non_contiguous_argument_sharing_memory_names_both_parameters():
    m = np.zeros((8, 2))
    with pytest.raises(RuntimeError) as e:
        copy_rows(m[:4, 0], m[::2, 0], 4, opts=cpu(N=4))
    assert str(e.value) == _shared_memory_message((1, "src"), (2, "dst"))
    with pytest.raises(RuntimeError) as e:
        copy_rows(m.reshape(-1)[:4], m[::2, 0], 4, opts=cpu(N=4))
    assert str(e.value) == _shared_memory_message((2, "dst"), (1, "src"))
    # The suggested fix works: rows 0-3 of the column are copied to rows 0, 2, 4, 6.
    m = np.random.rand(8, 2)
    want = m.copy()
    want[::2, 0] = m[:4, 0]
    copy_rows(np.ascontiguousarray(m[:4, 0]), m[::2, 0], 4, opts=cpu(N=4))
    np.testing.assert_array_equal(m, want)


def test_non_contiguous_dict_entry_sharing_memory_names_the_entry():
    @parpy.jit
    def f(d, N):
        parpy.label("N")
        for i in range(N):
            d["y"][i] = d["x"][i]

    m = np.zeros((8, 2))
    with pytest.raises(RuntimeError) as e:
        f({"x": m[:4, 0], "y": m[::2, 0]}, 4, opts=cpu(N=4))
    assert str(e.value).startswith(
        'Argument #1["x"] (parameter d) is a non-contiguous array, which the function reads and writes '
        'through a contiguous copy, and it shares memory with argument #1["y"] (parameter d)')
    assert "(np.ascontiguousarray(d[\"x\"]))" in str(e.value)


# ===== Python-level type names =================================================================


def test_types_print_as_python_types():
    @parpy.jit
    def f(x, y):
        with parpy.gpu:
            y[0] = x  # @array_as_scalar

    with pytest.raises(TypeError) as e:
        f(np.zeros((10, 20), np.float32), np.zeros(4, np.float32))
    msg = "Expected element of scalar type float32, but found type float32 array of shape (10, 20)."
    assert str(e.value) == loc(msg, "array_as_scalar", "y[0] = x")


def test_one_dimensional_shape_prints_as_a_tuple():
    @parpy.jit
    def f(x, y):
        with parpy.gpu:
            if x:  # @if_array
                y[0] = 1.0

    with pytest.raises(TypeError) as e:
        f(np.zeros(3), np.zeros(1))
    msg = "If expression has condition of invalid type float64 array of shape (3,)"
    assert str(e.value) == loc(msg, "if_array", "x")


# ===== Functions without source ================================================================

JIT_SOURCE = textwrap.dedent("""
    import parpy

    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = 1.0
    """)

NO_SOURCE = ("parpy.jit needs the source code of f (defined in {file}, line 4), but Python has "
             "none: functions typed at the interactive prompt or built with exec() from a string "
             "keep no source. Define the function in a file (a script or an imported module) or "
             "in a Jupyter or IPython cell.")


def test_exec_without_source_says_what_works():
    with pytest.raises(OSError) as e:
        exec(JIT_SOURCE, {})  # noqa: S102 - the case under test
    assert str(e.value) == NO_SOURCE.format(file="<string>")


def test_interactive_prompt_says_what_works():
    # Code read from standard input has no source, as at the interactive prompt.
    r = subprocess.run([sys.executable, "-"], input=JIT_SOURCE, capture_output=True, text=True,
                       check=False, timeout=child_timeout(120))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "OSError: " + NO_SOURCE.format(file="<stdin>")


def test_ipython_cells_have_source():
    # IPython and Jupyter keep each cell's source in linecache: functions defined in a cell
    # compile, and errors show the cell's lines.
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        ok = shell.run_cell(textwrap.dedent("""
            import numpy as np
            import parpy

            @parpy.jit
            def add_one(x, N):
                parpy.label("N")
                for i in range(N):
                    x[i] = x[i] + 1.0

            opts = parpy.par({"N": parpy.threads(32)})
            opts.backend = parpy.CompileBackend.Cpu
            a = np.random.rand(32)
            expected = a + 1.0
            add_one(a, 32, opts=opts)
            """))
        assert ok.success, ok.error_in_exec
        np.testing.assert_array_equal(shell.user_ns["a"], shell.user_ns["expected"])
        bad = shell.run_cell(textwrap.dedent("""\
            import math
            @parpy.jit
            def g(x):
                with parpy.gpu:
                    x[0] = math.floor(x[1])
            """))
        err = bad.error_in_exec
        assert isinstance(err, RuntimeError)
        lines = str(err).splitlines()
        assert lines[0] == "Unsupported call target type."
        assert lines[-3].startswith("On line 5 of file ")
        assert lines[-2:] == ["        x[0] = math.floor(x[1])", "               ^^^^^^^^^^"]
    finally:
        InteractiveShell.clear_instance()
