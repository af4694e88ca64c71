"""The builder that :func:`~neuromem.hardware.pynn.build` runs and emitted scripts copy verbatim
(``inspect.getsource``): per-simulator settings and the network construction from a spec."""

from __future__ import annotations

from typing import Any

import numpy as np

# Everything from here to the end of ``_pynn_collect`` is copied verbatim into emitted scripts
# (inspect.getsource), so build() and the emitted script run the same code. It may use only
# numpy, the PyNN module ``sim`` and its arguments.

SETTINGS: dict[str, dict[str, Any]] = {
    "spiNNaker": {
        "delay_offset_steps": 0,
        "refractory_extra_steps": 0,
        "current": "step_average",
        "source_offset_steps": 0,
        "record_offset_steps": 0,
        "setup": {},
        "stdp": {"backprop_delay": False},
    },
    "brian2": {
        "delay_offset_steps": 1,
        "refractory_extra_steps": 1,
        "current": "exponential",
        "source_offset_steps": 0,
        "record_offset_steps": 0,
        "setup": {},
        "stdp": {"dendritic_delay_fraction": 0.0},
    },
    "nest": {
        "delay_offset_steps": 1,
        "refractory_extra_steps": 0,
        "current": "exponential",
        "source_offset_steps": 1,
        "record_offset_steps": 1,
        "setup": {"spike_precision": "on_grid"},
        "stdp": {},
    },
}


def _current_factor(dt, cm, tau_m, tau_syn):
    """Per-neuron factor c: a current ``c * i`` decaying with ``tau_syn`` from the start of a
    step moves ``v`` at the step's end exactly as neuromem's current ``i`` held over the step."""
    cm, tau_m, tau_syn = (np.asarray(x, dtype=np.float64) for x in (cm, tau_m, tau_syn))
    em, es = np.exp(-dt / tau_m), np.exp(-dt / tau_syn)
    held = tau_m / cm * (1.0 - em)
    same = np.isclose(tau_m, tau_syn, rtol=1e-12, atol=0.0)
    diff = np.where(same, 1.0, 1.0 / tau_m - 1.0 / tau_syn)
    decaying = np.where(same, dt / cm * em, (es - em) / (cm * diff))
    return held / decaying


def _weight_factor(settings, dt, cm, tau_m, tau_syn):
    """Per post neuron: PyNN weight = neuromem weight * factor (current shape of the target)."""
    if settings["current"] == "step_average":
        return np.ones_like(np.asarray(tau_syn, dtype=np.float64))
    tau_syn = np.asarray(tau_syn, dtype=np.float64)
    step_average = tau_syn / dt * (1.0 - np.exp(-dt / tau_syn))
    return step_average * _current_factor(dt, cm, tau_m, tau_syn)


def _value(v, data):
    """A spec value: a scalar, or ``"@key"`` naming an array in the data file."""
    if isinstance(v, str) and v.startswith("@"):
        return np.asarray(data[v[1:]])
    return v


def _pynn_build(sim, simulator, spec, data):
    """Create the network of ``spec`` (a dict; arrays in ``data``) in PyNN module ``sim``.

    Calls ``sim.setup``; returns ``{"populations": {name: Population}, "projections": {name:
    Projection}, "factors": {name: weight factor per post neuron}}``.
    """
    s = SETTINGS[simulator]
    dt = float(spec["dt"])
    if simulator == "brian2":
        # PyNN's SpikeGeneratorGroup runs on Brian2's default clock (0.1 ms): give it dt so
        # that sources, neurons and synapses share one clock.
        import brian2

        brian2.defaultclock.dt = dt * brian2.ms
    sim.setup(timestep=dt, min_delay=dt, **s["setup"])
    pops, factors = {}, {}
    for p in spec["populations"]:
        if p["kind"] == "SpikeSourceArray":
            raster = np.asarray(data[p["spikes"][1:]], dtype=bool)
            times = [
                [(float(t) + s["source_offset_steps"]) * dt for t in np.nonzero(raster[:, i])[0]]
                for i in range(p["size"])
            ]
            cell = sim.SpikeSourceArray(spike_times=times)
        else:
            params = {k: _value(v, data) for k, v in p["params"].items()}
            r = np.asarray(_value(p["refractory_steps"], data))
            params["tau_refrac"] = (r + s["refractory_extra_steps"]) * dt
            if np.ndim(params["tau_refrac"]) == 0:
                params["tau_refrac"] = float(params["tau_refrac"])
            cell = sim.IF_curr_exp(**params)
            for port, tau in (("excitatory", "tau_syn_E"), ("inhibitory", "tau_syn_I")):
                factors[(p["name"], port)] = np.broadcast_to(
                    _weight_factor(s, dt, params["cm"], params["tau_m"], params[tau]),
                    (p["size"],),
                )
        pop = sim.Population(p["size"], cell, label=p["name"])
        init = {}
        for k, v in p.get("initial", {}).items():
            v = np.asarray(_value(v, data), dtype=np.float64)
            if k in ("isyn_exc", "isyn_inh"):
                port = "excitatory" if k == "isyn_exc" else "inhibitory"
                tau = "tau_syn_E" if port == "excitatory" else "tau_syn_I"
                if s["current"] == "exponential":
                    v = v * _current_factor(dt, params["cm"], params["tau_m"], params[tau])
                if not np.any(v):
                    continue
            init[k] = float(v) if v.ndim == 0 else v
        if init:
            pop.initialize(**init)
        if p.get("record"):
            pop.record(p["record"])
        pops[p["name"]] = pop
    projs = {}
    for q in spec["projections"]:
        conn = np.asarray(data[q["connections"][1:]], dtype=np.float64)
        pre, post = conn[:, 0].astype(np.int64), conn[:, 1].astype(np.int64)
        factor = factors[(q["post"], q["receptor"])]
        sign = -1.0 if q["receptor"] == "inhibitory" else 1.0
        weight = sign * conn[:, 2] * factor[post]
        delay = (conn[:, 3] - s["delay_offset_steps"]) * dt
        rows = [
            (int(i), int(j), float(w), float(d))
            for i, j, w, d in zip(pre, post, weight, delay, strict=True)
        ]
        stdp = q.get("stdp")
        if stdp is None:
            synapse = sim.StaticSynapse()
        else:
            k = float(factor[post[0]]) if post.size else 1.0
            dep = {
                "additive": sim.AdditiveWeightDependence,
                "multiplicative": sim.MultiplicativeWeightDependence,
            }[stdp["dependence"]]
            synapse = sim.STDPMechanism(
                timing_dependence=sim.SpikePairRule(
                    tau_plus=stdp["tau_plus"],
                    tau_minus=stdp["tau_minus"],
                    A_plus=stdp["A_plus"],
                    A_minus=stdp["A_minus"],
                ),
                weight_dependence=dep(w_min=stdp["w_min"] * k, w_max=stdp["w_max"] * k),
                weight=0.0,
                delay=max(dt, float(delay.min()) if delay.size else dt),
                **s["stdp"],
            )
        projs[q["name"]] = sim.Projection(
            pops[q["pre"]],
            pops[q["post"]],
            sim.FromListConnector(rows, column_names=["weight", "delay"]),
            synapse_type=synapse,
            receptor_type=q["receptor"],
            label=q["name"],
        )
    return {"populations": pops, "projections": projs, "factors": factors}


def _pynn_collect(simulator, spec, handles):
    """Spike rasters (bool (steps, size)) of the recorded populations, neuromem step indexing."""
    s = SETTINGS[simulator]
    dt, steps = float(spec["dt"]), int(spec["steps"])
    out = {}
    for p in spec["populations"]:
        if "spikes" not in (p.get("record") or []):
            continue
        seg = handles["populations"][p["name"]].get_data("spikes").segments[-1]
        r = np.zeros((steps, p["size"]), dtype=bool)
        for i, st in enumerate(seg.spiketrains):
            idx = int(st.annotations.get("source_index", i))
            t = np.rint(np.asarray(st.rescale("ms").magnitude) / dt).astype(np.int64)
            t = t - s["record_offset_steps"]
            t = t[(t >= 0) & (t < steps)]
            r[t, idx] = True
        out[p["name"]] = r
    return out
