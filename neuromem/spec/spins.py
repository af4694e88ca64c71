"""Binary stochastic (Glauber) spin networks: an operator node of the spec.

A ``GlauberSpins`` node holds N spins sigma_i in {-1, +1} coupled by a symmetric matrix with zero
diagonal. One time step of the network is one sweep of the node: N single-spin updates in a
random order (``sequential``) or one parallel update of all spins (``synchronous``), each with
``P(sigma_i = +1) = (1 + tanh(beta h_i)) / 2`` and ``h_i = sum_{j != i} J_ij sigma_j``.
Hebbian couplings are stored in low-rank form, ``J = scale * sum_mu c_mu u^mu (u^mu)^T`` with
the diagonal removed, so that backends can compute a field in O(K) instead of O(N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import SpecError
from .names import check_name, element


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class LowRankCouplings:
    """``J_ij = scale * sum_mu weights[mu] * vectors[mu, i] * vectors[mu, j]`` for i != j, J_ii = 0.

    Parameters
    ----------
    vectors : array (K, N)
        The coupling vectors (patterns, or summed examples).
    weights : array (K,), optional
        Per-vector weights c_mu (default 1).
    scale : float, optional
        Overall factor (default 1 / N).
    """

    vectors: np.ndarray
    weights: np.ndarray | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        v = np.asarray(self.vectors, dtype=np.float64)
        if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] < 2:
            raise SpecError(f"low-rank couplings: vectors must have shape (K, N), got {v.shape}")
        w = np.ones(v.shape[0]) if self.weights is None else np.asarray(self.weights, float)
        if w.shape != (v.shape[0],):
            raise SpecError(
                f"low-rank couplings: size mismatch, {w.size} weights for {v.shape[0]} vectors"
            )
        scale = 1.0 / v.shape[1] if self.scale is None else float(self.scale)
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(w)) and math.isfinite(scale)):
            raise SpecError("low-rank couplings: non-finite vectors, weights or scale")
        object.__setattr__(self, "vectors", _readonly(v))
        object.__setattr__(self, "weights", _readonly(w))
        object.__setattr__(self, "scale", scale)

    @property
    def size(self) -> int:
        return self.vectors.shape[1]

    @property
    def rank(self) -> int:
        return self.vectors.shape[0]

    def dense(self) -> np.ndarray:
        """The (N, N) coupling matrix with zero diagonal."""
        j = self.scale * (self.vectors.T * self.weights) @ self.vectors
        np.fill_diagonal(j, 0.0)
        return j


@dataclass(frozen=True)
class DenseCouplings:
    """An explicit (N, N) coupling matrix; its diagonal must be zero (no self-coupling)."""

    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise SpecError(f"dense couplings: matrix must be square, got shape {m.shape}")
        if not np.all(np.isfinite(m)):
            raise SpecError("dense couplings: non-finite entries")
        if np.any(np.diag(m) != 0):
            raise SpecError("dense couplings: the diagonal (self-coupling) must be zero")
        object.__setattr__(self, "matrix", _readonly(m))

    @property
    def size(self) -> int:
        return self.matrix.shape[0]

    def dense(self) -> np.ndarray:
        return np.array(self.matrix)


@dataclass(frozen=True)
class GlauberSpins:
    """N Glauber spins; one network step is one sweep.

    Parameters
    ----------
    name : str
    couplings : LowRankCouplings or DenseCouplings
    beta : float
        Inverse temperature (> 0); ``math.inf`` is the zero-noise limit.
    update : {"sequential", "synchronous"}
        ``sequential``: N single-spin updates in a fresh random order each sweep, each seeing
        the spins updated before it. ``synchronous``: all spins from the same old state.
    tie : {"keep", "up", "random"}
        At ``beta = inf`` a spin with h_i = 0 keeps its value, becomes +1, or is drawn
        (+1 with probability 1/2). At finite beta h_i = 0 gives probability 1/2 anyway.
    initial : array of +-1, shape (N,)
    seed : int
        Seeds the random order and the random numbers of this node.
    rng : {"host", "backend"}
        ``host``: the order and uniform numbers of each sweep are drawn on the host from
        numpy's PCG64 seeded with ``(seed, sweep)``, so every backend produces the same
        trajectory. ``backend``: each backend draws with its own generator seeded from ``seed``
        (faster; same statistics, different trajectories).
    """

    name: str
    couplings: LowRankCouplings | DenseCouplings
    beta: float
    initial: np.ndarray
    update: Literal["sequential", "synchronous"] = "sequential"
    tie: Literal["keep", "up", "random"] = "keep"
    seed: int = 0
    rng: Literal["host", "backend"] = "host"

    def __post_init__(self) -> None:
        where = element("spins", self.name)
        check_name(self.name, element("spins", self.name), "name")
        if not isinstance(self.couplings, LowRankCouplings | DenseCouplings):
            raise SpecError(f"{where}: couplings must be LowRankCouplings or DenseCouplings")
        if isinstance(self.beta, bool) or not isinstance(self.beta, int | float | np.number):
            raise SpecError(f"{where}: beta must be a number, got {self.beta!r}")
        beta = float(self.beta)
        if not beta > 0 or math.isnan(beta):
            raise SpecError(f"{where}: beta must be > 0 (math.inf for zero noise), got {beta}")
        object.__setattr__(self, "beta", beta)
        for name, allowed in (
            ("update", ("sequential", "synchronous")),
            ("tie", ("keep", "up", "random")),
            ("rng", ("host", "backend")),
        ):
            if getattr(self, name) not in allowed:
                raise SpecError(f"{where}: {name} {getattr(self, name)!r} is not one of {allowed}")
        s = np.asarray(self.initial, dtype=np.float64)
        if s.shape != (self.couplings.size,):
            raise SpecError(
                f"{where}: size mismatch, initial state has shape {s.shape}, couplings are "
                f"for {self.couplings.size} spins"
            )
        if not np.all(np.abs(s) == 1):
            raise SpecError(f"{where}: initial spins must be +1 or -1")
        object.__setattr__(self, "initial", _readonly(s))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise SpecError(f"{where}: seed must be an integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def size(self) -> int:
        return self.couplings.size


@dataclass(frozen=True)
class OverlapProbe:
    """Records ``m = (1/N) patterns @ sigma`` of a spin node after every sweep.

    ``patterns`` is (K, N); e.g. the archetypes xi for Mattis magnetisations.
    """

    spins: str
    patterns: np.ndarray

    def __post_init__(self) -> None:
        check_name(self.spins, "overlap probe", "spins")
        p = np.asarray(self.patterns, dtype=np.float64)
        if p.ndim != 2:
            raise SpecError(f"overlap probe on {self.spins!r}: patterns must be (K, N)")
        object.__setattr__(self, "patterns", _readonly(p))


# ------------------------------------------------------------------ Hebbian constructions
def hebbian_couplings(patterns: np.ndarray) -> LowRankCouplings:
    """``J_ij = (1/N) sum_mu xi_i^mu xi_j^mu`` (i != j) from patterns (K, N)."""
    return LowRankCouplings(np.asarray(patterns, dtype=np.float64))


def _check_examples(examples: np.ndarray, r: float, where: str) -> tuple[np.ndarray, float]:
    e = np.asarray(examples, dtype=np.float64)
    if e.ndim != 3:
        raise SpecError(f"{where}: examples must have shape (K, M, N), got {e.shape}")
    if not 0.0 <= r <= 1.0:
        raise SpecError(f"{where}: dataset quality r must be in [0, 1], got {r}")
    m = e.shape[1]
    return e, r * r + (1.0 - r * r) / m


def supervised_couplings(examples: np.ndarray, r: float) -> LowRankCouplings:
    """Examples summed per pattern before the outer product:
    ``J_ij = 1 / (R M^2 N) sum_mu (sum_a eta_i^{mu a}) (sum_b eta_j^{mu b})``, R = r^2 + (1-r^2)/M.
    ``examples`` has shape (K, M, N)."""
    e, big_r = _check_examples(examples, r, "supervised couplings")
    m = e.shape[1]
    return LowRankCouplings(e.sum(axis=1), np.full(e.shape[0], 1.0 / (big_r * m * m)))


def unsupervised_couplings(examples: np.ndarray, r: float) -> LowRankCouplings:
    """Outer products of single examples:
    ``J_ij = 1 / (R M N) sum_mu sum_a eta_i^{mu a} eta_j^{mu a}``, R = r^2 + (1-r^2)/M."""
    e, big_r = _check_examples(examples, r, "unsupervised couplings")
    k, m, n = e.shape
    return LowRankCouplings(e.reshape(k * m, n), np.full(k * m, 1.0 / (big_r * m)))


def diluted_patterns(k: int, n: int, d: float, seed: int) -> np.ndarray:
    """K patterns of N entries in {-1, 0, +1}: P(0) = d, P(+1) = P(-1) = (1 - d) / 2."""
    if not 0.0 <= d <= 1.0:
        raise SpecError(f"diluted patterns: dilution d must be in [0, 1], got {d}")
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(k, n))
    return np.where(rng.random((k, n)) < d, 0.0, signs)


def noisy_examples(patterns: np.ndarray, m: int, r: float, seed: int) -> np.ndarray:
    """M examples per pattern, eta^{mu a} = chi^{mu a} xi^mu with P(chi = +1) = (1 + r) / 2;
    shape (K, M, N)."""
    xi = np.asarray(patterns, dtype=np.float64)
    rng = np.random.default_rng(seed)
    chi = np.where(rng.random((xi.shape[0], m, xi.shape[1])) < (1.0 + r) / 2.0, 1.0, -1.0)
    return chi * xi[:, None, :]
