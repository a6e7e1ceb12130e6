# The jit bodies below are deliberately invalid Python-subset code.
# ruff: noqa: F841, PLR1711, PLW0120
"""User-facing errors: class, exact text and source location.

Each located error is compared in full with the text, in the original library's format:
``<message>\\n\\nOn line L of file <path>:\\n<source line>\\n<spaces><carets>\\n``. Lines are found
by a unique ``# @tag`` comment at the end of a line of this file, so the expected line numbers are
the real absolute ones. The comment is part of the printed source line.

Errors arise either when decorating (``@parpy.jit``: parsing the Python AST, attaching labels,
inlining statement calls) or at the first call (specialisation, type checking, slice lowering);
each test says which.
"""

import os
import random
import subprocess
import sys

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from common import child_timeout, cpu

LOCATIONS = SourceLocations(__file__)
THIS, SRC = LOCATIONS.path, LOCATIONS.src
_line, loc, loc_lines = LOCATIONS.line, LOCATIONS.loc, LOCATIONS.loc_lines


pytestmark = pytest.mark.usefixtures("fresh_cache")


def f32(*shape):
    return np.zeros(shape, dtype=np.float32)


# What a call to something that is not a parpy builtin, jit function or external is told.
CALL_HINT = (
    ".\nA jit function can call the builtins of parpy.operators (exp, log, sin, cos, sqrt, tanh, "
    "atan2, abs, min, max, sum, prod and conversions such as float32), other @parpy.jit "
    "functions, and C functions declared with @parpy.external."
)


# ===== Decoration time: statements (docs/language.md, Statements) ==============================


def test_while_else():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            while N > 0:  # @while_else
                x[0] = 1.0
            else:
                x[0] = 2.0  # @while_else_end

    msg = "While-loops with an else-clause are not supported"
    assert str(e.value) == loc_lines(msg, "while_else", "while", "while_else_end", "x[0] = 2.0")


def test_for_else():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in range(N):  # @for_else
                x[i] = 1.0
            else:
                x[0] = 2.0  # @for_else_end

    msg = "For-loops with an else-clause are not supported"
    assert str(e.value) == loc_lines(msg, "for_else", "for", "for_else_end", "x[0] = 2.0")


def test_with_other_context():
    # Decoration time; the whole with statement is marked, as the original does.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with open("a"):  # @with_other
                x[0] = 1.0  # @with_other_end

    msg = "With statements are only supported for 'parpy.gpu'"
    assert str(e.value) == loc_lines(msg, "with_other", "with", "with_other_end", "x[0] = 1.0")


def test_with_gpu_as():
    # Decoration time; the whole with statement is marked.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu as g:  # @with_as
                x[0] = 1.0  # @with_as_end

    msg = "With statements using the 'as' keyword are not supported"
    assert str(e.value) == loc_lines(msg, "with_as", "with", "with_as_end", "x[0] = 1.0")


def test_with_multiple_items():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu, parpy.gpu:  # @with_multi
                x[0] = 1.0  # @with_multi_end

    msg = "With statements using multiple items is not supported"
    assert str(e.value) == loc_lines(msg, "with_multi", "with", "with_multi_end", "x[0] = 1.0")


def test_empty_return():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = 1.0
            return  # @empty_return

    assert str(e.value) == loc(
        "Empty return statements are not supported", "empty_return", "return"
    )


def test_unknown_function_statement():
    # First call: a name not bound at decoration may be a helper defined later (see README).
    @parpy.jit
    def f(x):
        with parpy.gpu:
            foo(x)  # @unknown_fun_stmt  # noqa: F821

    with pytest.raises(RuntimeError) as e:
        f(f32(4), opts=cpu())
    msg = "Call to unknown function foo" + CALL_HINT
    assert str(e.value) == loc(msg, "unknown_fun_stmt", "foo(x)")


def test_unknown_function_expression():
    # First call, as above.
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = foo(x[1])  # @unknown_fun_expr  # noqa: F821

    with pytest.raises(RuntimeError) as e:
        f(f32(4), opts=cpu())
    msg = "Call to unknown function foo" + CALL_HINT
    assert str(e.value) == loc(msg, "unknown_fun_expr", "foo(x[1])")


def test_python_builtin_min_is_unknown():
    # Decoration time: Python's own min is not parpy's (docs/language.md, Names).
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = min(x[1], x[2])  # @py_min

    msg = (
        "Call to unknown function min.\nUse parpy.operators.min instead: inside a jit function only "
        "parpy.operators builtins are compiled, not min."
    )
    assert str(e.value) == loc(msg, "py_min", "min(x[1], x[2])")


def test_statement_call_wrong_arg_count():
    # Decoration time.
    @parpy.jit
    def helper(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = 1.0

    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            helper(x)  # @inline_argc

    msg = "Function helper expected 2 arguments, but received 1."
    assert str(e.value) == loc(msg, "inline_argc", "helper(x)")


def test_loop_not_over_range():
    # Decoration time; the caret is under the iterated expression.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in x:  # @not_range
                x[i] = 1.0

    msg = "For-loop must iterate using the range builtin"
    n = _line("not_range")
    col = SRC[n - 1].index("in x") + 3
    assert str(e.value) == (f"{msg}\n\nOn line {n} of file {THIS}:\n{SRC[n - 1]}\n{' ' * col}^\n")


def test_for_tuple_target():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i, j in range(N):  # @for_tuple
                x[i] = 1.0

    assert str(e.value) == loc("For-loops must assign to a single variable", "for_tuple", "i, j")


def test_range_argument_count():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in range(0, N, 1, 2):  # @range_argc
                x[i] = 1.0

    msg = "Invalid number of arguments passed to range"
    assert str(e.value) == loc(msg, "range_argc", "range(0, N, 1, 2)")


def test_range_step_not_literal():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N, s):
            parpy.label("N")
            for i in range(0, N, s):  # @step_var
                x[i] = 1.0

    msg = "Range step size must be an integer literal"
    assert str(e.value) == loc(msg, "step_var", "s")


def test_range_step_zero():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in range(0, N, -0):  # @step_zero
                x[i] = 1.0

    assert str(e.value) == loc("Range step size must be non-zero", "step_zero", "-0")


def test_range_step_that_does_not_fit_in_64_bits():
    # Decoration time (the error was a bare "std::bad_cast"). -2**63 itself fits (h decorates).
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in range(0, N, 1180591620717411303424):  # @step_huge
                x[i] = 1.0

    msg = "Range step size 1180591620717411303424 does not fit in 64 bits: use a value from -2**63 to 2**63 - 1"
    assert str(e.value) == loc(msg, "step_huge", "1180591620717411303424")
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def g(x, N):
            parpy.label("N")
            for i in range(0, N, -9223372036854775809):  # @step_low
                x[i] = 1.0

    msg = "Range step size -9223372036854775809 does not fit in 64 bits: use a value from -2**63 to 2**63 - 1"
    assert str(e.value) == loc(msg, "step_low", "-9223372036854775809")

    @parpy.jit
    def h(x, N):
        parpy.label("N")
        for i in range(N - 1, -1, -9223372036854775808):
            x[i] = 1.0


def test_more_than_one_target():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = x[1] = 1.0  # @two_targets

    msg = "Cannot have more than one target of assignment"
    assert str(e.value) == loc(msg, "two_targets", "x[0] = x[1] = 1.0")


def test_tuple_target():
    # Decoration time; the caret is under the target.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                a, b = 1.0, 2.0  # @tuple_target

    assert str(e.value) == loc("Unsupported form of assignment", "tuple_target", "a, b")


def test_unsupported_statement_pass():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                pass  # @pass_stmt

    assert str(e.value) == loc("Unsupported statement: Pass", "pass_stmt", "pass")


def test_unsupported_statement_break():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in range(N):
                break  # @break_stmt

    assert str(e.value) == loc("Unsupported statement: Break", "break_stmt", "break")


def test_unsupported_expression_statement():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] + 1.0  # @expr_stmt

    assert str(e.value) == loc("Unsupported expression statement", "expr_stmt", "x[0] + 1.0")


# ===== Decoration time: labels (docs/language.md, Labels) ========================================


def test_label_without_statement():
    # Decoration time; the caret is under the (first) dangling label.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in range(N):
                x[i] = 1.0
            parpy.label("M")  # @dangling_label

    msg = "Found labels not associated with any statement"
    assert str(e.value) == loc(msg, "dangling_label", 'parpy.label("M")')


def test_label_on_non_parallelizable_statement():
    # Decoration time; the whole labelled statement is marked.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            if N > 0:  # @label_if
                x[0] = 1.0  # @label_if_end

    msg = "Cannot associate label with non-parallelizable statement"
    assert str(e.value) == loc_lines(msg, "label_if", "if", "label_if_end", "x[0] = 1.0")


def test_label_non_literal_argument():
    # Decoration time; the caret is under the argument.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label(N)  # @label_var
            for i in range(N):
                x[i] = 1.0

    msg = "First argument of parpy.label should be a string literal representing the label name"
    assert str(e.value) == loc(msg, "label_var", "N")


def test_label_two_arguments():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N", "M")  # @label_two
            for i in range(N):
                x[i] = 1.0

    assert str(e.value) == loc(
        "Label statement expects one argument", "label_two", 'parpy.label("N", "M")'
    )


def test_label_no_arguments():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label()  # @label_none
            for i in range(N):
                x[i] = 1.0

    assert str(e.value) == loc(
        "Label statement expects one argument", "label_none", "parpy.label()"
    )


# ===== Decoration time: expressions ============================================================


def test_comparison_chain():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, a, b, c):
            with parpy.gpu:
                if a < b < c:  # @cmp_chain
                    x[0] = 1.0

    assert str(e.value) == loc(
        "Sequences of comparisons are not supported", "cmp_chain", "a < b < c"
    )


def test_slice_with_step():
    # Decoration time; the caret is under the slice.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, y):
            parpy.label("N")
            y[:] = x[0:10:2]  # @slice_step

    assert str(e.value) == loc("Slices with a step size are not supported", "slice_step", "0:10:2")


def test_unary_plus():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = +x[1]  # @uadd

    assert str(e.value) == loc("Unsupported unary expression UAdd", "uadd", "+x[1]")


def test_matmul_operator():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = x[1] @ x[2]  # @matmul

    assert str(e.value) == loc("Unsupported binary operation: MatMult", "matmul", "x[1] @ x[2]")


def test_is_operator():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, a, b):
            with parpy.gpu:
                if a is b:  # @is_op
                    x[0] = 1.0

    assert str(e.value) == loc("Unsupported binary operation: Is", "is_op", "a is b")


def test_in_operator():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, a, b):
            with parpy.gpu:
                if a in b:  # @in_op
                    x[0] = 1.0

    assert str(e.value) == loc("Unsupported binary operation: In", "in_op", "a in b")


def test_unsupported_keyword_argument():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, y):
            parpy.label("N")
            y[0] = parpy.operators.sum(x[:], dim=0)  # @kwarg

    msg = "Unsupported keyword argument in call: dim"
    assert str(e.value) == loc(msg, "kwarg", "parpy.operators.sum(x[:], dim=0)")


def test_axis_not_literal():
    # Decoration time; the caret is under the axis value.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, y, k):
            parpy.label("N")
            y[:] = parpy.operators.sum(x[:, :], axis=k)  # @axis_var

    msg = "Expected integer literal value for 'axis' keyword argument"
    assert str(e.value) == loc(msg, "axis_var", "k")


def test_builtin_wrong_arg_count():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = parpy.operators.exp(x[1], x[2])  # @exp2

    msg = "Unsupported use of builtin exp with 2 args."
    assert str(e.value) == loc(msg, "exp2", "parpy.operators.exp(x[1], x[2])")


def test_builtin_as_value():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = parpy.operators.exp  # @builtin_value

    assert str(e.value) == loc(
        "Unsupported use of builtin exp", "builtin_value", "parpy.operators.exp"
    )


def test_unsupported_literal_none():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = None  # @lit_none

    assert str(e.value) == loc("Unsupported literal value None", "lit_none", "None")


def test_unsupported_literal_bytes():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = b"ab"  # @lit_bytes

    assert str(e.value) == loc("Unsupported literal value b'ab'", "lit_bytes", 'b"ab"')


def test_unsupported_expression_list():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = [1.0]  # @list_expr

    assert str(e.value) == loc("Unsupported expression: [1.0]", "list_expr", "[1.0]")


def test_attribute_is_unsupported():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = x.shape  # @attr_expr

    msg = (
        "Unsupported expression: x.shape.\nThe shape of an array is not available inside a jit "
        "function: pass the size as an argument (def f(x, N): ..., called as f(x, x.shape[0]))."
    )
    assert str(e.value) == loc(msg, "attr_expr", "x.shape")


def test_unsupported_parameter_annotation():
    # Decoration time.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, n: int):  # @bad_annot
            with parpy.gpu:
                x[0] = 1.0

    msg = (
        "Unsupported parameter type annotation\nAnnotate parameters with types from parpy.types: "
        "parpy.types.F32, parpy.types.I64, ... for scalars and "
        "parpy.types.pointer(parpy.types.F32) for arrays."
    )
    assert str(e.value) == loc(msg, "bad_annot", "int")


# ===== Call time: specialisation ================================================================


def test_no_parallelism():
    # Call time (specialisation); the error points at the `def` line (docs/differences.md,
    # Messages). The options name a label the function lacks: the message names both (a typo,
    # likely).
    @parpy.jit
    def f(x, N):  # @no_par
        parpy.label("M")
        for i in range(N):
            x[i] = 1.0

    with pytest.raises(RuntimeError) as e:
        f(f32(10), 10, opts=cpu(N=10))
    msg = (
        "The function f does not contain any parallelism, which is not allowed. The "
        "parallelization options name label 'N', which does not occur in f; its label is 'M' "
        "(a typo?). Specify the parallelism of the function's labels using the 'opts' keyword "
        "argument, as in f(..., opts=parpy.par({'M': parpy.threads(256)})). Alternatively, if "
        "you want to run sequential code on the GPU, wrap the code in a GPU context as "
        "'with parpy.gpu: ...'."
    )
    assert str(e.value) == loc(msg, "no_par", "def")


def test_no_parallelism_without_options():
    # Call time: labels, but no options for them.
    @parpy.jit
    def f(x, N):  # @no_par_opts
        parpy.label("rows")
        for i in range(N):
            parpy.label("cols")
            for j in range(N):
                x[i, j] = 1.0

    with pytest.raises(RuntimeError) as e:
        f(f32(4, 4), 4, opts=cpu())
    msg = (
        "The function f does not contain any parallelism, which is not allowed. Its labels "
        "'rows', 'cols' need a parallelization: specify it using the 'opts' keyword argument, "
        "as in f(..., opts=parpy.par({'rows': parpy.threads(256)})). Alternatively, if you want "
        "to run sequential code on the GPU, wrap the code in a GPU context as "
        "'with parpy.gpu: ...'."
    )
    assert str(e.value) == loc(msg, "no_par_opts", "def")
    with pytest.raises(RuntimeError) as e:
        f(f32(4, 4), 4, opts=cpu(row=4, col=4))
    assert "options name labels 'col', 'row', which do not occur in f; its labels are 'rows', 'cols'" in str(e.value)


def test_assign_to_scalar_parameter():
    # Call time (specialisation).
    @parpy.jit
    def f(x, N):
        with parpy.gpu:
            N = 5  # @assign_scalar
            x[0] = N

    with pytest.raises(RuntimeError) as e:
        f(f32(10), 10, opts=cpu())
    msg = "Assigning to a scalar parameter is not allowed"
    assert str(e.value) == loc(msg, "assign_scalar", "N = 5")


def test_augassign_to_scalar_parameter():
    # Call time (specialisation).
    @parpy.jit
    def f(x, N):
        with parpy.gpu:
            N += 1  # @augassign_scalar
            x[0] = N

    with pytest.raises(RuntimeError) as e:
        f(f32(10), 10, opts=cpu())
    msg = "Assigning to a scalar parameter is not allowed"
    assert str(e.value) == loc(msg, "augassign_scalar", "N += 1")


def test_wrong_argument_count_at_call():
    # Call time (specialisation); no location.
    @parpy.jit
    def f(x, N):
        with parpy.gpu:
            x[0] = 1.0

    with pytest.raises(TypeError) as e:
        f(f32(10), opts=cpu())
    assert str(e.value) == "Function f expected 2 arguments but received 1"


def test_return_in_main_function():
    # Call time (the return check after inlining).
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = 1.0
        return x[0]  # @main_return

    with pytest.raises(RuntimeError) as e:
        f(f32(10), opts=cpu())
    msg = "The called function f cannot return a value"
    assert str(e.value) == loc(msg, "main_return", "return x[0]")


# ===== Call time: names and types (docs/language.md, Types; Scoping) ============================


def test_unknown_variable():
    # Call time (type checking).
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = z  # @unknown_var  # noqa: F821

    with pytest.raises(NameError) as e:
        f(f32(10), opts=cpu())
    assert str(e.value) == loc("Found reference to unknown variable z", "unknown_var", "z")


def test_loop_variable_not_visible_after_loop():
    # Call time (type checking): definitions in a for body end with the loop
    # (docs/language.md, Scoping).
    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            t = x[i]
        y[0] = t  # @after_loop

    with pytest.raises(NameError) as e:
        f(f32(10), f32(1), 10, opts=cpu(N=10))
    assert str(e.value) == loc("Found reference to unknown variable t", "after_loop", "t", nth=0)


def test_module_global_non_constant_is_unknown():
    # Call time: only int/float/bool globals are captured (docs/language.md, Names).
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = SRC  # @global_list

    with pytest.raises(NameError) as e:
        f(f32(10), opts=cpu())
    assert str(e.value) == loc("Found reference to unknown variable SRC", "global_list", "SRC")


def test_incompatible_element_types():
    # Call time (type checking): int32 element + float32 element.
    @parpy.jit
    def f(a, x, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = a[i] + x[i]  # @incompat

    with pytest.raises(TypeError) as e:
        f(np.zeros(10, dtype=np.int32), f32(10), f32(10), 10, opts=cpu(N=10))
    msg = (
        "Incompatible element types int32 and float32.\nValues of different kinds (bool, signed "
        "integer, unsigned integer, float) do not mix: convert one operand explicitly, as in "
        "parpy.operators.float32(...)."
    )
    assert str(e.value) == loc(msg, "incompat", "a[i] + x[i]")


def test_index_out_of_range():
    # Call time (type checking); the caret is under the index.
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[10] = 1.0  # @index_oob

    with pytest.raises(TypeError) as e:
        f(f32(10), opts=cpu())
    assert str(e.value) == loc("Index 10 out of range for shape 10", "index_oob", "10")


def test_too_many_indices():
    # Call time (type checking).
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[1, 2, 3] = 1.0  # @too_many_idx

    with pytest.raises(TypeError) as e:
        f(f32(4, 5), opts=cpu())
    msg = "Indexing with 3 dimensions on tensor of shape [4,5]"
    assert str(e.value) == loc(msg, "too_many_idx", "x[1, 2, 3]")


# ===== Call time: slices and reductions (docs/language.md) ======================================


def test_slice_outside_assignment():
    # Call time (slice lowering).
    @parpy.jit
    def f(x, N):
        with parpy.gpu:
            if x[:] > 0.0:  # @slice_cond
                x[0] = 1.0

    with pytest.raises(RuntimeError) as e:
        f(f32(10), 10, opts=cpu())
    msg = "Slice expressions are only allowed in assignment statements."
    assert str(e.value) == loc(msg, "slice_cond", ":")


def test_slice_bounds_out_of_range():
    # Call time (slice lowering).
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[:] = x[0:12]  # @slice_oob

    with pytest.raises(RuntimeError) as e:
        f(f32(10), f32(12), opts=cpu(N=10))
    msg = "Slice dimensions 0 and 12 out of range for shape 10"
    assert str(e.value) == loc(msg, "slice_oob", "0:12")


def test_slice_empty():
    # Call time (slice lowering).
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[:] = x[5:5]  # @slice_empty

    with pytest.raises(RuntimeError) as e:
        f(f32(10), f32(10), opts=cpu(N=10))
    msg = "Lower-bound 5 of slice must be less than its upper-bound 5."
    assert str(e.value) == loc(msg, "slice_empty", "5:5")


def test_slice_bound_not_fixed():
    # Call time (slice lowering).
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[0 : x[0]] = 1.0  # @slice_var

    with pytest.raises(RuntimeError) as e:
        f(f32(10), f32(10), opts=cpu(N=10))
    assert str(e.value) == loc("Upper-bound of slice must be fixed.", "slice_var", "x[0]")


def test_reduction_in_unsupported_position():
    # Call time (slice lowering): a reduction in an expression is lifted into a statement of its own
    # (test_reductions_in_expressions.py), except in a while condition, which is evaluated again in
    # every iteration.
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        for i in range(10):
            y[i] = x[i]
        while parpy.operators.sum(x[:]) > 100.0:  # @red_pos
            x[0] = x[0] - 1.0

    with pytest.raises(RuntimeError) as e:
        f(f32(10), f32(10), opts=cpu(N=10))
    msg = (
        "Found reduction operation sum in unsupported position.\nReduce operations must be used "
        "on a slice expression, containing the right-hand side of an assigment."
    )
    assert str(e.value) == loc(msg, "red_pos", "parpy.operators.sum(x[:])")


def test_reduction_without_slices():
    # Call time: sum(x) without a slice gives the same error.
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[0] = parpy.operators.sum(x)  # @red_noslice

    with pytest.raises(RuntimeError) as e:
        f(f32(10), f32(1), opts=cpu(N=10))
    msg = (
        "Found reduction operation sum in unsupported position.\nReduce operations must be used "
        "on a slice expression, containing the right-hand side of an assigment."
    )
    assert str(e.value) == loc(msg, "red_noslice", "parpy.operators.sum(x)")


def test_axis_out_of_range():
    # Call time (slice lowering).
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        parpy.label("M")
        y[:] = parpy.operators.sum(x[:, :], axis=2)  # @axis_oob

    with pytest.raises(TypeError) as e:
        f(f32(4, 5), f32(4), opts=cpu(N=4, M=5))
    msg = "Invalid axis value 2 for tensor of 2 dimensions."
    assert str(e.value) == loc(msg, "axis_oob", "parpy.operators.sum(x[:, :], axis=2)")


def test_full_reduction_needs_scalar_target():
    # Call time (slice lowering); the whole statement is marked.
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[:] = parpy.operators.sum(x[:, :])  # @red_all

    with pytest.raises(RuntimeError) as e:
        f(f32(4, 5), f32(4), opts=cpu(N=4))
    msg = "When reducing along all dimensions, the left-hand side expression must be a scalar."
    assert str(e.value) == loc(msg, "red_all", "y[:] = parpy.operators.sum(x[:, :])")


def test_reduction_loop_with_two_statements():
    # Call time (reduction check); the whole loop is marked.
    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):  # @red_two
            y[0] += x[i]
            y[1] += x[i]  # @red_two_end

    o = parpy.par({"N": parpy.threads(10).reduce()})
    o.backend = parpy.CompileBackend.Cpu
    with pytest.raises(RuntimeError) as e:
        f(f32(10), f32(2), 10, opts=o)
    msg = "Reduction for-loop must contain a single statement."
    assert str(e.value) == loc_lines(msg, "red_two", "for", "red_two_end", "y[1] += x[i]")


def test_label_conflict():
    # Call time (resolving labels to LoopPar); the whole loop is marked.
    @parpy.jit
    def f(x, N):
        parpy.label("a")
        parpy.label("b")
        for i in range(N):  # @label_conflict
            x[i] = 1.0  # @label_conflict_end

    with pytest.raises(RuntimeError) as e:
        f(f32(10), 10, opts=cpu(a=10, b=5))
    msg = (
        "The labels associated with this statement specify conflicting number of threads in "
        "parallelization.\nLabels of this statement: a, b"
    )
    assert str(e.value) == loc_lines(
        msg, "label_conflict", "for", "label_conflict_end", "x[i] = 1.0"
    )


# ===== Robustness: no input crashes the process =================================================

_STMTS = [
    "y[{i}] = x[{i}] {op} {e}",
    "y[{i}] {aop}= {e}",
    "t = {e}\n{ind}y[{i}] = t",
    "if {e} {cmp} {e}:\n{ind}    y[{i}] = {e}\n{ind}else:\n{ind}    y[0] = {e}",
    "while {e} {cmp} {e}:\n{ind}    y[{i}] = {e}",
    "y[:] = x[:] {op} {e}",
    "y[0] = parpy.operators.{red}(x[{sl}])",
    "y[{sl}] = parpy.operators.{red}(x[:, :], axis={ax})",
    "y[{i}] = parpy.operators.{un}({e})",
    "y[{i}] = parpy.operators.{bi}({e}, {e})",
    "y[{i}] = {e} if {e} {cmp} {e} else {e}",
    "{junk}",
    "parpy.label('N')\n{ind}y[:] = {e}",
    "parpy.label('N')\n{ind}for k in range({lo}, {hi}, {st}):\n{ind}    y[{i}] += {e}",
    "for k in range({hi}):\n{ind}    parpy.label('N')\n{ind}    y[k] = {e}",
    "with parpy.gpu:\n{ind}    y[{i}] = {e}",
    "q[{i}] = {e}",
    "y[{i}] = helper_fn({e})",
]
_EXPRS = [
    "x[i]",
    "x[0]",
    "x[-1]",
    "x[10]",
    "x[i, i]",
    "x[i][0]",
    "y[N]",
    "N",
    "1",
    "1.5",
    "-2",
    "True",
    "x[i] * 2",
    "2.0 * x[i]",
    "z",
    "x",
    "x[:]",
    "x[1:3]",
    "x[3:1]",
    "x[i:]",
    "i",
    "a[i]",
    "a[0]",
    "b[0]",
    "d['k']",
    "d['v'][0]",
    "d['missing']",
    "d[0]",
    "not x[i]",
    "~a[i]",
    "-x[i]",
    "x[i] ** 2.0",
    "a[i] // 2",
    "a[i] % 0",
    "x[i] // 0.0",
    "1 / 0",
    "x[i] and x[0]",
    "b[0] or b[1]",
    "parpy.operators.inf",
    "-parpy.operators.inf",
    "parpy.operators.float32(a[i])",
    "parpy.operators.int16(x[i])",
    "parpy.operators.sum(x[:])",
    "x[a[i]]",
    "x[x[i]]",
    "x['k']",
    "(1, 2)",
    "'s'",
    "x[i] < x[0]",
    "N + 1",
    "N * N",
    "parpy.operators.max(x[i], a[i])",
    "parpy.operators.atan2(x[i], 1)",
    "9999999999999999999999",
    "0x7fffffffffffffff",
]
_JUNK = [
    "pass",
    "while N > 0:\n{ind}    break",
    "while N > 0:\n{ind}    continue",
    "del x",
    "assert x",
    "raise ValueError",
    "import os",
    "global g",
    "x[0]: int = 1",
    "lambda: 0",
    "[i for i in x]",
    "print(x)",
    "return",
    "return x[0]",
    "a, b = 1, 2",
    "x[0] = x[1] = 2.0",
    "parpy.label(N)",
    "parpy.label('N', 'M')",
    "parpy.label('N')",
    "parpy.gpu",
    "with parpy.gpu as g:\n{ind}    pass",
    "y @= x",
    "for k in x:\n{ind}    y[0] = 1.0",
    "for k in range(0, N, 0):\n{ind}    y[0] = 1.0",
    "for k in range():\n{ind}    y[0] = 1.0",
    "while True:\n{ind}    pass\n{ind}else:\n{ind}    pass",
    "y[0] = 1 < 2 < 3",
    "y[0] = x[::2]",
    "y[0] = +x[0]",
    "y[0] = x is None",
    "y[0] = None",
    "y[0] = parpy.operators.exp(x[0], x[1])",
    "y[0] = parpy.operators.sum(x[:], axis=k)",
    "y[0] = parpy.operators.sum(x[:], foo=1)",
    "y[0] = x.shape",
    "y[0] = f'{{x}}'",
    "helper_fn(x, y)",
    "unknown_fn(x)",
    "helper_stmt(y)",
    "helper_stmt(y, N, N)",
]
_SAFE_EXPRS = [
    "x[i]",
    "x[0]",
    "x[-1]",
    "2.0 * x[i]",
    "x[i] * 2",
    "-x[i]",
    "1.5",
    "N",
    "i",
    "parpy.operators.exp(x[i])",
    "parpy.operators.max(x[i], x[0])",
    "x[i] if x[0] < x[1] else 0.5",
    "parpy.operators.float32(a[i])",
    "x[i] / 3",
    "x[(i + 1) % N]",
    "a[i] + 1",
    "y[i] * x[i]",
]
_SAFE_STMTS = [
    "y[{i}] = {e}",
    "y[{i}] += {e}",
    "t = {e}\n{ind}y[{i}] = t",
    "if {e} < {e}:\n{ind}    y[{i}] = {e}\n{ind}else:\n{ind}    y[{i}] = {e}",
    "parpy.label('N')\n{ind}y[:] = x[:] * 2.0",
    "y[0] = parpy.operators.{red}(x[:])",
    "for k in range({hi}):\n{ind}    y[k] = {e}",
]
_OPS = ["+", "-", "*", "/", "//", "%", "**", "&", "|", "^", "<<", ">>", "and", "or"]
_CMPS = ["<", "<=", "==", "!=", ">", ">="]
_REDS = ["sum", "prod", "min", "max"]
_UNS = ["exp", "log", "cos", "sin", "sqrt", "tanh", "abs", "float16", "uint8", "int64"]
_BIS = ["min", "max", "atan2"]
_INDICES = ["i", "0", "-1", "10", "N", "i + 1", "N - 1", "a[i]", "x[i]", "1.5", "True", ":", "0:3"]
_SLICES = [":", "0:3", "3:0", ":, :", "1:", ":-1", ":100", "-3:", "0:N", "x[0]:"]


def _gen_body(rng, ind, safe):
    lines = []
    stmts, exprs = (_SAFE_STMTS, _SAFE_EXPRS) if safe else (_STMTS, _EXPRS)
    for _ in range(rng.randint(1, 3)):
        tmpl = rng.choice(stmts)
        fill = {
            "i": rng.choice(["i", "0", "N - 1", "i // 2"] if safe else _INDICES),
            "op": rng.choice(_OPS),
            "aop": rng.choice(_OPS[:-2]),
            "cmp": rng.choice(_CMPS),
            "e": rng.choice(_EXPRS),
            "red": rng.choice(_REDS),
            "sl": rng.choice(_SLICES),
            "ax": rng.choice(["0", "1", "-1", "2", "-3"]),
            "un": rng.choice(_UNS),
            "bi": rng.choice(_BIS),
            "lo": rng.choice(["0", "N", "-1", "a[0]"]),
            "hi": rng.choice(["N", "3", "N - 1"] if safe else ["N", "10", "0", "x[0]", "N + 1"]),
            "st": rng.choice(["1", "-1", "2", "0", "N"]),
            "ind": ind,
            "junk": rng.choice(_JUNK).replace("{ind}", ind),
        }
        # Substitute expressions one at a time so repeated {e} get different values.
        s = tmpl
        while "{e}" in s:
            e = rng.choice(exprs)
            s = s.replace("{e}", f"({e})" if " " in e else e, 1)
        lines.append(s.format(**fill))
    return "\n".join(ind + ln for ln in lines)


_FUZZ_DRIVER = r"""
import importlib.util, os, sys
import numpy as np
import parpy

path, count = sys.argv[1], int(sys.argv[2])
spec = importlib.util.spec_from_file_location("fuzzmod", path)
mod = importlib.util.module_from_spec(spec)
sys.modules["fuzzmod"] = mod
spec.loader.exec_module(mod)
opts = parpy.par({"N": parpy.threads(10)})
opts.backend = parpy.CompileBackend.Cpu
args_sets = [
    lambda: [np.ones(10, np.float32), np.zeros(10, np.float32), np.arange(10, dtype=np.int32),
             np.ones(3, np.bool_), {"k": 1, "v": np.ones(4, np.float64)}, 10],
    lambda: [np.ones((4, 5), np.float64), np.zeros((4, 5), np.float64),
             np.arange(10, dtype=np.int64), np.ones(3, np.bool_), {"k": 2.5}, 4],
    lambda: [np.ones(10, np.float16), np.zeros(3, np.float16), np.arange(10, dtype=np.uint8),
             np.ones(3, np.bool_), {}, 0],
]
outcomes = {"ok": 0, "RuntimeError": 0, "TypeError": 0, "NameError": 0, "IndexError": 0}
for n in range(count):
    try:
        f = mod.make(n)
    except (RuntimeError, TypeError, NameError, IndexError) as e:
        outcomes[type(e).__name__] += 1
        if os.environ.get("FUZZ_VERBOSE"):
            print("decorate", type(e).__name__, str(e).split("\n")[0])
        continue
    for mk in args_sets:
        try:
            parpy.print_compiled(f, mk(), opts)
            outcomes["ok"] += 1
        except (RuntimeError, TypeError, NameError, IndexError) as e:
            assert not str(e).startswith("Internal error"), (n, str(e))
            outcomes[type(e).__name__] += 1
            if os.environ.get("FUZZ_VERBOSE"):
                print(type(e).__name__, str(e).split("\n")[0])
print(outcomes)
"""


def _fuzz_module(rng, n_funcs):
    parts = [
        "import parpy\n\n",
        "@parpy.jit\ndef helper_fn(v: parpy.types.F32) -> parpy.types.F32:\n    return v * 2.0\n\n",
        (
            "@parpy.jit\ndef helper_stmt(y, N):\n    parpy.label('N')\n    for i in range(N):\n"
            "        y[i] = 1.0\n\n"
        ),
        "def make(n):\n    return _FUNS[n]()\n\n",
        "_FUNS = []\n\n",
    ]
    for n in range(n_funcs):
        in_loop = rng.random() < 0.5
        body = _gen_body(rng, " " * (12 if in_loop else 8), safe=rng.random() < 0.4)
        fn = (
            f"def _make{n}():\n"
            f"    @parpy.jit\n"
            f"    def f{n}(x, y, a, b, d, N):\n"
            f"        parpy.label('N')\n"
            f"        for i in range(N):\n"
            f"            t0 = i\n"
            f"{body}\n"
            f"    return f{n}\n"
        )
        parts.append(fn + f"\n_FUNS.append(_make{n})\n\n")
    return "".join(parts)


@pytest.mark.parametrize("seed", range(6))
def test_no_input_crashes_the_process(seed, tmp_path):
    rng = random.Random(seed)
    src = _fuzz_module(rng, 50)
    mod = tmp_path / f"fuzz_{seed}.py"
    mod.write_text(src)
    compile(src, str(mod), "exec")  # the generator only produces valid Python
    driver = tmp_path / "driver.py"
    driver.write_text(_FUZZ_DRIVER)
    env = dict(os.environ)
    env["PYTHONPATH"] = (
        os.path.dirname(os.path.dirname(parpy.__file__)) + os.pathsep + env.get("PYTHONPATH", "")
    )
    r = subprocess.run(
        [sys.executable, str(driver), str(mod), "50"],
        capture_output=True, text=True, timeout=child_timeout(300), env=env, check=False,
    )  # fmt: skip
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n{mod}"
    # Both accepted and rejected programs occurred.
    counts = eval(r.stdout.strip().splitlines()[-1])
    assert counts["ok"] > 0 and counts["RuntimeError"] + counts["TypeError"] > 0, counts


# ===== Locations of a module-level function (column offset 0, comment after the decorator) ======


@parpy.jit
# A comment between the decorator and the definition.
def _module_level(x, N):  # @mod_def
    """A docstring is not code."""

    with parpy.gpu:
        x[0] = w + 1.0  # @mod_unknown  # noqa: F821


def test_module_level_function_location():
    # Call time (type checking).
    with pytest.raises(NameError) as e:
        _module_level(f32(10), 10, opts=cpu())
    assert str(e.value) == loc("Found reference to unknown variable w", "mod_unknown", "w")


@parpy.jit
def _module_level_seq(x, N):  # @mod_seq_def
    for i in range(N):
        x[i] = 1.0


def test_module_level_function_no_parallelism_points_at_def():
    # Call time (specialisation): the `def` line, carets under `def` at column 0
    # (docs/differences.md, Messages).
    with pytest.raises(RuntimeError) as e:
        _module_level_seq(f32(10), 10, opts=cpu(N=10))
    msg = (
        "The function _module_level_seq does not contain any parallelism, which is not allowed. "
        "Try adding a label ('parpy.label') in front of a parallelizable statement, and specify "
        "its parallelism using the 'opts' keyword argument, as in "
        "_module_level_seq(..., opts=parpy.par({'N': parpy.threads(256)})). Alternatively, if "
        "you want to run sequential code on the GPU, wrap the code in a GPU context as "
        "'with parpy.gpu: ...'."
    )
    assert str(e.value) == loc(msg, "mod_seq_def", "def")
