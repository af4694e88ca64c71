"""The simulator-neutral description (spec and arrays) the portable builder reads."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuromem.errors import SpecError
from neuromem.lower import source_spikes
from neuromem.spec import (
    Network,
    SpikeProbe,
)

from .checks import _element, _problem, _refractory_steps, _stdp_kind, check
from .common import _PORT_RECEPTOR, PyNNExportError


def _param(arrays: dict[str, np.ndarray], key: str, v: np.ndarray) -> Any:
    v = np.asarray(v, dtype=np.float64)
    if v.size and np.all(v == v[0]):
        return float(v[0])
    arrays[key] = v
    return "@" + key


def to_pynn_spec(
    net: Network, steps: int, inputs: dict[str, Any] | None = None, target: str = "spiNNaker"
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The simulator-neutral description the portable builder reads: (spec, arrays).

    ``steps`` is the run length (steps); ``inputs`` optional run-time spike rasters of spike
    sources (bool (steps, size), OR-ed with their stimulus, as in ``Simulation.run``). Raises
    :class:`PyNNExportError` if ``net`` has elements ``target`` cannot express.
    """
    check(net, target)
    inputs = dict(inputs or {})
    for name in inputs:
        p = net.population(name)
        if not p.model.spike_source:
            raise SpecError(f"population {name!r}: spike inputs need a spike source")
    dt = net.discretization.dt
    probed = {pb.population for pb in net.probes if isinstance(pb, SpikeProbe)}
    currents: dict[str, np.ndarray] = {}
    for c in net.currents:
        currents[c.population] = currents.get(c.population, 0.0) + c.values
    arrays: dict[str, np.ndarray] = {}
    pops = []
    for p in net.populations:
        entry: dict[str, Any] = {"name": p.name, "size": p.size}
        if p.model.spike_source:
            raster = source_spikes(
                p.stimulus,
                p.size,
                net.discretization.dt,
                0,
                steps,
                inputs.get(p.name),
                f"PyNN export: input for population {p.name!r}",
            )
            if target == "nest" and raster[:1].any():
                # pyNN.nest sends source spikes through parrot neurons one min_delay later,
                # so a spike of step 0 would need a NEST spike time of 0 ms, which NEST refuses
                raise PyNNExportError(
                    [
                        _problem(
                            _element("population", p.name),
                            "pyNN.nest",
                            "source spikes from step 1 on (parrot neurons add one step)",
                            "spike in step 0",
                        )
                    ]
                )
            arrays[f"spikes_{p.name}"] = raster
            entry.update(kind="SpikeSourceArray", spikes=f"@spikes_{p.name}")
        else:
            params = {}
            for k in ("cm", "tau_m", "v_rest", "v_reset", "v_thresh", "tau_syn_E", "tau_syn_I"):
                params[k] = _param(arrays, f"{p.name}.{k}", p.params[k])
            i_off = p.params["i_offset"] + currents.get(p.name, 0.0)
            params["i_offset"] = _param(arrays, f"{p.name}.i_offset", i_off)
            entry.update(
                kind="IF_curr_exp",
                params=params,
                refractory_steps=_param(
                    arrays, f"{p.name}.refractory_steps", _refractory_steps(p, dt)
                ),
                initial={
                    "v": _param(arrays, f"{p.name}.v0", p.initial["v"]),
                    "isyn_exc": _param(arrays, f"{p.name}.isyn_exc0", p.initial["i_exc"]),
                    "isyn_inh": _param(arrays, f"{p.name}.isyn_inh0", p.initial["i_inh"]),
                },
            )
        entry["record"] = ["spikes"] if p.name in probed else []
        pops.append(entry)
    projs = []
    for pr in net.projections:
        key = f"conn_{pr.name}"
        arrays[key] = np.column_stack(
            [pr.pre_index, pr.post_index, np.abs(pr.weight), pr.delay]
        ).astype(np.float64)
        entry = {
            "name": pr.name,
            "pre": pr.pre,
            "post": pr.post,
            "receptor": _PORT_RECEPTOR[pr.port],
            "connections": "@" + key,
            "stdp": None,
        }
        kind = _stdp_kind(pr)
        if kind is not None:
            pp = pr.plasticity_params
            # PyNN's A_plus/A_minus mean steps of A * w_max (additive) as sPyNNaker's
            # scale_by_w_max; for multiplicative PyNN's A multiplies (w_max - w) directly.
            if kind["dependence"] == "additive":
                scale = 1.0 if kind["scaled"] else 1.0 / pp["w_max"]
            else:
                scale = pp["w_max"] if kind["scaled"] else 1.0
            entry["stdp"] = {
                "dependence": kind["dependence"],
                "tau_plus": pp["tau_plus"],
                "tau_minus": pp["tau_minus"],
                "A_plus": pp["A_plus"] * scale,
                "A_minus": pp["A_minus"] * scale,
                "w_min": pp["w_min"],
                "w_max": pp["w_max"],
            }
        projs.append(entry)
    spec = {
        "network": net.name,
        "dt": dt,
        "steps": int(steps),
        "populations": pops,
        "projections": projs,
    }
    return spec, arrays
