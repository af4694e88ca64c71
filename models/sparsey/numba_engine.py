"""The CSA on numba: one jitted pass per level and frame, the speed path.

Binary weights are uint8 rows (one per input of the RF, ``Q * K`` cells wide), so an input sum
adds the rows of the active inputs only: the cost of a frame is ``O(active inputs * Q * K)``
per mac, independent of how many items are stored (the constant-time claim). Same state
layout and the same operation order as :class:`~neuromem.models.sparsey.csa.NumpyEngine`,
whose docstring and module give the algorithm.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .csa import NumpyEngine


@numba.njit(cache=True, nogil=True)
def _sum_rows(src, rf, w, u):
    """``u = sum of w[r] over the RF inputs r that are on``; returns their number."""
    u[:] = 0
    pi = 0
    for r in range(rf.shape[0]):
        if src[rf[r]]:
            pi += 1
            row = w[r]
            for c in range(u.shape[0]):
                u[c] += row[c]
    return pi


@numba.njit(cache=True, nogil=True)
def _scale(V, u, pi, e):
    """``V *= clamp(u / pi, 0, 1) ** e`` (no change when no input is on)."""
    if pi > 0:
        for c in range(V.shape[0]):
            ratio = min(max(u[c] / pi, 0.0), 1.0)
            V[c] = V[c] * (ratio if e == 1.0 else ratio**e)  # x ** 1.0 == x: skip the pow


@numba.njit(cache=True, nogil=True)
def _learn_rows(src, rf, w, cell_on, C):
    """Set ``w[r, c] = 1`` for the RF inputs on and the winning cells; returns how many were 0."""
    new = 0
    for r in range(rf.shape[0]):
        if src[rf[r]]:
            row = w[r]
            for c in range(C):
                if cell_on[c] and row[c] == 0:
                    row[c] = 1
                    new += 1
    return new


@numba.njit(cache=True, nogil=True)
def level_frame(
    src_u, rf_u, w_u, src_h, rf_h, w_h, src_d, rf_d, w_d,
    Q, K, pi_min, pi_max, g_minus, gamma, chi, gain, inflection, e_u, e_h, e_d,
    learn, frozen, set_u, freeze_count, uniforms, win, fam, cells,
):  # fmt: skip
    """One frame of one level: winners ``win`` (M, Q), familiarity ``fam`` (M,), the level's
    cell vector ``cells`` (M * Q * K); learns in place when ``learn``."""
    M = rf_u.shape[0]
    C = Q * K
    V = np.empty(C)
    u = np.empty(C, np.int64)
    psi = np.empty(K)
    cell_on = np.zeros(C, np.bool_)
    cells[:] = 0
    for m in range(M):
        V[:] = 1.0
        pi_u = _sum_rows(src_u, rf_u[m], w_u[m], u)
        _scale(V, u, pi_u, e_u)
        if rf_h.shape[1]:
            _scale(V, u, _sum_rows(src_h, rf_h[m], w_h[m], u), e_h)
        if rf_d.shape[1]:
            _scale(V, u, _sum_rows(src_d, rf_d[m], w_d[m], u), e_d)
        active = pi_u >= pi_min and (pi_max == 0 or pi_u <= pi_max)
        if not active:
            win[m, :] = -1
            fam[m] = np.nan
            continue
        G = 0.0
        for q in range(Q):
            best = V[q * K]
            for k in range(1, K):
                best = max(best, V[q * K + k])
            G += best
        G /= Q
        fam[m] = G
        choose = learn and not frozen[m]
        rect = max((G - g_minus) / (1.0 - g_minus), 0.0)
        eta = 1.0 + rect**gamma * (chi * K)
        cell_on[:] = False
        for q in range(Q):
            base = q * K
            k_win = 0
            if choose:
                c = 0.0
                for k in range(K):
                    sigma = 1.0 / (1.0 + math.exp(-gain * (V[base + k] - inflection)))
                    c += (eta - 1.0) * sigma + 1.0
                    psi[k] = c
                threshold = uniforms[m, q] * c
                k_win = 0
                for k in range(K):
                    if psi[k] <= threshold:
                        k_win += 1
                k_win = min(k_win, K - 1)
            else:
                for k in range(1, K):
                    if V[base + k] > V[base + k_win]:
                        k_win = k
            win[m, q] = k_win
            cell_on[base + k_win] = True
            cells[m * C + base + k_win] = 1
        if choose:
            set_u[m] += _learn_rows(src_u, rf_u[m], w_u[m], cell_on, C)
            if rf_h.shape[1]:
                _learn_rows(src_h, rf_h[m], w_h[m], cell_on, C)
            if rf_d.shape[1]:
                _learn_rows(src_d, rf_d[m], w_d[m], cell_on, C)
            if set_u[m] >= freeze_count:
                frozen[m] = True


@numba.njit(cache=True, nogil=True)
def level_frames(
    src_u, rf_u, w_u, rf_h, w_h, previous, context,
    Q, K, pi_min, pi_max, g_minus, gamma, chi, gain, inflection, e_u, e_h,
    learn, frozen, set_u, freeze_count, uniforms, win, fam, cells,
):  # fmt: skip
    """:func:`level_frame` over ``n`` frames of a level without top-down input: frame ``t``
    reads row ``t`` of ``src_u`` (n, S) and, when ``context``, its own cells of frame
    ``t - 1`` (``previous`` before the first); outputs (n, M, Q), (n, M), (n, cells)."""
    no_d = np.zeros((rf_u.shape[0], 0), np.int64)
    no_w = np.zeros((rf_u.shape[0], 0, Q * K), np.uint8)
    empty = np.zeros(0, np.uint8)
    h = previous.copy() if context else np.zeros_like(previous)
    for t in range(src_u.shape[0]):
        level_frame(
            src_u[t], rf_u, w_u, h, rf_h, w_h, empty, no_d, no_w,
            Q, K, pi_min, pi_max, g_minus, gamma, chi, gain, inflection, e_u, e_h, 1.0,
            learn, frozen, set_u, freeze_count, uniforms[t], win[t], fam[t], cells[t],
        )  # fmt: skip
        if context:
            h[:] = cells[t]
    return h


class NumbaEngine(NumpyEngine):
    """The hierarchy on numba (state as :class:`NumpyEngine`, frames by :func:`level_frame`)."""

    def frame(self, x: np.ndarray, learn: bool, uniforms: list[np.ndarray]):
        source = np.ascontiguousarray(x, dtype=np.uint8)
        empty = np.zeros(0, np.uint8)
        codes, fam, cells = [], [], []
        for i, lv in enumerate(self.levels):
            p = lv.params
            above = self.previous[i + 1] if i + 1 < len(self.levels) else empty
            w = self.w[i]
            win = np.empty((lv.macs, p.Q), np.int64)
            g = np.empty(lv.macs)
            out = np.empty(lv.cells, np.uint8)
            freeze_count = lv.freeze_count
            level_frame(
                source, lv.rf_u, w["U"], self.previous[i], lv.rf_h, w["H"], above, lv.rf_d,
                w["D"], p.Q, p.K, p.pi_min, p.pi_max, p.g_minus, p.gamma, p.chi, p.gain,
                p.inflection, *p.exponents, bool(learn), self.frozen[i], self.set_u[i],
                freeze_count, _uniforms(uniforms[i], lv), win, g, out,
            )  # fmt: skip
            codes.append(win)
            fam.append(g)
            cells.append(out)
            source = out
        self.previous = cells
        return codes, fam

    def frames(self, x: np.ndarray, learn: bool, uniforms: list, context: bool):
        """Many frames at once, level by level (only without top-down inputs, whose frame
        ``t`` needs the level above's frame ``t - 1``): ``x`` (n, input_size), uniforms per
        level (n, M, Q) or None; returns winners (n, M, Q) and familiarity (n, M) per level.
        The same codes as :meth:`frame` frame by frame (with the context cleared before each
        frame unless ``context``)."""
        if any(lv.rf_d.shape[1] for lv in self.levels):
            raise ValueError("frames: a hierarchy with top-down inputs runs frame by frame")
        source = np.ascontiguousarray(x, dtype=np.uint8)
        n = source.shape[0]
        codes, fam = [], []
        for i, lv in enumerate(self.levels):
            p = lv.params
            win = np.empty((n, lv.macs, p.Q), np.int64)
            g = np.empty((n, lv.macs))
            out = np.empty((n, lv.cells), np.uint8)
            r = (
                np.zeros((n, lv.macs, p.Q))
                if uniforms[i] is None
                else np.ascontiguousarray(uniforms[i], dtype=np.float64)
            )
            freeze_count = lv.freeze_count
            last = level_frames(
                source, lv.rf_u, self.w[i]["U"], lv.rf_h, self.w[i]["H"], self.previous[i],
                bool(context), p.Q, p.K, p.pi_min, p.pi_max, p.g_minus, p.gamma, p.chi, p.gain,
                p.inflection, p.exponents[0], p.exponents[1], bool(learn), self.frozen[i],
                self.set_u[i], freeze_count, r, win, g, out,
            )  # fmt: skip
            self.previous[i] = last if context else out[-1].copy()
            codes.append(win)
            fam.append(g)
            source = out
        return codes, fam


def _uniforms(r, level) -> np.ndarray:
    """The frame's uniforms (M, Q) float64; zeros in recognition, which draws none."""
    if r is None:
        return np.zeros((level.macs, level.params.Q))
    return np.ascontiguousarray(r, dtype=np.float64)
