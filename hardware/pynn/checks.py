"""What a PyNN target cannot express (:func:`unsupported`, :func:`check`) and the semantic
differences that remain (:func:`differences`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuromem.errors import SpecError
from neuromem.spec import (
    Network,
    Population,
    Projection,
    SpikeProbe,
    if_curr_exp,
    spike_source,
    stdp_pair,
)

from ..nodes import node_kind, operator_element
from .common import (
    _PORT_RECEPTOR,
    _STDP_NAME,
    SIMULATORS,
    SPINNAKER_MAX_DELAY_STEPS,
    PyNNExportError,
)
from .portable import SETTINGS, _weight_factor


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
                operator_element(op),
                tgt,
                "PyNN has no operator nodes (spiking point neurons only)",
                f"kind {node_kind(op)}",
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
                        "coinciding with a post spike (neuromem 'spinnaker'); recordings made on "
                        "SpiNNaker can fit 'potentiate' with narrow windows (docs/models/), a "
                        "mechanism not established",
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
