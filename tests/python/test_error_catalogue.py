# The jit bodies below are deliberately invalid Python-subset code.
# ruff: noqa: F841
"""The original library's error catalogue: every message, where it is tested or why the Cpu
backend cannot produce it. Tests not listed elsewhere are in this file (exact text, line and
caret, found through ``# @tag`` comments as in test_errors.py).

Abbreviations: E = test_errors.py, F = test_functions.py, X = test_externals.py, T = test_types.py,
P = test_programs.py, A = test_arguments.py, O = test_api_objects.py, C = this file,
CPP = tests/cpp/test_passes.cpp (text only).

Decoration time
  Unsupported unary expression <op> ............ E::test_unary_plus
  Unsupported binary operation: <op> ........... E::test_matmul_operator, test_is_operator, test_in_operator
  Unsupported boolean operator: <op> ........... unreachable: Python's ast.BoolOp has only And/Or, both supported
  Unknown built-in operator <expr> ............. unreachable: builtins are matched against a fixed table of all
                                                 parpy.operators objects, each mapped to an IR node; a value
                                                 that matches none is a variable (Name) or "Unsupported expression"
  Failed to identify built-in operator ... ..... unreachable: a failed evaluation means "not a builtin"
                                                 (exceptions from eval/== are caught), never an error
  Unsupported parameter type annotation ........ E::test_unsupported_parameter_annotation
  Expected integer literal value for 'axis' .... E::test_axis_not_literal
  Unsupported keyword argument in call: <kw> ... E::test_unsupported_keyword_argument, C::test_axis_keyword_on_user_function
                                                 (a repeated `axis` is a Python SyntaxError, never reaches us)
  Unsupported literal value <v> ................ E::test_unsupported_literal_none, test_unsupported_literal_bytes
  Sequences of comparisons are not supported ... E::test_comparison_chain
  Slices with a step size are not supported .... E::test_slice_with_step
  Call to unknown function <f> ................. E::test_python_builtin_min_is_unknown; a name not bound at
                                                 decoration is reported at the first call (it may be a helper
                                                 defined later): E::test_unknown_function_statement,
                                                 test_unknown_function_expression; F::test_unknown_function_at_first_call
  Unsupported call target type ................. C::test_unsupported_call_target_in_expression, ..._in_statement
  Unsupported expression: <expr> ............... E::test_unsupported_expression_list, test_attribute_is_unsupported
  Range step size must be an integer literal ... E::test_range_step_not_literal
  Range step size must be non-zero ............. E::test_range_step_zero
  First argument of parpy.label should be ... .. E::test_label_non_literal_argument
  Label statement expects one argument ......... E::test_label_two_arguments, test_label_no_arguments
  Unsupported expression statement ............. E::test_unsupported_expression_statement
  For-loops must assign to a single variable ... E::test_for_tuple_target
  For-loop must iterate using the range builtin  E::test_loop_not_over_range
  Invalid number of arguments passed to range .. E::test_range_argument_count
  For-loops with an else-clause ... ............ E::test_for_else
  Cannot have more than one target of assignment E::test_more_than_one_target
  Unsupported form of assignment ............... E::test_tuple_target
  While-loops with an else-clause ... .......... E::test_while_else
  With statements using the 'as' keyword ... ... E::test_with_gpu_as
  With statements are only supported for 'parpy.gpu'  E::test_with_other_context
  With statements using multiple items ... ..... E::test_with_multiple_items
  Unexpected shape of the AST definition. ... .. C::test_lambda_is_not_a_function_definition
  Empty return statements are not supported .... E::test_empty_return
  Unsupported statement: <stmt> ................ E::test_unsupported_statement_pass, test_unsupported_statement_break
  NameError Found reference to unknown variable  E::test_unknown_variable, test_loop_variable_not_visible_after_loop,
                                                 test_module_global_non_constant_is_unknown, test_module_level_function_location
  Cannot associate label with non-parallelizable statement  E::test_label_on_non_parallelizable_statement
  Found labels not associated with any statement E::test_label_without_statement
  Function <f> expected n arguments, but received m.  E::test_statement_call_wrong_arg_count (also F::test_wrong_argument_count)
  Cannot inline call to external function <f> .. X::test_statement_call_to_external
  Reference to unknown function <f>. ........... unreachable: every call name is resolved when the caller is
                                                 decorated (or, if not bound then, at its first call); an unknown
                                                 one is already "Call to unknown function <f>"
  External declaration parameters must be annotated with types.  X::test_unannotated_external_parameter,
                                                 test_external_parameter_with_python_type
  Unsupported return type annotation on external function  X::test_missing_external_return_type
  Backend/target errors of externals ........... X::test_cuda_host_external, test_metal_parallel_host_external,
                                                 test_auto_backend_external

Call time
  Python side (calls, backends, buffers, arguments):
    Missing required keyword argument opts ..... not applicable: opts is optional (docs/differences.md;
                                                 P::test_opts_omitted_uses_defaults)
    opts of the wrong type (TypeError) ......... P::test_wrong_opts_type
    Received unsupported keyword arguments ..... P::test_unknown_keyword
    Found no enabled GPU backends / Specified backend ... is not available  O::test_resolve, test_resolve_none_available
    Found multiple supported GPU backends ...... not applicable: Auto takes the first enabled backend
                                                 (docs/differences.md)
    Argument/Dictionary argument errors ........ A::test_argument_errors, P::test_wrong_argument_count
    Argument <i> is a CUDA array ... ........... C::test_cuda_array_on_cpu_backend
    Buffer errors .............................. test_buffer.py, O::test_data_type_errors
  Expected <f> to be a function definition, but it is an external function declaration  C::test_print_compiled_of_external
  ...does not contain any parallelism... ....... E::test_no_parallelism, test_module_level_function_no_parallelism_points_at_def
  TypeError Function <f> expected n arguments but received m  E::test_wrong_argument_count_at_call, P::test_wrong_argument_count
  TypeError Argument <repr> has unsupported type <type>  unreachable: argument conversion rejects every
                                                 unsupported kind first with RuntimeError "Argument #i has unsupported
                                                 type <type>" (A::test_argument_errors); specialisation sees only
                                                 converted arguments
  Extracting scalar value failed: <err> ........ unreachable: scalars are extracted during argument conversion; an
                                                 int that does not fit is "Argument #i is an integer that does not fit
                                                 in 64 bits" (A::test_argument_errors)
  Invalid scalar of element type <sz> .......... unreachable: 0-dim arrays are validated at conversion ("has unsupported
                                                 element type"); every accepted dtype has a scalar form
  Assigning to a scalar parameter is not allowed E::test_assign_to_scalar_parameter, test_augassign_to_scalar_parameter
  Call to unknown function <f> (other backend) . X::test_external_of_other_backend
  TypeErrors:
    Incompatible element types ................. E::test_incompatible_element_types
    Expected element of type X, found incompatible element type y.  C::test_expected_element_of_type_in_assignment,
                                                 F::test_incompatible_argument_type
    Expected element of scalar type X, but found type T.  C::test_expected_scalar_element_in_assignment,
                                                 test_expected_scalar_int_loop_bound
    Found incompatible shapes ... .............. C::test_incompatible_shapes
    Cannot coerce incompatible tensor types .... C::test_cannot_coerce_tensor_types
    Cannot coerce non-literal tuple value ...... unreachable: a tuple outside an index is rejected first with "Tuples
                                                 are not allowed outside of indexing" (C::test_tuple_outside_indexing)
    Cannot coerce expression e of type A to type B  unreachable: our coercions of scalars of another kind report the
                                                 original's text "Expected element of type X, found incompatible ..."
    Cannot unify incompatible tensor types A and B.  unreachable: tensors are never unified; conditional expressions
                                                 reject tensors ("Unsupported type T of conditional expression") and
                                                 pointer parameters report "Cannot unify incompatible types"
    Cannot unify incompatible types A and B .... F::test_pointer_argument_of_wrong_element_type (inner message)
    Invalid axis value n for tensor of d dimensions.  E::test_axis_out_of_range
    Unexpected argument of type T passed to tensor reduction builtin  C::test_reduction_of_bool_tensor
    Unexpected type T of unary builtin (expected float)  C::test_unary_builtin_on_int
    Expected scalar but found non-scalar tensor  C::test_unary_builtin_on_array
    Unexpected type T of tanh builtin (expected float)  C::test_tanh_on_int
    Unexpected type T of abs builtin ........... C::test_abs_on_bool
    Expected scalar type in type conversion, found T  C::test_conversion_of_array
    Operation atan2 is only supported for floats.  C::test_atan2_on_ints
    Unexpected type T of builtin ............... C::test_max_on_bools
    Unsupported use of builtin f with n args. .. E::test_builtin_wrong_arg_count
    Invalid type T of unary minus .............. C::test_unary_minus_on_bool
    Invalid type T of boolean negation ......... C::test_not_on_float
    Invalid type T of bitwise negation ......... C::test_invert_on_float
    Binary operator not supported for non-scalar tensors  C::test_binary_operator_on_array
    Invalid type T of arithmetic operation ..... C::test_arithmetic_on_bools
    Invalid type T of integer arithmetic operation  C::test_integer_arithmetic_on_bools
    Invalid type T of floating-point arithmetic operation  C::test_pow_on_f16
    Invalid type T of boolean operation ........ C::test_boolean_operation_on_floats
    Invalid type T of bitwise operation ........ C::test_bitwise_operation_on_floats
    Invalid type T of boolean comparison operation  unreachable: comparisons take any two unifiable
                                                 scalars (bools included); non-unifiable operands fail first with
                                                 "Incompatible element types", non-scalars with "Binary operator not
                                                 supported for non-scalar tensors"
    Invalid type T of comparison operation ..... unreachable: same reason
    Lower-bound / Upper-bound of slice must be fixed.  C::test_lower_bound_not_fixed, E::test_slice_bound_not_fixed
    Slice dimensions lo and hi out of range .... E::test_slice_bounds_out_of_range
    Lower-bound lo of slice must be less than its upper-bound hi.  E::test_slice_empty
    Index v out of range for shape n ........... E::test_index_out_of_range, T::test_folded_pow_index_is_range_checked
    Indexing with n dimensions on tensor of shape [..]  E::test_too_many_indices
    Subscript operation on unsupported target e  C::test_subscript_on_scalar
    Unsupported index of type T in subscript operation  C::test_float_index
    Variable x has unknown type ................ C::test_variable_of_unknown_type
    If expression has condition of invalid type T  C::test_if_condition_of_invalid_type,
                                                 test_conditional_expression_condition_not_bool
    Field k not present in type T .............. C::test_missing_dict_field
    Cannot index using a string on non-dict expression  C::test_string_index_on_array
    Unsupported type T of conditional expression  C::test_conditional_expression_of_tensors
    Found incompatible types in function call:\n...  F::test_incompatible_argument_type, X::test_external_argument_type
    Unknown return type of function f .......... unreachable: a helper without return statements has result type
                                                 void, so its result type is always known
    Parameters ... of function f have unknown type.  F::test_unannotated_parameters (no location)
    Found conflicting types of return statements  F::test_conflicting_return_types
    Failed to find neutral element ... ......... unreachable: sum/prod/min/max have neutral elements for every numeric
                                                 type; bool and non-scalar element types are rejected first with
                                                 "Unexpected argument of type T passed to tensor reduction builtin"
  RuntimeErrors from slice lowering and the return check:
    Slice expressions are only allowed in assignment statements.  E::test_slice_outside_assignment
    Target of slice must be a variable. ........ C::test_slice_target_not_a_variable
    Subscript operations containing slices must refer to all dimensions ...  C::test_slice_subscript_missing_dimensions
    Slice statements cannot have more slice dimensions in the right-hand side ...  C::test_more_slices_on_the_right
    Expected zero or n labels, found k ......... C::test_slice_statement_label_count
    Found reduction operation <f> in unsupported position. ...  E::test_reduction_in_unsupported_position,
                                                 test_reduction_without_slices
    When reducing along one dimension, ... ..... C::test_axis_reduction_slice_count
    When reducing along all dimensions, ... .... E::test_full_reduction_needs_scalar_target
    Expected zero or one labels for full reduction operation, found k  C::test_full_reduction_label_count
    Cannot apply reduction on empty dimension .. unreachable: every slice must be non-empty ("Lower-bound lo of slice
                                                 must be less than its upper-bound hi."), so a reduced extent is >= 1
    Target of slice subscript operation has invalid type.  C::test_slice_target_of_invalid_type
    Invalid type of slice operation: T ......... unreachable: a slice on a non-array target is reported first as
                                                 "Target of slice subscript operation has invalid type."
    Invalid reduction operation f .............. unreachable: the front end maps only sum/prod/min/max to reductions
    Invalid number of arguments of builtin ..... unreachable: argument counts are checked at decoration ("Unsupported
                                                 use of builtin f with n args.")
    Reduction operation must be applied to the whole right-hand side ...  unreachable: a reduction that is not the whole
                                                 right-hand side gets the message "Found reduction operation
                                                 <f> in unsupported position..." (E::test_reduction_in_unsupported_position)
    Received too many indices (n indices for a tensor of d dimensions).  C::test_slice_subscript_too_many_indices
    The called function <main> cannot return a value  E::test_return_in_main_function

IR translation and GPU lowering
  Encountered standalone string type ... ....... unreachable: type checking rejects a string first with "String literal
                                                 may only be used in dict lookups" (C::test_string_literal_outside_dict_lookup)
  Encountered standalone tuple type ... ........ unreachable: "Tuples are not allowed outside of indexing" first
  Encountered unknown dictionary type ... ...... T::test_dict_parameter_as_value
  Encountered unknown type when translating to IR AST  unreachable: type checking gives every expression a type or
                                                 fails ("Variable x has unknown type")
  String literal may only be used in dict lookups  C::test_string_literal_outside_dict_lookup
  Slices are not allowed outside of indexing ... unreachable: Python's grammar allows a slice only directly inside a
                                                 subscript, where the front end converts it as an index
  Tuples are not allowed outside of indexing ... C::test_tuple_outside_indexing
  Invalid builtin literal value / unary operator / binary operator  unreachable: the front end maps each builtin
                                                 directly to an IR literal/operator node; there is no later builtin table
  Builtin f does not expect n arguments ........ unreachable: "Unsupported use of builtin f with n args." at decoration
  Invalid dimensions. Indexing into tensor of shape ... using n indices  unreachable: type checking reports "Indexing
                                                 with n dimensions on tensor of shape [..]" first
  Indexing into non-tensor target ... .......... unreachable: "Subscript operation on unsupported target e" first
  Found unsupported function call to f ......... unreachable: calls are resolved at decoration and type checking
                                                 ("Call to unknown function f")
  Found label without associated statement ..... unreachable: "Found labels not associated with any statement" at decoration
  label conflict ............................... E::test_label_conflict
  tpb errors:
    Found inconsistent threads per block a and b among labels ...  C::test_inconsistent_tpb_among_labels
    Found inconsistent requests on the number of threads per block / number of threads per block: a != b
                                                 unreachable on Cpu: GPU grid mapping (src/gpu); Cpu ignores tpb
                                                 (docs/language.md, Parallel semantics)
  parallel-structure and branch errors ......... unreachable on Cpu: GPU kernel extraction only (src/gpu); OpenMP
                                                 needs no uniform structure
  Reductions:
    Reduction for-loop must contain a single statement.  E::test_reduction_loop_with_two_statements
    Reduction for-loop statement must be an assignment.  C::test_reduction_statement_not_an_assignment
    RHS of reduction statement should be a binary operation.  C::test_reduction_rhs_not_binary
    Invalid reduction. Left-hand side of binary operation L is not equal ...  C::test_reduction_lhs_mismatch
    Parallel reductions not supported for operator <op>.  C::test_reduction_operator_not_supported
    Left-hand side of reduction must be a variable or tensor access.  unreachable: assignment targets are names or
                                                 subscripts, and a partial subscript is non-scalar so `dst op e` fails
                                                 type checking first (CPP covers the text)
    Expected the result of reduction to be a scalar value, found T  unreachable: a non-scalar `dst op e` fails type
                                                 checking first ("Binary operator not supported for non-scalar
                                                 tensors"); CPP covers the text
    Reduction operation <op> has unknown neutral element.  unreachable: only +, *, max, min pass the check, all
                                                 with neutral elements
    Multi-block reductions must use a multiple of <tpb> threads.  unreachable on Cpu: GPU only
    Internal errors (Metal multi-block, clusters)  unreachable on Cpu: GPU only
  Code generation:
    Found parallel code outside main function definition ...  F::test_parallel_code_in_helper
    Memory allocation is not supported in parallel code.  unreachable: the accepted subset has no allocation
    Found a write (read) of an array outside parallel code ... (CUDA)  unreachable on Cpu, where host code
                                                 may write arrays (P::test_seed_sums and
                                                 test_cuda.py check both without a GPU)
  Backend TypeErrors (tanh/atan2 on CUDA, Metal f64/pointers/structs)  unreachable on Cpu: CUDA/Metal only
"""

import math

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy import CompileBackend, Target
from parpy.types import F32, F64
from common import cpu

LOCATIONS = SourceLocations(__file__)
THIS, SRC = LOCATIONS.path, LOCATIONS.src
_line, loc, loc_lines = LOCATIONS.line, LOCATIONS.loc, LOCATIONS.loc_lines


pytestmark = pytest.mark.usefixtures("fresh_cache")


def red(**labels):
    o = parpy.par({k: parpy.threads(v).reduce() for k, v in labels.items()})
    o.backend = CompileBackend.Cpu
    return o


def f32(*shape):
    return np.zeros(shape, dtype=np.float32)


def i32(*shape):
    return np.zeros(shape, dtype=np.int32)


def bools(*shape):
    return np.zeros(shape, dtype=np.bool_)


@parpy.jit
def _void_helper(a: F32):
    b = a


@parpy.external("std::hypot", CompileBackend.Cpu, Target.Device, header="<cmath>")
def _cat_hypot(a: F64, b: F64) -> F64:
    return math.hypot(a, b)


class _FakeCudaArray:
    """Looks like a CUDA array to the argument conversion (never dereferenced)."""

    __cuda_array_interface__ = {"shape": (4,), "typestr": "<f4", "data": (0, False), "version": 3}  # noqa: RUF012


# What a call to something that is not a parpy builtin, jit function or external is told.
CALL_HINT = (
    ".\nA jit function can call the builtins of parpy.operators (exp, log, sin, cos, sqrt, tanh, "
    "atan2, abs, min, max, sum, prod and conversions such as float32), other @parpy.jit "
    "functions, and C functions declared with @parpy.external."
)


# ===== Decoration time =========================================================================


def test_unsupported_call_target_in_expression():
    # Decoration time; the caret is under the call target.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = math.floor(x[1])  # @call_target_expr

    msg = "Unsupported call target type" + CALL_HINT
    assert str(e.value) == loc(msg, "call_target_expr", "math.floor")


def test_unsupported_call_target_in_statement():
    # Decoration time; a method call as an expression statement.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x.fill(0.0)  # @call_target_stmt

    msg = "Unsupported call target type" + CALL_HINT
    assert str(e.value) == loc(msg, "call_target_stmt", "x.fill")


def test_axis_keyword_on_user_function():
    # Decoration time: `axis` is only accepted on builtins.
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x):
            with parpy.gpu:
                x[0] = _void_helper(x[1], axis=0)  # @axis_user

    msg = "Unsupported keyword argument in call: axis"
    assert str(e.value) == loc(msg, "axis_user", "_void_helper(x[1], axis=0)")


def test_lambda_is_not_a_function_definition():
    # Decoration time: the source of a lambda is the statement containing it.
    with pytest.raises(RuntimeError) as e:
        f = parpy.jit(lambda x: x)  # @lambda_def

    msg = "Unexpected shape of the AST definition. Expected a function definition (def), found Assign."
    assert str(e.value) == loc(msg, "lambda_def", "f = parpy.jit(lambda x: x)")


# ===== Call time, Python side and specialisation ===============================================


def test_cuda_array_on_cpu_backend():
    # Call time (argument conversion): the message prints the real backend, where the original
    # printed a placeholder (docs/differences.md, Messages).
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = 1.0

    with pytest.raises(RuntimeError) as e:
        f(_FakeCudaArray(), opts=cpu())
    assert (
        str(e.value) == "Argument #1 is a CUDA array, which is not supported in CompileBackend.Cpu."
    )


def test_print_compiled_of_external():
    # Specialisation: an external declaration has no body to compile; no location.
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(_cat_hypot, [1.0, 2.0], cpu())
    msg = "Expected _cat_hypot to be a function definition, but it is an external function declaration"
    assert str(e.value) == msg


# ===== Call time: TypeErrors of shape and type checking ========================================


def test_expected_element_of_type_in_assignment():
    # Call time (type checking); the whole assignment is marked.
    @parpy.jit
    def f(x, a):
        with parpy.gpu:
            x[0] = a[0]  # @elem_kind

    with pytest.raises(TypeError) as e:
        f(f32(4), i32(4), opts=cpu())
    msg = "Expected element of type float32, found incompatible element type int32."
    assert str(e.value) == loc(msg, "elem_kind", "x[0] = a[0]")


def test_expected_scalar_element_in_assignment():
    # Call time (type checking): an array stored into an element.
    @parpy.jit
    def f(x, y):
        with parpy.gpu:
            x[0] = y  # @elem_scalar

    with pytest.raises(TypeError) as e:
        f(f32(4), f32(4), opts=cpu())
    msg = "Expected element of scalar type float32, but found type float32 array of shape (4,)."
    assert str(e.value) == loc(msg, "elem_scalar", "x[0] = y")


def test_expected_scalar_int_loop_bound():
    # Call time (type checking): loop bounds convert to the int size.
    @parpy.jit
    def f(x):
        with parpy.gpu:
            for i in range(x[0]):  # @float_bound
                x[1] = 1.0

    with pytest.raises(TypeError) as e:
        f(f32(4), opts=cpu())
    msg = "Expected element of scalar type int64, but found type float32."
    assert str(e.value) == loc(msg, "float_bound", "x[0]")


def test_incompatible_shapes():
    # Call time (shape check of a slice statement); the whole right-hand side is marked.
    @parpy.jit
    def f(x, y, z):
        parpy.label("N")
        x[:] = y[:] + z[:]  # @shapes

    with pytest.raises(TypeError) as e:
        f(f32(4), f32(4), f32(3), opts=cpu(N=4))
    msg = "Found incompatible shapes [4], [4] and [3]"
    assert str(e.value) == loc(msg, "shapes", "x[:] = y[:] + z[:]")


def test_cannot_coerce_tensor_types():
    # Call time (before slice lowering): a local naming arrays keeps their type and shape.
    @parpy.jit
    def f(x, z):
        with parpy.gpu:
            t = x
            t = z  # @coerce_tensor

    with pytest.raises(TypeError) as e:
        f(f32(4), f32(3), opts=cpu())
    msg = (
        "Cannot coerce incompatible tensor types (float32 array of shape (4,) != "
        "float32 array of shape (3,)): all arrays that t may name must have the same element "
        "type and shape."
    )
    assert str(e.value) == loc(msg, "coerce_tensor", "t = z")


def test_reduction_of_bool_tensor():
    # Call time (type checking of the reduction's neutral element); the statement is marked.
    @parpy.jit
    def f(x, b):
        parpy.label("N")
        x[0] = parpy.operators.sum(b[:])  # @bool_sum

    with pytest.raises(TypeError) as e:
        f(f32(4), bools(4), opts=cpu(N=4))
    msg = (
        "Unexpected argument of type bool passed to tensor reduction "
        "builtin"
    )
    assert str(e.value) == loc(msg, "bool_sum", "x[0] = parpy.operators.sum(b[:])")


def _typecheck_error(fn, args, cls=TypeError):
    with pytest.raises(cls) as e:
        fn(*args, opts=cpu())
    return str(e.value)


def test_unary_builtin_on_int():
    @parpy.jit
    def f(x, a):
        with parpy.gpu:
            x[0] = parpy.operators.exp(a[0])  # @exp_int

    msg = "Unexpected type int32 of unary builtin (expected float)"
    assert _typecheck_error(f, [f32(4), i32(4)]) == loc(msg, "exp_int", "parpy.operators.exp(a[0])")


def test_unary_builtin_on_array():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = parpy.operators.exp(x)  # @exp_array

    msg = "Expected scalar but found non-scalar tensor"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "exp_array", "parpy.operators.exp(x)")


def test_tanh_on_int():
    @parpy.jit
    def f(x, a):
        with parpy.gpu:
            x[0] = parpy.operators.tanh(a[0])  # @tanh_int

    msg = "Unexpected type int32 of tanh builtin (expected float)"
    assert _typecheck_error(f, [f32(4), i32(4)]) == loc(
        msg, "tanh_int", "parpy.operators.tanh(a[0])"
    )


def test_abs_on_bool():
    @parpy.jit
    def f(b):
        with parpy.gpu:
            b[0] = parpy.operators.abs(b[1])  # @abs_bool

    msg = "Unexpected type bool of abs builtin"
    assert _typecheck_error(f, [bools(4)]) == loc(msg, "abs_bool", "parpy.operators.abs(b[1])")


def test_conversion_of_array():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = parpy.operators.float32(x)  # @conv_array

    msg = "Expected scalar type in type conversion, found float32 array of shape (4,)"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "conv_array", "parpy.operators.float32(x)")


def test_atan2_on_ints():
    @parpy.jit
    def f(a):
        with parpy.gpu:
            a[0] = parpy.operators.atan2(a[1], a[2])  # @atan2_int

    msg = "Operation atan2 is only supported for floats."
    assert _typecheck_error(f, [i32(4)]) == loc(
        msg, "atan2_int", "parpy.operators.atan2(a[1], a[2])"
    )


def test_max_on_bools():
    @parpy.jit
    def f(b):
        with parpy.gpu:
            b[0] = parpy.operators.max(b[1], b[2])  # @max_bool

    msg = "Unexpected type bool of builtin"
    assert _typecheck_error(f, [bools(4)]) == loc(
        msg, "max_bool", "parpy.operators.max(b[1], b[2])"
    )


def test_unary_minus_on_bool():
    @parpy.jit
    def f(b):
        with parpy.gpu:
            b[0] = -b[1]  # @neg_bool

    msg = "Invalid type bool of unary minus"
    assert _typecheck_error(f, [bools(4)]) == loc(msg, "neg_bool", "-b[1]")


def test_not_on_float():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = not x[1]  # @not_float

    msg = "Invalid type float32 of boolean negation"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "not_float", "not x[1]")


def test_invert_on_float():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = ~x[1]  # @inv_float

    msg = "Invalid type float32 of bitwise negation"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "inv_float", "~x[1]")


def test_binary_operator_on_array():
    @parpy.jit
    def f(x, y):
        with parpy.gpu:
            x[0] = y + 1.0  # @bin_array

    msg = "Binary operator not supported for non-scalar tensors"
    assert _typecheck_error(f, [f32(4), f32(4)]) == loc(msg, "bin_array", "y + 1.0")


def test_arithmetic_on_bools():
    @parpy.jit
    def f(b):
        with parpy.gpu:
            b[0] = b[1] + b[2]  # @add_bool

    msg = "Invalid type bool of arithmetic operation"
    assert _typecheck_error(f, [bools(4)]) == loc(msg, "add_bool", "b[1] + b[2]")


def test_integer_arithmetic_on_bools():
    @parpy.jit
    def f(b):
        with parpy.gpu:
            b[0] = b[1] // b[2]  # @fdiv_bool

    msg = "Invalid type bool of integer arithmetic operation"
    assert _typecheck_error(f, [bools(4)]) == loc(msg, "fdiv_bool", "b[1] // b[2]")


def test_pow_on_f16():
    @parpy.jit
    def f(h):
        with parpy.gpu:
            h[0] = h[1] ** h[2]  # @pow_f16

    msg = "Invalid type float16 of floating-point arithmetic operation"
    assert _typecheck_error(f, [np.zeros(4, np.float16)]) == loc(msg, "pow_f16", "h[1] ** h[2]")


def test_boolean_operation_on_floats():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = x[1] and x[2]  # @and_float

    msg = "Invalid type float32 of boolean operation"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "and_float", "x[1] and x[2]")


def test_bitwise_operation_on_floats():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = x[1] & x[2]  # @and_bits

    msg = "Invalid type float32 of bitwise operation"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "and_bits", "x[1] & x[2]")


def test_lower_bound_not_fixed():
    # Call time (slice lowering); the caret is under the bound.
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[x[0] :] = 1.0  # @lo_var

    with pytest.raises(RuntimeError) as e:
        f(f32(4), f32(4), opts=cpu(N=4))
    assert str(e.value) == loc("Lower-bound of slice must be fixed.", "lo_var", "x[0]")


def test_subscript_on_scalar():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            t = x[0]
            x[1] = t[0]  # @sub_scalar

    msg = "Subscript operation on unsupported target t"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "sub_scalar", "t[0]")


def test_float_index():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[1] = x[x[0]]  # @float_idx

    msg = "Unsupported index of type float32 in subscript operation"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "float_idx", "x[0]")


def test_variable_of_unknown_type():
    # A helper without return is void; its result cannot define a variable.
    @parpy.jit
    def f(x):
        with parpy.gpu:
            t = _void_helper(x[0])  # @void_var

    msg = "Variable t has unknown type"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "void_var", "t")


def test_if_condition_of_invalid_type():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            if x:  # @if_array
                x[0] = 1.0

    msg = "If expression has condition of invalid type float32 array of shape (4,)"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "if_array", "x")


def test_conditional_expression_condition_not_bool():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = 1.0 if x[1] else 2.0  # @ifexp_cond

    msg = "If expression has condition of invalid type float32"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "ifexp_cond", "x[1]")


def test_conditional_expression_of_tensors():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = x if x[1] > 0.0 else x  # @ifexp_tensor  # noqa: RUF034

    msg = "Unsupported type float32 array of shape (4,) of conditional expression"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "ifexp_tensor", "x if x[1] > 0.0 else x")


def test_missing_dict_field():
    @parpy.jit
    def f(x, d):
        with parpy.gpu:
            x[0] = d["b"]  # @dict_field

    msg = "Field b not present in type dict {'a': float64}"
    assert _typecheck_error(f, [f32(4), {"a": 1.0}]) == loc(msg, "dict_field", 'd["b"]')


def test_string_index_on_array():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[0] = x["b"]  # @str_index

    msg = "Cannot index using a string on non-dict expression"
    assert _typecheck_error(f, [f32(4)]) == loc(msg, "str_index", 'x["b"]')


# ===== Call time: RuntimeErrors of slice lowering ==============================================


def _slice_error(fn, args, opts):
    with pytest.raises(RuntimeError) as e:
        fn(*args, opts=opts)
    return str(e.value)


def test_slice_target_not_a_variable():
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[:] = _void_helper(x[0])[:]  # @slice_call

    msg = "Target of slice must be a variable."
    assert _slice_error(f, [f32(4), f32(4)], cpu(N=4)) == loc(
        msg, "slice_call", "_void_helper(x[0])"
    )


def test_slice_target_of_invalid_type():
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        t = x[0]
        y[:] = t[:]  # @slice_scalar

    msg = "Target of slice subscript operation has invalid type."
    assert _slice_error(f, [f32(4), f32(4)], cpu(N=4)) == loc(msg, "slice_scalar", "t")


def test_slice_subscript_missing_dimensions():
    @parpy.jit
    def f(y, m):
        parpy.label("N")
        y[:] = m[:]  # @slice_dims

    msg = (
        "Subscript operations containing slices must refer to all dimensions of the target. "
        "The target has shape [4, 4] but 1 indices were given."
    )
    assert _slice_error(f, [f32(4), f32(4, 4)], cpu(N=4)) == loc(msg, "slice_dims", "m[:]")


def test_slice_subscript_too_many_indices():
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[:] = x[:, :]  # @slice_many

    msg = "Received too many indices (2 indices for a tensor of 1 dimensions)."
    assert _slice_error(f, [f32(4), f32(4)], cpu(N=4)) == loc(msg, "slice_many", "x[:, :]")


def test_more_slices_on_the_right():
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[0] = x[:]  # @slice_rhs

    msg = (
        "Slice statements cannot have more slice dimensions in the right-hand side expression "
        "than in the left-hand side expression."
    )
    assert _slice_error(f, [f32(4), f32(4)], cpu(N=4)) == loc(msg, "slice_rhs", "y[0] = x[:]")


def test_slice_statement_label_count():
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        parpy.label("M")
        y[:] = x[:]  # @slice_labels

    msg = "Expected zero or 1 labels, found 2"
    assert _slice_error(f, [f32(4), f32(4)], cpu(N=4, M=4)) == loc(
        msg, "slice_labels", "y[:] = x[:]"
    )


def test_axis_reduction_slice_count():
    @parpy.jit
    def f(m, y):
        parpy.label("N")
        y[0] = parpy.operators.sum(m[:, :], axis=0)  # @axis_lhs

    msg = (
        "When reducing along one dimension, the number of slice dimensions of the left-hand side "
        "expression must be one less than in the right-hand side."
    )
    expected = loc(msg, "axis_lhs", "y[0] = parpy.operators.sum(m[:, :], axis=0)")
    assert _slice_error(f, [f32(4, 4), f32(4)], cpu(N=4)) == expected


def test_full_reduction_label_count():
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        parpy.label("M")
        y[0] = parpy.operators.sum(x[:])  # @full_labels

    msg = "Expected zero or one labels for full reduction operation, found 2"
    expected = loc(msg, "full_labels", "y[0] = parpy.operators.sum(x[:])")
    assert _slice_error(f, [f32(4), f32(4)], cpu(N=4, M=4)) == expected


# ===== IR translation, labels and reductions ===================================================


def test_string_literal_outside_dict_lookup():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            t = "s"  # @str_lit

    msg = "String literal may only be used in dict lookups"
    assert _slice_error(f, [f32(4)], cpu()) == loc(msg, "str_lit", '"s"')


def test_tuple_outside_indexing():
    @parpy.jit
    def f(x):
        with parpy.gpu:
            t = (1, 2)  # @tuple_val

    msg = "Tuples are not allowed outside of indexing"
    assert _slice_error(f, [f32(4)], cpu()) == loc(msg, "tuple_val", "(1, 2)")


def test_inconsistent_tpb_among_labels():
    # Call time (resolving labels); Cpu ignores tpb otherwise, but conflicting requests are errors.
    @parpy.jit
    def f(x, N):
        parpy.label("a")
        parpy.label("b")
        for i in range(N):  # @tpb
            x[i] = 1.0  # @tpb_end

    o = parpy.par({"a": parpy.threads(4).tpb(32), "b": parpy.threads(4).tpb(64)})
    o.backend = CompileBackend.Cpu
    msg = "Found inconsistent threads per block 32 and 64 among labels within parallel statements."
    n, m = _line("tpb"), _line("tpb_end")
    col = SRC[n - 1].index("for")
    end_col = SRC[m - 1].index("x[i] = 1.0") + len("x[i] = 1.0")
    src = "\n".join(SRC[n - 1 : m])
    expected = (
        f"{msg}\n\nOn lines {n}-{m} of file {THIS}:\n{src}\n{' ' * col}{'^' * (end_col - col)}\n"
    )
    assert _slice_error(f, [f32(4), 4], o) == expected


def test_reduction_statement_not_an_assignment():
    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            if x[i] > 0.0:  # @red_if
                x[0] = 1.0  # @red_if_end

    msg = "Reduction for-loop statement must be an assignment."
    n, m = _line("red_if"), _line("red_if_end")
    col = SRC[n - 1].index("if")
    end_col = SRC[m - 1].index("x[0] = 1.0") + len("x[0] = 1.0")
    src = "\n".join(SRC[n - 1 : m])
    expected = (
        f"{msg}\n\nOn lines {n}-{m} of file {THIS}:\n{src}\n{' ' * col}{'^' * (end_col - col)}\n"
    )
    assert _slice_error(f, [f32(4), 4], red(N=4)) == expected


def test_reduction_rhs_not_binary():
    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[0] = x[i]  # @red_rhs

    msg = "RHS of reduction statement should be a binary operation."
    assert _slice_error(f, [f32(4), 4], red(N=4)) == loc(msg, "red_rhs", "x[0] = x[i]")


def test_reduction_lhs_mismatch():
    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[0] = x[1] + x[i]  # @red_lhs

    msg = (
        "Invalid reduction. Left-hand side of binary operation x[1] is not equal to the "
        "assignment target x[0]."
    )
    assert _slice_error(f, [f32(4), 4], red(N=4)) == loc(msg, "red_lhs", "x[0] = x[1] + x[i]")


def test_reduction_operator_not_supported():
    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[0] -= x[i]  # @red_sub

    msg = "Parallel reductions not supported for operator -."
    assert _slice_error(f, [f32(4), 4], red(N=4)) == loc(msg, "red_sub", "x[0] -= x[i]")
