"""SpiNNaker export through PyNN: emit a PyNN script, build and run a network on a PyNN backend.

One network, three PyNN simulators: ``spiNNaker`` (sPyNNaker, the target), ``brian2`` and
``nest`` (PyNN's software backends, used to check an export before it goes to a board).

Public functions
----------------
- :func:`unsupported` lists what a target cannot express (``list[dict]`` with ``element``,
  ``target``, ``limit``, ``message``); :func:`check` raises :class:`PyNNExportError` with them.
- :func:`differences` lists the semantic differences between neuromem's reference meaning and
  a PyNN simulator that remain after the settings below (``list[dict]`` with ``element`` and
  ``difference``).
- :func:`emit_script` writes a standalone PyNN script (plus an ``.npz`` of spike times and
  connection lists beside it) that runs unchanged on any of the three simulators: the
  simulator is one line (``SIMULATOR = ...``) or the script's first argument.
- :func:`build` creates the network in a live PyNN simulator module; :func:`run` builds, runs
  and returns spike rasters in neuromem's format (bool ``(steps, size)`` per population, step
  ``t`` = neuromem's step ``t``).
- :func:`replay_ca3_on_pynn` replays an authors' CA3 recording through PyNN and scores it with
  ``experiments/ca3_cam.py``'s functions, against the recording and against numba.

Timing: one neuromem step is one PyNN time step, ``timestep = dt`` (1 ms for CA3)
--------------------------------------------------------------------------------------
neuromem (= sPyNNaker): a spike in step ``t`` through a delay of ``d`` steps is added to the
synaptic current at the start of step ``t + d`` and acts on that step's integration; the
event adds the step-averaged current ``w tau_syn/dt (1 - exp(-dt/tau_syn))``, which is then
held over the step while ``v`` integrates exactly (docs/standard_library.md). What each PyNN
simulator needs to mean the same (``SETTINGS``):

==================  ===========================  ============================  =============
setting             spiNNaker (sPyNNaker 7)      brian2 (pyNN.brian2 0.13)     nest (NEST 3)
==================  ===========================  ============================  =============
PyNN delay (ms)     ``d * dt``                   ``(d - 1) * dt``: Brian2      ``(d - 1)*dt``
                                                 delivers in the ``synapses``  (so d = 1 is
                                                 slot, after that step's       not
                                                 integration                   expressible)
weight (nA)         ``w`` (its synapse type is   ``w * k``, ``k`` = step-      ``w * k``
                    the step average)            average / exponential-
                                                 current response over one
                                                 step (exact at step ends)
tau_refrac          ``r * dt``                   ``(r + 1) * dt`` (Brian2:     ``r * dt``
                                                 refractory while steps since
                                                 spike < tau_refrac/dt)
inhibitory weights  negative (sPyNNaker takes    negative (added to i_syn)     negative
                    ``abs``)
STDP                ``backprop_delay=False``     ``dendritic_delay_fraction``  default
                                                 ``= 0`` (the only value it    (``= 1``:
                                                 accepts): pre spikes timed    post spikes
                                                 on arrival                    delayed by d)
spike source times  ``s * dt``                   ``s * dt`` (source clock set  ``(s+1)*dt``
                                                 to ``dt``)
recorded spike      ``t * dt``                   ``t * dt``                    ``(t+1)*dt``
==================  ===========================  ============================  =============

``r = ceil(tau_refrac / dt)`` is neuromem's refractory step count. Measured (tests and
``replay_ca3_on_pynn``): with these settings pyNN.brian2 gives numba's spikes exactly for the
CA3 exp2 replay (every population, 851 steps) and small test networks; pyNN.nest does for
static networks with delays >= 2 steps (CA3 has delay-1 projections, refused on NEST). On
exp2, dropping one Brian2 setting gives 17/45 (delay), 22/45 (refractory) or 32/45 (weight
factor) matching recalls instead of 45/45. sPyNNaker is mapped on its virtual board only
(:mod:`neuromem.hardware.spynnaker_reports`); note that sPyNNaker 7.4.1 crashes on a
SpikeSourceArray without any spike. Brian2 integrates
``IF_curr_exp`` with the exact solution of the coupled (v, i_syn) system; with ``k`` above
the membrane potential at every step end equals neuromem's (float rounding aside). Its
threshold is ``v > v_thresh`` (neuromem, sPyNNaker and NEST: ``>=``), listed by
:func:`differences`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from neuromem.errors import SpecError
from neuromem.lower import source_spikes
from neuromem.spec import (
    Network,
    Population,
    Projection,
    SpikeProbe,
    if_curr_exp,
    spike_source,
    stdp_pair,
)

#: PyNN simulators this module targets (``pyNN.<name>``).
SIMULATORS = ("spiNNaker", "brian2", "nest")

#: Largest delay sPyNNaker 7 maps (steps): 16 ring-buffer slots on the post core times 9 with
#: delay-extension cores (``get_max_delay`` docstring: "most likely value is timestep * 144").
SPINNAKER_MAX_DELAY_STEPS = 144

_PORT_RECEPTOR = {"exc": "excitatory", "inh": "inhibitory"}
_STDP_NAME = "stdp_pair_"


class PyNNExportError(SpecError):
    """A network cannot be expressed on a PyNN target; ``problems`` holds the list of
    :func:`unsupported` entries (element, target, limit, message)."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(p["message"] for p in problems))


# ============================================================================ portable part
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


# ======================================================================= end portable part


def _element(kind: str, name: str) -> str:
    return f"{kind} {name!r}"


def _problem(element: str, target: str, limit: str, what: str) -> dict[str, str]:
    return {
        "element": element,
        "target": target,
        "limit": limit,
        "message": f"{element}: {what} (target {target}: {limit})",
    }


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise SpecError(f"PyNN export: unknown simulator {simulator!r} (one of {SIMULATORS})")


def _is_if_curr_exp(p: Population) -> bool:
    return p.model == if_curr_exp()


def _stdp_kind(pr: Projection) -> dict[str, Any] | None:
    """The stdp_pair variant of a projection's rule (None if it is no stdp_pair rule)."""
    rule = pr.plasticity
    if rule is None or not rule.name.startswith(_STDP_NAME):
        return None
    rest = rule.name[len(_STDP_NAME) :]
    coincidence = "ignore"
    if "_coincidence_" in rest:
        rest, coincidence = rest.split("_coincidence_", 1)
    scaled = rest.endswith("_scaled")
    dependence = rest.removesuffix("_scaled")
    try:
        ref = stdp_pair(dependence, scale_by_w_max=scaled, coincidence=coincidence)
    except ValueError:
        return None
    if ref != rule:  # same name, other equations: a custom rule
        return None
    return {"dependence": dependence, "scaled": scaled, "coincidence": coincidence}


def _refractory_steps(p: Population, dt: float) -> np.ndarray:
    # neuromem's count: ceil(period / dt) with a 1e-9 tolerance (neuromem.lower)
    return np.ceil(p.params["tau_refrac"] / dt - 1e-9).astype(np.int64)


def unsupported(net: Network, target: str = "spiNNaker") -> list[dict[str, str]]:
    """Elements of ``net`` that PyNN simulator ``target`` cannot express with neuromem's meaning.

    Parameters
    ----------
    net : Network
    target : {"spiNNaker", "brian2", "nest"}

    Returns
    -------
    list of dict
        ``element`` (e.g. ``"projection 'p'"``), ``target``, ``limit`` and ``message``; empty
        when the network can be emitted for the target.
    """
    _check_simulator(target)
    out: list[dict[str, str]] = []
    disc = net.discretization
    dt = disc.dt
    tgt = f"pyNN.{target}"
    el_net = _element("network", net.name)
    if disc.integrator != "exponential_euler":
        out.append(
            _problem(
                el_net,
                tgt,
                "IF_curr_exp integrates exactly (exponential Euler); no forward Euler",
                f"integrator {disc.integrator!r}",
            )
        )
    if disc.reset_mode != "same_step":
        out.append(
            _problem(
                el_net,
                tgt,
                "PyNN resets in the spike step (reset_mode 'same_step' only)",
                f"reset_mode {disc.reset_mode!r}",
            )
        )
    if target == "spiNNaker" and (abs(dt * 1000 - round(dt * 1000)) > 1e-9 or dt < 0.001):
        out.append(
            _problem(
                el_net, tgt, "the machine time step is a whole number of microseconds", f"dt {dt}"
            )
        )
    for sp in net.spins:
        out.append(
            _problem(
                _element("spin node", sp.name),
                tgt,
                "PyNN has no Glauber spin nodes (spiking point neurons only)",
                "Glauber spins",
            )
        )
    for op in net.operators:
        out.append(
            _problem(
                _element("ELM node", op.name),
                tgt,
                "PyNN has no operator nodes (spiking point neurons only)",
                "ELM operator node",
            )
        )
    pops = {p.name: p for p in net.populations}
    for p in net.populations:
        el = _element("population", p.name)
        if p.model.spike_source:
            if p.model != spike_source():
                out.append(_problem(el, tgt, "spike sources are SpikeSourceArray", "custom source"))
            continue
        if not _is_if_curr_exp(p):
            out.append(
                _problem(
                    el,
                    tgt,
                    "neuron models: IF_curr_exp (neuromem.spec.library.if_curr_exp) only",
                    f"neuron model {p.model.name!r} has no exact PyNN standard cell",
                )
            )
            continue
        if target == "brian2" and np.ptp(_refractory_steps(p, dt)) != 0:
            out.append(
                _problem(
                    el,
                    tgt,
                    "one refractory period per population (pyNN.brian2)",
                    "per-neuron tau_refrac",
                )
            )
    for c in net.currents:
        if c.values.ndim != 1:
            out.append(
                _problem(
                    _element("current input to", c.population),
                    tgt,
                    "constant currents only (folded into i_offset); no per-step current",
                    "time-varying current input",
                )
            )
    for pb in net.probes:
        if not isinstance(pb, SpikeProbe):
            name = getattr(pb, "population", getattr(pb, "spins", "?"))
            out.append(
                _problem(
                    _element("probe on", name),
                    tgt,
                    "spike probes only (recorded state would be sampled at other times)",
                    f"{type(pb).__name__}",
                )
            )
    for pr in net.projections:
        el = _element("projection", pr.name)
        post = pops[pr.post]
        if not _is_if_curr_exp(post) or pr.port not in _PORT_RECEPTOR:
            continue  # the post population is already listed
        if pr.delay.size:
            dmax, dmin = int(pr.delay.max()), int(pr.delay.min())
            if target == "spiNNaker" and dmax > SPINNAKER_MAX_DELAY_STEPS:
                out.append(
                    _problem(
                        el,
                        tgt,
                        f"delays <= {SPINNAKER_MAX_DELAY_STEPS} steps",
                        f"delay {dmax} steps",
                    )
                )
            if target == "nest" and dmin < 2:
                out.append(
                    _problem(
                        el,
                        tgt,
                        "NEST acts one step after delivery, so delay d needs a NEST delay of "
                        "d - 1 steps, and NEST's minimum delay is 1 step: delays >= 2 steps",
                        f"delay {dmin} step",
                    )
                )
        if pr.plasticity is None:
            if target == "spiNNaker" and pr.weight.size and pr.weight.min() < 0 < pr.weight.max():
                out.append(
                    _problem(el, tgt, "weights of one sign per projection", "mixed-sign weights")
                )
            continue
        kind = _stdp_kind(pr)
        if kind is None:
            out.append(
                _problem(
                    el,
                    tgt,
                    "plasticity: stdp_pair (SpikePairRule with Additive/Multiplicative "
                    "WeightDependence) only",
                    f"plasticity rule {pr.plasticity.name!r}",
                )
            )
            continue
        pp = pr.plasticity_params
        if kind["dependence"] == "multiplicative" and target == "brian2":
            out.append(
                _problem(
                    el,
                    tgt,
                    "pyNN.brian2 0.13 runs MultiplicativeWeightDependence with the additive "
                    "update code",
                    "multiplicative STDP",
                )
            )
        if not kind["scaled"] and pp["w_max"] == 0:
            out.append(
                _problem(el, tgt, "PyNN's A_plus/A_minus are relative to w_max", "w_max = 0")
            )
        if pr.port != "exc":
            out.append(
                _problem(
                    el,
                    tgt,
                    "STDP on excitatory receptors (PyNN inhibitory weights are negative)",
                    "plastic inhibitory projection",
                )
            )
        if target != "spiNNaker" and _is_if_curr_exp(post):
            k = _weight_factor(
                SETTINGS[target],
                dt,
                post.params["cm"],
                post.params["tau_m"],
                post.params["tau_syn_E"],
            )[np.unique(pr.post_index)]
            if k.size and np.ptp(k) > 1e-12 * abs(k[0]):
                out.append(
                    _problem(
                        el,
                        tgt,
                        "one w_min/w_max per projection, so the post neurons' current factor "
                        "(cm, tau_m, tau_syn_E) must be uniform",
                        "plastic projection onto heterogeneous neurons",
                    )
                )
    return out


def check(net: Network, target: str = "spiNNaker") -> None:
    """Raise :class:`PyNNExportError` (a SpecError) naming every unsupported element."""
    problems = unsupported(net, target)
    if problems:
        raise PyNNExportError(problems)


def differences(net: Network, target: str = "spiNNaker") -> list[dict[str, str]]:
    """Semantic differences between neuromem's meaning of ``net`` and PyNN simulator ``target``
    that remain with this module's settings (delays, weights, refractory period as in the
    module docstring). Each entry: ``element`` and ``difference``."""
    _check_simulator(target)
    out: list[dict[str, str]] = []
    pops = {p.name: p for p in net.populations}
    lif = [p for p in net.populations if _is_if_curr_exp(p)]
    for p in lif:
        el = _element("population", p.name)
        if target == "brian2":
            out.append(
                {
                    "element": el,
                    "difference": "threshold is 'v > v_thresh' in pyNN.brian2 (neuromem: >=); "
                    "differs only when v lands exactly on v_thresh",
                }
            )
            out.append(
                {
                    "element": el,
                    "difference": "Brian2 integrates the exponential current exactly; the "
                    "weight factor k makes v equal at every step end, so v inside a step "
                    "and recorded isyn_exc/isyn_inh (= k/step-average x neuromem's) differ",
                }
            )
        if target == "nest":
            out.append(
                {
                    "element": el,
                    "difference": "iaf_psc_exp integrates the exponential current exactly; v "
                    "agrees at step ends through the weight factor k",
                }
            )
        if target == "spiNNaker":
            out.append(
                {
                    "element": el,
                    "difference": "sPyNNaker computes in s16.15 fixed point (accum): v, "
                    "currents and decay factors are rounded (neuromem: float64)",
                }
            )
    for pr in net.projections:
        el = _element("projection", pr.name)
        if target == "spiNNaker" and pops[pr.post] in lif:
            out.append(
                {
                    "element": el,
                    "difference": "sPyNNaker stores weights in 16 bits with a power-of-two "
                    "scale per synapse type chosen from the largest summed input: weights are "
                    "quantised",
                }
            )
        kind = _stdp_kind(pr)
        if kind is None:
            continue
        co = kind["coincidence"]
        if target == "spiNNaker":
            if co != "spinnaker":
                out.append(
                    {
                        "element": el,
                        "difference": f"coincidence {co!r}: sPyNNaker's documented pair rule "
                        "ignores same-step pairs and skips the depression of a pre spike "
                        "coinciding with a post spike (neuromem 'spinnaker'); the authors' CA3 "
                        "recordings behave as 'potentiate' with narrow windows (identified "
                        "variant), a mechanism not established",
                    }
                )
            out.append(
                {
                    "element": el,
                    "difference": "STDP exponentials come from look-up tables in fixed point "
                    "at the time-step resolution; weights saturate in the 16-bit format",
                }
            )
            if kind["dependence"] == "multiplicative":
                out.append(
                    {
                        "element": el,
                        "difference": "multiplicative: emitted as PyNN's meaning "
                        "(A (w_max - w), A (w - w_min)); sPyNNaker's scaling of A not verified",
                    }
                )
        elif target == "brian2":
            out.append(
                {
                    "element": el,
                    "difference": "same-step pairs: pyNN.brian2 runs the pre pathway before "
                    "the post pathway, so a coincident pair depresses first (earlier post "
                    "spikes) and then potentiates with the pre trace including this step's "
                    "spike, and the spike carries the weight after depression only; neuromem "
                    f"(coincidence {co!r}) "
                    + (
                        "potentiates first, then depresses, and transmits the weight after both"
                        if co == "potentiate"
                        else "gives a same-step pair no potentiation"
                    ),
                }
            )
            if pr.delay.size and pr.delay.max() > 1:
                out.append(
                    {
                        "element": el,
                        "difference": "pyNN.brian2 times pre spikes at arrival (axonal, "
                        "d - 1 steps after emission here); neuromem at emission",
                    }
                )
        elif target == "nest":
            out.append(
                {
                    "element": el,
                    "difference": "NEST's stdp_synapse delays post spikes by the dendritic "
                    "delay (dendritic_delay_fraction = 1) and pairs nearest-neighbour free "
                    "all-to-all; same-step pairs and clipping order not characterised here",
                }
            )
    return out


# ----------------------------------------------------------------------------- spec export
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


# ----------------------------------------------------------------------------- emitter
_SCRIPT_HEAD = '''\
"""PyNN script for network {network!r}, generated by neuromem.hardware.pynn.

Run: python {script} [spiNNaker|brian2|nest]   (or edit SIMULATOR below)
Spike times and connection lists (pre, post, |weight| nA, delay steps) are in {data}.
Writes {out} (bool spike rasters (steps, size) per recorded population, neuromem's step
indexing) unless the board is virtual.

Timing: one neuromem step = one PyNN time step of {dt} ms; a neuromem delay of d steps acts on
the integration of step t + d. SETTINGS below convert delays, weights and refractory periods
per simulator so that all three mean the same (see neuromem.hardware.pynn).
"""

import os
import sys

import numpy as np

SIMULATOR = {simulator!r}  # the one line to change: "spiNNaker", "brian2" or "nest"
if len(sys.argv) > 1:
    SIMULATOR = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = dict(np.load(os.path.join(HERE, {data!r})))
SPEC = {spec}
'''

_SCRIPT_TAIL = """

if __name__ == "__main__":
    import importlib

    sim = importlib.import_module("pyNN." + SIMULATOR)
    handles = _pynn_build(sim, SIMULATOR, SPEC, DATA)
    sim.run(SPEC["steps"] * SPEC["dt"])
    if os.environ.get("NEUROMEM_PYNN_NO_RESULTS") != "1":
        rasters = _pynn_collect(SIMULATOR, SPEC, handles)
        np.savez_compressed(os.path.join(HERE, {out!r}), **rasters)
        print({{k: int(v.sum()) for k, v in rasters.items()}})
    sim.end()
"""

_PORTABLE = (SETTINGS, _current_factor, _weight_factor, _value, _pynn_build, _pynn_collect)


def _portable_source() -> str:
    parts = [f"SETTINGS = {SETTINGS!r}\n"]
    for fn in _PORTABLE[1:]:
        parts.append(textwrap.dedent(inspect.getsource(fn)))
    return "\n\n".join(parts)


def emit_script(
    net: Network,
    path: str | os.PathLike,
    steps: int,
    inputs: dict[str, Any] | None = None,
    simulator: str = "spiNNaker",
) -> str:
    """Write a standalone PyNN script for ``net`` to ``path`` (and ``<stem>.npz`` beside it).

    Parameters
    ----------
    net : Network
    path : path-like
        The script file (``.py``).
    steps : int
        Run length in steps (``steps * dt`` ms of simulated time).
    inputs : dict, optional
        Run-time spike rasters of spike sources (bool (steps, size)), OR-ed with stimuli.
    simulator : {"spiNNaker", "brian2", "nest"}
        Default of the script's ``SIMULATOR`` line; the emitted elements are checked for it.

    Returns
    -------
    str
        The script text. Raises :class:`PyNNExportError` naming element, target and limit
        when ``net`` has something ``simulator`` cannot express.
    """
    _check_simulator(simulator)
    path = Path(path)
    spec, arrays = to_pynn_spec(net, steps, inputs, simulator)
    data_name = path.stem + ".npz"
    out_name = path.stem + "_spikes.npz"
    head = _SCRIPT_HEAD.format(
        network=net.name,
        script=path.name,
        data=data_name,
        out=out_name,
        dt=spec["dt"],
        simulator=simulator,
        spec=_pretty(spec),
    )
    text = head + "\n\n" + _portable_source() + _SCRIPT_TAIL.format(out=out_name)
    compile(text, str(path), "exec")  # the emitted text must be valid Python
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.parent / data_name, **arrays)
    path.write_text(text)
    return text


def _pretty(spec: dict[str, Any]) -> str:
    import pprint

    return pprint.pformat(spec, indent=1, width=99, sort_dicts=False)


# ----------------------------------------------------------------------------- live PyNN
def build(
    net: Network,
    sim: Any,
    steps: int,
    inputs: dict[str, Any] | None = None,
    simulator: str | None = None,
) -> dict[str, Any]:
    """Create ``net`` in the live PyNN module ``sim`` (calls ``sim.setup(timestep=dt, ...)``).

    Parameters
    ----------
    net : Network
    sim : module
        ``pyNN.brian2``, ``pyNN.nest`` or ``pyNN.spiNNaker``.
    steps : int
        Run length in steps (spike sources are materialised as SpikeSourceArray up to it).
    inputs : dict, optional
        Run-time spike rasters of spike sources.
    simulator : str, optional
        Key of ``SETTINGS``; guessed from ``sim.__name__`` when omitted.

    Returns
    -------
    dict
        ``populations`` and ``projections`` (PyNN objects by neuromem name), ``factors``
        (weight factor per (population, receptor)), ``spec`` and ``simulator``.
    """
    simulator = simulator or sim.__name__.rsplit(".", 1)[-1]
    _check_simulator(simulator)
    spec, arrays = to_pynn_spec(net, steps, inputs, simulator)
    handles = _pynn_build(sim, simulator, spec, arrays)
    handles.update(spec=spec, simulator=simulator)
    return handles


def collect(handles: dict[str, Any]) -> dict[str, np.ndarray]:
    """Spike rasters (bool (steps, size)) of the recorded populations after ``sim.run``."""
    return _pynn_collect(handles["simulator"], handles["spec"], handles)


def run(
    net: Network,
    steps: int,
    inputs: dict[str, Any] | None = None,
    simulator: str = "brian2",
    codegen_target: str = "numpy",
) -> dict[str, np.ndarray]:
    """Build ``net`` on ``pyNN.<simulator>``, run ``steps`` steps, return spike rasters.

    ``codegen_target`` sets Brian2's code generation (``"numpy"``: no compilation, fast for
    small networks; ``"cython"``). Rasters: population -> bool (steps, size), step ``t`` =
    neuromem's step ``t``.
    """
    _check_simulator(simulator)
    if simulator == "brian2":
        import brian2

        brian2.prefs.codegen.target = codegen_target
    sim = importlib.import_module(f"pyNN.{simulator}")
    handles = build(net, sim, steps, inputs, simulator)
    sim.run(steps * net.discretization.dt)
    out = collect(handles)
    sim.end()
    return out


def run_script(
    script: str | os.PathLike, simulator: str, timeout: float = 600.0, env: dict | None = None
) -> dict[str, np.ndarray]:
    """Run an emitted script in a subprocess on ``simulator``; return its spike rasters."""
    script = Path(script)
    proc = subprocess.run(
        [sys.executable, str(script), simulator],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} on {simulator} failed:\n{proc.stderr[-4000:]}")
    with np.load(script.parent / (script.stem + "_spikes.npz")) as f:
        return {k: f[k] for k in f.files}


# ----------------------------------------------------------------------------- CA3 replay
def replay_ca3_on_pynn(
    recording: str = "exp2_stress_testbench",
    simulator: str = "brian2",
    data_dir: str | None = None,
    stdp: str = "identified",
    codegen_target: str = "numpy",
) -> dict[str, Any]:
    """Replay an authors' CA3 recording through PyNN and score it as experiments/ca3_cam.py.

    Returns a dict: ``recall_operations`` and ``recall_operations_matching`` (against the
    authors' output, as the experiment scores it), ``operations_with_identical_output_raster``,
    the same against numba (``*_vs_numba``), ``population_raster_identical_to_numba``
    (population -> bool), ``first_difference_step`` per differing population, ``differences``
    (:func:`differences` for the simulator), ``wall_time_s``.
    """
    import time

    import neuromem
    from neuromem.data import load_ca3_recording
    from neuromem.models.ca3_cam import build_network, score_replay

    rec = load_ca3_recording(recording, data_dir)
    sp, n, m = rec["spikes"], rec["n_cues"], rec["n_bits"]
    steps = sp["INcue"].shape[0]
    il = np.concatenate([sp["INcue"], sp["INcont"]], axis=1)
    net = build_network(n, m, stdp)
    t0 = time.perf_counter()
    ours = run(net, steps, {"IL": il}, simulator, codegen_target)
    wall = time.perf_counter() - t0
    ref = neuromem.compile(net, backend="numba").run(steps, {"IL": il}).spikes
    score = score_replay(sp, ours["OL"], n, reference=ref["OL"])
    same = {k: bool(np.array_equal(ours[k], ref[k])) for k in ours}
    first = {k: int(np.nonzero((ours[k] != ref[k]).any(1))[0][0]) for k, v in same.items() if not v}
    return {
        "recording": recording,
        "simulator": simulator,
        "stdp": stdp,
        "steps": int(steps),
        "operations": score["operations"],
        "recall_operations": score["recall_operations"],
        "recall_operations_matching": score["recall_operations_matching"],
        "operations_with_identical_output_raster": score["operations_with_identical_output_raster"],
        "recall_operations_matching_numba": score["vs_reference"]["recall_operations_matching"],
        "operations_with_identical_output_raster_vs_numba": score["vs_reference"][
            "operations_with_identical_output_raster"
        ],
        "population_raster_identical_to_numba": same,
        "first_difference_step": first,
        "mismatching_recalls": [
            r for r in score["rows"] if r["kind"] != "learn" and not r["same_neurons"]
        ],
        "differences": differences(net, simulator),
        "wall_time_s": round(wall, 3),
        "spikes": ours,
    }


__all__ = [
    "SETTINGS",
    "SIMULATORS",
    "SPINNAKER_MAX_DELAY_STEPS",
    "PyNNExportError",
    "build",
    "check",
    "collect",
    "differences",
    "emit_script",
    "replay_ca3_on_pynn",
    "run",
    "run_script",
    "to_pynn_spec",
    "unsupported",
]
