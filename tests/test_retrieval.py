"""Hopfield retrieval (neuromem.retrieval): classical and modern, numpy / numba / torch."""

from __future__ import annotations

import numpy as np
import pytest

from neuromem.errors import SpecError
from neuromem.retrieval import (
    HopfieldMemory,
    RetrievalError,
    classical_field,
    classical_retrieve,
    modern_retrieve,
)

torch = pytest.importorskip("torch", reason="torch backend tests need torch")

BACKENDS = ("numpy", "numba", "torch")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _flip(rng, x, frac):
    y = x.copy()
    n = x.shape[-1]
    for row in y.reshape(-1, n):
        row[rng.choice(n, int(frac * n), replace=False)] *= -1
    return y


def _modern_formula(X, Q, beta):
    """The formula written out in float64, independent of the library (stable softmax)."""
    X = np.asarray(X, np.float64)
    Q = np.atleast_2d(np.asarray(Q, np.float64))
    S = beta * Q @ X.T
    E = np.exp(S - S.max(axis=1, keepdims=True))
    return (E / E.sum(axis=1, keepdims=True)) @ X


def _rel(a, ref):
    a = np.asarray(a.cpu() if hasattr(a, "cpu") else a, np.float64).reshape(ref.shape)
    return float(np.abs(a - ref).max() / np.abs(ref).max())


# --- classical ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_classical_retrieves_stored_patterns_at_low_load(backend, dtype):
    rng = np.random.default_rng(1)
    P, N = 10, 500  # load 0.02, far below capacity 0.138
    X = _pm1(rng, (P, N))
    Q = _flip(rng, X, 0.15)
    mem = HopfieldMemory(X, backend=backend, dtype=dtype)
    out = np.asarray(mem.classical(Q, steps=2))
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, X)
    one = np.asarray(mem.classical(Q[3], steps=1))  # single probe, one step
    np.testing.assert_array_equal(one, X[3])


@pytest.mark.parametrize("backend", BACKENDS)
def test_classical_field_equals_explicit_couplings(backend):
    rng = np.random.default_rng(2)
    P, N = 37, 60
    X = rng.standard_normal((P, N))
    Q = rng.standard_normal((4, N))
    J = X.T @ X / N
    np.fill_diagonal(J, 0.0)
    ref = Q @ J
    for method in ("factored", "dense"):
        h = classical_field(X, Q, method=method, backend=backend, dtype="float64")
        assert _rel(h, ref) < 1e-12
        h1 = classical_field(X, Q[1], method=method, backend=backend, dtype="float64")
        assert _rel(h1, ref[1]) < 1e-12
    # several row blocks in the batched numba kernel, the last one partial
    X = rng.standard_normal((1037, 256))
    Q = rng.standard_normal((3, 256))
    mem = HopfieldMemory(X, backend=backend, dtype="float64")
    assert mem._block < 1037 and 1037 % mem._block
    ref = (Q @ X.T) @ X - Q * (X * X).sum(0)
    assert _rel(mem.classical_field(Q, method="factored"), ref / 256) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_classical_factored_and_dense_identical_for_pm1(backend, dtype):
    rng = np.random.default_rng(3)
    X = _pm1(rng, (40, 64))  # above capacity: many flips, many exact zero fields (even P)
    Q = _pm1(rng, (6, 64))
    mem = HopfieldMemory(X, backend=backend, dtype=dtype)
    a = np.asarray(mem.classical(Q, steps=3, method="factored"))
    b = np.asarray(mem.classical(Q, steps=3, method="dense"))
    np.testing.assert_array_equal(a, b)
    ref = HopfieldMemory(X, backend="numpy", dtype="float64").classical(Q, steps=3)
    np.testing.assert_array_equal(a, ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_classical_tie_rule(backend):
    # P = 1, X = (1, 1, -1), x = (1, -1, 1): N h = (-2, 0, 0) -> ties on units 1 and 2.
    X = np.array([[1.0, 1.0, -1.0]])
    x = np.array([1.0, -1.0, 1.0])
    keep = classical_retrieve(X, x, tie="keep", backend=backend)
    up = classical_retrieve(X, x, tie="up", backend=backend)
    np.testing.assert_array_equal(np.asarray(keep), [-1.0, -1.0, 1.0])
    np.testing.assert_array_equal(np.asarray(up), [-1.0, 1.0, 1.0])
    # x = (1, -1, 0): N h = -x = (-1, 1, 0); the tie on a current value of 0 gives +1 ("keep")
    z = classical_retrieve(X, np.array([1.0, -1.0, 0.0]), backend=backend)
    np.testing.assert_array_equal(np.asarray(z), [-1.0, 1.0, 1.0])
    z = classical_retrieve(X, np.array([1.0, -1.0, 0.0]), tie="up", backend=backend)
    np.testing.assert_array_equal(np.asarray(z), [-1.0, 1.0, 1.0])


def test_classical_auto_method_choice():
    rng = np.random.default_rng(4)
    small = HopfieldMemory(_pm1(rng, (5, 100)), backend="numpy")
    q = np.ones(100)
    assert small._method("auto", q, 1) == "factored"
    big = HopfieldMemory(_pm1(rng, (300, 100)), backend="numpy")
    assert big._method("auto", q, 1) == "factored"  # forming J costs more than one step
    assert big._method("auto", np.ones((50, 100)), 10) == "dense"


# --- modern ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_modern_retrieves_stored_patterns(backend):
    rng = np.random.default_rng(5)
    P, N = 200, 100  # P > N: beyond classical capacity, fine for the modern network
    X = _pm1(rng, (P, N))
    Q = _flip(rng, X[:8], 0.2)
    out = np.asarray(modern_retrieve(X, Q, beta=2.0, backend=backend))
    np.testing.assert_allclose(out, X[:8], atol=1e-6)
    one = np.asarray(modern_retrieve(X, Q[2], beta=2.0, backend=backend))
    np.testing.assert_allclose(one, X[2], atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("beta", [1e-3, 0.02, 0.3])
def test_modern_equals_formula_float64(backend, beta):
    # real patterns, spread softmax (beta small) to peaked; P not a multiple of the block size
    rng = np.random.default_rng(6)
    P, N = 1037, 256
    X = rng.standard_normal((P, N))
    Q = X[:5] + 0.8 * rng.standard_normal((5, N))
    mem = HopfieldMemory(X, backend=backend, dtype="float64")
    assert mem._block < P
    for steps in (1, 3):
        ref = Q
        for _ in range(steps):
            ref = _modern_formula(X, ref, beta)
        assert _rel(mem.modern(Q, beta, steps), ref) < 1e-12
        assert _rel(mem.modern(Q[0], beta, steps), ref[:1]) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("beta", [1e-3, 0.05, 0.5])
def test_modern_float32_close_to_float64_formula(backend, beta):
    rng = np.random.default_rng(7)
    P, N = 3001, 128
    X = (rng.standard_normal((P, N)) / np.sqrt(N)).astype(np.float32) * 4
    Q = X[:3] + 0.1 * rng.standard_normal((3, N)).astype(np.float32)
    ref = _modern_formula(X, Q, beta)
    mem = HopfieldMemory(X, backend=backend)  # float32 from the patterns
    out = mem.modern(Q, beta)
    assert str(out.dtype).endswith("float32")
    assert _rel(out, ref) < 1e-5
    assert _rel(mem.modern(Q[1], beta), ref[1:2]) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_modern_softmax_stable_at_large_beta(backend):
    rng = np.random.default_rng(8)
    N = 64
    X = _pm1(rng, (50, N))
    q = _flip(rng, X[7], 0.2)
    # scores up to beta * N = 6.4e5: a naive exp overflows; the result is the nearest pattern
    out = np.asarray(modern_retrieve(X, q, beta=1e4, backend=backend, dtype="float32"))
    np.testing.assert_array_equal(out, X[7])
    # a probe halfway between two stored patterns: both top scores tie exactly, the others
    # are lower by ~N/2, so at large beta the result is the mean of the two patterns
    q2 = (X[0] + X[1]) / 2
    out2 = np.asarray(modern_retrieve(X, q2, beta=1e4, backend=backend, dtype="float64"))
    np.testing.assert_array_equal(out2, (X[0] + X[1]) / 2)


@pytest.mark.parametrize("backend", ["numba", "numpy", "torch"])
def test_modern_running_max_rises_every_row(backend):
    # rows ordered by increasing score: the streaming kernel rescales at every row
    rng = np.random.default_rng(9)
    N = 80
    q = rng.standard_normal(N)
    X = rng.standard_normal((400, N))
    X = X[np.argsort(X @ q)]
    for beta in (0.05, 5.0, 500.0):
        ref = _modern_formula(X, q, beta)
        assert _rel(modern_retrieve(X, q, beta, backend=backend, dtype="float64"), ref) < 1e-12


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_backends_equal_numpy_iterated(backend):
    rng = np.random.default_rng(10)
    X = rng.standard_normal((500, 70))
    Q = rng.standard_normal((7, 70))
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        ref = np.asarray(HopfieldMemory(X, backend="numpy", dtype=dtype).modern(Q, 0.1, 4))
        out = HopfieldMemory(X, backend=backend, dtype=dtype).modern(Q, 0.1, 4)
        assert _rel(out, ref.astype(np.float64)) < tol


def test_torch_accepts_tensors_and_returns_tensors():
    X = torch.randn(30, 20, dtype=torch.float64)
    mem = HopfieldMemory(X, backend="torch")
    out = mem.modern(X[0], beta=2.0)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert mem.dtype == np.float64
    # tensors (even ones requiring grad) are accepted by the host backends
    Xg = X.clone().requires_grad_(True)
    host = HopfieldMemory(Xg, backend="numba")
    np.testing.assert_allclose(host.modern(X[0], 2.0), out.detach().numpy(), rtol=1e-12)
    # the torch backend is differentiable
    out_g = HopfieldMemory(Xg, backend="torch").modern(X[0], 2.0)
    out_g.sum().backward()
    assert Xg.grad is not None and torch.isfinite(Xg.grad).all()


@CUDA
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_cuda_equals_numpy(dtype):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((700, 90))
    Q = X[:4] + rng.standard_normal((4, 90))
    tol = 1e-12 if dtype == "float64" else 1e-5
    mem = HopfieldMemory(X, backend="torch", dtype=dtype, device="cuda")
    out = mem.modern(Q, 0.1, 2)
    assert out.device.type == "cuda"
    ref = _modern_formula(X, _modern_formula(X, Q, 0.1), 0.1)
    assert _rel(out, ref) < tol
    pm = np.sign(X[:20])
    cm = HopfieldMemory(pm, backend="torch", dtype=dtype, device="cuda")
    ref_c = HopfieldMemory(pm, backend="numpy", dtype=dtype).classical(np.sign(Q), steps=2)
    np.testing.assert_array_equal(cm.classical(np.sign(Q), steps=2).cpu().numpy(), ref_c)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"patterns": np.ones(5)}, "patterns"),
        ({"patterns": np.ones((2, 3, 4))}, "patterns"),
        ({"patterns": np.ones((0, 4))}, "patterns"),
        ({"patterns": np.array([[1.0, np.nan]])}, "patterns"),
        ({"patterns": np.array([[1.0, np.inf]])}, "patterns"),
        ({"patterns": np.array([["a", "b"]])}, "patterns"),
        ({"patterns": np.ones((2, 2), complex)}, "patterns"),
        ({"patterns": torch.ones((2, 2), dtype=torch.complex64), "backend": "torch"}, "patterns"),
        ({"backend": "jax"}, "backend"),
        ({"dtype": "float16"}, "dtype"),
        ({"dtype": "int32"}, "dtype"),
        ({"device": "cpu", "backend": "numba"}, "device"),
    ],
)
def test_memory_construction_errors(kwargs, arg):
    args = {"patterns": np.ones((3, 4))} | kwargs
    with pytest.raises(RetrievalError, match=f"argument '{arg}'") as info:
        HopfieldMemory(args.pop("patterns"), **args)
    assert isinstance(info.value, SpecError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_retrieval_argument_errors(backend):
    mem = HopfieldMemory(np.ones((3, 4)), backend=backend)
    bad_modern = [
        ({"probe": np.ones(5), "beta": 1.0}, "probe"),
        ({"probe": np.ones((2, 3)), "beta": 1.0}, "probe"),
        ({"probe": np.ones((2, 2, 4)), "beta": 1.0}, "probe"),
        ({"probe": np.ones((0, 4)), "beta": 1.0}, "probe"),
        ({"probe": np.array([1.0, np.nan, 0, 0]), "beta": 1.0}, "probe"),
        ({"probe": np.ones(4), "beta": 0.0}, "beta"),
        ({"probe": np.ones(4), "beta": -1.0}, "beta"),
        ({"probe": np.ones(4), "beta": float("inf")}, "beta"),
        ({"probe": np.ones(4), "beta": float("nan")}, "beta"),
        ({"probe": np.ones(4), "beta": "hot"}, "beta"),
        ({"probe": np.ones(4), "beta": 1.0, "steps": 0}, "steps"),
        ({"probe": np.ones(4), "beta": 1.0, "steps": 1.5}, "steps"),
        ({"probe": np.ones(4), "beta": 1.0, "steps": True}, "steps"),
    ]
    for kw, arg in bad_modern:
        with pytest.raises(RetrievalError, match=f"argument '{arg}' \\(backend '{backend}'\\)"):
            mem.modern(**kw)
    for kw, arg in [
        ({"tie": "down"}, "tie"),
        ({"method": "sparse"}, "method"),
        ({"steps": -1}, "steps"),
    ]:
        with pytest.raises(RetrievalError, match=f"argument '{arg}'"):
            mem.classical(np.ones(4), **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_overflow_is_reported(backend):
    X = np.full((2, 4), 1e20, dtype=np.float32)  # X X^T overflows float32
    with pytest.raises(RetrievalError, match="argument 'beta'.*overflowed float32"):
        modern_retrieve(X, X[0], beta=1.0, backend=backend)
    for method in ("factored", "dense"):
        with pytest.raises(RetrievalError, match="argument 'patterns'.*overflowed float32"):
            classical_retrieve(X, X[0], method=method, backend=backend)


def test_integer_patterns_default_to_float64():
    X = np.array([[1, -1, 1, -1], [1, 1, -1, -1]], dtype=np.int8)
    mem = HopfieldMemory(X, backend="numba")
    assert mem.dtype == np.float64
    # N h = X^T (X x) - d x = (0, -4, 4, 0) - 2 x = (-2, -2, 2, -2)
    np.testing.assert_array_equal(mem.classical(np.array([1, -1, 1, 1])), [-1, -1, 1, -1])
