"""Mapping a network onto Lava processes: what each population and projection becomes, what
cannot be expressed (:func:`_analyse`) and every semantic difference.

Imports go one way: ``common`` <- ``mapping`` <- ``quantise`` <- ``checks`` (the public
:func:`~.checks.list_unsupported`, which adds the fixed-point limits) and ``emit``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuromem.errors import SpecError
from neuromem.lower import PopulationProgram, lower
from neuromem.spec import Network, StateProbe
from neuromem.spec.library import if_curr_exp, nir_cuba_lif, nir_lif, spike_source

from ..nodes import node_kind, operator_element
from .common import (
    MAX_DELAY_FIXED,
    _check_plasticity_mode,
    _check_precision,
    _raise,
    _target,
)


@dataclass
class PopulationMap:
    """One population in Lava's LIF form (floating point, real arithmetic).

    ``V = v - v_offset`` (mV) is Lava's ``v``; ``u`` is the drive added to ``V`` in a step;
    our synaptic current (after the step) is ``u * current_decay / gain``.
    """

    name: str
    size: int
    model: str  # "if_curr_exp", "nir_lif", "nir_cuba_lif" or "source"
    du: float = 1.0
    dv: float = 0.0
    vth: float = 0.0  # mV above v_offset; spike when V >= vth
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0))  # mV per step
    u0: np.ndarray = field(default_factory=lambda: np.zeros(0))
    v0: np.ndarray = field(default_factory=lambda: np.zeros(0))
    refractory: int = 0
    v_offset: float = 0.0
    gain: np.ndarray = field(default_factory=lambda: np.zeros(0))  # Lava u per unit current
    current_decay: float = 0.0  # E_syn: our current after the step = u * E_syn / gain
    current_vars: tuple[str, ...] = ()


@dataclass
class ProjectionMap:
    """A projection in Lava units: ``groups[d]`` is the (n_post, n_pre) float weight matrix
    (mV of drive per spike, duplicates summed) of the synapses with delay ``d`` (steps)."""

    name: str
    pre: str
    post: str
    port: str
    factor: np.ndarray  # per spec synapse: Lava weight = factor * w
    groups: dict[int, np.ndarray]
    plastic: bool


@dataclass
class LavaMapping:
    """The whole network in Lava's LIF form (see :func:`map_network`)."""

    net: Network
    populations: dict[str, PopulationMap]
    projections: dict[str, ProjectionMap]


_MODELS = {
    "if_curr_exp": if_curr_exp(),
    "nir_lif": nir_lif(),
    "nir_cuba_lif": nir_cuba_lif(),
    "source": spike_source(),
}


def _model_kind(pop) -> str | None:
    for k, m in _MODELS.items():
        if pop.model == m:
            return k
    return None


def _uniform(x: np.ndarray) -> bool:
    x = np.asarray(x, dtype=np.float64)
    return bool(x.size == 0 or np.all(x == x.flat[0]))


def _lif_form(kind: str, pp: PopulationProgram, integrator: str, ports: set[str]) -> dict:
    """Per-neuron arrays of Lava's LIF form for one population (real arithmetic)."""
    C, dt = pp.constants, pp.dt
    euler = integrator == "euler"
    if kind == "if_curr_exp":
        tau_m, cm = C["tau_m"], C["cm"]
        dv = dt / tau_m if euler else 1.0 - np.exp(-dt / tau_m)
        gain = dt / cm if euler else (tau_m / cm) * dv
        bias = dv * (C["v_rest"] - C["v_reset"]) + gain * C["i_offset"]
        taus = {"exc": C["tau_syn_E"], "inh": C["tau_syn_I"]}
        used = [p for p in ("exc", "inh") if p in ports] or ["exc"]
        tau_syn = taus[used[0]]
        du = dt / tau_syn if euler else 1.0 - np.exp(-dt / tau_syn)
        sign = {"exc": 1.0, "inh": -1.0}
        scale = {p: C[f"_port_{p}"] for p in ("exc", "inh")}
        i0 = _initial(pp, "i_exc") - _initial(pp, "i_inh")
        return dict(
            dv=dv,
            gain=gain,
            bias=bias,
            du=du,
            v_reset=C["v_reset"],
            vth=C["v_thresh"] - C["v_reset"],
            v0=_initial(pp, "v") - C["v_reset"],
            i0=i0,
            sign=sign,
            scale=scale,
            taus=taus,
            current_vars=("i_exc", "i_inh"),
        )
    if kind == "nir_cuba_lif":
        tau = C["tau_mem"]
        dv = dt / tau if euler else 1.0 - np.exp(-dt / tau)
        gain = C["r"] * dv
        du = dt / C["tau_syn"] if euler else 1.0 - np.exp(-dt / C["tau_syn"])
        return dict(
            dv=dv,
            gain=gain,
            bias=dv * (C["v_leak"] - C["v_reset"]),
            du=du,
            v_reset=C["v_reset"],
            vth=C["v_threshold"] - C["v_reset"],
            v0=_initial(pp, "v") - C["v_reset"],
            i0=_initial(pp, "i_syn"),
            sign={"exc": 1.0},
            scale={"exc": C["_port_exc"]},
            taus={"exc": C["tau_syn"]},
            current_vars=("i_syn",),
        )
    # nir_lif: events add w to v before the step's decay, so u = a (du = 1) and a = w (1 - dv)
    tau = C["tau"]
    dv = dt / tau if euler else 1.0 - np.exp(-dt / tau)
    return dict(
        dv=dv,
        gain=1.0 - dv,
        bias=dv * (C["v_leak"] - C["v_reset"]),
        du=np.ones(pp.size),
        v_reset=C["v_reset"],
        vth=C["v_threshold"] - C["v_reset"],
        v0=_initial(pp, "v") - C["v_reset"],
        i0=np.zeros(pp.size),
        sign={"exc": 1.0},
        scale={"exc": C["_port_exc"]},
        taus={},
        current_vars=(),
    )


def _initial(pp: PopulationProgram, var: str) -> np.ndarray:
    """Initial value of a state variable as a per-neuron array."""
    return np.broadcast_to(np.asarray(pp.state.get(var, 0.0), np.float64), (pp.size,)).copy()


def _analyse(
    net: Network, precision: str, plasticity: str
) -> tuple[list[dict], dict[str, dict], Any]:
    """Problems (unsupported elements) and, per LIF population, its Lava form."""
    _check_precision(precision)
    _check_plasticity_mode(plasticity)
    tgt = _target(precision)
    out: list[dict] = []

    def bad(element: str, limit: str, message: str) -> None:
        out.append({"element": element, "target": tgt, "limit": limit, "message": message})

    disc = net.discretization
    if disc.reset_mode != "same_step":
        bad(
            f"network {net.name!r}",
            "reset_mode:same_step",
            f"reset_mode {disc.reset_mode!r}: Lava's LIF resets v in the step it spikes",
        )
    for sp in net.spins:
        bad(
            f"spin node {sp.name!r}",
            "no spin operators",
            "Glauber spin nodes have no Lava process here (stochastic sequential sweeps)",
        )
    for op in net.operators:
        bad(
            operator_element(op),
            "no operator nodes",
            f"operator node (kind {node_kind(op)}) has no Lava process",
        )
    for c in net.currents:
        bad(
            f"current input {c.population}.{c.variable}",
            "no external currents",
            "Lava's LIF has no time-varying current input (only a constant bias)",
        )
    try:
        prog = lower(net)
    except SpecError as exc:  # pragma: no cover - the network validated already
        bad(f"network {net.name!r}", "lowering", str(exc))
        return out, {}, None
    ports: dict[str, set[str]] = {p.name: set() for p in net.populations}
    for pr in net.projections:
        ports[pr.post].add(pr.port)
    forms: dict[str, dict] = {}
    for pop in net.populations:
        el = f"population {pop.name!r}"
        kind = _model_kind(pop)
        if kind is None:
            bad(
                el,
                "models: if_curr_exp, nir_lif, nir_cuba_lif, spike_source",
                f"neuron model {pop.model.name!r} is not one of the standard-library models "
                "that map exactly onto Lava's LIF",
            )
            continue
        if kind == "source":
            continue
        pp = prog.populations[pop.name]
        f = _lif_form(kind, pp, disc.integrator, ports[pop.name])
        for key, what in (("dv", "dv (membrane decay)"), ("du", "du (current decay)")):
            if not _uniform(f[key]):
                bad(
                    el,
                    f"one {key} per LIF process",
                    f"{what} differs between neurons; Lava's LIF has one scalar {key} per "
                    "process (split the population)",
                )
        if not _uniform(f["vth"]):
            bad(
                el,
                "one vth per LIF process",
                "v_thresh - v_reset differs between neurons; Lava's LIF has one scalar vth",
            )
        elif np.asarray(f["vth"]).flat[0] <= 0:
            bad(
                el,
                "vth > 0",
                "threshold must lie above the reset value (Lava's vth is unsigned)",
            )
        if not _uniform(f["v_reset"]):
            bad(el, "one reset value", "v_reset differs between neurons (Lava resets to 0)")
        if kind == "if_curr_exp":
            te, ti = f["taus"]["exc"], f["taus"]["inh"]
            i_inh0 = _initial(pp, "i_inh")
            i_exc0 = _initial(pp, "i_exc")
            need_both = ({"exc", "inh"} <= ports[pop.name]) or (
                (ports[pop.name] == {"exc"} and np.any(i_inh0 != 0))
                or (ports[pop.name] == {"inh"} and np.any(i_exc0 != 0))
                or (not ports[pop.name] and np.any(i_inh0 != 0))
            )
            if need_both and not np.array_equal(te, ti):
                bad(
                    el,
                    "one synaptic current per LIF",
                    "tau_syn_E != tau_syn_I while both currents are used; Lava's LIF has one "
                    "current variable u with one decay",
                )
        refr = pp.refractory_steps
        if refr.size and not _uniform(refr):
            bad(
                el,
                "one refractory period per LIF process",
                "refractory period differs between neurons",
            )
        elif refr.size and refr[0] > 0 and precision == "fixed_pt":
            bad(
                el,
                "no refractory period in fixed_pt",
                f"refractory period of {int(refr[0])} step(s): Lava 0.10 has no bit-accurate "
                "refractory LIF (LIFRefractory is floating_pt only)",
            )
        if precision == "fixed_pt":
            dv0 = float(np.asarray(f["dv"]).flat[0])
            du0 = float(np.asarray(f["du"]).flat[0])
            if not (0.0 <= dv0 <= 1.0 and 0.0 <= du0 <= 1.0):
                bad(
                    el,
                    "0 <= du, dv <= 1 (12-bit decays)",
                    f"decays du={du0:.6g}, dv={dv0:.6g} are not representable as 12-bit decays",
                )
        forms[pop.name] = f
    for pr in net.projections:
        el = f"projection {pr.name!r}"
        if pr.plasticity is not None:
            if precision == "fixed_pt" or plasticity == "refuse":
                bad(
                    el,
                    "no plasticity" if precision == "fixed_pt" else "plasticity='host'",
                    f"plasticity rule {pr.plasticity.name!r}: Lava 0.10's learning engine "
                    "(LearningDense, sum-of-products dw) has no clip to [w_min, w_max] (the "
                    "floating-point model saturates only at 0), no post-before-pre ordering "
                    "within a step and no pre_event/post_event flags"
                    + (
                        ""
                        if precision == "fixed_pt"
                        else "; pass plasticity='host' to update its weights on the host"
                    ),
                )
        dmax = int(pr.delay.max()) if pr.delay.size else 1
        if precision == "fixed_pt" and dmax > MAX_DELAY_FIXED:
            bad(
                el,
                f"delay <= {MAX_DELAY_FIXED} steps",
                f"delay of {dmax} steps exceeds Lava/Loihi 2's DelayDense range (0..63 + 1)",
            )
    for pb in net.probes:
        if isinstance(pb, StateProbe) and pb.population in forms:
            f = forms[pb.population]
            ok = pb.variable == "v" or (
                pb.variable in f["current_vars"]
                and len(ports[pb.population]) <= 1
                and (not ports[pb.population] or _port_var(pb.population, net) == pb.variable)
            )
            if not ok:
                bad(
                    f"state probe {pb.population}.{pb.variable}",
                    "probes: v, the single synaptic current",
                    "Lava's LIF holds one current u (exc - inh); this variable is not observable",
                )
    return out, forms, prog


def _port_var(pop_name: str, net: Network) -> str | None:
    pop = net.population(pop_name)
    for pr in net.projections:
        if pr.post == pop_name:
            return pop.model.ports[pr.port][0]
    return None


def map_network(net: Network, plasticity: str = "refuse") -> LavaMapping:
    """Map ``net`` onto Lava's LIF form in floating point (real arithmetic, exact).

    Raises
    ------
    LavaTargetError
        Listing every unsupported element (as :func:`.checks.list_unsupported` lists them).
    """
    problems, forms, prog = _analyse(net, "floating_pt", plasticity)
    _raise(problems)
    return _build_mapping(net, forms, prog)


def _build_mapping(net: Network, forms: dict[str, dict], prog) -> LavaMapping:
    pops: dict[str, PopulationMap] = {}
    for pop in net.populations:
        if pop.name not in forms:
            pops[pop.name] = PopulationMap(pop.name, pop.size, "source")
            continue
        f = forms[pop.name]
        pp = prog.populations[pop.name]
        du = float(np.asarray(f["du"]).flat[0])
        e_syn = 1.0 - du
        gain = np.broadcast_to(f["gain"], (pop.size,)).astype(np.float64)
        u0 = np.zeros(pop.size)
        if e_syn > 0:
            u0 = gain * np.asarray(f["i0"]) / e_syn
        pops[pop.name] = PopulationMap(
            name=pop.name,
            size=pop.size,
            model=_model_kind(pop),
            du=du,
            dv=float(np.asarray(f["dv"]).flat[0]),
            vth=float(np.asarray(f["vth"]).flat[0]),
            bias=np.broadcast_to(f["bias"], (pop.size,)).astype(np.float64),
            u0=u0,
            v0=np.asarray(f["v0"], np.float64),
            refractory=int(pp.refractory_steps[0]) if pp.refractory_steps.size else 0,
            v_offset=float(np.asarray(f["v_reset"]).flat[0]),
            gain=gain,
            current_decay=e_syn,
            current_vars=f["current_vars"],
        )
    projs: dict[str, ProjectionMap] = {}
    for pr in net.projections:
        f = forms[pr.post]
        n_pre, n_post = net.population(pr.pre).size, net.population(pr.post).size
        post_gain = np.broadcast_to(f["gain"], (n_post,))
        per_post = f["sign"][pr.port] * np.asarray(f["scale"][pr.port]) * post_gain
        factor = per_post[pr.post_index]
        groups = {}
        for d in np.unique(pr.delay):
            sel = pr.delay == d
            m = np.zeros((n_post, n_pre))
            np.add.at(m, (pr.post_index[sel], pr.pre_index[sel]), factor[sel] * pr.weight[sel])
            groups[int(d)] = m
        projs[pr.name] = ProjectionMap(
            pr.name, pr.pre, pr.post, pr.port, factor, groups, pr.plasticity is not None
        )
    return LavaMapping(net, pops, projs)


def semantic_differences(
    net: Network, precision: str = "floating_pt", plasticity: str = "refuse"
) -> list[dict]:
    """Named differences between neuromem's semantics and the Lava realisation of ``net``.

    Returns
    -------
    list of dict
        ``"element"``, ``"difference"`` (what differs and how it is realised), ``"name"`` (a
        stable identifier: ``reset_value``, ``v_rest_offset``, ``threshold_comparison``,
        ``current_variable``, ``step_averaged_current``, ``refractoriness``,
        ``delay_convention``, ``inhibitory_sign``, ``floating_point_rounding``,
        ``fixed_point_quantisation``, ``plasticity_on_host``, ``plasticity``) and ``"exact"``
        (True when the re-expression is exact in real arithmetic).
    """
    _check_precision(precision)
    _check_plasticity_mode(plasticity)
    out: list[dict] = []

    def diff(element: str, name: str, exact: bool, text: str) -> None:
        out.append({"element": element, "difference": text, "name": name, "exact": exact})

    ports: dict[str, set[str]] = {p.name: set() for p in net.populations}
    for pr in net.projections:
        ports[pr.post].add(pr.port)
    fixed = precision == "fixed_pt"
    for pop in net.populations:
        kind = _model_kind(pop)
        if kind in (None, "source"):
            continue
        el = f"population {pop.name!r}"
        diff(
            el,
            "reset_value",
            True,
            "Lava's LIF resets v to 0: Lava's v is v - v_reset (mV), so the reset is exact",
        )
        rest = "v_rest" if kind == "if_curr_exp" else "v_leak"
        diff(
            el,
            "v_rest_offset",
            True,
            f"Lava's LIF leaks to 0: the {rest} - v_reset offset enters as a constant bias "
            f"(1 - E(tau_m)) ({rest} - v_reset) per step (plus the i_offset drive)",
        )
        diff(
            el,
            "threshold_comparison",
            not fixed,
            "neuromem spikes when v >= v_thresh, Lava when v > vth: "
            + (
                "vth = (v_thresh - v_reset) with the scale chosen so that vth * 64 = T - 1 "
                "for the integer threshold T (v >= T <=> v > T - 1 in integers)"
                if fixed
                else "vth = nextafter(v_thresh - v_reset, -inf), so v > vth <=> v >= v_thresh "
                "for floats"
            ),
        )
        if kind == "if_curr_exp":
            diff(
                el,
                "current_variable",
                True,
                "Lava's u is the net drive gain * (i_exc - i_inh) after the step's events and "
                "before its decay (gain = tau_m/cm (1 - E(tau_m))); neuromem stores the "
                "currents after the decay (i = u E(tau_syn) / gain); one u needs "
                "tau_syn_E == tau_syn_I when both ports are used",
            )
            diff(
                el,
                "step_averaged_current",
                True,
                "IF_curr_exp's step-averaged event current w tau_syn/dt (1 - E(tau_syn)) is "
                "folded into the Lava weight (times the gain, negative for 'inh')",
            )
        elif kind == "nir_lif":
            diff(
                el,
                "current_variable",
                True,
                "NIR LIF events add to v before the step's decay: Lava du = 1 (u = this step's "
                "input only) and the weight is w E(tau)",
            )
        else:
            diff(
                el,
                "current_variable",
                True,
                "Lava's u is r (1 - E(tau_mem)) i_syn after the step's events, before decay",
            )
        pp_ref = pop.model.refractory
        r = 0
        if pp_ref is not None:
            r = int(np.ceil(np.max(pop.params[pp_ref]) / net.discretization.dt - 1e-9))
        if r > 0:
            diff(
                el,
                "refractoriness",
                not fixed,
                (
                    "refused in fixed_pt: Lava 0.10's bit-accurate LIF has no refractory period"
                    if fixed
                    else f"LIFRefractory(refractory_period={r}): steps t+1..t+{r} after a spike "
                    "hold v at 0 while u integrates, as neuromem's clamp"
                ),
            )
        diff(
            el,
            "fixed_point_quantisation" if fixed else "floating_point_rounding",
            False,
            (
                "decays quantised to 12 bits (u decays by (4095 - du)/4096, v by (4096 - dv)/"
                "4096, truncated toward zero), weights to 8-bit mantissas with a shared "
                "exponent (the per-step sum is shifted), bias to 13-bit mantissa << 3-bit "
                "exponent; u wraps and v saturates at 24 bits (see quantize(...).stats)"
                if fixed
                else "same equations, other order of float operations (u, v in Lava units, "
                "inputs summed per Dense): not bit-identical to numba; a spike can differ "
                "where v lands within rounding of the threshold"
            ),
        )
    for pr in net.projections:
        el = f"projection {pr.name!r}"
        delays = sorted(int(d) for d in np.unique(pr.delay))
        diff(
            el,
            "delay_convention",
            True,
            "Lava's Dense delivers a spike of step t in step t + 1 (neuromem delay 1); delay "
            f"d > 1 is a DelayDense with delay d - 1 (one process per delay, here {delays})",
        )
        if pr.port == "inh":
            diff(
                el,
                "inhibitory_sign",
                True,
                "port 'inh' (positive weights subtracted) becomes negative Lava weights",
            )
        if pr.plasticity is not None:
            if plasticity == "host" and not fixed:
                diff(
                    el,
                    "plasticity_on_host",
                    False,
                    f"rule {pr.plasticity.name!r} runs on the host after every one-step Lava "
                    "run (exact lowered rule from Lava's spikes; the weights and the pending "
                    "a_buff of this step's spikes are then set in the Dense), not on Loihi's "
                    "learning engine",
                )
            else:
                diff(
                    el,
                    "plasticity",
                    False,
                    f"rule {pr.plasticity.name!r} is not expressible in Lava's learning engine "
                    "(refused; see list_unsupported)",
                )
    return out
