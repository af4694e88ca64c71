"""Hopfield retrieval: classical (Hebbian, sign update) and modern (dense associative memory).

Stored patterns ``X`` have shape ``(P, N)`` (``P`` patterns of ``N`` units; entries +-1 or
real, dimensionless). A probe is one state ``(N,)`` or a batch ``(B, N)``.

Classical (Hopfield 1982), one synchronous step::

    h = J x,  J = X^T X / N with J_ii = 0,   x_new = sign(h)

computed as ``h = (X^T (X x) - d * x) / N`` with ``d_i = sum_mu X_mu,i^2`` (the self term),
without forming ``J`` (cost ``2 P N`` per probe and step), or with the dense ``N x N`` couplings
when that is cheaper over the requested steps and probes (``method="auto"``; forming costs
``P N^2`` once, each step ``N^2``). Tie rule (``h_i == 0`` exactly): ``tie="keep"`` keeps the
sign of the current state ``x_i`` (``+1`` when ``x_i == 0``), ``tie="up"`` gives ``+1``. The
sign is taken of the unnormalised field ``N h``, so for +-1 patterns and probes every partial sum
is an integer and ties are detected exactly in float32 as long as ``P N < 2**24``.

Modern (Ramsauer et al. 2020, "Hopfield networks is all you need"), one step::

    xi_new = X^T softmax(beta X xi)

``beta`` (inverse temperature, dimensionless) > 0. Steps are iterated ``steps`` times.

Backends: ``"numpy"`` (the plain formulas; the reference), ``"numba"`` (CPU kernels; a single
probe is served by one streaming pass over ``X``: an online softmax keeps a running max, a
rescaled running sum and a running weighted sum of rows, so ``X`` is read from memory once per
step; batches are processed in blocks of rows with two small matrix products per block, again
reading ``X`` once), and ``"torch"`` (matrix products, CPU or CUDA by ``device``). Dtypes
float32 and float64. Inside numba kernels the dot products and accumulators use the pattern
dtype and the softmax scalars (max, sum) use float64.

Validation (shapes, finite values, ``beta > 0``, ``steps >= 1``) raises :class:`RetrievalError`
(a :class:`~neuromem.errors.SpecError`) naming the argument, the backend and the limit. ``X`` is
validated and converted once when a :class:`HopfieldMemory` is built; each retrieval validates
only its probe (cheap: ``O(B N)``), so repeated retrievals never re-read ``X`` for checks.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numba as nb
import numpy as np

from neuromem.errors import SpecError

Backend = Literal["numpy", "numba", "torch"]
BACKENDS = ("numpy", "numba", "torch")
TIES = ("keep", "up")
METHODS = ("auto", "factored", "dense")

# Reassociation lets LLVM vectorise the reductions; no nnan/ninf so the -inf start of the running
# max and non-finite checks keep their IEEE meaning.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
# Rows per block in the batched kernels: a block of X (~1 MiB) stays in L2/L3 between the two
# products that use it, so X is read from memory once; smaller blocks spend more time updating
# the (B, N) accumulator, larger ones fall out of cache (measured: 256 rows best at N = 1000,
# float32, B = 100).
_BLOCK_BYTES = 1024 * 1024

__all__ = [
    "HopfieldMemory",
    "RetrievalError",
    "classical_field",
    "classical_retrieve",
    "modern_retrieve",
]


class RetrievalError(SpecError):
    """Invalid input to Hopfield retrieval; the message names the argument, backend and limit."""


# ----------------------------------------------------------------------------------------------
# numba kernels
# ----------------------------------------------------------------------------------------------


@nb.njit(fastmath=_FASTMATH, nogil=True, cache=True)
def _modern_stream(X, xi, beta):  # pragma: no cover - compiled
    """One modern step for one probe in a single pass over the rows of X (online softmax).

    Invariant after row mu: m = max_{nu<=mu} beta s_nu, l = sum exp(beta s_nu - m),
    acc = sum exp(beta s_nu - m) X_nu; when the max rises, l and acc are rescaled by
    exp(m_old - m_new). Each row is read from memory once: the dot product brings it into L1,
    the weighted accumulation re-reads it from there.
    """
    P, N = X.shape
    zero = X.dtype.type(0)
    acc = np.zeros(N, X.dtype)
    m = -np.inf
    l = 0.0
    for mu in range(P):
        row = X[mu]
        s = zero
        for j in range(N):
            s += row[j] * xi[j]
        t = beta * np.float64(s)
        if t > m:
            f = np.exp(m - t)  # 0 on the first row (m = -inf)
            l *= f
            fa = X.dtype.type(f)
            for j in range(N):
                acc[j] *= fa
            m = t
        e = np.exp(t - m)
        l += e
        w = X.dtype.type(e)
        for j in range(N):
            acc[j] += w * row[j]
    out = np.empty(N, X.dtype)
    inv = 1.0 / l
    for j in range(N):
        out[j] = acc[j] * inv
    return out


@nb.njit(fastmath=_FASTMATH, nogil=True, cache=True)
def _modern_batch(X, Q, beta, block):  # pragma: no cover - compiled
    """One modern step for probes Q (B, N): blocks of rows, online softmax per probe."""
    P, N = X.shape
    B = Q.shape[0]
    QT = np.ascontiguousarray(Q.T)  # (N, B)
    acc = np.zeros((B, N), X.dtype)
    m = np.full(B, -np.inf)
    l = np.zeros(B)
    WT = np.empty((B, block), X.dtype)
    for b0 in range(0, P, block):
        b1 = min(P, b0 + block)
        nr = b1 - b0
        S = np.dot(X[b0:b1], QT)  # (nr, B) scores
        for b in range(B):
            bm = -np.inf
            for r in range(nr):
                t = beta * np.float64(S[r, b])
                if t > bm:
                    bm = t
            if bm > m[b]:
                f = np.exp(m[b] - bm)
                l[b] *= f
                fa = X.dtype.type(f)
                for j in range(N):
                    acc[b, j] *= fa
                m[b] = bm
            mb = m[b]
            lb = 0.0
            for r in range(nr):
                e = np.exp(beta * np.float64(S[r, b]) - mb)
                lb += e
                WT[b, r] = X.dtype.type(e)
            l[b] += lb
        if nr == block:
            acc += np.dot(WT, X[b0:b1])
        else:
            acc += np.dot(np.ascontiguousarray(WT[:, :nr]), X[b0:b1])
    out = np.empty((B, N), X.dtype)
    for b in range(B):
        inv = 1.0 / l[b]
        for j in range(N):
            out[b, j] = acc[b, j] * inv
    return out


@nb.njit(fastmath=_FASTMATH, nogil=True, cache=True)
def _classical_stream(X, x, d):  # pragma: no cover - compiled
    """Unnormalised field N h = X^T (X x) - d x for one probe, one pass over the rows of X."""
    P, N = X.shape
    zero = X.dtype.type(0)
    acc = np.zeros(N, X.dtype)
    for mu in range(P):
        row = X[mu]
        s = zero
        for j in range(N):
            s += row[j] * x[j]
        for j in range(N):
            acc[j] += s * row[j]
    for j in range(N):
        acc[j] -= d[j] * x[j]
    return acc


@nb.njit(fastmath=_FASTMATH, nogil=True, cache=True)
def _classical_batch(X, Q, d, block):  # pragma: no cover - compiled
    """Unnormalised fields for probes Q (B, N), blocks of rows, X read once."""
    P, N = X.shape
    B = Q.shape[0]
    QT = np.ascontiguousarray(Q.T)
    acc = np.zeros((B, N), X.dtype)
    for b0 in range(0, P, block):
        b1 = min(P, b0 + block)
        S = np.dot(X[b0:b1], QT)  # (nr, B)
        acc += np.dot(np.ascontiguousarray(S.T), X[b0:b1])
    for b in range(B):
        for j in range(N):
            acc[b, j] -= d[j] * Q[b, j]
    return acc


@nb.njit(fastmath=_FASTMATH, nogil=True, cache=True)
def _dense_field(C, Q):  # pragma: no cover - compiled
    """Unnormalised fields Q C for probes Q (B, N) with symmetric couplings C (N, N)."""
    return np.dot(Q, C)


@nb.njit(nogil=True, cache=True)
def _sign_tie(h, x, up):  # pragma: no cover - compiled
    out = np.empty_like(h)
    one = h.dtype.type(1)
    flat_h = h.reshape(h.size)
    flat_x = x.reshape(x.size)
    flat_o = out.reshape(out.size)
    for i in range(flat_h.size):
        v = flat_h[i]
        if v > 0:
            flat_o[i] = one
        elif v < 0:
            flat_o[i] = -one
        elif up or flat_x[i] >= 0:
            flat_o[i] = one
        else:
            flat_o[i] = -one
    return out


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _fail(arg: str, backend: str, msg: str) -> RetrievalError:
    return RetrievalError(f"retrieval argument '{arg}' (backend '{backend}'): {msg}")


def _np_dtype(dtype: Any, default: np.dtype, backend: str) -> np.dtype:
    if dtype is None:
        return default
    try:
        import torch

        if isinstance(dtype, torch.dtype):
            dtype = {torch.float32: "float32", torch.float64: "float64"}.get(dtype, str(dtype))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise _fail(
            "dtype", backend, f"{dtype!r} is not a dtype; allowed: float32, float64"
        ) from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise _fail("dtype", backend, f"{dt} not supported; allowed: float32, float64")
    return dt


def _is_torch(a: Any) -> bool:
    mod = type(a).__module__
    return mod.startswith("torch")


def _host(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy()


def _check_beta(beta: Any, backend: str) -> float:
    try:
        b = float(beta)
    except (TypeError, ValueError) as exc:
        raise _fail("beta", backend, f"{beta!r} is not a number; must be finite and > 0") from exc
    if not (math.isfinite(b) and b > 0):
        raise _fail("beta", backend, f"{b} must be finite and > 0")
    return b


def _check_steps(steps: Any, backend: str) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise _fail("steps", backend, f"{steps!r} must be an integer >= 1")
    return int(steps)


# ----------------------------------------------------------------------------------------------
# the memory
# ----------------------------------------------------------------------------------------------


class HopfieldMemory:
    """Stored patterns, validated and converted once, with classical and modern retrieval.

    Parameters
    ----------
    patterns : array-like or torch.Tensor, shape (P, N)
        Stored patterns (dimensionless; +-1 or real). Must be finite, ``P >= 1``, ``N >= 1``.
    backend : {"numpy", "numba", "torch"}
        Where retrieval runs. ``"numpy"`` evaluates the plain formulas (the reference).
    dtype : {"float32", "float64"} or numpy / torch dtype, optional
        Compute dtype. Default: the patterns' dtype when it is float32 or float64, else float64.
    device : str or torch.device, optional
        Torch device (``"cpu"``, ``"cuda"``, ...); only for ``backend="torch"`` (default cpu).

    Notes
    -----
    The self-coupling term ``d_i = sum_mu X_mu,i^2`` (summed in float64, then cast) is computed
    on the first classical retrieval and kept, so each classical step is one pass over ``X``.
    Dense couplings (``method="dense"``) are likewise formed on first use and kept. Tensors
    given to the numpy / numba backends are detached and copied to host memory.
    """

    def __init__(
        self,
        patterns: Any,
        *,
        backend: Backend = "numba",
        dtype: Any = None,
        device: Any = None,
    ) -> None:
        if backend not in BACKENDS:
            raise _fail("backend", str(backend), f"unknown; allowed: {', '.join(BACKENDS)}")
        if device is not None and backend != "torch":
            raise _fail("device", backend, f"{device!r} given but only backend 'torch' has devices")
        self.backend: str = backend
        if _is_torch(patterns) and backend != "torch":
            patterns = _host(patterns)
        if _is_torch(patterns):
            import torch

            if patterns.is_complex():
                raise _fail(
                    "patterns", backend, f"dtype {patterns.dtype} is complex; need real values"
                )
            src_dtype = {torch.float32: np.dtype("float32"), torch.float64: np.dtype("float64")}
            default = src_dtype.get(patterns.dtype, np.dtype("float64"))
            shape = tuple(patterns.shape)
        else:
            patterns = np.asarray(patterns)
            if patterns.dtype.kind not in "biuf":
                raise _fail(
                    "patterns", backend, f"dtype {patterns.dtype} is not numeric; need real values"
                )
            default = (
                patterns.dtype
                if patterns.dtype in (np.dtype(np.float32), np.dtype(np.float64))
                else np.dtype("float64")
            )
            shape = patterns.shape
        self.dtype: np.dtype = _np_dtype(dtype, default, backend)
        if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
            raise _fail("patterns", backend, f"shape {shape} must be (P, N) with P >= 1, N >= 1")
        self.P, self.N = int(shape[0]), int(shape[1])
        self._dense = None
        if backend == "torch":
            import torch

            self._torch = torch
            tdt = torch.float32 if self.dtype == np.float32 else torch.float64
            self.device = torch.device(device if device is not None else "cpu")
            X = torch.as_tensor(patterns).to(device=self.device, dtype=tdt).contiguous()
            if not bool(torch.isfinite(X).all()):
                raise _fail("patterns", backend, "contains NaN or inf; must be finite")
            self.X = X
        else:
            self.device = None
            X = np.ascontiguousarray(patterns, dtype=self.dtype)
            if not np.isfinite(X).all():
                raise _fail("patterns", backend, "contains NaN or inf; must be finite")
            self.X = X
        self._d_cache = None
        self._block = max(1, _BLOCK_BYTES // (self.N * self.dtype.itemsize))

    @property
    def _d(self) -> Any:
        """Self-coupling term ``d_i = sum_mu X_mu,i^2`` (float64 sum, cast; computed once)."""
        if self._d_cache is None:
            X = self.X
            if self.backend == "torch":
                torch = self._torch
                self._d_cache = (X.to(torch.float64) ** 2).sum(0).to(X.dtype)
            else:
                with np.errstate(over="ignore"):  # an overflow is reported on the field
                    d = np.einsum("ij,ij->j", X, X, dtype=np.float64).astype(self.dtype)
                self._d_cache = d
        return self._d_cache

    # -- probes ---------------------------------------------------------------------------------

    def _probe(self, probe: Any) -> Any:
        be = self.backend
        if be == "torch":
            torch = self._torch
            q = torch.as_tensor(probe)
            if q.is_complex():
                raise _fail("probe", be, f"dtype {q.dtype} is complex; need real values")
            shape = tuple(q.shape)
        else:
            q = np.asarray(_host(probe) if _is_torch(probe) else probe)
            if q.dtype.kind not in "biuf":
                raise _fail("probe", be, f"dtype {q.dtype} is not numeric; need real values")
            shape = q.shape
        if not (
            (len(shape) == 1 and shape[0] == self.N)
            or (len(shape) == 2 and shape[1] == self.N and shape[0] >= 1)
        ):
            raise _fail(
                "probe", be, f"shape {shape} must be (N,) or (B, N) with N = {self.N}, B >= 1"
            )
        if be == "torch":
            q = q.to(device=self.device, dtype=self.X.dtype).contiguous()
            if not bool(torch.isfinite(q).all()):
                raise _fail("probe", be, "contains NaN or inf; must be finite")
        else:
            q = np.ascontiguousarray(q, dtype=self.dtype)
            if not np.isfinite(q).all():
                raise _fail("probe", be, "contains NaN or inf; must be finite")
        return q

    def _finite_result(self, out: Any, what: str) -> Any:
        torch = getattr(self, "_torch", None)
        ok = bool(torch.isfinite(out).all()) if torch is not None else bool(np.isfinite(out).all())
        if not ok:
            raise _fail(
                what,
                self.backend,
                f"the result overflowed {self.dtype} (non-finite); reduce beta or rescale the "
                "patterns / probe",
            )
        return out

    # -- modern ---------------------------------------------------------------------------------

    def modern(self, probe: Any, beta: float, steps: int = 1) -> Any:
        """Modern Hopfield retrieval ``xi <- X^T softmax(beta X xi)``, iterated ``steps`` times.

        Parameters
        ----------
        probe : array-like or torch.Tensor, shape (N,) or (B, N)
            Initial state(s) (dimensionless).
        beta : float
            Inverse temperature (dimensionless), finite and > 0.
        steps : int
            Number of updates, >= 1.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            Retrieved state(s), same shape as ``probe``, the memory's dtype (a tensor on the
            memory's device for the torch backend).
        """
        beta = _check_beta(beta, self.backend)
        steps = _check_steps(steps, self.backend)
        q = self._probe(probe)
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, naming beta
            for _ in range(steps):
                q = self._modern_step(q, beta)
        return self._finite_result(q, "beta")

    def _modern_step(self, q: Any, beta: float) -> Any:
        X = self.X
        if self.backend == "numpy":
            if q.ndim == 1:
                s = (X @ q) * X.dtype.type(beta)
                e = np.exp(s - s.max())
                return (e / e.sum()) @ X
            S = (q @ X.T) * X.dtype.type(beta)
            E = np.exp(S - S.max(axis=1, keepdims=True))
            E /= E.sum(axis=1, keepdims=True)
            return E @ X
        if self.backend == "numba":
            if q.ndim == 1:
                return _modern_stream(X, q, beta)
            return _modern_batch(X, q, beta, self._block)
        torch = self._torch
        if q.ndim == 1:
            return torch.mv(X.T, torch.softmax(torch.mv(X, q) * beta, dim=0))
        return torch.softmax((q @ X.T) * beta, dim=1) @ X

    # -- classical ------------------------------------------------------------------------------

    def classical_field(self, probe: Any, method: str = "auto") -> Any:
        """Local field ``h = J x`` (``J = X^T X / N``, zero diagonal) for probe(s) ``x``.

        Parameters
        ----------
        probe : array-like or torch.Tensor, shape (N,) or (B, N)
            State(s) (dimensionless).
        method : {"auto", "factored", "dense"}
            ``"factored"``: ``(X^T (X x) - d x) / N``; ``"dense"``: with the ``N x N`` couplings.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            Fields, same shape as ``probe``.
        """
        q = self._probe(probe)
        m = self._method(method, q, 1)
        with np.errstate(over="ignore", invalid="ignore"):
            h = self._field_unnormalised(q, m) / self.N
        return self._finite_result(h, "patterns")

    def classical(self, probe: Any, steps: int = 1, tie: str = "keep", method: str = "auto") -> Any:
        """Classical synchronous Hopfield retrieval ``x <- sign(J x)``, ``steps`` times.

        Parameters
        ----------
        probe : array-like or torch.Tensor, shape (N,) or (B, N)
            Initial state(s) (+-1 or real, dimensionless).
        steps : int
            Number of synchronous updates, >= 1.
        tie : {"keep", "up"}
            Where the field is exactly 0: ``"keep"`` keeps the sign of the current state
            (``+1`` for a current value of 0), ``"up"`` sets ``+1``.
        method : {"auto", "factored", "dense"}
            ``"auto"`` uses the dense couplings when ``P N^2 + k N^2 < 2 k P N`` with
            ``k = steps * B`` (forming ``J`` plus the dense products is cheaper than the
            factored products), else the factored form.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            States of +-1 in the memory's dtype, same shape as ``probe``.
        """
        be = self.backend
        steps = _check_steps(steps, be)
        if tie not in TIES:
            raise _fail("tie", be, f"{tie!r} unknown; allowed: {', '.join(TIES)}")
        q = self._probe(probe)
        m = self._method(method, q, steps)
        for _ in range(steps):
            with np.errstate(over="ignore", invalid="ignore"):
                h = self._finite_result(self._field_unnormalised(q, m), "patterns")
            q = self._sign(h, q, tie == "up")
        return q

    def _method(self, method: str, q: Any, steps: int) -> str:
        if method not in METHODS:
            raise _fail("method", self.backend, f"{method!r} unknown; allowed: {METHODS}")
        if method != "auto":
            return method
        k = steps * (1 if q.ndim == 1 else q.shape[0])
        P, N = self.P, self.N
        form = 0 if self._dense is not None else P * N * N  # couplings already formed: free
        return "dense" if form + k * N * N < 2 * k * P * N else "factored"

    def _couplings(self) -> Any:
        """Unnormalised couplings ``C = X^T X`` with zero diagonal (``J = C / N``)."""
        if self._dense is None:
            X = self.X
            if self.backend == "torch":
                C = X.T @ X
                C.fill_diagonal_(0)
            else:
                C = X.T @ X
                np.fill_diagonal(C, 0)
            self._dense = C
        return self._dense

    def _field_unnormalised(self, q: Any, method: str) -> Any:
        X, d = self.X, self._d
        if method == "dense":
            C = self._couplings()
            if self.backend == "numba":
                return _dense_field(C, q.reshape(-1, self.N)).reshape(q.shape)
            return q @ C  # C is symmetric
        if self.backend == "numpy":
            if q.ndim == 1:
                return (X @ q) @ X - d * q
            return (q @ X.T) @ X - d * q
        if self.backend == "numba":
            if q.ndim == 1:
                return _classical_stream(X, q, d)
            return _classical_batch(X, q, d, self._block)
        if q.ndim == 1:
            return self._torch.mv(X.T, self._torch.mv(X, q)) - d * q
        return (q @ X.T) @ X - d * q

    def _sign(self, h: Any, x: Any, up: bool) -> Any:
        if self.backend == "torch":
            torch = self._torch
            one = torch.ones((), dtype=h.dtype, device=h.device)
            tie = one if up else torch.where(x >= 0, one, -one)
            return torch.where(h > 0, one, torch.where(h < 0, -one, tie))
        if self.backend == "numpy":
            one = h.dtype.type(1)
            tie = one if up else np.where(x >= 0, one, -one)
            return np.where(h > 0, one, np.where(h < 0, -one, tie)).astype(h.dtype)
        return _sign_tie(h, x, up)


# ----------------------------------------------------------------------------------------------
# functional forms
# ----------------------------------------------------------------------------------------------


def modern_retrieve(
    patterns: Any,
    probe: Any,
    beta: float,
    steps: int = 1,
    *,
    backend: Backend = "numba",
    dtype: Any = None,
    device: Any = None,
) -> Any:
    """Modern Hopfield retrieval ``xi <- X^T softmax(beta X xi)``, see ``HopfieldMemory.modern``.

    Validates ``patterns`` on every call; keep a :class:`HopfieldMemory` for repeated retrieval.
    """
    mem = HopfieldMemory(patterns, backend=backend, dtype=dtype, device=device)
    return mem.modern(probe, beta, steps)


def classical_retrieve(
    patterns: Any,
    probe: Any,
    steps: int = 1,
    *,
    tie: str = "keep",
    method: str = "auto",
    backend: Backend = "numba",
    dtype: Any = None,
    device: Any = None,
) -> Any:
    """Classical Hopfield retrieval ``x <- sign(J x)`` (see :meth:`HopfieldMemory.classical`)."""
    mem = HopfieldMemory(patterns, backend=backend, dtype=dtype, device=device)
    return mem.classical(probe, steps, tie=tie, method=method)


def classical_field(
    patterns: Any,
    probe: Any,
    *,
    method: str = "auto",
    backend: Backend = "numba",
    dtype: Any = None,
    device: Any = None,
) -> Any:
    """Local field ``J x``, ``J = X^T X / N`` without self-coupling; see :class:`HopfieldMemory`."""
    mem = HopfieldMemory(patterns, backend=backend, dtype=dtype, device=device)
    return mem.classical_field(probe, method)
