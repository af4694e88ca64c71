"""A Sparsey hierarchy: levels of macs that learn single-trial and recognise by best match.

    >>> from neuromem.models.sparsey import MacParams, Level, Sparsey, grid_rf, all_cells
    >>> l1 = Level(MacParams(Q=12, K=6, pi_min=3), grid_rf((24, 16), (4, 3), (8, 8)))
    >>> l2 = Level(MacParams(Q=10, K=8), all_cells(l1.cells))
    >>> model = Sparsey((l1, l2), input_size=384, seed=0, backend="numba")
    >>> learnt = model.learn(images)             # (n, 384) 0/1, one frame each
    >>> seen = model.recognise(images)           # max-V codes; seen.familiarity[-1] ~ 1

The host RNG (``numpy.random.default_rng(seed)``) draws one uniform per CM of every level in
every learning frame, whatever the backend, so numpy, numba and torch choose the same codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neuromem.errors import SpecError
from neuromem.progress import progress_bar

from .csa import NumpyEngine
from .params import Level, check_hierarchy

BACKENDS = ("numba", "torch", "numpy")


@dataclass
class Codes:
    """Codes of ``n`` frames.

    Attributes
    ----------
    winners : list of np.ndarray, int32, shape (n, M, Q) per level
        The winning cell of each CM (-1 where the mac was inactive).
    familiarity : list of np.ndarray, float64, shape (n, M) per level
        ``G`` of each mac before its code was chosen (NaN where inactive).
    K : list of int
        Cells per CM of each level.
    """

    winners: list[np.ndarray]
    familiarity: list[np.ndarray]
    K: list[int]

    def cells(self, level: int = -1) -> np.ndarray:
        """The codes of ``level`` as binary cell vectors, bool (n, M * Q * K)."""
        return _cells(self.winners[level], self.K[level])

    def overlap(self, other: Codes, level: int = -1) -> np.ndarray:
        """Per frame, the fraction of CMs (of macs active in both) with the same winner."""
        a, b = self.winners[level], other.winners[level]
        both = (a >= 0) & (b >= 0)
        return ((a == b) & both).sum(axis=(1, 2)) / np.maximum(both.sum(axis=(1, 2)), 1)


def host_copy(a) -> np.ndarray:
    """A numpy copy of an engine's array (a torch tensor is moved to the host)."""
    return a.detach().cpu().numpy().copy() if hasattr(a, "detach") else np.array(a)


def _cells(winners: np.ndarray, K: int) -> np.ndarray:
    n, M, Q = winners.shape
    out = np.zeros((n, M, Q, K), dtype=bool)
    i, m, q = np.nonzero(winners >= 0)
    out[i, m, q, winners[i, m, q]] = True
    return out.reshape(n, M * Q * K)


class Sparsey:
    """A hierarchy of mac levels over an input of ``input_size`` binary pixels.

    Parameters
    ----------
    levels : sequence of Level
        Bottom first; level ``i``'s ``rf_u`` indexes level ``i - 1``'s cells (the input's
        pixels for level 0), ``rf_d`` level ``i + 1``'s.
    input_size : int
        Pixels per frame.
    seed : int
        Seed of the host RNG that draws the codes.
    backend : {"numba", "torch", "numpy"}
    device : str
        torch device (``"cpu"``, ``"cuda"``); torch only.
    """

    def __init__(
        self,
        levels: Sequence[Level],
        input_size: int,
        *,
        seed: int = 0,
        backend: str = "numba",
        device: str = "cpu",
    ) -> None:
        self.levels = tuple(levels)
        check_hierarchy(self.levels, int(input_size))
        self.input_size, self.seed, self.backend = int(input_size), int(seed), backend
        if backend == "numba":
            from .numba_engine import NumbaEngine

            self.engine = NumbaEngine(self.levels, self.input_size)
        elif backend == "torch":
            from .torch_engine import TorchEngine

            self.engine = TorchEngine(self.levels, self.input_size, device=device)
        elif backend == "numpy":
            self.engine = NumpyEngine(self.levels, self.input_size)
        else:
            raise SpecError(f"sparsey: backend {backend!r} is not one of {BACKENDS}")
        self.rng = np.random.default_rng(self.seed)

    def reset(self) -> None:
        """Forget everything: weights 0, critical periods open, RNG re-seeded."""
        self.engine.reset()
        self.rng = np.random.default_rng(self.seed)

    def reset_context(self) -> None:
        """Forget the previous frame (H and D inputs of the next frame are empty)."""
        self.engine.reset_context()

    def learn(
        self, frames, *, sequence: bool = False, carry: bool = False, progress: bool = False
    ) -> Codes:
        """Present ``frames`` (n, input_size) 0/1 with single-trial learning and return the
        codes chosen. Each frame is an item of its own (the context is cleared before it)
        unless ``sequence``: then frame ``t``'s H and D inputs are frame ``t - 1``'s codes, and
        the first frame starts from no context, or with ``carry`` from the last frame of the
        previous call (a sequence presented in parts)."""
        return self._present(frames, True, sequence, carry, progress)

    def recognise(
        self, frames, *, sequence: bool = False, carry: bool = False, progress: bool = False
    ) -> Codes:
        """Present ``frames`` without learning: every CM takes its max-V cell (``sequence``
        and ``carry`` as in :meth:`learn`)."""
        return self._present(frames, False, sequence, carry, progress)

    def _present(self, frames, learn: bool, sequence: bool, carry: bool, progress: bool) -> Codes:
        x = np.asarray(frames)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise SpecError(
                f"sparsey: frames must be (n, {self.input_size}), got shape {np.shape(frames)}"
            )
        if x.size and not (x.dtype == bool or ((x == 0) | (x == 1)).all()):
            raise SpecError("sparsey: frames must hold 0/1 (binary pixels)")
        x = x.astype(np.uint8)
        n = x.shape[0]
        if not (sequence and carry):
            self.engine.reset_context()
        winners = [np.empty((n, lv.macs, lv.params.Q), np.int32) for lv in self.levels]
        fam = [np.empty((n, lv.macs)) for lv in self.levels]
        desc = "sparsey learn" if learn else "sparsey recognise"
        batch = hasattr(self.engine, "frames") and n > 0
        if batch and not any(lv.rf_d.shape[1] for lv in self.levels):
            return self._present_in_blocks(x, learn, sequence, progress, desc)
        with progress_bar(n, desc, disable=not progress) as bar:
            for t in range(n):
                if not sequence:
                    self.engine.reset_context()
                uniforms = (
                    [self.rng.random((lv.macs, lv.params.Q)) for lv in self.levels]
                    if learn
                    else [None] * len(self.levels)
                )
                codes, g = self.engine.frame(x[t], learn, uniforms)
                for i in range(len(self.levels)):
                    winners[i][t] = codes[i]
                    fam[i][t] = g[i]
                bar.update()
        return Codes(winners, fam, [lv.params.K for lv in self.levels])

    def _present_in_blocks(self, x, learn, sequence, progress, desc, block: int = 256) -> Codes:
        """Blocks of frames through the engine's batch path, level by level (the host draws
        the uniforms of frame t, level by level, in the same order as frame by frame)."""
        sizes = [lv.macs * lv.params.Q for lv in self.levels]
        parts: list[Codes] = []
        with progress_bar(len(x), desc, disable=not progress) as bar:
            for b in range(0, len(x), block):
                chunk = x[b : b + block]
                uniforms = [None] * len(self.levels)
                if learn:
                    r = self.rng.random((len(chunk), sum(sizes)))
                    edges = np.cumsum([0, *sizes])
                    uniforms = [
                        r[:, edges[i] : edges[i + 1]].reshape(len(chunk), lv.macs, lv.params.Q)
                        for i, lv in enumerate(self.levels)
                    ]
                codes, fam = self.engine.frames(chunk, learn, uniforms, sequence)
                parts.append(Codes([c.astype(np.int32) for c in codes], fam, []))
                bar.update(len(chunk))
        return Codes(
            [np.concatenate([p.winners[i] for p in parts]) for i in range(len(self.levels))],
            [np.concatenate([p.familiarity[i] for p in parts]) for i in range(len(self.levels))],
            [lv.params.K for lv in self.levels],
        )

    def weights(self, level: int, kind: str = "U") -> np.ndarray:
        """Binary weights of ``level`` from its ``kind`` inputs, uint8 (M, R, Q * K)."""
        if hasattr(self.engine, "weights"):
            return self.engine.weights(level, kind)
        return self.engine.w[level][kind].copy()

    def frozen(self, level: int) -> np.ndarray:
        """Which macs of ``level`` have ended their critical period (bool (M,))."""
        return host_copy(self.engine.frozen[level])

    def saturation(self, level: int) -> np.ndarray:
        """Fraction of each mac's ``U`` weights that are set, (M,)."""
        lv = self.levels[level]
        return host_copy(self.engine.set_u[level]) / (lv.rf_u.shape[1] * lv.params.cells)
