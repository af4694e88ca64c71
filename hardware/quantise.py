"""Quantisation of weights and decays to a target's number formats, with its error.

Weights become ``mantissa * 2**exponent`` with a ``bits``-wide mantissa and one exponent per
scaling group (a projection, or all projections onto one port of one population, as on
SpiNNaker); the exponent is the smallest that holds the group's largest magnitude, which gives
the finest resolution. Decays ``1 - exp(-dt / tau)`` become integers out of ``2**bits``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WeightQuantisation:
    """Quantised weights of one projection.

    Attributes
    ----------
    mantissa : numpy.ndarray of int64
        Integer weights.
    exponent : int
        Weights are ``mantissa * 2**exponent`` (in the spec's units, e.g. nA).
    max_abs_error, rms_error : float
        Error of the dequantised weights (spec units).
    zeroed : int
        Nonzero weights that quantise to zero.
    """

    mantissa: np.ndarray
    exponent: int
    max_abs_error: float
    rms_error: float
    zeroed: int

    @property
    def values(self) -> np.ndarray:
        """Dequantised weights (spec units)."""
        return self.mantissa * 2.0**self.exponent


def weight_exponent(largest: float, bits: int, signed: bool) -> int:
    """Smallest exponent ``e`` with ``largest / 2**e`` inside a ``bits``-wide mantissa."""
    top = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    if largest <= 0.0:
        return 0
    e = math.ceil(math.log2(largest / top))
    # guard the boundary against rounding of log2
    while round(largest / 2.0**e) > top:
        e += 1
    return e


def quantise_weights(
    weights: np.ndarray, bits: int, signed: bool, exponent: int
) -> WeightQuantisation:
    """Round ``weights`` to ``bits``-wide mantissas with the given exponent (round half to even,
    saturating at the mantissa range)."""
    w = np.asarray(weights, dtype=np.float64)
    top = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    bottom = -top if signed else 0
    mant = np.clip(np.rint(w / 2.0**exponent), bottom, top).astype(np.int64)
    err = mant * 2.0**exponent - w
    return WeightQuantisation(
        mantissa=mant,
        exponent=int(exponent),
        max_abs_error=float(np.abs(err).max()) if err.size else 0.0,
        rms_error=float(np.sqrt(np.mean(err**2))) if err.size else 0.0,
        zeroed=int(np.count_nonzero((mant == 0) & (w != 0))),
    )


@dataclass(frozen=True)
class DecayQuantisation:
    """A time constant's per-step decay on a ``bits``-wide integer scale.

    Attributes
    ----------
    parameter : str
        The time constant's name (e.g. ``tau_m``).
    max_factor_error : float
        Largest error of the per-step retention factor ``exp(-dt / tau)``.
    max_tau_relative_error : float
        Largest relative error of the time constant the quantised decay implies (inf where a
        decay rounds to 0 or to the full scale).
    """

    parameter: str
    max_factor_error: float
    max_tau_relative_error: float


def quantise_decay(name: str, tau: np.ndarray, dt: float, bits: int) -> DecayQuantisation:
    """Quantise ``1 - exp(-dt / tau)`` to an integer out of ``2**bits`` (``tau``, ``dt`` in ms)."""
    tau = np.asarray(tau, dtype=np.float64)
    scale = 2.0**bits
    exact = -np.expm1(-dt / tau)
    q = np.rint(exact * scale) / scale
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = -dt / np.log1p(-q)
        rel = np.where((q > 0) & (q < 1), np.abs(implied - tau) / tau, np.inf)
    return DecayQuantisation(
        parameter=name,
        max_factor_error=float(np.abs(q - exact).max()),
        max_tau_relative_error=float(rel.max()),
    )
