"""The Code Selection Algorithm (CSA): the formulas, and the plain numpy implementation.

One frame of one mac (docs/models/sparsey.md; notation of Rinkus 2010/2014):

1. ``u_i = sum_j x_j w_ji`` for each input kind (binary weights, integer sums);
2. ``V_i = prod_kind clamp(u_i / pi_kind, 0, 1) ** e_kind`` over the kinds with active inputs
   (``pi_kind`` = number of active inputs of that kind; a mac codes only when
   ``pi_min <= pi_U <= pi_max``);
3. familiarity ``G = mean over CMs of max_i V_i``;
4. expansivity ``eta = 1 + max(0, (G - G-) / (1 - G-))**gamma * chi * K``;
5. selection weight ``psi_i = (eta - 1) * sigmoid(gain * (V_i - inflection)) + 1``;
6. ``rho_i = psi_i / sum over the CM of psi``, and one winner drawn per CM from ``rho``;
7. learning (single trial): every weight from an active input to a winner is set to 1.

Why ``psi = (eta - 1) sigma + 1``: the ``+ 1`` is a floor that keeps ``eta`` from cancelling
in ``rho`` (the sparseypy bug: ``eta * sigma`` alone normalises ``eta`` away), and with
``eta - 1`` (the author's demo: ``mu = m * sigma + 1`` with ``m = 0`` at ``G-``) selection is
exactly uniform at ``G <= G-`` and grows continuously sharper with ``G``.

Recognition (and a mac whose critical period is over) picks the max-``V`` cell of each CM,
the lowest index on a tie. The winner of a CM is drawn with one host uniform ``r`` per CM:
the first cell whose cumulative ``psi`` exceeds ``r * sum(psi)``; every implementation
(numpy here, numba, torch) consumes the same uniforms, so they choose the same codes.

This module's :class:`NumpyEngine` is the plain implementation: vectorised over the macs of a
level with numpy, it is the reference in tests and the peer of ``benchmarks/sparsey.py``.
"""

from __future__ import annotations

import numpy as np

from .params import INPUT_KINDS, Level


def expansivity(G, g_minus: float, gamma: float, chi: float, K: int, xp=np):
    """``eta(G)`` (dimensionless, >= 1); ``G`` a float, array or tensor (``xp`` its module)."""
    rect = xp.clip((G - g_minus) / (1.0 - g_minus), 0.0, None)
    return 1.0 + rect**gamma * (chi * K)


def selection_weights(V, eta, gain: float, inflection: float, xp=np):
    """``psi = (eta - 1) * sigmoid(gain * (V - inflection)) + 1``, as the sigmoid is written
    in every implementation: ``1 / (1 + exp(-gain * (V - inflection)))``."""
    sigma = 1.0 / (1.0 + xp.exp(-gain * (V - inflection)))
    return (eta - 1.0) * sigma + 1.0


def selection_probabilities(V: np.ndarray, G: float, p) -> np.ndarray:
    """``rho`` of one mac, shape (Q, K), for normalised inputs ``V`` (Q, K) at familiarity
    ``G`` (``p``: :class:`MacParams`)."""
    eta = expansivity(G, p.g_minus, p.gamma, p.chi, p.K)
    psi = selection_weights(np.asarray(V, dtype=np.float64), eta, p.gain, p.inflection)
    return psi / psi.sum(axis=-1, keepdims=True)


def draw_winners(psi: np.ndarray, r: np.ndarray) -> np.ndarray:
    """First cell whose cumulative ``psi`` exceeds ``r * sum(psi)`` (per CM, last axis)."""
    c = np.cumsum(psi, axis=-1)
    k = (c <= (r * c[..., -1])[..., None]).sum(axis=-1)
    return np.minimum(k, psi.shape[-1] - 1)


class NumpyEngine:
    """A hierarchy's state and frames with numpy, vectorised over the macs of each level.

    State per level: binary weights ``w[kind]`` (M, R_kind, Q*K) uint8, ``set_u`` (M,) number
    of ``U`` weights at 1, ``frozen`` (M,) bool, and the previous frame's cell vector.
    """

    def __init__(self, levels: tuple[Level, ...], input_size: int) -> None:
        self.levels, self.input_size = levels, input_size
        self.reset()

    def reset(self) -> None:
        """All weights 0, no context."""
        self.w = [
            {k: np.zeros((lv.macs, getattr(lv, f"rf_{k.lower()}").shape[1], lv.params.cells),
                         dtype=np.uint8) for k in INPUT_KINDS}
            for lv in self.levels
        ]  # fmt: skip
        self.set_u = [np.zeros(lv.macs, dtype=np.int64) for lv in self.levels]
        self.frozen = [np.zeros(lv.macs, dtype=bool) for lv in self.levels]
        self.reset_context()

    def reset_context(self) -> None:
        """Forget the previous frame (the H and D inputs of the next frame are empty)."""
        self.previous = [np.zeros(lv.cells, dtype=np.uint8) for lv in self.levels]

    def frame(self, x: np.ndarray, learn: bool, uniforms: list[np.ndarray]):
        """One frame through every level; returns per level the winners (M, Q) int64 (-1 for
        an inactive mac) and the familiarity (M,) float64 (NaN for an inactive mac)."""
        source = np.asarray(x, dtype=np.uint8)
        codes, fam, cells = [], [], []
        for i, lv in enumerate(self.levels):
            p, M = lv.params, lv.macs
            above = self.previous[i + 1] if i + 1 < len(self.levels) else np.zeros(0, np.uint8)
            srcs = {"U": source, "H": self.previous[i], "D": above}
            V = np.ones((M, p.cells))
            xs, pi_u = {}, None
            for kind, e in zip(INPUT_KINDS, p.exponents, strict=True):
                rf = getattr(lv, f"rf_{kind.lower()}")
                if not rf.shape[1]:
                    continue
                xk = srcs[kind][rf]  # (M, R) 0/1
                xs[kind] = xk
                pi = xk.sum(axis=1, dtype=np.int64)
                if kind == "U":
                    pi_u = pi
                u = np.einsum("mr,mrc->mc", xk.astype(np.int64), self.w[i][kind].astype(np.int64))
                ratio = np.clip(u / np.maximum(pi, 1)[:, None], 0.0, 1.0)
                # a kind with no active input this frame leaves V as it is; x ** 1.0 == x
                V = np.where((pi > 0)[:, None], V * (ratio if e == 1.0 else ratio**e), V)
            active = (pi_u >= p.pi_min) & ((pi_u <= p.pi_max) if p.pi_max else True)
            Vq = V.reshape(M, p.Q, p.K)
            best = Vq.max(axis=2)
            G = np.zeros(M)
            for q in range(p.Q):  # in CM order, as the numba and torch engines sum
                G += best[:, q]
            G /= p.Q
            win = Vq.argmax(axis=2)
            choose = active & ~self.frozen[i] if learn else np.zeros(M, bool)
            if choose.any():
                eta = expansivity(G, p.g_minus, p.gamma, p.chi, p.K)
                psi = selection_weights(Vq, eta[:, None, None], p.gain, p.inflection)
                drawn = draw_winners(psi, uniforms[i])
                win = np.where(choose[:, None], drawn, win)
            win = np.where(active[:, None], win, -1)
            cell = np.zeros((M, p.Q, p.K), dtype=np.uint8)
            m_idx, q_idx = np.nonzero(win >= 0)
            cell[m_idx, q_idx, win[m_idx, q_idx]] = 1
            cell = cell.reshape(M, p.cells)
            if choose.any():
                self._learn(i, xs, cell, choose)
            codes.append(win)
            fam.append(np.where(active, G, np.nan))
            cells.append(cell.ravel())
            source = cells[-1]
        self.previous = cells
        return codes, fam

    def _learn(self, i: int, xs: dict, cell: np.ndarray, choose: np.ndarray) -> None:
        lv = self.levels[i]
        for kind, xk in xs.items():
            w = self.w[i][kind]
            new = xk[:, :, None] & cell[:, None, :] & choose[:, None, None]
            if kind == "U":
                self.set_u[i] += (new & (w == 0)).sum(axis=(1, 2), dtype=np.int64)
            w |= new
        self.frozen[i] |= self.set_u[i] >= lv.freeze_count
