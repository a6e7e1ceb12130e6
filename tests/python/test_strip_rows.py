"""Rows in strips on the GPU (docs/gpu.md, Optimisations): a parallel loop over rows around a
parallel loop over columns whose stores read an array at neighbouring rows runs each thread down
a strip of consecutive rows of its columns, the rows it reads of each array kept in registers as it
goes (one row loaded per row). Each program runs on every enabled backend and in
the Metal emulator (which runs the GPU layer's kernels) against numpy or plain Python, every
element; the Cuda code (printed without a GPU) shows where the strips apply and where not."""

import metal_emu
import numpy as np
import parpy
import pytest
from conftest import backends
from parpy import CompileBackend
# The 7-point stencil with its loop over a plane's rows sequential, as a user writes it: its
# iterations are independent (each writes its own row of y), so it runs in parallel.
from test_barriers import stencil3d as seven_point
from test_barriers import stencil3d_ref as seven_point_ref
from test_barriers import f32, opts

CUDA, METAL = CompileBackend.Cuda, CompileBackend.Metal
STRIP = "parpy_strip"


@parpy.jit
def five_point(x, y, N, M):
    parpy.label("rows")
    for i in range(1, N - 1):
        parpy.label("cols")
        for j in range(1, M - 1):
            y[i, j] = 0.25 * (x[i - 1, j] + x[i + 1, j] + x[i, j - 1] + x[i, j + 1])


def five_point_ref(x, y):
    y = y.copy()
    y[1:-1, 1:-1] = np.float32(0.25) * (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:])
    return y


@parpy.jit
def two_outputs(x, y, z, N, M):
    """Two stores, rows two apart and a column stride of 2."""
    parpy.label("rows")
    for i in range(2, N - 2):
        parpy.label("cols")
        for j in range(M):
            y[i, j] = x[i - 2, 2 * j] - x[i + 2, 2 * j]
            z[i, j] = x[i, 2 * j + 1] * 2.0


def two_outputs_ref(x, y, z):
    y, z = y.copy(), z.copy()
    y[2:-2, :] = x[:-4, 0::2] - x[4:, 0::2]
    z[2:-2, :] = x[2:-2, 1::2] * np.float32(2.0)
    return y, z


@parpy.jit
def far_rows(x, y, N, M):
    """Rows 9 apart: farther than a strip, no strips."""
    parpy.label("rows")
    for i in range(N - 9):
        parpy.label("cols")
        for j in range(M):
            y[i, j] = x[i, j] + x[i + 9, j]


def far_rows_ref(x, y):
    y = y.copy()
    y[:-9, :] = x[:-9, :] + x[9:, :]
    return y


@parpy.jit
def one_row(x, y, N, M):
    """Each row reads only itself: no strips."""
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(M - 1):
            y[i, j] = x[i, j] + x[i, j + 1]


def one_row_ref(x, y):
    y = y.copy()
    y[:, :-1] = x[:, :-1] + x[:, 1:]
    return y


@parpy.jit
def triangle(x, y, N):
    """The columns loop's range depends on the row: no strips (the columns loop cannot move out)."""
    parpy.label("rows")
    for i in range(1, N - 1):
        parpy.label("cols")
        for j in range(i):
            y[i, j] = x[i - 1, j] + x[i + 1, j]


def triangle_ref(x, y):
    y = y.copy()
    for i in range(1, x.shape[0] - 1):
        y[i, :i] = x[i - 1, :i] + x[i + 1, :i]
    return y


@parpy.jit
def seven_point_all(x, y, N, M):
    """The 7-point stencil with its three loops parallel: planes in strips, the rows and columns
    loops moved outside the strip's loop over planes."""
    parpy.label("planes")
    for i in range(1, N - 1):
        parpy.label("rows")
        for j in range(1, N - 1):
            parpy.label("cols")
            for k in range(1, M - 1):
                y[i, j, k] = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                              + x[i, j, k - 1] + x[i, j, k + 1]) / 6.0


@parpy.jit
def plane_sweep(x, y, N, M):
    """Row j of each plane adds row j - 1 of the same plane of y (written in the previous iteration
    of the sequential loop) to the neighbouring planes of x: no strips."""
    parpy.label("planes")
    for i in range(1, N - 1):
        for j in range(1, M):
            parpy.label("cols")
            for k in range(M):
                y[i, j, k] = y[i, j - 1, k] + x[i - 1, j, k] - x[i + 1, j, k]


def plane_sweep_ref(x, y):
    y = y.copy()
    for j in range(1, x.shape[1]):
        y[1:-1, j, :] = y[1:-1, j - 1, :] + x[:-2, j, :] - x[2:, j, :]
    return y


@parpy.jit
def wide(x, y, N, M):
    """Rows i - 2 .. i + 2 of x, and a row of x read in reverse (a negative row coefficient)."""
    parpy.label("rows")
    for i in range(2, N - 2):
        parpy.label("cols")
        for j in range(M):
            y[i, j] = x[i - 2, j] - x[i + 2, j] + 0.5 * x[i + 1, j] + x[N - 1 - i, j] * x[N - 2 - i, j]


def wide_ref(x, y):
    y = y.copy()
    n = x.shape[0]
    for i in range(2, n - 2):
        y[i] = x[i - 2] - x[i + 2] + np.float32(0.5) * x[i + 1] + x[n - 1 - i] * x[n - 2 - i]
    return y


@parpy.jit
def guarded(x, y, N, M):
    """A read of the next row only where a condition holds: not loaded ahead (no registers)."""
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(M):
            y[i, j] = x[i + 1, j] if i + 1 < N - 1 else x[i - 1, j]


def guarded_ref(x, y):
    y = y.copy()
    n = y.shape[0]
    for i in range(n):
        y[i] = x[i + 1] if i + 1 < n - 1 else x[i - 1]
    return y


@parpy.jit
def running_rows(x, y, N, M):
    """Each row of a plane adds the row before it of y: the sequential loop's iterations depend on
    each other, so it stays sequential (and the planes are not stripped)."""
    parpy.label("planes")
    for i in range(1, N - 1):
        for j in range(1, N - 1):
            parpy.label("cols")
            for k in range(M):
                y[i, j, k] = y[i, j - 1, k] + x[i - 1, j, k] + x[i + 1, j, k]


def running_rows_ref(x, y):
    y = y.copy()
    for j in range(1, x.shape[1] - 1):
        y[1:-1, j, :] = y[1:-1, j - 1, :] + x[:-2, j, :] + x[2:, j, :]
    return y


@parpy.jit
def last_row(x, y, N, M):
    """Every row of a plane writes the same row of y: the last one's values stay, so the loop over
    rows stays sequential."""
    parpy.label("planes")
    for i in range(1, N - 1):
        for j in range(1, N - 1):
            parpy.label("cols")
            for k in range(M):
                y[i, k] = x[i - 1, j, k] + x[i + 1, j, k] * 2.0


def last_row_ref(x, y):
    y = y.copy()
    j = x.shape[1] - 2
    y[1:-1, :] = x[:-2, j, :] + x[2:, j, :] * np.float32(2.0)
    return y


@parpy.jit
def folded_rows(x, y, N, M):
    """Rows 1 and 2 of a plane both write row 2 of y (j + j % 2): the loop over rows stays
    sequential, so the later row's values stay."""
    parpy.label("planes")
    for i in range(1, N - 1):
        for j in range(1, N - 1):
            parpy.label("cols")
            for k in range(M):
                y[i, j + j % 2, k] = x[i - 1, j, k] + x[i + 1, j, k]


def folded_rows_ref(x, y):
    y = y.copy()
    for j in range(1, x.shape[1] - 1):
        y[1:-1, j + j % 2, :] = x[:-2, j, :] + x[2:, j, :]
    return y


def cases(cols):
    """(name, function, fresh args, labels, reference of the written arrays, strips expected) with
    `cols` columns: enough, with 8 strips, for half the threads that fill the GPU (2^17 on Cuda,
    2^14 on Metal), where strips apply."""
    C = cols + 2

    def grid(n, m=C):
        return lambda: [f32(n, m), np.zeros((n, m), np.float32), n, m]

    return [
        # 61 interior rows: 7 strips of 8 and one of 5.
        ("five point", five_point, grid(63), {"rows": 63, "cols": cols}, lambda a: [five_point_ref(a[0], a[1])],
         True),
        # 128 rows in 16 strips on 8 rows threads: two strips each.
        ("five point, 8 rows threads", five_point, grid(130), {"rows": 8, "cols": cols},
         lambda a: [five_point_ref(a[0], a[1])], True),
        # Fewer columns threads than columns (each thread runs several columns of its strip).
        ("five point, more columns", five_point, grid(63, 2 * cols + 2), {"rows": 63, "cols": cols},
         lambda a: [five_point_ref(a[0], a[1])], True),
        # Columns in 4 chunks on the rows threads beyond one per strip, the last of 5 columns.
        ("five point, uneven column chunks", five_point, grid(63, 3 * cols + 7), {"rows": 63, "cols": cols},
         lambda a: [five_point_ref(a[0], a[1])], True),
        ("five point, too few rows", five_point, grid(17), {"rows": 17, "cols": cols},
         lambda a: [five_point_ref(a[0], a[1])], False),
        ("five point, too few columns", five_point, grid(63, 66), {"rows": 63, "cols": 64},
         lambda a: [five_point_ref(a[0], a[1])], False),
        ("two outputs", two_outputs, lambda: [f32(68, 2 * cols), np.zeros((68, cols), np.float32),
                                              np.zeros((68, cols), np.float32), 68, cols],
         {"rows": 68, "cols": cols}, lambda a: list(two_outputs_ref(a[0], a[1], a[2])), True),
        ("wide", wide, grid(67), {"rows": 67, "cols": cols}, lambda a: [wide_ref(a[0], a[1])], True),
        ("guarded", guarded, lambda: [f32(65, cols), np.zeros((64, cols), np.float32), 64, cols],
         {"rows": 64, "cols": cols}, lambda a: [guarded_ref(a[0], a[1])], True),
        ("far rows", far_rows, lambda: [f32(73, cols), np.zeros((73, cols), np.float32), 73, cols],
         {"rows": 73, "cols": cols}, lambda a: [far_rows_ref(a[0], a[1])], False),
        ("triangle", triangle, lambda: [f32(40, 40), np.zeros((40, 40), np.float32), 40],
         {"rows": 40, "cols": 40}, lambda a: [triangle_ref(a[0], a[1])], False),
        ("seven point", seven_point, lambda: [f32(21, 21, 21), np.zeros((21, 21, 21), np.float32), 21, 21],
         {"planes": 21, "cols": 21}, lambda a: [seven_point_ref(a[0], a[1])], False),  # too small
        # 4 strips of 8 planes x 32 rows x cols / 16 columns: half of what fills the GPU.
        ("seven point, all parallel", seven_point_all,
         lambda: [f32(34, 34, cols // 16 + 2), np.zeros((34, 34, cols // 16 + 2), np.float32), 34, cols // 16 + 2],
         {"planes": 34, "rows": 32, "cols": cols // 16}, lambda a: [seven_point_ref(a[0], a[1])], True),
        # The same with the rows loop sequential: independent rows, run in parallel, in strips.
        ("seven point, rows sequential", seven_point,
         lambda: [f32(34, 34, cols // 16 + 2), np.zeros((34, 34, cols // 16 + 2), np.float32), 34, cols // 16 + 2],
         {"planes": 34, "cols": cols // 16}, lambda a: [seven_point_ref(a[0], a[1])], True),
        ("running rows", running_rows,
         lambda: [f32(34, 34, cols // 16), f32(34, 34, cols // 16), 34, cols // 16],
         {"planes": 34, "cols": cols // 16}, lambda a: [running_rows_ref(a[0], a[1])], False),
        ("last row", last_row,
         lambda: [f32(34, 34, cols // 16), np.zeros((34, cols // 16), np.float32), 34, cols // 16],
         {"planes": 34, "cols": cols // 16}, lambda a: [last_row_ref(a[0], a[1])], False),
        ("folded rows", folded_rows,
         lambda: [f32(34, 34, cols // 16), np.zeros((34, 34, cols // 16), np.float32), 34, cols // 16],
         {"planes": 34, "cols": cols // 16}, lambda a: [folded_rows_ref(a[0], a[1])], False),
        ("plane sweep", plane_sweep, lambda: [f32(20, 12, 12), f32(20, 12, 12), 20, 12],
         {"planes": 20, "cols": 12}, lambda a: [plane_sweep_ref(a[0], a[1])], False),
        ("one row", one_row, lambda: [f32(64, cols + 1), np.zeros((64, cols + 1), np.float32), 64, cols + 1],
         {"rows": 64, "cols": cols}, lambda a: [one_row_ref(a[0], a[1])], False),
    ]


CASES = cases(1 << 14)  # Cuda
METAL_CASES = cases(1 << 11)
IDS = [c[0] for c in CASES]


def outputs(fn, args):
    return [args[1], args[2]] if fn is two_outputs else [args[1]]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_strips_in_the_cuda_code(case):
    _, fn, make, labels, _, strips = case
    code = parpy.print_compiled(fn, make(), opts(CUDA, **labels))
    assert (STRIP in code) == strips, code
    # A kernel with strips marks its arrays __restrict__ (they share no memory where strips apply).
    assert ("__restrict__" in code) == strips, code


def test_the_rows_label_gets_one_thread_per_strip():
    # 61 rows in 8 strips: rows threads(63) launches 8 rows of 64 blocks of 256 threads (the
    # strips' block size where the user gave none).
    args = [f32(63, 16386), np.zeros((63, 16386), np.float32), 63, 16386]
    code = parpy.print_compiled(five_point, args, opts(CUDA, rows=63, cols=16384))
    assert "<<<dim3(512), dim3(256)" in code, code
    # The user's block size holds.
    o = parpy.par({"rows": parpy.threads(63).tpb(512), "cols": parpy.threads(16384).tpb(512)})
    o.backend = CUDA
    assert "<<<dim3(256), dim3(512)" in parpy.print_compiled(five_point, args, o)


def test_spare_rows_threads_run_chunks_of_the_columns():
    # 61 rows in 8 strips on rows threads(63): the 7 threads per strip beyond the first take
    # chunks of the 4 columns each columns thread would walk, one column each: 8 x 4 x 64 blocks.
    args = [f32(63, 4 * 16384 + 2), np.zeros((63, 4 * 16384 + 2), np.float32), 63, 4 * 16384 + 2]
    code = parpy.print_compiled(five_point, args, opts(CUDA, rows=63, cols=16384))
    assert "parpy_chunk" in code and "<<<dim3(2048), dim3(256)" in code, code
    # With a thread per strip (rows threads(8)) the columns stay whole.
    code = parpy.print_compiled(five_point, args, opts(CUDA, rows=8, cols=16384))
    assert STRIP in code and "parpy_chunk" not in code and "<<<dim3(512), dim3(256)" in code, code


def registers(code):
    """The rows kept in registers: the names of the registers parpy declares."""
    import re
    return sorted(set(re.findall(r"float (parpy_rot\d+_\d+);", code)))


def test_rows_are_kept_in_registers():
    args = [f32(63, 16386), np.zeros((63, 16386), np.float32), 63, 16386]
    code = parpy.print_compiled(five_point, args, opts(CUDA, rows=63, cols=16384))
    # Rows i - 1, i and i + 1 of x's column j (x[i, j - 1] and x[i, j + 1] are loaded).
    assert registers(code) == ["parpy_rot0_0", "parpy_rot0_1", "parpy_rot0_2"], code
    args = [f32(67, 16384), np.zeros((67, 16384), np.float32), 67, 16384]
    code = parpy.print_compiled(wide, args, opts(CUDA, rows=67, cols=16384))
    # Rows i - 2 .. i + 2, and the two rows read in reverse (N - 2 - i, N - 1 - i).
    assert len(registers(code)) == 5 + 2, code
    args = [f32(65, 16384), np.zeros((64, 16384), np.float32), 64, 16384]
    assert registers(parpy.print_compiled(guarded, args, opts(CUDA, rows=64, cols=16384))) == []


def test_no_strips_where_arrays_share_memory():
    a = f32(63, 16386)
    code = parpy.print_compiled(five_point, [a, a, 63, 16386], opts(CUDA, rows=63, cols=16384))
    assert STRIP not in code and "__restrict__" not in code, code


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_results(case, backend):
    _, fn, make, labels, ref, _ = case
    args = make()
    want = ref([a.copy() if isinstance(a, np.ndarray) else a for a in args])
    fn(*args, opts=opts(backend, **labels))
    for got, w in zip(outputs(fn, args), want):
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")
def test_results_in_the_metal_emulator():
    programs, wants = [], []
    for _, fn, make, labels, ref, strips in METAL_CASES:
        args = make()
        wants.append((fn, ref([a.copy() if isinstance(a, np.ndarray) else a for a in args])))
        programs.append((fn, args, opts(METAL, **labels)))
        assert (STRIP in parpy.print_compiled(fn, args, opts(METAL, **labels))) == strips
    results = metal_emu.run_all(programs)
    for args, (fn, want) in zip(results, wants):
        for got, w in zip(outputs(fn, args), want):
            np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-6)


def random_stencil(rng, k):
    """The source of a random stencil `s{k}(x, z, y, N, M)`: y[i, j] is a sum of reads of x and z
    at rows i + d (or N - 1 - i + d) and columns j + e, and its numpy reference."""
    terms, ref_terms, lo, hi, clo, chi = [], [], 0, 0, 0, 0
    reads = []
    for t in range(int(rng.integers(2, 6))):
        a = str(rng.choice(["x", "z"]))
        d, e = int(rng.integers(-3, 4)), (0 if rng.random() < 0.6 else int(rng.integers(-2, 3)))
        reverse = rng.random() < 0.2
        if t == 1 and k % 3 == 0:  # every third program: the row below the first read
            a, d, e, reverse = reads[0][0], reads[0][1] + 1, reads[0][2], reads[0][3]
        reads.append((a, d, e, reverse))
        c = round(float(rng.uniform(-2, 2)), 2)
        row = f"N - 1 - i + {d}" if reverse else f"i + {d}"
        terms.append(f"{c} * {a}[{row}, j + {e}]")
        ref_terms.append((a, d, e, c, reverse))
        # Rows read: i + d in [0, N) for i in [lo, N - hi); reversed: N - 1 - i + d likewise.
        lo, hi = max(lo, -d, d if reverse else 0), max(hi, d, -d if reverse else 0)
        clo, chi = max(clo, -e), max(chi, e)
    src = (f"@parpy.jit\ndef s{k}(x, z, y, N, M):\n"
           f"    parpy.label(\"rows\")\n    for i in range({lo}, N - {hi + 1}):\n"
           f"        parpy.label(\"cols\")\n        for j in range({clo}, M - {chi}):\n"
           f"            y[i, j] = {' + '.join(terms)}\n")

    def ref(x, z, y):
        y = y.copy()
        n, m = y.shape
        for i in range(lo, n - hi - 1):
            acc = np.zeros(m - chi - clo, np.float64)
            for a, d, e, c, reverse in ref_terms:
                r = n - 1 - i + d if reverse else i + d
                acc += c * (x if a == "x" else z)[r, clo + e:m - chi + e].astype(np.float64)
            y[i, clo:m - chi] = acc
        return y

    return src, ref


@pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")
def test_random_stencils_in_the_metal_emulator(tmp_path, monkeypatch):
    # Random stencils in strips, with their rows in registers, against numpy, every element; the
    # seed is printed on failure.
    import importlib

    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    sources, refs = [], []
    for k in range(12):
        src, ref = random_stencil(rng, k)
        sources.append(src)
        refs.append(ref)
    (tmp_path / "random_stencils.py").write_text("import parpy\n\n\n" + "\n\n".join(sources))
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("random_stencils")
    N, M = 76, 2048 + 8
    programs, wants = [], []
    strips = 0
    for k in range(12):
        fn = getattr(mod, f"s{k}")
        x, z, y = f32(N, M), f32(N, M), np.zeros((N, M), np.float32)
        wants.append(refs[k](x, z, y))
        o = opts(METAL, rows=N, cols=2048)
        strips += STRIP in parpy.print_compiled(fn, [x, z, y, N, M], o)
        programs.append((fn, [x, z, y, N, M], o))
    results = metal_emu.run_all(programs)
    for k, (args, want) in enumerate(zip(results, wants)):
        np.testing.assert_allclose(args[2], want, rtol=1e-4, atol=1e-4, err_msg=f"seed {seed}, program {k}:\n{sources[k]}")
    assert strips >= 4, f"seed {seed}: {strips} programs ran in strips"


# The rows of y a plane's sequential loop over rows j may write, and whether distinct rows j write
# distinct rows of y (so that, with no row reading another's, the loop runs in parallel).
ROW_FORMS = [("j", True), ("j + 1", True), ("N - 2 - j", True), ("j // 2", False), ("1", False),
             ("j + j % 2", False)]


def random_rows_program(rng, k):
    """The source of `r{k}(x, y, N, M)`, a 7-point-like stencil whose sequential loop over rows
    writes row ROW_FORMS[...] of y, sometimes reading y at the row it writes or at row j - 1, and
    whether that loop's iterations are independent."""
    form, distinct = ROW_FORMS[int(rng.integers(len(ROW_FORMS)))]
    read = str(rng.choice(["", "same", "previous"]))
    c = round(float(rng.uniform(-2, 2)), 2)
    rhs = f"x[i - 1, j, k] + x[i + 1, j, k] * {c} + x[i, j, k]"
    if read == "same":
        rhs += f" + y[i, {form}, k] * 0.5"
    elif read == "previous":
        rhs += " + y[i, j - 1, k] * 0.5"
    src = (f"def r{k}(x, y, N, M):\n"
           f"    parpy.label('planes')\n"
           f"    for i in range(1, N - 1):\n"
           f"        for j in range(1, N - 1):\n"
           f"            parpy.label('cols')\n"
           f"            for k in range(M):\n"
           f"                y[i, {form}, k] = {rhs}\n")
    independent = distinct and read != "previous"
    return src, independent


@pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")
def test_random_row_loops_in_the_metal_emulator(tmp_path, monkeypatch):
    # Sequential loops over a plane's rows that write and read y in random ways: those whose rows
    # are independent run in parallel (in strips), the others stay sequential; every program gives
    # plain Python's result, every element. The seed is printed on failure.
    import importlib

    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    programs = [random_rows_program(rng, k) for k in range(10)]
    text = "\n\n".join(src for src, _ in programs)
    (tmp_path / "random_rows.py").write_text("import parpy\n\n\n" + text.replace("def r", "@parpy.jit\ndef r"))
    (tmp_path / "random_rows_py.py").write_text("import parpy\n\n\n" + text)
    monkeypatch.syspath_prepend(str(tmp_path))
    jit, plain = importlib.import_module("random_rows"), importlib.import_module("random_rows_py")
    N, M = 34, 128  # 4 strips x 32 rows x 128 columns: half of what fills the GPU on Metal
    runs, wants = [], []
    for k, (src, independent) in enumerate(programs):
        x, y = f32(N, N, M), f32(N, N, M)
        want = y.astype(np.float64)
        getattr(plain, f"r{k}")(x.astype(np.float64), want, N, M)
        wants.append(want)
        o = opts(METAL, planes=N, cols=M)
        strips = STRIP in parpy.print_compiled(getattr(jit, f"r{k}"), [x, y, N, M], o)
        assert strips == independent, f"seed {seed}, program {k}:\n{src}"
        runs.append((getattr(jit, f"r{k}"), [x, y, N, M], o))
    for k, (args, want) in enumerate(zip(metal_emu.run_all(runs), wants)):
        np.testing.assert_allclose(args[1], want, rtol=1e-4, atol=1e-4, err_msg=f"seed {seed}, program {k}:\n{programs[k][0]}")
