"""The Hopfield memory as an operator kind of the spec (``kind = "hopfield"``).

A :class:`HopfieldNode` holds ``P`` stored patterns of ``N`` units and, in every step, retrieves
from the activity of its input: a spiking population's spikes (e.g. a noisy, partial cue
replayed by neurons) or a real-valued output of another operator. Its output ``retrieved`` is
the cleaned-up pattern, read with ``StateProbe(node, "retrieved")`` or by another operator.

Reference semantics of step ``t`` (``a = exp(-dt / tau)``, or ``a = 0`` for ``tau = 0``)::

    r_t  = a r_{t-1} + (1 - a) s_t            rate estimate of the input s_t (r_{-1} = 0)
    q_t  = r_t - mean(r_t)   if center  else r_t
    classical: x <- sign(X^T X x / N - self term), ``steps`` times from x = q_t (tie rule)
    modern:    x <- X^T softmax(beta X x),        ``steps`` times from x = q_t
    retrieved_t = x

Every step's retrieval depends only on ``r_t``, and ``r`` is a linear scan, so a whole run chunk
is evaluated in one call; the probes of its steps go one by one through the single-probe
kernels, so the result is bit-identical for any chunking (a batched product would round
differently for different chunk lengths). numba runs float64 inference; torch is
differentiable (the stored patterns are trainable) on CPU or CUDA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neuromem.backends.operators import register_implementation
from neuromem.errors import SpecError
from neuromem.spec.operators import OperatorNode, Port, register_operator

MODES = ("classical", "modern")


@register_operator
@dataclass(frozen=True)
class HopfieldNode(OperatorNode):
    """A Hopfield memory reading one input (see the module docstring for one step).

    Parameters
    ----------
    name : str
    inputs : dict
        ``{"probe": source}``: a population of ``N`` neurons (its spikes) or ``"node.port"``
        (a real output of ``N`` values).
    patterns : np.ndarray, shape (P, N)
        Stored patterns (dimensionless; +-1 for classical retrieval).
    mode : {"classical", "modern"}
    beta : float
        Inverse temperature of modern retrieval (> 0; unused by classical).
    steps : int
        Retrieval updates per time step (>= 1).
    tau : float
        Time constant of the input's rate estimate (ms, >= 0; 0: the input itself).
    center : bool
        Subtract the mean over units from the rate estimate before retrieval (a spike count
        is >= 0; centring gives the +-1-like probe a classical memory expects).
    tie : {"keep", "up"}
        Classical sign rule where a field is exactly 0.
    """

    kind = "hopfield"
    trainable = frozenset({"patterns"})

    patterns: np.ndarray = None  # type: ignore[assignment]
    mode: str = "modern"
    beta: float = 1.0
    steps: int = 1
    tau: float = 0.0
    center: bool = True
    tie: str = "keep"

    def validate(self) -> None:
        where = self.where
        X = self.patterns
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype.kind not in "biuf":
            raise SpecError(f"{where}: patterns must be a (P, N) numeric array")
        if not X.size or not np.isfinite(X).all():
            raise SpecError(f"{where}: patterns must be non-empty and finite")
        if self.mode not in MODES:
            raise SpecError(f"{where}: mode {self.mode!r} is not one of {MODES}")
        if self.tie not in ("keep", "up"):
            raise SpecError(f"{where}: tie {self.tie!r} is not 'keep' or 'up'")
        for k, lo, strict in (("beta", 0.0, True), ("tau", 0.0, False)):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise SpecError(f"{where}: {k} must be a finite number, got {v!r}")
            if v < lo or (strict and v == lo):
                raise SpecError(f"{where}: {k} must be {'>' if strict else '>='} {lo}, got {v}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise SpecError(f"{where}: steps must be an integer >= 1, got {self.steps!r}")
        if not isinstance(self.center, bool):
            raise SpecError(f"{where}: center must be True or False")

    def input_ports(self) -> dict[str, Port]:
        return {"probe": Port(int(self.patterns.shape[1]))}

    def output_ports(self) -> dict[str, Port]:
        return {"retrieved": Port(int(self.patterns.shape[1]))}

    def decay(self, dt: float) -> float:
        """``a = exp(-dt / tau)`` of the rate estimate (0 for ``tau = 0``)."""
        return math.exp(-dt / self.tau) if self.tau > 0 else 0.0


def _rates(a: float, s: np.ndarray, r0: np.ndarray) -> np.ndarray:
    """``r_t = a r_{t-1} + (1 - a) s_t`` over the leading (time) axis, from ``r0``."""
    out = np.empty_like(s, dtype=np.float64)
    r = r0
    for t in range(s.shape[0]):
        r = a * r + (1.0 - a) * s[t]
        out[t] = r
    return out


@register_implementation("hopfield", "numba")
class HopfieldNumba:
    """float64 inference with the numba retrieval kernels (a batch of T probes per chunk)."""

    def __init__(self, node: HopfieldNode, sim) -> None:
        from .retrieval import HopfieldMemory

        self.node, self.a = node, node.decay(sim.program.dt)
        self.memory = HopfieldMemory(node.patterns, backend="numba", dtype="float64")
        self.reset()

    def reset(self) -> None:
        self.r = np.zeros(self.node.patterns.shape[1])

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        s = np.asarray(inputs["probe"], dtype=np.float64)
        if not s.shape[0]:
            return {"retrieved": np.zeros_like(s)}
        r = _rates(self.a, s, self.r)
        self.r = r[-1].copy()
        q = r - r.mean(axis=-1, keepdims=True) if self.node.center else r
        flat = np.ascontiguousarray(q.reshape(-1, q.shape[-1]))
        n = self.node
        # one probe at a time through the single-probe kernels: a batched product would round
        # differently for different chunk lengths, and a run must not depend on its chunking
        if n.mode == "modern":
            x = [self.memory.modern(row, n.beta, n.steps) for row in flat]
        else:
            x = [self.memory.classical(row, n.steps, tie=n.tie) for row in flat]
        return {"retrieved": np.asarray(x).reshape(q.shape)}


def _torch_module():
    import torch
    from torch import nn

    class HopfieldTorch(nn.Module):
        """Differentiable retrieval; the stored patterns are an ``nn.Parameter``."""

        def __init__(self, node: HopfieldNode, sim) -> None:
            super().__init__()
            self.node, self.a = node, node.decay(sim.program.dt)
            X = torch.as_tensor(node.patterns, dtype=sim.dtype, device=sim.device)
            self.patterns = nn.Parameter(X.clone())
            self.reset()

        def reset(self) -> None:
            self.r = None

        def forward(self, inputs: dict) -> dict:
            s = torch.as_tensor(inputs["probe"]).to(self.patterns)
            r = torch.zeros_like(s[0]) if self.r is None else self.r
            rows = []
            for t in range(s.shape[0]):  # the rate estimate: a short linear scan
                r = self.a * r + (1.0 - self.a) * s[t]
                rows.append(r)
            if not rows:
                return {"retrieved": torch.zeros_like(s)}
            self.r = r.detach()
            q = torch.stack(rows)
            q = q - q.mean(dim=-1, keepdim=True) if self.node.center else q
            # step by step (see HopfieldNumba.run: results must not depend on the chunking)
            return {"retrieved": torch.stack([self._retrieve(row) for row in q])}

        def _retrieve(self, x):
            X, n = self.patterns, self.node
            for _ in range(n.steps):
                if n.mode == "modern":
                    x = torch.softmax(n.beta * (x @ X.T), dim=-1) @ X
                else:
                    d = (X * X).sum(dim=0)
                    h = (x @ X.T) @ X - d * x  # N times the field: the sign is the same
                    up = torch.ones_like(x) if n.tie == "up" else torch.where(x < 0, -1.0, 1.0)
                    x = torch.where(h > 0, 1.0, torch.where(h < 0, -1.0, up)).to(x)
            return x

        def run(self, inputs: dict) -> dict:
            return self(inputs)

    return HopfieldTorch


@register_implementation("hopfield", "torch")
def hopfield_torch(node: HopfieldNode, sim):
    """The torch engine (an ``nn.Module``: its patterns train with the simulation)."""
    return _torch_module()(node, sim)
