"""Numba emulation of Lava 0.10's bit-accurate (``fixed_pt``) LIF + Dense arithmetic.

This reproduces, bit for bit, what Lava's CPU models compute for a network of
``lava.proc.lif.process.LIF`` populations (``PyLifModelBitAcc``), ``Dense`` /
``DelayDense`` connections (``PyDenseModelBitAcc`` / ``PyDelayDenseModelBitAcc``) and
``lava.proc.io.source.RingBuffer`` spike sources, so that a quantised network
(:func:`neuromem.hardware.lava.quantize`) runs here in milliseconds instead of through Lava's
process runtime. Lava itself is not needed to run it.

Arithmetic of one Lava time step (read from lava/proc/lif/models.py and
lava/proc/dense/models.py of lava-nc 0.10.0), all integers:

- LIF receives ``a`` = the sum of the ``a_out`` vectors its Dense processes computed in the
  previous time step (so a spike of step ``t`` through a ``Dense`` acts in step ``t + 1``, and
  through a ``DelayDense`` with delay ``k`` in step ``t + 1 + k``).
- current: ``x = u * (4096 - (du + 1))`` (``ds_offset = 1``), ``u = sign(x) * (|x| >> 12)``
  (truncation toward zero), ``u += a << 6``; then ``u`` wraps into 24 bits: ``u > 2**23`` ->
  ``u - 2**24``, ``u <= -2**23`` -> ``u + 2**24``.
- voltage: ``y = v * (4096 - dv)`` (``dm_offset = 0``), ``v = sign(y) * (|y| >> 12) + u +
  (bias_mant << bias_exp)``, clipped to ``[-(2**23 - 1), 2**23 - 1]`` (saturation).
- spike where ``v > vth << 6``; spiking neurons get ``v = 0``. No refractory period.
- Dense: weights are clipped to 8 bits for their sign mode and truncated to ``num_weight_bits``
  (mixed sign: the lowest bit is dropped, so weights are even); per time step and per delay
  the incoming spikes' weights are summed per post neuron and the *sum* is shifted by
  ``weight_exp`` (``<<`` when > 0, arithmetic ``>>`` otherwise, i.e. floor division).

Sums are formed in int64 here. Lava keeps them in int32 numpy arrays; the emulation counts any
activation whose ``<< 6`` leaves the int32 range in ``"int32_overflow"`` (0 in every network
the quantiser produces), where bit-exactness is not claimed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from neuromem.errors import SpecError

__all__ = [
    "FixedPopulation",
    "FixedProjection",
    "FixedPointNetwork",
    "lava_dense_weights",
    "simulate",
]

U_BITS = 24
MAX_UV = 2 ** (U_BITS - 1)
DECAY_SHIFT = 12
DECAY_UNITY = 2**DECAY_SHIFT
ACT_SHIFT = 6  # activation and threshold are MSB-aligned by 6 bits
VTH_SHIFT = 6
SIGN_MODES = ("excitatory", "inhibitory", "mixed")


@dataclass
class FixedPopulation:
    """Integer parameters of one Lava ``LIF`` (or a spike source when ``source``).

    ``v_scale`` (integer v units per mV) and ``v_offset`` (mV) convert back:
    ``v_mV = v / v_scale + v_offset``.
    """

    name: str
    size: int
    source: bool = False
    du: int = 0
    dv: int = 0
    vth: int = 0
    bias_mant: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bias_exp: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    u0: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    v0: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    v_scale: float = 1.0
    v_offset: float = 0.0


@dataclass
class FixedProjection:
    """One Lava ``Dense`` (``delay == 1``) or ``DelayDense`` (delays ``delay - 1``).

    ``delay`` is in neuromem's convention (steps from emission to the step it acts in);
    ``weights`` is (n_post, n_pre) int mantissas as given to Lava.
    """

    name: str
    projection: str
    pre: str
    post: str
    delay: int
    weights: np.ndarray
    weight_exp: int
    sign_mode: str
    num_weight_bits: int = 8


@dataclass
class FixedPointNetwork:
    """A quantised network: what Lava's fixed-point models are given, plus error statistics."""

    name: str
    dt: float
    populations: dict[str, FixedPopulation]
    projections: list[FixedProjection]
    stats: dict[str, Any] = field(default_factory=dict)


def lava_dense_weights(w: np.ndarray, sign_mode: str, num_weight_bits: int = 8) -> np.ndarray:
    """The weights Lava's bit-accurate Dense actually uses (``clip_weights`` to 8 bits, then
    ``truncate_weights`` to ``num_weight_bits``), as int64."""
    if sign_mode not in SIGN_MODES:
        raise SpecError(f"fixed point: unknown sign mode {sign_mode!r} ({', '.join(SIGN_MODES)})")
    w = np.asarray(w).astype(np.int32).astype(np.int64)
    mixed = sign_mode == "mixed"
    if sign_mode == "inhibitory":
        w = -w
    lo, hi = (-(2**8), 2**8 - 1) if mixed else (0, 2**8 - 1)
    w = np.clip(w, lo, hi)
    k = 8 - num_weight_bits + int(mixed)
    w = (w >> k) << k
    if sign_mode == "inhibitory":
        w = -w
    return w


@numba.njit(cache=True)
def _trunc_shift(x: np.int64, s: int) -> np.int64:
    # numpy's sign(x) * (|x| >> s): truncation toward zero
    if x >= 0:
        return x >> s
    return -((-x) >> s)


@numba.njit(cache=True)
def _run(
    steps,
    du,
    dv,
    vth_eff,
    bias_eff,
    u,
    v,
    n_lif,
    src_spikes,
    b_indptr,
    b_post,
    b_weight,
    b_off,
    b_syn_off,
    b_pre_off,
    b_n_pre,
    b_exp,
    b_delay,
    b_post_off,
    b_n_post,
    ring,
    rec_u,
    rec_v,
    rec_s,
    record_state,
):
    L = ring.shape[0]
    n_blocks = b_exp.shape[0]
    n_total = rec_s.shape[1]
    spk = np.zeros(n_total, np.bool_)
    acc = np.zeros(n_lif, np.int64)
    overflow = 0
    for t in range(steps):
        slot = t % L
        # ---- LIF (PyLifModelBitAcc.run_spk)
        for i in range(n_lif):
            a = ring[slot, i]
            ring[slot, i] = 0
            a6 = a << ACT_SHIFT
            if a6 >= 2**31 or a6 < -(2**31):
                overflow += 1
            cur = _trunc_shift(u[i] * (DECAY_UNITY - (du[i] + 1)), DECAY_SHIFT) + a6
            w = cur
            if cur > MAX_UV:
                w = cur - 2 * MAX_UV
            if w <= -MAX_UV:
                w = cur + 2 * MAX_UV
            u[i] = w
            nv = _trunc_shift(v[i] * (DECAY_UNITY - dv[i]), DECAY_SHIFT) + u[i] + bias_eff[i]
            if nv > MAX_UV - 1:
                nv = MAX_UV - 1
            elif nv < -MAX_UV + 1:
                nv = -MAX_UV + 1
            s = nv > vth_eff[i]
            if s:
                nv = 0
            v[i] = nv
            spk[i] = s
        for j in range(n_total - n_lif):
            spk[n_lif + j] = src_spikes[t, j]
        # ---- Dense / DelayDense: per block, sum then shift, due in step t + delay
        for b in range(n_blocks):
            p0, npre = b_pre_off[b], b_n_pre[b]
            q0, npost = b_post_off[b], b_n_post[b]
            any_spike = False
            for j in range(npre):
                if spk[p0 + j]:
                    any_spike = True
                    break
            if not any_spike:
                continue
            for k in range(npost):
                acc[k] = 0
            ip = b_off[b]
            so = b_syn_off[b]
            for j in range(npre):
                if spk[p0 + j]:
                    for kk in range(b_indptr[ip + j], b_indptr[ip + j + 1]):
                        acc[b_post[so + kk]] += b_weight[so + kk]
            e = b_exp[b]
            dslot = (t + b_delay[b]) % L
            for k in range(npost):
                x = acc[k]
                if e > 0:
                    x = x << e
                elif e < 0:
                    x = x >> (-e)
                ring[dslot, q0 + k] += x
        # ---- record
        for i in range(n_total):
            rec_s[t, i] = spk[i]
        if record_state:
            for i in range(n_lif):
                rec_u[t, i] = u[i]
                rec_v[t, i] = v[i]
    return overflow


def simulate(
    net: FixedPointNetwork,
    steps: int,
    inputs: dict[str, np.ndarray] | None = None,
    record_state: bool = True,
) -> dict[str, Any]:
    """Run a quantised network for ``steps`` Lava time steps with Lava's exact arithmetic.

    Parameters
    ----------
    net : FixedPointNetwork
        From :func:`neuromem.hardware.lava.quantize`.
    steps : int
    inputs : dict, optional
        Spike-source population -> bool raster (steps, size); absent sources are silent.
    record_state : bool
        Record ``u`` and ``v`` (integers) of every LIF population after each step (as Lava's
        ``Monitor`` does).

    Returns
    -------
    dict
        ``"spikes"``: population -> bool (steps, size); ``"u"``, ``"v"``: LIF population ->
        int64 (steps, size) in Lava's integer units; ``"v_mV"``: ``v / v_scale + v_offset``;
        ``"int32_overflow"``: count of activations outside the verified range (see module doc).
    """
    steps = int(steps)
    inputs = dict(inputs or {})
    lif = [p for p in net.populations.values() if not p.source]
    src = [p for p in net.populations.values() if p.source]
    off: dict[str, int] = {}
    n = 0
    for p in lif + src:
        off[p.name] = n
        n += p.size
    n_lif = sum(p.size for p in lif)
    for k in inputs:
        if k not in net.populations or not net.populations[k].source:
            raise SpecError(f"fixed point: input for {k!r}, which is not a spike source")
    src_sp = np.zeros((steps, n - n_lif), np.bool_)
    for p in src:
        if p.name in inputs:
            r = np.asarray(inputs[p.name], dtype=bool)
            if r.shape != (steps, p.size):
                raise SpecError(
                    f"fixed point: input for {p.name!r} has shape {r.shape}, "
                    f"expected {(steps, p.size)}"
                )
            src_sp[:, off[p.name] - n_lif : off[p.name] - n_lif + p.size] = r

    def per_neuron(attr: str) -> np.ndarray:
        parts = [np.broadcast_to(np.asarray(getattr(p, attr), np.int64), (p.size,)) for p in lif]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    du = np.concatenate([np.full(p.size, p.du, np.int64) for p in lif] or [np.zeros(0, np.int64)])
    dv = np.concatenate([np.full(p.size, p.dv, np.int64) for p in lif] or [np.zeros(0, np.int64)])
    vth_eff = np.concatenate(
        [np.full(p.size, np.int64(p.vth) << VTH_SHIFT, np.int64) for p in lif]
        or [np.zeros(0, np.int64)]
    )
    mant, bexp = per_neuron("bias_mant"), per_neuron("bias_exp")
    bias_eff = np.where(bexp >= 0, mant << np.maximum(bexp, 0), mant >> np.maximum(-bexp, 0))
    u, v = per_neuron("u0").copy(), per_neuron("v0").copy()

    indptr, post, weight = [], [], []
    b_off, b_syn_off, b_pre_off, b_n_pre, b_exp, b_delay, b_post_off, b_n_post = (
        [] for _ in range(8)
    )
    ip = so = 0
    max_delay = 1
    for pr in net.projections:
        if net.populations[pr.post].source:
            raise SpecError(f"fixed point: projection {pr.name!r} targets a spike source")
        if pr.delay < 1:
            raise SpecError(f"fixed point: projection {pr.name!r} has delay {pr.delay} < 1")
        w = lava_dense_weights(pr.weights, pr.sign_mode, pr.num_weight_bits)  # (n_post, n_pre)
        wt = w.T  # by pre
        rows, cols = np.nonzero(wt)
        ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=wt.shape[0]))])
        indptr.append(ptr.astype(np.int64))
        post.append(cols.astype(np.int64))
        weight.append(wt[rows, cols].astype(np.int64))
        b_off.append(ip)
        b_syn_off.append(so)
        ip += wt.shape[0] + 1
        so += rows.size
        b_pre_off.append(off[pr.pre])
        b_n_pre.append(wt.shape[0])
        b_exp.append(int(pr.weight_exp))
        b_delay.append(int(pr.delay))
        b_post_off.append(off[pr.post])
        b_n_post.append(wt.shape[1])
        max_delay = max(max_delay, int(pr.delay))

    def cat(x: list, dt=np.int64) -> np.ndarray:
        return np.concatenate(x).astype(dt) if x else np.zeros(0, dt)

    ring = np.zeros((max_delay + 1, max(n_lif, 1)), np.int64)
    rec_u = np.zeros((steps if record_state else 0, n_lif), np.int64)
    rec_v = np.zeros_like(rec_u)
    rec_s = np.zeros((steps, n), np.bool_)
    overflow = _run(
        steps,
        du,
        dv,
        vth_eff,
        bias_eff.astype(np.int64),
        u,
        v,
        n_lif,
        src_sp,
        cat(indptr),
        cat(post),
        cat(weight),
        np.array(b_off, np.int64),
        np.array(b_syn_off, np.int64),
        np.array(b_pre_off, np.int64),
        np.array(b_n_pre, np.int64),
        np.array(b_exp, np.int64),
        np.array(b_delay, np.int64),
        np.array(b_post_off, np.int64),
        np.array(b_n_post, np.int64),
        ring,
        rec_u,
        rec_v,
        rec_s,
        record_state,
    )
    out: dict[str, Any] = {"spikes": {}, "u": {}, "v": {}, "v_mV": {}, "int32_overflow": overflow}
    for p in lif + src:
        sl = slice(off[p.name], off[p.name] + p.size)
        out["spikes"][p.name] = rec_s[:, sl].copy()
        if record_state and not p.source:
            out["u"][p.name] = rec_u[:, sl].copy()
            out["v"][p.name] = rec_v[:, sl].copy()
            out["v_mV"][p.name] = rec_v[:, sl] / p.v_scale + p.v_offset
    return out
