"""The CSA on torch (CPU or CUDA): the numpy engine's vectorised frame with tensors.

Weights are 0/1 float64 tensors, so the input sums are exact matrix products on any device
(CUDA has no integer matmul). It takes the host's uniforms (one per CM) and the same
operation order as :class:`~neuromem.models.sparsey.csa.NumpyEngine`, so the codes are the
same as numpy's and numba's for the same seed (tests/test_sparsey.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .csa import expansivity, selection_weights
from .params import INPUT_KINDS, Level


class TorchEngine:
    """A hierarchy's state on ``device`` (see :class:`NumpyEngine` for the layout)."""

    def __init__(self, levels: tuple[Level, ...], input_size: int, device="cpu") -> None:
        self.levels, self.input_size = levels, input_size
        self.device = torch.device(device)
        opts = {"device": self.device}
        self.rf = [
            {k: torch.tensor(np.array(getattr(lv, f"rf_{k.lower()}")), **opts) for k in INPUT_KINDS}
            for lv in levels
        ]
        self.reset()

    def _zeros(self, *shape, dtype=torch.float64):
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def reset(self) -> None:
        self.w = [
            {k: self._zeros(lv.macs, self.rf[i][k].shape[1], lv.params.cells) for k in INPUT_KINDS}
            for i, lv in enumerate(self.levels)
        ]
        self.set_u = [self._zeros(lv.macs, dtype=torch.int64) for lv in self.levels]
        self.frozen = [self._zeros(lv.macs, dtype=torch.bool) for lv in self.levels]
        self.reset_context()

    def reset_context(self) -> None:
        self.previous = [self._zeros(lv.cells) for lv in self.levels]

    def frame(self, x, learn: bool, uniforms: list[np.ndarray]):
        """As :meth:`NumpyEngine.frame` (host arrays out)."""
        source = torch.as_tensor(np.asarray(x), device=self.device).to(torch.float64)
        codes, fam, cells = [], [], []
        for i, lv in enumerate(self.levels):
            p, M = lv.params, lv.macs
            above = self.previous[i + 1] if i + 1 < len(self.levels) else self._zeros(0)
            srcs = {"U": source, "H": self.previous[i], "D": above}
            V = self._zeros(M, p.cells) + 1.0
            xs = {}
            for kind, e in zip(INPUT_KINDS, p.exponents, strict=True):
                rf = self.rf[i][kind]
                if not rf.shape[1]:
                    continue
                xk = srcs[kind][rf]  # (M, R) 0/1
                xs[kind] = xk
                pi = xk.sum(dim=1)
                if kind == "U":
                    pi_u = pi
                u = torch.bmm(xk[:, None, :], self.w[i][kind])[:, 0]
                ratio = torch.clamp(u / torch.clamp(pi, min=1.0)[:, None], 0.0, 1.0)
                V = torch.where((pi > 0)[:, None], V * (ratio if e == 1.0 else ratio**e), V)
            active = pi_u >= p.pi_min
            if p.pi_max:
                active &= pi_u <= p.pi_max
            Vq = V.reshape(M, p.Q, p.K)
            best = Vq.amax(dim=2)
            G = self._zeros(M)
            for q in range(p.Q):  # in CM order, as numpy and numba sum
                G = G + best[:, q]
            G = G / p.Q
            win = Vq.argmax(dim=2)
            choose = active & ~self.frozen[i] if learn else torch.zeros_like(active)
            if bool(choose.any()):
                eta = expansivity(G, p.g_minus, p.gamma, p.chi, p.K, xp=torch)
                psi = selection_weights(Vq, eta[:, None, None], p.gain, p.inflection, xp=torch)
                c = torch.cumsum(psi, dim=-1)
                r = torch.as_tensor(uniforms[i], dtype=torch.float64, device=self.device)
                drawn = (c <= (r * c[..., -1])[..., None]).sum(dim=-1).clamp(max=p.K - 1)
                win = torch.where(choose[:, None], drawn, win)
            win = torch.where(active[:, None], win, -1)
            cell = torch.nn.functional.one_hot(win.clamp(min=0), p.K).to(torch.float64)
            cell = (cell * active[:, None, None]).reshape(M, p.cells)
            if bool(choose.any()):
                self._learn(i, xs, cell, choose)
            codes.append(win.cpu().numpy())
            fam.append(torch.where(active, G, math.nan).cpu().numpy())
            cells.append(cell.reshape(-1))
            source = cells[-1]
        self.previous = cells
        return codes, fam

    def _learn(self, i: int, xs: dict, cell, choose) -> None:
        lv = self.levels[i]
        for kind, xk in xs.items():
            w = self.w[i][kind]
            new = xk[:, :, None] * cell[:, None, :] * choose[:, None, None]
            if kind == "U":
                self.set_u[i] += ((new > 0) & (w == 0)).sum(dim=(1, 2))
            self.w[i][kind] = torch.maximum(w, new)
        self.frozen[i] |= self.set_u[i] >= lv.freeze_count

    def weights(self, level: int, kind: str = "U") -> np.ndarray:
        """Level ``level``'s ``kind`` weights as a host uint8 array (M, R, Q * K)."""
        return self.w[level][kind].to(torch.uint8).cpu().numpy()
