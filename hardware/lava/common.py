"""Constants, the target's error and the checks every part of the Lava exporter shares
(mapping, quantisation, emission); it imports none of them."""

from __future__ import annotations

from neuromem.errors import SpecError

from .. import _lava_compat

TARGET = "lava"
PRECISIONS = ("floating_pt", "fixed_pt")
#: Lava's bit-accurate DelayDense accepts delays 0..63, i.e. neuromem delays 1..64 steps.
MAX_DELAY_FIXED = 64
#: Loihi's weight exponent range (Lava's CPU model does not check it).
WEIGHT_EXP_RANGE = (-8, 7)
#: Lava LIF fixed-point ranges.
VTH_MAX = 2**17 - 1
BIAS_MANT_RANGE = (-(2**12), 2**12 - 1)
BIAS_EXP_MAX = 7
UV_MAX = 2**23 - 1


class LavaTargetError(SpecError):
    """The network uses something the Lava target cannot express (names element and limit)."""


def lava_available() -> bool:
    """True when lava-nc 0.10 imports here (with the Python 3.11 import hook)."""
    return _lava_compat.lava_available()


def _target(precision: str) -> str:
    return f"{TARGET}:{precision}"


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise SpecError(f"lava: unknown precision {precision!r} ({', '.join(PRECISIONS)})")


def _check_plasticity_mode(plasticity: str) -> None:
    if plasticity not in ("refuse", "host"):
        raise SpecError(f"lava: unknown plasticity mode {plasticity!r} (refuse, host)")


def _raise(problems: list[dict]) -> None:
    """Raise :class:`LavaTargetError` listing every problem (``element``, ``message``,
    ``limit``), or nothing when there are none."""
    if problems:
        lines = "; ".join(f"{p['element']}: {p['message']} (limit: {p['limit']})" for p in problems)
        raise LavaTargetError(f"target {problems[0]['target']}: cannot express: {lines}")
