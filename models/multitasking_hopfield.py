"""Multitasking Hebbian network (Agliari, Alessandrelli, Barra, Ricci-Tersenghi, JSTAT 2023).

A Hopfield-type network of N binary spins storing K diluted patterns xi^mu in {-1, 0, +1}^N
(P(0) = d), either directly (Hebbian couplings ``J = (1/N) sum_mu xi^mu xi^mu``) or learnt from
noisy examples eta^{mu a} = chi^{mu a} xi^mu, supervised or unsupervised. Mild dilution gives a
*hierarchical* retrieval state, ``|m_k| = (1 - d) d^(k-1)``, stable at zero noise while
``1 - 2d + d^K > 0``; strong dilution a *parallel* one.

This module is a thin task API: the network is a :class:`neuromem.spec.Network` with one
:class:`~neuromem.spec.GlauberSpins` node (low-rank couplings) and an
:class:`~neuromem.spec.OverlapProbe` on the archetypes, compiled to a backend. Facts and
derivations: ``docs/models/multitasking_hopfield_paper_facts.md``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

import neuromem
from neuromem.errors import SpecError
from neuromem.spec import (
    Discretization,
    GlauberSpins,
    LowRankCouplings,
    Network,
    OverlapProbe,
    StateProbe,
    hebbian_couplings,
    supervised_couplings,
    unsupervised_couplings,
)

BACKENDS = ("numba", "torch")
_WHERE = "multitasking hopfield"


# ------------------------------------------------------------------ closed forms
def hierarchical_prediction(d: float, k: int) -> np.ndarray:
    """Magnetisations of the hierarchical state, ``(1 - d) d^(k-1)`` for k = 1..K.

    Parameters
    ----------
    d : float
        Dilution (fraction of zero entries), in [0, 1].
    k : int
        Number of patterns K.

    Returns
    -------
    numpy.ndarray
        Shape (K,), decreasing.
    """
    if not 0.0 <= d <= 1.0:
        raise SpecError(f"{_WHERE}: dilution d must be in [0, 1], got {d}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise SpecError(f"{_WHERE}: number of patterns K must be a positive integer, got {k!r}")
    return (1.0 - d) * d ** np.arange(int(k), dtype=np.float64)


def stability_bound(k: int) -> float:
    """The dilution at which ``1 - 2d + d^K = 0`` (d in (0, 1)); ``nan`` for K <= 2 (no bound).

    The hierarchical state is stable at zero noise for d below it (0.618 for K = 3).
    """
    if k <= 2:
        return math.nan
    lo, hi = 0.0, 0.999999  # 1 - 2d + d^K is > 0 at 0 and < 0 just below 1 for K >= 3
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if 1 - 2 * mid + mid**k > 0 else (lo, mid)
    return 0.5 * (lo + hi)


def mean_field(
    d: float,
    k: int,
    beta: float = math.inf,
    m0: np.ndarray | None = None,
    iterations: int = 2000,
    tol: float = 1e-12,
) -> np.ndarray:
    """Low-load mean-field fixed point ``m_mu = E_xi[xi^mu tanh(beta sum_nu xi^nu m_nu)]``.

    The expectation is exact (enumeration of the 3^K pattern entries); at ``beta = inf``
    ``tanh`` becomes ``sign`` with sign(0) = 0 (random tie rule). Iterated from ``m0``
    (default: the hierarchical state).

    Parameters
    ----------
    d : float
        Dilution.
    k : int
        Number of patterns.
    beta : float
        Inverse temperature (couplings with 1/N, so T_c = 1 - d).
    m0 : numpy.ndarray, optional
        Starting magnetisations (K,).
    iterations, tol : int, float
        Fixed-point iteration limits.

    Returns
    -------
    numpy.ndarray
        The fixed point reached, shape (K,).
    """
    xs = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=k)))
    p = np.prod(np.where(xs == 0, d, (1.0 - d) / 2.0), axis=1)
    m = hierarchical_prediction(d, k) if m0 is None else np.asarray(m0, dtype=np.float64)
    for _ in range(iterations):
        h = xs @ m
        g = np.sign(h) if math.isinf(beta) else np.tanh(beta * h)
        if math.isinf(beta):
            g[np.abs(h) < 1e-14] = 0.0
        new = (p * g) @ xs
        if np.max(np.abs(new - m)) < tol:
            return new
        m = new
    return m


def hierarchical_state(xi: np.ndarray, seed: int = 0) -> np.ndarray:
    """The cascade state: sigma_i = the first nonzero xi_i^mu (mu = 1..K in order), random +-1
    (seeded) where every xi_i^mu is zero.

    Parameters
    ----------
    xi : numpy.ndarray
        Patterns (K, N) with entries in {-1, 0, +1}.
    seed : int
        Seeds the signs of the neurons with no nonzero entry.

    Returns
    -------
    numpy.ndarray
        Spins (N,) of +-1 (float64).
    """
    x = _check_patterns(xi, "patterns")
    rng = np.random.default_rng(seed)
    sigma = np.where(rng.random(x.shape[1]) < 0.5, 1.0, -1.0)
    for mu in range(x.shape[0] - 1, -1, -1):  # later patterns first, the first one wins
        sigma = np.where(x[mu] != 0, x[mu], sigma)
    return sigma


def sorted_abs(m: np.ndarray) -> np.ndarray:
    """``|m|`` sorted decreasingly along the last axis (the gauge-invariant summary)."""
    return -np.sort(-np.abs(np.asarray(m)), axis=-1)


def _check_patterns(xi: np.ndarray, what: str, n: int | None = None) -> np.ndarray:
    x = np.asarray(xi, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise SpecError(f"{_WHERE}: {what} must have shape (K, N), got {x.shape}")
    if n is not None and x.shape[1] != n:
        raise SpecError(
            f"{_WHERE}: size mismatch, {what} have {x.shape[1]} entries for {n} neurons"
        )
    if not np.all(np.isin(x, (-1.0, 0.0, 1.0))):
        raise SpecError(f"{_WHERE}: {what} entries must be -1, 0 or +1")
    return x


# ------------------------------------------------------------------ the network
@dataclass
class MultitaskingRun:
    """Result of :meth:`MultitaskingHopfield.run`.

    Attributes
    ----------
    m : numpy.ndarray
        Final Mattis magnetisations w.r.t. the archetypes, (K,) or (B, K) for torch batches.
    trajectory : numpy.ndarray
        Magnetisations after every sweep, (sweeps, K) or (sweeps, B, K).
    sweeps : int
        Sweeps run.
    stable : bool
        True when a sweep changed no informative spin (one with a nonzero coupling vector
        entry) in every replica; only checked at ``beta = inf`` with ``until_stable``.
    """

    m: np.ndarray
    trajectory: np.ndarray
    sweeps: int
    stable: bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sorted_abs(self) -> np.ndarray:
        """Final ``|m|`` sorted decreasingly."""
        return sorted_abs(self.m)

    def tail_sorted_abs(self, last: int) -> np.ndarray:
        """``|m|`` sorted per sweep, averaged over the last ``last`` sweeps (finite beta)."""
        return sorted_abs(self.trajectory[-last:]).mean(axis=0)


class MultitaskingHopfield:
    """N Glauber spins with Hebbian couplings from archetypes or from examples.

    Parameters
    ----------
    n : int
        Number of neurons N.
    backend : {"numba", "torch"}
    **options
        Compile options passed to :func:`neuromem.compile` (e.g. ``batch_size`` on torch).

    Examples
    --------
    >>> net = MultitaskingHopfield(4000)
    >>> xi = diluted_patterns(3, 4000, 0.5, seed=1)
    >>> net.store_patterns(xi)
    >>> out = net.run(hierarchical_state(xi), beta=math.inf, sweeps=50)
    >>> out.sorted_abs  # about (0.5, 0.25, 0.125)
    """

    def __init__(self, n: int, backend: str = "numba", **options: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
            raise SpecError(f"{_WHERE}: number of neurons n must be an integer >= 2, got {n!r}")
        if backend not in BACKENDS:
            raise SpecError(f"{_WHERE}: backend must be one of {BACKENDS}, got {backend!r}")
        self.n, self.backend, self.options = int(n), backend, dict(options)
        self.couplings: LowRankCouplings | None = None
        self.archetypes: np.ndarray | None = None

    # -------------------------------------------------------------- storage
    def store_patterns(self, xi: np.ndarray) -> None:
        """Hebbian couplings ``J_ij = (1/N) sum_mu xi_i^mu xi_j^mu`` from archetypes (K, N)."""
        x = _check_patterns(xi, "patterns", self.n)
        self.couplings, self.archetypes = hebbian_couplings(x), x

    def store_examples(
        self,
        eta: np.ndarray,
        r: float,
        protocol: Literal["supervised", "unsupervised"] = "supervised",
        archetypes: np.ndarray | None = None,
    ) -> None:
        """Couplings learnt from examples (K, M, N) of quality r.

        Parameters
        ----------
        eta : numpy.ndarray
            Examples, shape (K, M, N), entries in {-1, 0, +1}.
        r : float
            Dataset quality in [0, 1] (enters the normalisation R = r^2 + (1 - r^2)/M).
        protocol : {"supervised", "unsupervised"}
            Examples summed per pattern before the outer product, or single-example outer
            products (:func:`neuromem.spec.supervised_couplings` / ``unsupervised_couplings``).
        archetypes : numpy.ndarray, optional
            The patterns (K, N) the magnetisations are measured against; default: the sign of
            the per-pattern example sum (the network's best estimate).
        """
        e = np.asarray(eta, dtype=np.float64)
        if e.ndim != 3 or e.shape[0] < 1 or e.shape[1] < 1 or e.shape[2] != self.n:
            raise SpecError(
                f"{_WHERE}: examples must have shape (K, M, N) with N = {self.n}, got {e.shape}"
            )
        if not np.all(np.isin(e, (-1.0, 0.0, 1.0))):
            raise SpecError(f"{_WHERE}: example entries must be -1, 0 or +1")
        if isinstance(r, bool) or not isinstance(r, int | float | np.number):
            raise SpecError(f"{_WHERE}: dataset quality r must be a number, got {r!r}")
        if not 0.0 <= float(r) <= 1.0:
            raise SpecError(f"{_WHERE}: dataset quality r must be in [0, 1], got {r}")
        if protocol not in ("supervised", "unsupervised"):
            raise SpecError(
                f"{_WHERE}: protocol must be 'supervised' or 'unsupervised', got {protocol!r}"
            )
        if archetypes is None:
            a = np.sign(e.sum(axis=1))
        else:
            a = _check_patterns(archetypes, "archetypes", self.n)
            if a.shape[0] != e.shape[0]:
                raise SpecError(
                    f"{_WHERE}: size mismatch, {a.shape[0]} archetypes for {e.shape[0]} "
                    "example sets"
                )
        build = supervised_couplings if protocol == "supervised" else unsupervised_couplings
        self.couplings, self.archetypes = build(e, float(r)), a

    # -------------------------------------------------------------- dynamics
    def network(
        self,
        initial: np.ndarray,
        beta: float,
        update: str = "sequential",
        tie: str = "random",
        seed: int = 0,
        rng: str = "backend",
        record_sigma: bool = False,
    ) -> Network:
        """The spec network: one spin node ``s`` and an overlap probe on the archetypes."""
        if self.couplings is None or self.archetypes is None:
            raise SpecError(f"{_WHERE}: store patterns or examples before running")
        s = np.asarray(initial, dtype=np.float64)
        if s.shape != (self.n,):
            raise SpecError(
                f"{_WHERE}: size mismatch, initial state has shape {s.shape}, expected ({self.n},)"
            )
        sp = GlauberSpins(
            "s",
            self.couplings,
            beta=beta,
            initial=s,
            update=update,  # type: ignore[arg-type]
            tie=tie,  # type: ignore[arg-type]
            seed=seed,
            rng=rng,  # type: ignore[arg-type]
        )
        probes: tuple = (OverlapProbe("s", self.archetypes),)
        if record_sigma:
            probes += (StateProbe("s", "sigma"),)
        return Network("multitasking_hopfield", Discretization(dt=1.0), spins=(sp,), probes=probes)

    def run(
        self,
        initial: np.ndarray,
        beta: float,
        sweeps: int,
        update: str = "sequential",
        tie: str = "random",
        seed: int = 0,
        until_stable: bool = True,
        rng: str = "backend",
        check_every: int = 2,
    ) -> MultitaskingRun:
        """Run Glauber sweeps from ``initial``.

        Parameters
        ----------
        initial : numpy.ndarray
            Spins (N,) of +-1.
        beta : float
            Inverse temperature (> 0, ``math.inf`` for zero noise).
        sweeps : int
            Number of sweeps, or the cap when ``until_stable``.
        update, tie, seed, rng
            As in :class:`neuromem.spec.GlauberSpins` (the default ``rng="backend"`` is the
            fast one; ``"host"`` gives the same trajectory on every backend).
        until_stable : bool
            At ``beta = inf``: stop after the first sweep in which no informative spin (one
            whose coupling vectors are not all zero) changed. Neurons whose coupling vectors
            are all zero have h_i = 0 exactly and are redrawn by the random tie rule forever.
        check_every : int
            Sweeps per chunk between stability checks.

        Returns
        -------
        MultitaskingRun
        """
        if isinstance(sweeps, bool) or not isinstance(sweeps, int | np.integer) or sweeps < 1:
            raise SpecError(f"{_WHERE}: sweeps must be a positive integer, got {sweeps!r}")
        check = bool(until_stable) and math.isinf(float(beta))
        net = self.network(initial, beta, update, tie, seed, rng, record_sigma=check)
        sim = neuromem.compile(net, backend=self.backend, **self.options)
        if not check:
            m = np.asarray(sim.run(int(sweeps)).state["s.m"])
            return MultitaskingRun(m[-1], m, int(sweeps), False)
        assert self.couplings is not None
        informative = np.any(self.couplings.vectors != 0, axis=0)
        prev = np.asarray(net.spins[0].initial)[informative]
        traj, done, stable = [], 0, False
        while done < sweeps and not stable:
            n = min(int(check_every), int(sweeps) - done)
            state = sim.run(n).state
            sig = np.asarray(state["s.sigma"])[..., informative]
            ms = np.asarray(state["s.m"])
            for t in range(n):
                changed = np.any(sig[t] != prev)
                prev = sig[t]
                traj.append(ms[t])
                done += 1
                if not changed:
                    stable = True
                    break
        m = np.stack(traj)
        return MultitaskingRun(m[-1], m, done, stable)
