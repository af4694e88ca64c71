"""Fixed-point parameters for Lava's bit-accurate models and their error statistics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neuromem.spec import Network

from ..fixed_point import (
    FixedPointNetwork,
    FixedPopulation,
    FixedProjection,
    lava_dense_weights,
)
from .common import (
    BIAS_EXP_MAX,
    BIAS_MANT_RANGE,
    UV_MAX,
    VTH_MAX,
    WEIGHT_EXP_RANGE,
    _raise,
    _target,
)
from .mapping import LavaMapping, ProjectionMap, _analyse, _build_mapping


def _weight_stats(ideal: np.ndarray, got: np.ndarray, factor_post: np.ndarray) -> dict:
    """Error of effective weights, in Lava float units and in spec weight units."""
    nz = ideal != 0
    err = got - ideal
    with np.errstate(divide="ignore", invalid="ignore"):
        spec_err = np.where(factor_post[:, None] != 0, err / factor_post[:, None], 0.0)
    sel = nz | (got != 0)
    e = spec_err[sel]
    return {
        "n_nonzero": int(nz.sum()),
        "n_zeroed": int((nz & (got == 0)).sum()),
        "max_abs_error": float(np.abs(e).max()) if e.size else 0.0,
        "rms_error": float(np.sqrt(np.mean(e**2))) if e.size else 0.0,
        "max_rel_error": float(np.abs(err[sel]).max() / np.abs(ideal).max())
        if e.size and np.abs(ideal).max() > 0
        else 0.0,
    }


def quantize(
    net: Network | LavaMapping,
    v_scale: dict[str, float] | None = None,
    _strict: bool = True,
) -> FixedPointNetwork:
    """Quantise ``net`` to Lava's fixed-point LIF and Dense parameters.

    Per LIF population a voltage scale ``s`` (integer units per mV) is chosen as large as the
    24-bit state allows for the largest possible one-step drive, the steady bias and the
    threshold, then adjusted so that ``s * vth = 64 k + 1`` exactly (Lava's ``v > k << 6`` is
    then neuromem's ``v >= vth``). Decays become 12-bit ``du = round(4096 du) - 1`` (Lava adds
    1) and ``dv = round(4096 dv)``; biases a 13-bit mantissa with a 3-bit exponent; each
    projection one weight exponent ``e >= 0`` (the smallest that fits its largest weight in 8
    bits) and 8-bit mantissas ``round(s w_lava / 2^(e + 6))`` (even for mixed signs).

    Parameters
    ----------
    net : Network or LavaMapping
    v_scale : dict, optional
        Population -> voltage scale (units per mV) to use instead of the automatic one.

    Returns
    -------
    FixedPointNetwork
        Integer parameters, and ``stats``: per population ``du``/``dv`` (value, quantised
        effective value, error), ``threshold`` and ``bias`` errors (mV), ``v_scale``,
        ``v_range_mV``; per projection weight errors (``max_abs_error`` and ``rms_error`` in
        the spec's weight units, ``max_rel_error`` relative to the largest weight,
        ``n_nonzero``, ``n_zeroed``: nonzero weights that quantise to 0), ``weight_exp``;
        and ``unsupported`` (limits exceeded, as :func:`.checks.list_unsupported`).

    Raises
    ------
    LavaTargetError
        When the network has elements the fixed-point target cannot express.
    """
    if isinstance(net, LavaMapping):
        mapping = net
        problems, _, _ = _analyse(mapping.net, "fixed_pt", "refuse")
    else:
        problems, forms, prog = _analyse(net, "fixed_pt", "refuse")
        if problems and _strict:
            _raise(problems)
        if problems:
            return FixedPointNetwork(
                net.name, net.discretization.dt, {}, [], {"unsupported": problems}
            )
        mapping = _build_mapping(net, forms, prog)
    if problems and _strict:
        _raise(problems)
    tgt = _target("fixed_pt")
    unsupported: list[dict] = list(problems)
    v_scale = dict(v_scale or {})
    incoming: dict[str, np.ndarray] = {
        p.name: np.zeros(p.size) for p in mapping.populations.values()
    }
    for pm in mapping.projections.values():
        for m in pm.groups.values():
            incoming[pm.post] += np.abs(m).sum(axis=1)
    pops: dict[str, FixedPopulation] = {}
    stats: dict[str, Any] = {"populations": {}, "projections": {}}
    for p in mapping.populations.values():
        if p.model == "source":
            pops[p.name] = FixedPopulation(p.name, p.size, source=True)
            continue
        el = f"population {p.name!r}"
        du_i = int(np.clip(round(p.du * 4096) - 1, 0, 4095))
        dv_i = int(np.clip(round(p.dv * 4096), 0, 4095))
        du_q, dv_q = (du_i + 1) / 4096, dv_i / 4096
        bound_u = float(incoming[p.name].max(initial=0.0)) / max(du_q, 1.0 / 4096)
        bound = max(
            bound_u,
            2.0 * p.vth,
            float(np.abs(p.v0).max(initial=0.0)),
            float(np.abs(p.u0).max(initial=0.0)),
            float(np.abs(p.bias).max(initial=0.0)) / max(dv_q, 1.0 / 4096),
        )
        s_max = UV_MAX / bound if bound > 0 else 2.0**16
        s_req = v_scale.get(p.name, s_max)
        k = int(math.floor((s_req * p.vth - 1) / 64))
        if p.name in v_scale:
            k = int(round((s_req * p.vth - 1) / 64))
        k = min(k, VTH_MAX)
        if k < 1:
            unsupported.append(
                {
                    "element": el,
                    "target": tgt,
                    "limit": "threshold >= 65 integer units",
                    "message": f"voltage scale {s_req:.4g}/mV leaves the threshold "
                    f"{p.vth:.4g} mV below 65 units (drive bound {bound:.4g} mV)",
                }
            )
            k = 1
        s = (64 * k + 1) / p.vth
        bexp = np.full(p.size, BIAS_EXP_MAX, np.int64)
        for e in range(BIAS_EXP_MAX, -1, -1):  # ends with the smallest exponent that fits
            m = np.round(s * p.bias / 2.0**e)
            fits = (m >= BIAS_MANT_RANGE[0]) & (m <= BIAS_MANT_RANGE[1])
            bexp = np.where(fits, e, bexp)
        mant = np.round(s * p.bias / 2.0**bexp).astype(np.int64)
        if np.any(mant < BIAS_MANT_RANGE[0]) or np.any(mant > BIAS_MANT_RANGE[1]):
            unsupported.append(
                {
                    "element": el,
                    "target": tgt,
                    "limit": "bias <= 4095 << 7",
                    "message": f"bias {np.abs(p.bias).max():.4g} mV at scale {s:.4g}/mV "
                    "exceeds 13-bit mantissa << 7",
                }
            )
            mant = np.clip(mant, *BIAS_MANT_RANGE)
        bias_eff = mant << bexp
        pops[p.name] = FixedPopulation(
            name=p.name,
            size=p.size,
            du=du_i,
            dv=dv_i,
            vth=k,
            bias_mant=mant,
            bias_exp=bexp,
            u0=np.round(s * p.u0).astype(np.int64),
            v0=np.round(s * p.v0).astype(np.int64),
            v_scale=s,
            v_offset=p.v_offset,
        )
        stats["populations"][p.name] = {
            "v_scale_per_mV": s,
            "v_range_mV": UV_MAX / s,
            "vth": {"value_mV": p.vth, "int": k, "effective_mV": (64 * k + 1) / s},
            "threshold_error_mV": (64 * k + 1) / s - p.vth,
            "du": {"value": p.du, "int": du_i, "effective": du_q, "error": du_q - p.du},
            "dv": {"value": p.dv, "int": dv_i, "effective": dv_q, "error": dv_q - p.dv},
            "bias_max_abs_error_mV": float(np.abs(bias_eff / s - p.bias).max(initial=0.0)),
            "bias_rms_error_mV": float(np.sqrt(np.mean((bias_eff / s - p.bias) ** 2)))
            if p.size
            else 0.0,
        }
    projs: list[FixedProjection] = []
    for pm in mapping.projections.values():
        post = pops[pm.post]
        s = post.v_scale
        q_all = {d: s * m / 64.0 for d, m in pm.groups.items()}  # in units of Lava weight
        qmax = max((float(np.abs(q).max(initial=0.0)) for q in q_all.values()), default=0.0)
        signs = np.concatenate([np.sign(q).ravel() for q in q_all.values()])
        mode = (
            "mixed"
            if (signs > 0).any() and (signs < 0).any()
            else "inhibitory"
            if (signs < 0).any()
            else "excitatory"
        )
        wmax = 254 if mode == "mixed" else 255
        e = 0 if qmax <= wmax else int(math.ceil(math.log2(qmax / wmax)))
        while qmax / 2**e > wmax:  # guard against log2 rounding
            e += 1
        if e > WEIGHT_EXP_RANGE[1]:
            unsupported.append(
                {
                    "element": f"projection {pm.name!r}",
                    "target": tgt,
                    "limit": f"weight_exp <= {WEIGHT_EXP_RANGE[1]}",
                    "message": f"largest weight needs exponent {e} at voltage scale "
                    f"{s:.4g}/mV of population {pm.post!r}",
                }
            )
        ideal_all, got_all = [], []
        for d, q in q_all.items():
            if mode == "mixed":
                w = 2 * np.round(q / 2**e / 2)
            else:
                w = np.round(q / 2**e)
            w = lava_dense_weights(w.astype(np.int64), mode)
            projs.append(
                FixedProjection(f"{pm.name}@d{d}", pm.name, pm.pre, pm.post, d, w, e, mode)
            )
            ideal_all.append(pm.groups[d])
            got_all.append(w * 2.0**e * 64.0 / s)
        scale_post = _post_factor(mapping, pm)
        st = _weight_stats(np.hstack(ideal_all), np.hstack(got_all), scale_post)
        st.update({"weight_exp": e, "sign_mode": mode, "delays": sorted(pm.groups)})
        stats["projections"][pm.name] = st
    stats["unsupported"] = unsupported
    if unsupported and _strict:
        _raise(unsupported)
    return FixedPointNetwork(mapping.net.name, mapping.net.discretization.dt, pops, projs, stats)


def _post_factor(mapping: LavaMapping, pm: ProjectionMap) -> np.ndarray:
    """Lava weight per unit spec weight for each post neuron of a projection."""
    n_post = mapping.populations[pm.post].size
    out = np.zeros(n_post)
    pr = mapping.net.projection(pm.name)
    out[pr.post_index] = pm.factor
    if np.any(out == 0):  # post neurons without synapses: any finite factor
        out[out == 0] = 1.0
    return out
