"""Parameters and geometry of a Sparsey hierarchy: macrocolumns (macs) on levels.

A *level* is a set of ``M`` macs with the same :class:`MacParams`; each mac has ``Q``
competitive modules (CMs) of ``K`` binary cells, and its code is one winner per CM. A mac reads
three kinds of binary input, each through a receptive field (RF) given as an index array:

- ``U`` (bottom-up): cells of the level below (or pixels of the input), this frame;
- ``H`` (horizontal): cells of its own level, previous frame;
- ``D`` (top-down): cells of the level above, previous frame.

The cells of a level are numbered ``(mac * Q + cm) * K + cell``; an RF index refers to that
numbering of its source (the input's pixels for ``U`` of level 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from neuromem.errors import SpecError
from neuromem.spec.limits import check_bytes

#: Input kinds of a mac, in the order they multiply into ``V``.
INPUT_KINDS = ("U", "H", "D")


@dataclass(frozen=True)
class MacParams:
    """The Code Selection Algorithm's parameters of one level's macs.

    Parameters
    ----------
    Q, K : int
        CMs per mac and cells per CM (a code has ``Q`` active cells out of ``Q * K``).
    pi_min, pi_max : int
        A mac codes only when its number of active ``U`` inputs lies in ``[pi_min, pi_max]``
        (counts, not fractions; ``pi_max = 0`` means no upper bound).
    g_minus : float
        Familiarity at and below which selection is uniform (``G-``, in [0, 1)).
    gamma, chi : float
        Expansivity ``eta(G) = 1 + max(0, (G - G-) / (1 - G-))**gamma * chi * K``.
    gain, inflection : float
        The sigmoid ``sigma(gain * (V - inflection))`` of the selection weight
        ``psi = (eta - 1) * sigma + 1`` (``gain`` per unit of V).
    exponents : tuple of 3 floats
        Exponents of the normalised ``U``, ``H`` and ``D`` sums in ``V``. With exponents of 1
        (the default) ``V`` is the same number on every backend; other exponents go through
        each backend's ``pow``, which may differ by an ulp, so an exact tie of ``V`` can
        break differently and the backends' codes may then differ.
    freeze_at : float
        A mac stops learning (its critical period ends) once this fraction of its ``U``
        weights is set (``1.0``: only when all are).
    """

    Q: int
    K: int
    pi_min: int = 1
    pi_max: int = 0
    g_minus: float = 0.1
    gamma: float = 2.0
    chi: float = 100.0
    gain: float = 28.0
    inflection: float = 0.5
    exponents: tuple[float, float, float] = (1.0, 1.0, 1.0)
    freeze_at: float = 0.5

    def __post_init__(self) -> None:
        for k in ("Q", "K", "pi_min", "pi_max"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise SpecError(f"sparsey: {k} must be an integer, got {v!r}")
            object.__setattr__(self, k, int(v))
        if self.Q < 1 or self.K < 2:
            raise SpecError(f"sparsey: need Q >= 1 and K >= 2, got Q={self.Q}, K={self.K}")
        if self.pi_min < 1 or (self.pi_max and self.pi_max < self.pi_min):
            raise SpecError(
                f"sparsey: need 1 <= pi_min <= pi_max (or pi_max = 0), got "
                f"[{self.pi_min}, {self.pi_max}]"
            )
        try:
            exponents = tuple(float(e) for e in self.exponents)
        except (TypeError, ValueError):
            shown = repr(self.exponents)[:80]
            raise SpecError(f"sparsey: exponents must be three numbers, got {shown}") from None
        object.__setattr__(self, "exponents", exponents)
        reals = [(f.name, getattr(self, f.name)) for f in fields(self) if f.type == "float"]
        reals += [(f"exponents[{i}]", e) for i, e in enumerate(self.exponents)]
        for k, v in reals:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise SpecError(f"sparsey: {k} must be a finite number, got {v!r}")
        if len(self.exponents) != 3 or min(self.exponents) <= 0:
            raise SpecError("sparsey: exponents must be three positive numbers (U, H, D)")
        if not 0.0 <= self.g_minus < 1.0:
            raise SpecError(f"sparsey: g_minus must lie in [0, 1), got {self.g_minus}")
        if self.gamma <= 0 or self.chi < 0 or self.gain <= 0:
            raise SpecError("sparsey: need gamma > 0, chi >= 0 and gain > 0")
        if not 0.0 < self.freeze_at <= 1.0:
            raise SpecError(f"sparsey: freeze_at must lie in (0, 1], got {self.freeze_at}")

    @property
    def cells(self) -> int:
        """Cells per mac, ``Q * K``."""
        return self.Q * self.K

    def to_dict(self) -> dict:
        """The parameters as JSON scalars (``exponents`` as a list)."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "exponents": list(self.exponents)
        }


@dataclass(frozen=True)
class Level:
    """One level of the hierarchy: ``M`` macs with their receptive fields.

    Parameters
    ----------
    params : MacParams
    rf_u : np.ndarray, int, shape (M, R_U)
        Bottom-up RF of each mac: indices into the level below (or the input).
    rf_h, rf_d : np.ndarray, int, shape (M, R_H) / (M, R_D), optional
        Horizontal RF (cells of this level) and top-down RF (cells of the level above);
        ``None`` (or width 0) for no such input.
    """

    params: MacParams
    rf_u: np.ndarray
    rf_h: np.ndarray | None = None
    rf_d: np.ndarray | None = None
    shape: tuple[int, ...] = field(default=())  # the mac grid, for plots; () = (M,)

    def __post_init__(self) -> None:
        if not isinstance(self.params, MacParams):
            raise SpecError("sparsey: a level's params must be a MacParams")
        m = None
        for kind in INPUT_KINDS:
            name = f"rf_{kind.lower()}"
            rf = getattr(self, name)
            if rf is None:
                rf = np.zeros((0 if m is None else m, 0), dtype=np.int64)
            rf = np.asarray(rf)
            if rf.ndim != 2 or (rf.size and rf.dtype.kind not in "iu"):
                raise SpecError(f"sparsey: {name} must be an integer (M, R) array")
            # range before the cast: a uint64 index >= 2**63 would wrap to a negative int64
            if rf.size and (rf.min() < 0 or rf.max() > np.iinfo(np.int64).max):
                raise SpecError(f"sparsey: {name} holds an index outside [0, 2**63)")
            m = rf.shape[0] if m is None else m
            if rf.shape[0] != m:
                raise SpecError(f"sparsey: {name} has {rf.shape[0]} rows, rf_u has {m} macs")
            rf = np.ascontiguousarray(rf, dtype=np.int64)
            rf.setflags(write=False)
            object.__setattr__(self, name, rf)
        if m == 0 or self.rf_u.shape[1] == 0:
            raise SpecError("sparsey: a level needs at least one mac with a non-empty rf_u")
        shape = tuple(self.shape) if isinstance(self.shape, tuple | list) else None
        if shape is None or not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in shape
        ):
            raise SpecError(f"sparsey: level shape must be positive integers, got {self.shape!r}")
        shape = tuple(int(s) for s in shape) or (m,)
        if math.prod(shape) != m:
            raise SpecError(f"sparsey: level shape {shape} does not hold {m} macs")
        object.__setattr__(self, "shape", shape)
        nbytes = sum(getattr(self, f"rf_{k.lower()}").shape[1] for k in INPUT_KINDS)
        check_bytes(nbytes * self.cells, "sparsey level", "binary weights")

    @property
    def macs(self) -> int:
        """Number of macs ``M``."""
        return int(self.rf_u.shape[0])

    @property
    def cells(self) -> int:
        """Cells of the level, ``M * Q * K``."""
        return self.macs * self.params.cells

    @property
    def freeze_count(self) -> int:
        """Set ``U`` weights at which a mac's critical period ends: ``ceil(freeze_at * R_U *
        Q * K)``, one integer that every engine compares with."""
        return math.ceil(self.params.freeze_at * (self.rf_u.shape[1] * self.params.cells))


def check_hierarchy(levels: tuple[Level, ...], input_size: int) -> None:
    """Each RF indexes inside its source; ``D`` of the top level is refused."""
    if not levels:
        raise SpecError("sparsey: a hierarchy needs at least one level")
    for i, lv in enumerate(levels):
        below = input_size if i == 0 else levels[i - 1].cells
        above = levels[i + 1].cells if i + 1 < len(levels) else 0
        for name, size in (("rf_u", below), ("rf_h", lv.cells), ("rf_d", above)):
            rf = getattr(lv, name)
            if rf.size and rf.max() >= size:
                raise SpecError(
                    f"sparsey: level {i} {name} indexes cell {int(rf.max())} of a source of {size}"
                )


def grid_rf(
    image_shape: tuple[int, int], grid: tuple[int, int], rf_shape: tuple[int, int]
) -> np.ndarray:
    """RFs of a ``grid`` of macs on an image: rectangles of ``rf_shape`` pixels whose corners
    are spread evenly so that together they cover the image (row-major pixel indices).

    Returns
    -------
    np.ndarray, int64, shape (grid[0] * grid[1], rf_shape[0] * rf_shape[1])
    """
    (H, W), (gr, gc), (h, w) = image_shape, grid, rf_shape
    if not (0 < h <= H and 0 < w <= W and gr > 0 and gc > 0):
        raise SpecError(f"sparsey: rf {rf_shape} and grid {grid} do not fit image {image_shape}")
    rows = np.round(np.linspace(0, H - h, gr)).astype(np.int64)
    cols = np.round(np.linspace(0, W - w, gc)).astype(np.int64)
    dy, dx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    patch = (dy * W + dx).ravel()
    return np.array([r * W + c + patch for r in rows for c in cols], dtype=np.int64)


def all_cells(size: int, macs: int = 1) -> np.ndarray:
    """RFs that read every cell of a source of ``size`` cells, for ``macs`` macs."""
    return np.tile(np.arange(size, dtype=np.int64), (macs, 1))
