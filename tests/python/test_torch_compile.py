"""A jit function wrapped as a torch custom operator (torch.library.custom_op, docs/torch.md) runs
inside torch.compile graphs and gives torch's eager result: an operator that returns a new tensor
and one that updates its argument in place, on each backend's device."""

import parpy
import pytest

torch = pytest.importorskip("torch")
if not hasattr(torch.library, "custom_op"):
    pytest.skip("torch.library.custom_op needs torch 2.4 or later", allow_module_level=True)

from common import make_opts  # noqa: E402


@parpy.jit
def softmax(x, out, N, M):
    parpy.label("rows")
    for i in range(N):
        m = parpy.operators.max(x[i, :])
        parpy.label("cols")
        out[i, :] = parpy.operators.exp(x[i, :] - m)
        s = parpy.operators.sum(out[i, :])
        parpy.label("cols")
        out[i, :] = out[i, :] / s


@parpy.jit
def axpy_(a, x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = a * x[i] + y[i]


def device_of(backend):
    return "cuda" if backend == parpy.CompileBackend.Cuda else "cpu"


_ops = {}


def ops(backend):
    """The two operators for `backend`, registered once per process (names are global)."""
    if backend in _ops:
        return _ops[backend]
    ns = f"parpy_test_{backend.name.lower()}"

    @torch.library.custom_op(f"{ns}::softmax", mutates_args=())
    def softmax_op(x: torch.Tensor) -> torch.Tensor:
        N, M = x.shape
        out = torch.empty_like(x)
        softmax(x.contiguous(), out, N, M, opts=make_opts(backend, rows=N, cols=min(M, 256)))
        return out

    @softmax_op.register_fake
    def _(x):
        return torch.empty_like(x)

    @torch.library.custom_op(f"{ns}::axpy_", mutates_args=("y",))
    def axpy_op(a: float, x: torch.Tensor, y: torch.Tensor) -> None:
        axpy_(a, x, y, x.shape[0], opts=make_opts(backend, N=x.shape[0]))

    @axpy_op.register_fake
    def _(a, x, y):
        return None

    _ops[backend] = (softmax_op, axpy_op)
    return _ops[backend]


@pytest.mark.parametrize("compiler", ["aot_eager", "inductor"])
def test_an_operator_returning_a_tensor(backend, compiler):
    softmax_op, _ = ops(backend)
    dev = device_of(backend)

    def f(x):
        return softmax_op(x * 2.0) + 1.0

    x = torch.randn(37, 61, device=dev)
    want = torch.softmax(x * 2.0, dim=1) + 1.0
    torch.testing.assert_close(f(x), want)
    g = torch.compile(f, backend=compiler, fullgraph=True)
    torch.testing.assert_close(g(x), want)
    x2 = torch.randn(37, 61, device=dev)  # a second call runs the compiled graph again
    torch.testing.assert_close(g(x2), torch.softmax(x2 * 2.0, dim=1) + 1.0)


def test_an_operator_updating_its_argument(backend):
    _, axpy_op = ops(backend)
    dev = device_of(backend)

    def f(x, y):
        axpy_op(2.5, x, y)
        return y * 3.0

    x, y = torch.randn(1000, device=dev, dtype=torch.float64), torch.randn(1000, device=dev, dtype=torch.float64)
    y0 = y.clone()
    g = torch.compile(f, backend="aot_eager", fullgraph=True)
    r = g(x, y)
    torch.testing.assert_close(y, 2.5 * x + y0)
    torch.testing.assert_close(r, (2.5 * x + y0) * 3.0)
