"""128-bit groups of columns on Cuda (docs/gpu.md, Optimisations): a parallel loop over columns
whose range does not start at a multiple of four (the interior columns of a stencil), or whose body
walks a strip of rows, runs each thread over groups of four consecutive columns aligned to 16
bytes, the lanes outside the range masked. Every program runs on each enabled backend against
numpy, every element (Cuda runs the 128-bit variant where the arrays are aligned, as they are
here); its Cuda code, printed without a GPU, shows the variant and its guards."""

import importlib
import re
import shutil

import numpy as np
import parpy
import pytest
from conftest import backends
from parpy import CompileBackend
from test_barriers import stencil3d as seven_point
from test_barriers import stencil3d_ref as seven_point_ref
from test_strip_rows import five_point, five_point_ref, random_stencil

CUDA = CompileBackend.Cuda


def rng():
    return np.random.default_rng()


def opts(backend, **labels):
    o = parpy.par({k: parpy.threads(v) for k, v in labels.items()})
    o.backend = backend
    return o


@parpy.jit
def second_difference(x, y, N):
    parpy.label("i")
    for i in range(1, N - 1):
        y[i] = x[i - 1] - 2.0 * x[i] + x[i + 1]


def second_difference_ref(x, y):
    y = y.copy()
    y[1:-1] = x[:-2] - x.dtype.type(2.0) * x[1:-1] + x[2:]
    return y


@parpy.jit
def shifted_copy(x, y, N):
    """Reads two to the right: the last lanes' reads lie past the group's chunk."""
    parpy.label("i")
    for i in range(3, N - 2):
        y[i] = x[i + 2] * 3.0


def shifted_copy_ref(x, y):
    y = y.copy()
    y[3:-2] = x[5:] * x.dtype.type(3.0)
    return y


@parpy.jit
def weighted_rows(x, w, y, N, M):
    """A strip with a read that is the same in every column (w[i]) and one at a column two left."""
    parpy.label("rows")
    for i in range(1, N - 1):
        parpy.label("cols")
        for j in range(2, M - 1):
            y[i, j] = w[i] * (x[i - 1, j] + x[i + 1, j]) + x[i, j - 2]


def weighted_rows_ref(x, w, y):
    y = y.copy()
    y[1:-1, 2:-1] = w[1:-1, None] * (x[:-2, 2:-1] + x[2:, 2:-1]) + x[1:-1, :-3]
    return y


@parpy.jit
def int_stencil(x, y, N, M):
    parpy.label("rows")
    for i in range(1, N - 1):
        parpy.label("cols")
        for j in range(1, M - 1):
            y[i, j] = x[i - 1, j] + x[i + 1, j] - x[i, j - 1] * x[i, j + 1]


def int_stencil_ref(x, y):
    y = y.copy()
    y[1:-1, 1:-1] = x[:-2, 1:-1] + x[2:, 1:-1] - x[1:-1, :-2] * x[1:-1, 2:]
    return y


def arr(r, shape, dtype):
    if np.dtype(dtype).kind == "i":
        return r.integers(-100, 100, shape).astype(dtype)
    return r.standard_normal(shape).astype(dtype)


def cases():
    """(id, function, make(rng) -> args, labels, reference(args) -> outputs, output indices)."""
    out = []
    for n in (1 << 16, (1 << 16) + 1, (1 << 16) + 2, (1 << 16) + 3):
        for dt in (np.float32, np.float64):
            out.append((f"second difference {n} {np.dtype(dt).name}", second_difference,
                        lambda r, n=n, dt=dt: [arr(r, n, dt), np.zeros(n, dt), n], {"i": n},
                        lambda a: [second_difference_ref(a[0], a[1])], [1]))
        out.append((f"shifted copy {n}", shifted_copy,
                    lambda r, n=n: [arr(r, n, np.float32), np.zeros(n, np.float32), n], {"i": n},
                    lambda a: [shifted_copy_ref(a[0], a[1])], [1]))
    for m in (2048, 2052, 2049, 2050, 2051):
        out.append((f"five point 40x{m}", five_point,
                    lambda r, m=m: [arr(r, (40, m), np.float32), np.zeros((40, m), np.float32), 40, m],
                    {"rows": 40, "cols": 1 << 14}, lambda a: [five_point_ref(a[0], a[1])], [1]))
        out.append((f"weighted rows 40x{m}", weighted_rows,
                    lambda r, m=m: [arr(r, (40, m), np.float32), arr(r, 40, np.float32),
                                    np.zeros((40, m), np.float32), 40, m],
                    {"rows": 40, "cols": 1 << 14}, lambda a: [weighted_rows_ref(a[0], a[1], a[2])], [2]))
    for dt in (np.int32, np.int64, np.float64):
        out.append((f"integer-like stencil 40x2048 {np.dtype(dt).name}", int_stencil,
                    lambda r, dt=dt: [arr(r, (40, 2048), dt), np.zeros((40, 2048), dt), 40, 2048],
                    {"rows": 40, "cols": 1 << 14}, lambda a: [int_stencil_ref(a[0], a[1])], [1]))
    # Planes in strips (2048 columns and more), and not.
    for n, m in ((34, 2048), (34, 2052), (35, 2050), (34, 256), (18, 1028), (35, 258)):
        out.append((f"seven point {n}x{n}x{m}", seven_point,
                    lambda r, n=n, m=m: [arr(r, (n, n, m), np.float32), np.zeros((n, n, m), np.float32), n, m],
                    {"planes": n, "cols": min(m, 1024)}, lambda a: [seven_point_ref(a[0], a[1])], [1]))
    return out


CASES = cases()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_results(case, backend):
    _, fn, make, labels, ref, outs = case
    args = make(rng())
    want = ref([a.copy() if isinstance(a, np.ndarray) else a for a in args])
    fn(*args, opts=opts(backend, **labels))
    for i, w in zip(outs, want):
        if np.issubdtype(w.dtype, np.integer):
            np.testing.assert_array_equal(args[i], w)
        else:
            np.testing.assert_allclose(args[i], w, rtol=1e-5, atol=1e-5)


def vec_kernel(code):
    """The text of the 128-bit variant of the first kernel, or None."""
    m = re.search(r"__global__ void [^\n]*_vec\(.*?\n}\n", code, re.DOTALL)
    return m.group(0) if m else None


def test_interior_columns_run_in_aligned_groups():
    n = (1 << 16) + 3
    code = parpy.print_compiled(second_difference, [np.zeros(n, np.float32), np.zeros(n, np.float32), n],
                                opts(CUDA, i=n))
    k = vec_kernel(code)
    # Groups start at column 0 (4t), the first lane of the first group masked.
    assert k and "v_i = (0 + (4 * parpy_w0))" in k, code
    # 65539 elements is not a multiple of four: a chunk may reach past the array, so every read
    # past a group's own lanes is guarded, and none is loaded unguarded beyond the lanes.
    assert "(((v_i + 0) >= 1) ? v_x[" in k, k
    # Where the whole group lies in the range, four plain stores (one 128-bit store).
    assert "if (((v_i >= 1) && ((v_i + 4) <= 65538)))" in k, k
    n = 1 << 16
    k = vec_kernel(parpy.print_compiled(second_difference, [np.zeros(n, np.float32), np.zeros(n, np.float32), n],
                                        opts(CUDA, i=n)))
    # A multiple of four: the chunk at the group is loaded whole; the reads at v - 1 and v + 4 only
    # where lanes 0 and 3 are in the range.
    assert "= v_x[(v_i + 1)]" in k and "= v_x[(v_i + 3)]" in k and "parpy_ldg_chunk" not in k, k
    assert "(((v_i + 0) >= 1) ? v_x[(v_i - 1)]" in k and "(((v_i + 3) < 65535) ? v_x[((v_i + 3) + 1)]" in k, k


def test_strips_run_in_aligned_groups():
    n, m = 34, 2048
    x = np.zeros((n, n, m), np.float32)
    k = vec_kernel(parpy.print_compiled(seven_point, [x, x.copy(), n, m], opts(CUDA, planes=n, cols=m)))
    assert k and "parpy_strip0" in k, k
    # The strip's rows in registers, one set per lane.
    assert all(f"parpy__x24rot0_2_v{u} = " in k for u in range(4)), k
    # The strip kernel's arrays share no memory: each row's 16 bytes in one load through the
    # read-only path (the rows i - 1 and i before the planes, then j - 1, j + 1 and i + 1 of each).
    assert k.count("parpy_ldg_chunk(&v_x[") == 5, k
    # The centre row x[i, j, v .. v + 3] is what the lanes' registers for row i hold (the strip's
    # rows i - 1, i, i + 1): not loaded again.
    assert all(re.search(rf"parpy_vl\d+ = parpy__x24rot0_1_v{u};", k) for u in range(4)), k
    # The centre row's neighbours at v - 1 and v + 4 are guarded by lanes 0 and 3.
    assert "(((v_k + 0) >= 1) ? v_x[" in k and "(((v_k + 3) < 2047) ? v_x[" in k, k
    # A thread per group of four columns: 2046 interior columns in 512 groups (not 2046 threads), in
    # two blocks of 256 (the strips' block size), for each of the 4 strips x 32 rows.
    code = parpy.print_compiled(seven_point, [x, x.copy(), n, m], opts(CUDA, planes=n, cols=m))
    assert code.count("<<<dim3(256), dim3(256)") == 2 and "v_k += 512)" in code, code
    # A row of 2050 columns is not a multiple of four: no 128-bit variant.
    m = 2050
    x = np.zeros((n, n, m), np.float32)
    assert vec_kernel(parpy.print_compiled(seven_point, [x, x.copy(), n, m], opts(CUDA, planes=n, cols=m))) is None


def test_strip_rows_of_whole_warps_share_their_blocks():
    # 510 interior columns in 128 groups of four: a row's 4 warps fill half a block of 256 (the
    # strips' block size), so two rows run in each block; nothing after a thread's last row needs a
    # barrier, so the kernel has none. 65 planes in 9 strips x 65 rows: 585 rows, the last block's
    # second row past the end.
    n, m = 67, 512
    x = np.zeros((n, n, m), np.float32)
    code = parpy.print_compiled(seven_point, [x, x.copy(), n, m], opts(CUDA, planes=n, cols=m))
    assert code.count("// rows packed: 2 rows per block of 256 threads, each on 4 warps (128 workers") == 2, code
    assert code.count("<<<dim3(293), dim3(256)") == 2 and "syncthreads" not in code, code
    assert code.count("if ((parpy_outer < 585))") == 2, code


def test_no_groups_where_arrays_share_memory():
    n = 1 << 16
    a = np.zeros(n, np.float32)
    assert vec_kernel(parpy.print_compiled(second_difference, [a, a, n], opts(CUDA, i=n))) is None


def random_stencils(count, module, tmp_path, monkeypatch):
    """`count` random stencils (test_strip_rows.random_stencil) as the functions s0, s1, ... of a new
    module: (seed, generator, module, sources, references)."""
    seed = int(np.random.SeedSequence().entropy % 2**32)
    r = np.random.default_rng(seed)
    sources, refs = zip(*(random_stencil(r, k) for k in range(count)))
    (tmp_path / f"{module}.py").write_text("import parpy\n\n\n" + "\n\n".join(sources))
    monkeypatch.syspath_prepend(str(tmp_path))
    return seed, r, importlib.import_module(module), sources, refs


@pytest.mark.skipif(CUDA not in backends, reason="needs a GPU")
def test_random_stencils_on_cuda(tmp_path, monkeypatch):
    # Random stencils (columns read up to two to either side, rows in strips and reversed) with
    # rows of a multiple of four columns and not, against numpy; the seed is printed on failure.
    seed, r, mod, sources, refs = random_stencils(16, "random_vec_stencils", tmp_path, monkeypatch)
    grouped = 0
    for k in range(16):
        fn = getattr(mod, f"s{k}")
        n, m = 40, (2048 if k % 2 == 0 else 2048 + 1 + k % 3)
        x, z, y = (r.standard_normal((n, m)).astype(np.float32) for _ in range(3))
        want = refs[k](x, z, y)
        o = opts(CUDA, rows=n, cols=1 << 14)
        grouped += vec_kernel(parpy.print_compiled(fn, [x, z, y, n, m], o)) is not None
        fn(x, z, y, n, m, opts=o)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4, err_msg=f"seed {seed}, program {k}:\n{sources[k]}")
    assert grouped >= 4, f"seed {seed}: {grouped} programs ran in 128-bit groups"


@parpy.jit
def store_then_read(x, y, z, N):
    parpy.label("i")
    for i in range(N):
        y[i] = x[i] * 2.0
        z[i] = x[i] + 1.0


@parpy.jit
def store_then_read_interior(x, y, z, N):
    parpy.label("i")
    for i in range(1, N):
        y[i] = x[i] * 2.0
        z[i] = x[i] + 1.0


@pytest.mark.parametrize("fn", [store_then_read, store_then_read_interior])
@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_a_store_is_seen_through_another_name_of_the_array(fn, backend):
    # x and y are one array: z[i] reads what y[i] = ... stored in the same iteration. Loads moved
    # ahead of the stores of their group would read the old value.
    n = 1 << 16
    a = rng().standard_normal(n).astype(np.float32)
    z = np.zeros(n, np.float32)
    lo = 0 if fn is store_then_read else 1
    want_a, want_z = a.copy(), z.copy()
    want_a[lo:] = a[lo:] * np.float32(2.0)
    want_z[lo:] = want_a[lo:] + np.float32(1.0)
    assert vec_kernel(parpy.print_compiled(fn, [a, a, z, n], opts(CUDA, i=n))) is None
    fn(a, a, z, n, opts=opts(backend, i=n))
    np.testing.assert_array_equal(a, want_a)
    np.testing.assert_array_equal(z, want_z)


# ----- the kernels' code run on the CPU ---------------------------------------------------------
# Kernels without shared memory or communication between threads (strips, groups) give the same
# result when each thread runs to its end, one after another: their printed CUDA, compiled as C++
# with the few CUDA names they use defined below, runs here without a GPU, every variant.

CUDA_SHIM = r"""
#include <cmath>
#include <cstdint>
#include <cstring>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __restrict__ __restrict
struct parpy_dim3 { unsigned x, y, z; };
static parpy_dim3 threadIdx, blockIdx;
struct uint4 { unsigned x, y, z, w; };
template <class T> static T __ldg(const T* p) { return *p; }
#define parpy_syncthreads() ((void)0)
#include "parpy_common.h"
"""


def run_kernels_on_the_cpu(code, arrays, tmp_path):
    """Runs each kernel of the printed Cuda program `code` (every launch, both variants) over copies
    of `arrays` (its array parameters by name) on the CPU: {kernel name: {array: result}}."""
    import ctypes
    import subprocess
    from pathlib import Path

    header = (Path(parpy.get_include()) / "parpy_cuda.h").read_text()
    helper = re.search(r"template <class T, class\.\.\. L>\n__device__ __forceinline__ void "
                       r"parpy_ldg_chunk.*?\n}\n", header, re.DOTALL).group(0)
    assert "__shared__" not in code and "parpy_block_" not in code, "threads that communicate"
    kernels = re.findall(r"(__global__ void [^\n]*? (parpy_kernel_\w+)\(([^)]*)\) \{\n.*?\n}\n)", code,
                         re.DOTALL)
    launch = r"(parpy_kernel_\w+)<<<dim3\((\d+)\), dim3\((\d+)\)"
    launches = {name: (int(b), int(t)) for name, b, t in re.findall(launch, code)}
    src = [CUDA_SHIM, helper]
    for text, name, params in kernels:
        src.append(text)
        names = [p.split()[-1] for p in params.split(",")]
        types = [" ".join(p.split()[:-1]).replace("__restrict__", "") for p in params.split(",")]
        call = ", ".join(f"({t})args[{i}]" for i, t in enumerate(types))
        blocks, threads = launches[name]
        src.append(f'extern "C" void run_{name}(void** args) {{\n'
                   f"  for (unsigned b = 0; b < {blocks}; ++b)\n"
                   f"    for (unsigned t = 0; t < {threads}; ++t) {{\n"
                   f"      blockIdx.x = b; threadIdx.x = t;\n      {name}({call});\n    }}\n}}\n")
        src.append(f'extern "C" const char* params_{name}() {{ return "{" ".join(names)}"; }}\n')
    assert launches and kernels, code
    (tmp_path / "k.cpp").write_text("\n".join(src))
    lib = tmp_path / "k.so"
    r = subprocess.run(["g++", "-std=c++17", "-O1", "-shared", "-fPIC", "-I" + parpy.get_include(),
                        str(tmp_path / "k.cpp"), "-o", str(lib)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr + "\n".join(src)
    so = ctypes.CDLL(str(lib))
    out = {}
    for _, name, _ in kernels:
        getattr(so, f"params_{name}").restype = ctypes.c_char_p
        names = getattr(so, f"params_{name}")().decode().split()
        copies = {n: arrays[n[2:]].copy() for n in names}  # v_x -> x
        ptrs = (ctypes.c_void_p * len(names))(*[c.ctypes.data for c in copies.values()])
        getattr(so, f"run_{name}")(ptrs)
        out[name] = {n[2:]: a for n, a in copies.items()}
    return out


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler (g++)")
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(34, 34, 2048), (34, 34, 2052), (26, 26, 2048), (67, 67, 512)])
def test_strip_groups_run_on_the_cpu(dt, shape, tmp_path):
    # The 7-point stencil's strips in 128-bit groups (the centre row from the registers, chunks
    # through parpy_ldg_chunk) and its scalar kernel, each thread in turn, against numpy.
    n, _, m = shape
    r = rng()
    x = r.standard_normal(shape).astype(dt)
    y = np.zeros(shape, dt)
    code = parpy.print_compiled(seven_point, [x, y, n, m], opts(CUDA, planes=n, cols=m))
    assert "_vec(" in code and "parpy_strip0" in code and "parpy_ldg_chunk(&" in code, code
    want = seven_point_ref(x, y)
    results = run_kernels_on_the_cpu(code, {"x": x, "y": y}, tmp_path)
    assert len(results) == 2
    for name, got in results.items():
        np.testing.assert_allclose(got["y"], want, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(got["x"], x)



@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler (g++)")
@pytest.mark.parametrize("fn", [second_difference, shifted_copy])
@pytest.mark.parametrize("n", [4096, 4097, 4098, 4099])
def test_interior_groups_run_on_the_cpu(fn, n, tmp_path):
    r = rng()
    x, y = r.standard_normal(n).astype(np.float32), np.zeros(n, np.float32)
    code = parpy.print_compiled(fn, [x, y, n], opts(CUDA, i=n))
    assert "_vec(" in code, code
    want = (second_difference_ref if fn is second_difference else shifted_copy_ref)(x, y)
    for name, got in run_kernels_on_the_cpu(code, {"x": x, "y": y}, tmp_path).items():
        np.testing.assert_allclose(got["y"], want, rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler (g++)")
def test_random_strip_groups_run_on_the_cpu(tmp_path, monkeypatch):
    # Random stencils (columns read up to two to either side, rows reversed, two arrays) in strips
    # of 128-bit groups, each thread in turn, against numpy; the seed is printed on failure.
    seed, r, mod, sources, refs = random_stencils(12, "random_cpu_stencils", tmp_path, monkeypatch)
    grouped = 0
    for k in range(12):
        fn = getattr(mod, f"s{k}")
        n, m = 80, 16392
        x, z = (r.standard_normal((n, m)).astype(np.float32) for _ in range(2))
        y = np.zeros((n, m), np.float32)
        code = parpy.print_compiled(fn, [x, z, y, n, m], opts(CUDA, rows=n, cols=m))
        grouped += "parpy_strip0" in code and "_vec(" in code
        want = refs[k](x, z, y)
        d = tmp_path / f"s{k}"
        d.mkdir()
        for name, got in run_kernels_on_the_cpu(code, {"x": x, "z": z, "y": y}, d).items():
            np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-4,
                                       err_msg=f"seed {seed}, {name}:\n{sources[k]}")
    assert grouped >= 3, f"seed {seed}: {grouped} programs ran in strips of 128-bit groups"
