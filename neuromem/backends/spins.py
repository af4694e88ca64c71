"""Glauber spin nodes on the numba and torch backends (one sweep per network step).

Both follow :class:`neuromem.lower.SpinProgram`: the same field formula in the same order of
operations and, under the ``host`` RNG policy, the same order and uniform numbers per sweep, so
their trajectories agree (bit-identical in synchronous mode at float64 for integer-valued
couplings).
"""

from __future__ import annotations

import math

import numpy as np

from ..lower import SpinProgram
from . import _numba_kernels as K


def _stack(patterns: tuple[np.ndarray, ...], n: int) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate(patterns) if patterns else np.zeros((0, n)))


def _records(prog: SpinProgram, overlaps: np.ndarray, sigma: np.ndarray | None) -> dict:
    """Probe results: ``<name>.m`` (and ``.m1``, ...) per overlap probe, ``<name>.sigma``."""
    out, lo = {}, 0
    for q, pat in enumerate(prog.overlap_patterns):
        out[f"{prog.name}.m" + (str(q) if q else "")] = overlaps[..., lo : lo + pat.shape[0]]
        lo += pat.shape[0]
    if sigma is not None:
        out[f"{prog.name}.sigma"] = sigma
    return out


def _int8_rows(UT: np.ndarray) -> np.ndarray:
    """int8 copy of the coupling vectors (N, K); for K > 8 padded with zero columns to a multiple
    of 16 so that each row is one SIMD vector (zero columns add exact zeros to every sum)."""
    n, k = UT.shape
    width = k if k <= 8 else -(-k // 16) * 16
    out = np.zeros((n, width), np.int8)
    out[:, :k] = UT
    return out


class NumbaSpins:
    """One spin node on the CPU (float64 spins; integer overlaps on the ``low_rank_int`` path)."""

    _MODES = {"low_rank": 0, "low_rank_int": 1, "dense": 2}

    def __init__(self, prog: SpinProgram) -> None:
        self.prog = prog
        self.mode = self._MODES[prog.field]
        self.patterns = _stack(prog.overlap_patterns, prog.size)
        dummy2, dummy1 = np.zeros((1, 1)), np.zeros(1)
        self.UT = prog.UT if self.mode == 0 else dummy2
        self.coef = prog.coef if self.mode == 0 else dummy1
        self.UT8 = _int8_rows(prog.UT) if self.mode == 1 else np.zeros((1, 1), np.int8)
        self.c = float(prog.coef[0]) if self.mode == 1 else 0.0
        self.self_coef = prog.self_coef if self.mode < 2 else dummy1
        self.J = prog.J if self.mode == 2 else dummy2
        # archetype probes on Hebbian couplings read the maintained integer overlaps
        self.probe_from_dots = self.mode == 1 and np.array_equal(self.patterns, prog.UT.T)
        self.reset()

    def reset(self) -> None:
        p = self.prog
        self.sigma = p.initial.copy()
        k = 1 if p.UT is None else p.UT.shape[1]
        self.dots = np.zeros(k)
        self.dots_int = np.zeros(self.UT8.shape[1], np.int32)
        if self.mode == 0:
            K.spin_dots(self.sigma, self.UT, self.dots)
        elif self.mode == 1:
            K.spin_dots_int(self.sigma, self.UT8, self.dots_int)

    def _sweeps_own_rng(self, t0: int, n: int, overlaps: np.ndarray) -> None:
        p = self.prog
        K.spin_sweeps_own_rng(
            self.sigma,
            self.UT,
            self.coef,
            self.self_coef,
            self.dots,
            self.UT8,
            self.c,
            self.dots_int,
            self.J,
            self.mode,
            p.beta,
            p.tie,
            p.update == "synchronous",
            p.seed,
            t0,
            n,
            self.patterns,
            overlaps,
            self.probe_from_dots,
        )

    def _sweep_host(self, t: int) -> None:
        p = self.prog
        sync = p.update == "synchronous"
        order, u = p.host_randoms(t)
        order = np.zeros(1, np.int64) if order is None else order
        if self.mode == 1:
            K.spin_sweep_low_rank_int(
                self.sigma,
                self.UT8,
                self.c,
                self.self_coef,
                self.dots_int,
                order,
                u,
                p.beta,
                p.tie,
                sync,
            )
        elif self.mode == 0:
            K.spin_sweep_low_rank(
                self.sigma,
                self.UT,
                self.coef,
                self.self_coef,
                self.dots,
                order,
                u,
                p.beta,
                p.tie,
                sync,
            )
        else:
            K.spin_sweep_dense(self.sigma, self.J, order, u, p.beta, p.tie, sync)

    def run(self, steps: int, t0: int) -> dict[str, np.ndarray]:
        p = self.prog
        overlaps = np.zeros((steps, self.patterns.shape[0]))
        sigmas = np.zeros((steps, p.size)) if p.record_sigma else None
        if p.rng == "backend" and sigmas is None:
            self._sweeps_own_rng(t0, steps, overlaps)
            return _records(p, overlaps, None)
        for t in range(steps):
            if p.rng == "backend":
                self._sweeps_own_rng(t0 + t, 1, overlaps[t : t + 1])
            else:
                self._sweep_host(t0 + t)
                overlaps[t] = self.patterns @ self.sigma / p.size
            if sigmas is not None:
                sigmas[t] = self.sigma
        return _records(p, overlaps, sigmas)


class TorchSpins:
    """One spin node as a batch of independent replicas (B, N) on a torch device."""

    def __init__(self, prog: SpinProgram, batch: int, device, dtype) -> None:
        import torch

        self.torch, self.prog, self.batch = torch, prog, batch
        self.device, self.dtype = device, dtype

        def t(x):
            # a copy: the spec's arrays are read-only, which torch cannot wrap without a warning
            return None if x is None else torch.tensor(np.asarray(x), dtype=dtype, device=device)

        self.UT, self.coef, self.self_coef, self.J = (
            t(prog.UT),
            t(prog.coef),
            t(prog.self_coef),
            t(prog.J),
        )
        self.patterns = t(_stack(prog.overlap_patterns, prog.size))
        self.reset()

    def reset(self) -> None:
        self.sigma = self.torch.as_tensor(
            self.prog.initial, dtype=self.dtype, device=self.device
        ).repeat(self.batch, 1)

    def _decide(self, h, u, s):
        torch, p = self.torch, self.prog
        if math.isinf(p.beta):
            tie = (
                s
                if p.tie == 0
                else torch.ones_like(s)
                if p.tie == 1
                else torch.where(u < 0.5, 1.0, -1.0).to(s.dtype)
            )
            return torch.where(h > 0, 1.0, torch.where(h < 0, -1.0, tie)).to(s.dtype)
        p_up = 1.0 / (1.0 + torch.exp(-2.0 * p.beta * h))  # = (1 + tanh(beta h)) / 2, as numba
        return torch.where(u < p_up, 1.0, -1.0).to(s.dtype)

    def _field(self, sigma):
        """Fields (B, N) in SpinProgram's order of operations."""
        if self.prog.field == "dense":
            return sigma @ self.J.T
        if self.prog.field == "low_rank_int":
            # integer sums are exact in float64 whatever the summation order
            s = (sigma @ self.UT) @ self.UT.T
            return self.coef[0] * s - self.self_coef * sigma
        a = (sigma @ self.UT) * self.coef  # (B, K); integer dots are exact in any order
        h = self.torch.zeros_like(sigma)
        for k in range(a.shape[1]):  # k ascending, as numba
            h = h + self.UT[:, k] * a[:, k : k + 1]
        return h - self.self_coef * sigma

    def _uniforms(self, t0: int):
        p, torch = self.prog, self.torch
        if p.rng == "host":
            draws = [p.host_randoms(t0, b) for b in range(self.batch)]
            order = [d[0] for d in draws]
            u = torch.as_tensor(
                np.stack([d[1] for d in draws]), dtype=self.dtype, device=self.device
            )
            return order, u
        g = torch.Generator(device=self.device).manual_seed(p.seed * 1000003 + t0)
        u = torch.rand((self.batch, p.size), generator=g, device=self.device, dtype=self.dtype)
        order = [
            torch.randperm(p.size, generator=g, device=self.device).cpu().numpy()
            for _ in range(self.batch)
        ]
        return order, u

    def run(self, steps: int, t0: int) -> dict[str, np.ndarray]:
        p, torch = self.prog, self.torch
        overlaps, sigmas = [], []
        rows = torch.arange(self.batch, device=self.device)
        for t in range(steps):
            order, u = self._uniforms(t0 + t)
            if p.update == "synchronous":
                self.sigma = self._decide(self._field(self.sigma), u, self.sigma)
            else:
                # replica b visits spin order[b][q] at position q; one position at a time
                idx = torch.as_tensor(np.stack(order), device=self.device)
                for q in range(p.size):
                    i = idx[:, q]
                    s = self.sigma[rows, i]
                    if p.field == "dense":
                        h = (self.J[i] * self.sigma).sum(dim=1)
                    elif p.field == "low_rank_int":
                        dots = self.sigma @ self.UT
                        h = self.coef[0] * (self.UT[i] * dots).sum(dim=1) - self.self_coef[i] * s
                    else:
                        a = (self.sigma @ self.UT) * self.coef
                        h = (self.UT[i] * a).sum(dim=1) - self.self_coef[i] * s
                    self.sigma[rows, i] = self._decide(h, u[:, q], s)
            overlaps.append(self.sigma @ self.patterns.T / p.size)
            if p.record_sigma:
                sigmas.append(self.sigma.clone())

        def np_(xs, width):
            if not xs:
                return np.zeros((0, self.batch, width))
            a = torch.stack(xs).cpu().numpy()
            return a[:, 0] if self.batch == 1 else a

        return _records(
            p,
            np_(overlaps, self.patterns.shape[0]),
            np_(sigmas, p.size) if p.record_sigma else None,
        )
