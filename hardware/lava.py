"""Loihi export through Lava (lava-nc 0.10): map, quantise, emit and run neuromem networks.

A neuromem :class:`~neuromem.spec.Network` of LIF populations (``if_curr_exp``, ``nir_lif``,
``nir_cuba_lif``), spike sources and static projections becomes Lava processes:

- LIF population -> ``lava.proc.lif.process.LIF`` (``LIFRefractory`` in floating point when it
  has a refractory period), spike source -> ``lava.proc.io.source.RingBuffer`` holding the
  whole raster, projection -> one ``Dense`` (delay 1) or ``DelayDense`` (delay d > 1, Lava
  delay ``d - 1``) per distinct delay, spikes -> ``lava.proc.io.sink.RingBuffer``, ``v``/``u``
  -> ``lava.proc.monitor.process.Monitor``.
- It runs on Lava's CPU simulation (``Loihi2SimCfg``) in ``"floating_pt"`` or bit-accurate
  ``"fixed_pt"``. :func:`quantize` gives the integer parameters and their error statistics;
  :func:`neuromem.hardware.fixed_point.simulate` runs the same integers bit-exactly in numba.

The mapping to Lava's LIF (``u' = u (1 - du) + a``, ``v' = v (1 - dv) + u' + bias``, spike when
``v > vth``, reset to 0) is exact in real arithmetic: Lava's ``v`` is ``v - v_reset`` (mV), the
rest potential enters through the bias, ``u`` is the membrane drive of the step (synaptic
current times its gain after the events of the step), and the port scale (IF_curr_exp's
step-averaged current) and the gain are folded into the weights. :func:`semantic_differences`
names every difference (exact re-expressions included); :func:`list_unsupported` lists what
cannot be expressed, and the emitter refuses it with :class:`LavaTargetError`.

Plasticity: Lava 0.10's learning engine (``LearningDense`` with a sum-of-products ``dw``)
cannot express neuromem's rules (no clip to ``[w_min, w_max]``: the floating-point model only
saturates at 0; no ordering of post-before-pre updates within a step; no ``pre_event`` /
``post_event`` flags), so plastic projections are refused by default. ``plasticity="host"``
(floating point only) keeps them as Lava ``Dense`` processes whose weights the host updates
after every one-step run from the spikes Lava produced, with the exact lowered rule; this is
listed as the semantic difference ``plasticity_on_host`` (what Loihi's learning engine would do
is not measured).

Lava is imported lazily (through :mod:`neuromem.hardware._lava_compat`): mapping, quantising
and the unsupported / difference lists work without lava-nc installed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuromem.errors import SpecError
from neuromem.lower import PopulationProgram, lower, source_spikes
from neuromem.spec import Network, StateProbe
from neuromem.spec.library import if_curr_exp, nir_cuba_lif, nir_lif, spike_source

from . import _lava_compat
from .fixed_point import (
    FixedPointNetwork,
    FixedPopulation,
    FixedProjection,
    lava_dense_weights,
)
from .fixed_point import simulate as simulate_fixed_point

__all__ = [
    "LavaTargetError",
    "PRECISIONS",
    "lava_available",
    "map_network",
    "list_unsupported",
    "semantic_differences",
    "quantize",
    "emit",
    "run",
    "run_on_lava",
    "simulate_fixed_point",
    "replay_ca3_on_lava",
    "unsupported_for_profile",
    "differences_for_profile",
    "emit_for_profile",
]

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


# ---------------------------------------------------------------------------------- mapping
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
            f"operator node {op.name!r}",
            "no operator nodes",
            f"operator node ({type(op).__name__}) has no Lava process (MLP and traces)",
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


def list_unsupported(
    net: Network, precision: str = "floating_pt", plasticity: str = "refuse"
) -> list[dict]:
    """Everything in ``net`` that the Lava target cannot express.

    Parameters
    ----------
    net : Network
    precision : {"floating_pt", "fixed_pt"}
    plasticity : {"refuse", "host"}
        ``"host"`` (floating point only) accepts plastic projections, whose weights are then
        updated by the host between one-step runs.

    Returns
    -------
    list of dict
        Keys ``"element"`` (e.g. ``"projection 'p1'"``), ``"target"`` (``"lava:<precision>"``),
        ``"limit"`` and ``"message"``. In fixed point this includes the quantisation limits
        (weight exponent outside Loihi's [-8, 7], bias beyond 13+3 bits, threshold or state
        beyond 24 bits).
    """
    problems, forms, prog = _analyse(net, precision, plasticity)
    if precision == "fixed_pt" and not problems:
        problems = quantize(net, _strict=False).stats["unsupported"]
    return problems


def _raise(problems: list[dict]) -> None:
    if problems:
        lines = "; ".join(f"{p['element']}: {p['message']} (limit: {p['limit']})" for p in problems)
        raise LavaTargetError(f"target {problems[0]['target']}: cannot express: {lines}")


def map_network(net: Network, plasticity: str = "refuse") -> LavaMapping:
    """Map ``net`` onto Lava's LIF form in floating point (real arithmetic, exact).

    Raises
    ------
    LavaTargetError
        Listing every unsupported element (see :func:`list_unsupported`).
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


# ------------------------------------------------------------------------------- quantise
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
        and ``unsupported`` (limits exceeded, as :func:`list_unsupported`).

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


# ---------------------------------------------------------------------------------- emit
@dataclass
class LavaEmission:
    """Lava processes for one network and one run length (see :func:`emit`).

    ``processes``: population -> Lava ``LIF`` / ``LIFRefractory`` / source ``RingBuffer``;
    ``connections``: projection -> list of (neuromem delay, ``Dense`` / ``DelayDense``);
    ``spike_sinks``: LIF population -> sink ``RingBuffer``; ``monitors``: population ->
    {"v": Monitor, "u": Monitor}; ``source_rasters``: source population -> bool (steps, size).
    """

    mapping: LavaMapping
    precision: str
    plasticity: str
    steps: int
    fixed: FixedPointNetwork | None
    processes: dict[str, Any]
    connections: dict[str, list[tuple[int, Any]]]
    spike_sinks: dict[str, Any]
    step_sinks: dict[str, Any]
    monitors: dict[str, dict[str, Any]]
    source_rasters: dict[str, np.ndarray]
    differences: list[dict]
    build_s: float = 0.0


def _source_raster(pop, steps: int, dt: float, inputs: dict[str, np.ndarray]) -> np.ndarray:
    where = f"lava: input for population {pop.name!r}"
    return source_spikes(pop.stimulus, pop.size, dt, 0, steps, inputs.get(pop.name), where)


def emit(
    net: Network,
    steps: int,
    inputs: dict[str, np.ndarray] | None = None,
    precision: str = "floating_pt",
    plasticity: str = "refuse",
    record_state: bool = False,
    v_scale: dict[str, float] | None = None,
) -> LavaEmission:
    """Build the Lava processes of ``net`` for a run of ``steps`` steps.

    Parameters
    ----------
    net : Network
    steps : int
        Run length (sources hold their whole raster; sinks and monitors record all steps).
    inputs : dict, optional
        Spike-source population -> bool (steps, size), OR-ed with its stimulus.
    precision : {"floating_pt", "fixed_pt"}
    plasticity : {"refuse", "host"}
        See the module docstring; ``"host"`` only in floating point.
    record_state : bool
        Attach Monitors for ``v`` and ``u`` of every LIF population.
    v_scale : dict, optional
        Fixed point: voltage scale per population (see :func:`quantize`).

    Raises
    ------
    LavaTargetError
        Naming every element the target cannot express, with the limit.
    """
    t0 = time.perf_counter()
    steps = int(steps)
    if steps < 1:
        raise SpecError(f"lava: steps must be >= 1, got {steps}")
    inputs = dict(inputs or {})
    for k in inputs:
        if k not in {p.name for p in net.populations} or _model_kind(net.population(k)) != "source":
            raise SpecError(f"lava: input for {k!r}, which is not a spike-source population")
    problems, forms, prog = _analyse(net, precision, plasticity)
    _raise(problems)
    mapping = _build_mapping(net, forms, prog)
    fixed = quantize(mapping, v_scale) if precision == "fixed_pt" else None
    if not lava_available():
        raise ImportError(f"lava-nc is not importable: {_lava_compat.LAVA_IMPORT_ERROR}")
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF, LIFRefractory
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    procs: dict[str, Any] = {}
    rasters: dict[str, np.ndarray] = {}
    for pop in net.populations:
        pm = mapping.populations[pop.name]
        if pm.model == "source":
            r = _source_raster(pop, steps, net.discretization.dt, inputs)
            rasters[pop.name] = r
            data = r.T.astype(np.int32 if fixed else np.float64)
            procs[pop.name] = Source(data=data)
        elif fixed is not None:
            fp = fixed.populations[pop.name]
            procs[pop.name] = LIF(
                shape=(pop.size,),
                u=fp.u0,
                v=fp.v0,
                du=fp.du,
                dv=fp.dv,
                bias_mant=fp.bias_mant,
                bias_exp=fp.bias_exp,
                vth=fp.vth,
                name=pop.name,
            )
        else:
            kw = dict(
                shape=(pop.size,),
                u=pm.u0,
                v=pm.v0,
                du=pm.du,
                dv=pm.dv,
                bias_mant=pm.bias,
                vth=float(np.nextafter(pm.vth, -np.inf)),  # v > vth <=> v >= pm.vth
                name=pop.name,
            )
            if pm.refractory > 0:
                procs[pop.name] = LIFRefractory(refractory_period=pm.refractory, **kw)
            else:
                procs[pop.name] = LIF(**kw)
    conns: dict[str, list[tuple[int, Any]]] = {pr.name: [] for pr in net.projections}

    def connect(pre: str, post: str, proc) -> None:
        procs[pre].s_out.connect(proc.s_in)
        proc.a_out.connect(procs[post].a_in)

    if fixed is not None:
        modes = {
            "excitatory": SignMode.EXCITATORY,
            "inhibitory": SignMode.INHIBITORY,
            "mixed": SignMode.MIXED,
        }
        for fpr in fixed.projections:
            kw = dict(
                weights=np.asarray(fpr.weights, np.int32),
                weight_exp=int(fpr.weight_exp),
                num_weight_bits=int(fpr.num_weight_bits),
                sign_mode=modes[fpr.sign_mode],
            )
            if fpr.delay == 1:
                proc = Dense(**kw)
            else:
                proc = DelayDense(delays=int(fpr.delay - 1), **kw)
            connect(fpr.pre, fpr.post, proc)
            conns[fpr.projection].append((fpr.delay, proc))
    else:
        for pm in mapping.projections.values():
            for d, m in sorted(pm.groups.items()):
                proc = Dense(weights=m.copy()) if d == 1 else DelayDense(weights=m, delays=d - 1)
                connect(pm.pre, pm.post, proc)
                conns[pm.name].append((d, proc))
    # Lava compiles the processes connected to the one that is run: join the components of a
    # disconnected network by zero-weight Dense processes (no effect on any value).
    _bridge_components(net, mapping, procs, connect, Dense, fixed is not None)
    lif = [p.name for p in net.populations if mapping.populations[p.name].model != "source"]
    sinks = {}
    for name in lif:
        sinks[name] = Sink(shape=(mapping.populations[name].size,), buffer=steps)
        procs[name].s_out.connect(sinks[name].a_in)
    step_sinks = {}
    if plasticity == "host":
        for pm in mapping.projections.values():
            if pm.plastic:
                for name in (pm.pre, pm.post):
                    if name in lif and name not in step_sinks:
                        step_sinks[name] = Sink(shape=(mapping.populations[name].size,), buffer=1)
                        procs[name].s_out.connect(step_sinks[name].a_in)
    monitors: dict[str, dict[str, Any]] = {}
    if record_state:
        for name in lif:
            monitors[name] = {}
            for var in ("v", "u"):
                mon = Monitor()
                mon.probe(getattr(procs[name], var), steps)
                monitors[name][var] = mon
    return LavaEmission(
        mapping=mapping,
        precision=precision,
        plasticity=plasticity,
        steps=steps,
        fixed=fixed,
        processes=procs,
        connections=conns,
        spike_sinks=sinks,
        step_sinks=step_sinks,
        monitors=monitors,
        source_rasters=rasters,
        differences=semantic_differences(net, precision, plasticity),
        build_s=time.perf_counter() - t0,
    )


def _bridge_components(net, mapping, procs, connect, Dense, fixed: bool) -> None:
    parent = {p.name: p.name for p in net.populations}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pr in net.projections:
        parent[find(pr.pre)] = find(pr.post)
    comps: dict[str, list[str]] = {}
    for p in net.populations:
        comps.setdefault(find(p.name), []).append(p.name)
    lif_comps = [[n for n in c if mapping.populations[n].model != "source"] for c in comps.values()]
    lif_comps = [c for c in lif_comps if c]
    if len(lif_comps) < 2:
        return
    anchor = lif_comps[0][0]
    for c in lif_comps[1:]:
        n_pre, n_post = mapping.populations[anchor].size, mapping.populations[c[0]].size
        w = np.zeros((n_post, n_pre), np.int32 if fixed else np.float64)
        connect(anchor, c[0], Dense(weights=w))


# ----------------------------------------------------------------------------------- run
class _HostPlasticity:
    """One plastic projection's rule, run on the host with neuromem's phase-6 semantics."""

    def __init__(self, net: Network, q, factor: np.ndarray) -> None:
        from neuromem.lower import evaluate

        self.evaluate = evaluate
        self.q = q
        pl = q.plasticity
        self.pl = pl
        self.w = q.weight.copy()  # CSR order
        self.factor = np.empty_like(factor)
        self.factor[q.order] = factor
        n_pre, n_post = net.population(q.pre).size, net.population(q.post).size
        self.n_pre, self.n_post = n_pre, n_post
        self.pre_tr = {k: np.zeros(n_pre) for k in pl.pre_traces}
        self.post_tr = {k: np.zeros(n_post) for k in pl.post_traces}
        self.const = dict(pl.constants)

    def step(self, s_pre: np.ndarray, s_post: np.ndarray) -> bool:
        """Advance one step given this step's spikes; True when weights may have changed."""
        pl, q, ev = self.pl, self.q, self.evaluate
        env = {**self.const, **self.pre_tr, **self.post_tr}
        new = {k: ev(e, env) * np.ones(self.n_pre) for k, e in pl.pre_traces.items()}
        new.update({k: ev(e, env) * np.ones(self.n_post) for k, e in pl.post_traces.items()})
        for k in pl.pre_traces:
            self.pre_tr[k] = new[k]
        for k in pl.post_traces:
            self.post_tr[k] = new[k]
        changed = False
        for stmts, spk, idx in (
            (pl.on_post_synapse, s_post, q.post_index),
            (pl.on_pre_synapse, s_pre, q.pre_index),
        ):
            sel = np.nonzero(spk[idx])[0]
            if not stmts or sel.size == 0:
                continue
            changed = True
            pi, po = q.pre_index[sel], q.post_index[sel]
            senv = dict(self.const)
            senv.update({k: v[pi] for k, v in self.pre_tr.items()})
            senv.update({k: v[po] for k, v in self.post_tr.items()})
            senv["pre_event"], senv["post_event"] = s_pre[pi], s_post[po]
            w = self.w[sel]
            for s in stmts:
                senv["w"] = w
                w = ev(s.value, senv) * np.ones(sel.size)
            self.w[sel] = w
        for stmts, spk, tr in (
            (pl.on_post_neuron, s_post, self.post_tr),
            (pl.on_pre_neuron, s_pre, self.pre_tr),
        ):
            idx = np.nonzero(spk)[0]
            if idx.size == 0:
                continue
            for s in stmts:
                nenv = {**self.const, **{k: v[idx] for k, v in tr.items()}}
                tr[s.target][idx] = ev(s.value, nenv) * np.ones(idx.size)
        return changed

    def matrices(self) -> dict[int, np.ndarray]:
        """Lava float weight matrix per delay from the current weights."""
        q = self.q
        out = {}
        for d in q.delays:
            sel = q.delay == d
            m = np.zeros((self.n_post, self.n_pre))
            np.add.at(m, (q.post_index[sel], q.pre_index[sel]), self.factor[sel] * self.w[sel])
            out[int(d)] = m
        return out


def run(em: LavaEmission) -> dict[str, Any]:
    """Run an emission on Lava's CPU simulation and return its records (then stop Lava).

    Returns
    -------
    dict
        ``"spikes"``: population -> bool (steps, size) (sources: their raster);
        ``"v_mV"``: LIF population -> (steps, size) membrane potential in neuromem's units,
        ``"lava_v"``, ``"lava_u"``: Lava's own values (when ``record_state``);
        ``"weights"``: host-plastic projection -> final weights (spec order);
        ``"wall_s"``: {"build": s, "run": s}; ``"precision"``; ``"differences"``.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    cfg = Loihi2SimCfg(select_tag=em.precision)
    lif = list(em.spike_sinks)
    anchor = em.processes[lif[0]] if lif else next(iter(em.processes.values()))
    net = em.mapping.net
    host = {}
    if em.plasticity == "host":
        prog = lower(net)
        for pm in em.mapping.projections.values():
            if pm.plastic:
                host[pm.name] = _HostPlasticity(net, prog.projections[pm.name], pm.factor)
    t0 = time.perf_counter()
    try:
        if not host:
            anchor.run(condition=RunSteps(num_steps=em.steps), run_cfg=cfg)
        else:
            _run_host_plasticity(em, anchor, cfg, RunSteps, host)
        spikes = {k: v.copy() for k, v in em.source_rasters.items()}
        for name, sink in em.spike_sinks.items():
            spikes[name] = np.asarray(sink.data.get()).T != 0
        out: dict[str, Any] = {"spikes": spikes, "v_mV": {}, "lava_v": {}, "lava_u": {}}
        for name, mons in em.monitors.items():
            v = np.asarray(mons["v"].get_data()[em.processes[name].name]["v"], np.float64)
            u = np.asarray(mons["u"].get_data()[em.processes[name].name]["u"], np.float64)
            out["lava_v"][name], out["lava_u"][name] = v, u
            pm = em.mapping.populations[name]
            if em.fixed is not None:
                out["v_mV"][name] = v / em.fixed.populations[name].v_scale + pm.v_offset
            else:
                out["v_mV"][name] = v + pm.v_offset
    finally:
        anchor.stop()
    out["weights"] = {}
    for name, h in host.items():
        w = np.empty_like(h.w)
        w[:] = h.w[h.q.order]
        out["weights"][name] = w
    out["wall_s"] = {"build": em.build_s, "run": time.perf_counter() - t0}
    out["precision"] = em.precision
    out["differences"] = em.differences
    return out


def _run_host_plasticity(em: LavaEmission, anchor, cfg, RunSteps, host) -> None:
    """One-step runs; after each, the host applies the rule to Lava's spikes, sets the new
    weights and replaces the pending a_buff of this step's pre spikes (the weight a spike
    carries is the one after its own update, as in neuromem)."""
    for t in range(em.steps):
        anchor.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        spk = {k: np.asarray(s.data.get())[:, 0] != 0 for k, s in em.step_sinks.items()}
        for k, r in em.source_rasters.items():
            spk[k] = r[t]
        for name, h in host.items():
            q = h.q
            if not h.step(spk[q.pre], spk[q.post]):
                continue
            mats = h.matrices()
            s_pre = spk[q.pre].astype(np.float64)
            for d, proc in em.connections[name]:
                proc.weights.set(mats[d])
                pending = mats[d] @ s_pre
                if d == 1:
                    proc.a_buff.set(pending)
                else:
                    buf = np.asarray(proc.a_buff.get(), np.float64).copy()
                    buf[:, d - 1] = pending
                    proc.a_buff.set(buf)


def run_on_lava(
    net: Network,
    steps: int,
    inputs: dict[str, np.ndarray] | None = None,
    precision: str = "floating_pt",
    plasticity: str = "refuse",
    record_state: bool = False,
    v_scale: dict[str, float] | None = None,
) -> dict[str, Any]:
    """:func:`emit` then :func:`run` (same parameters)."""
    em = emit(net, steps, inputs, precision, plasticity, record_state, v_scale)
    return run(em)


# ------------------------------------------------------------------------------ CA3 replay
def replay_ca3_on_lava(
    recording: str = "exp2_stress_testbench",
    data_dir: str | None = None,
    stdp: str = "identified",
    plasticity: str = "host",
) -> dict[str, Any]:
    """Replay an authors' CA3 recording on Lava (floating point) and score it.

    The network is :func:`neuromem.models.ca3_cam.build_network`; the recorded stimulus is
    replayed into ``IL`` in one run; the output is scored with the model's own
    ``segment_operations`` / ``compare_outputs`` against the authors' recording and against
    neuromem's numba backend on the same stimulus.

    Parameters
    ----------
    recording : str
        ``"exp1_learn_recall_forget"`` or ``"exp2_stress_testbench"``.
    data_dir : str, optional
        ``NEUROMEM_DATA`` (default: the environment variable).
    stdp : str
        STDP variant of the CA3 model.
    plasticity : {"host", "refuse"}
        The two STDP projections cannot run on Lava's learning engine; ``"host"`` runs them on
        the host between one-step Lava runs (semantic difference ``plasticity_on_host``);
        ``"refuse"`` raises :class:`LavaTargetError` listing them.

    Returns
    -------
    dict
        ``recall_operations``, ``recall_operations_matching`` (same output neurons as the
        authors), ``recall_operations_matching_numba``, ``operations_with_identical_raster``
        (vs the authors) and ``populations_identical_to_numba`` (population -> bool),
        ``final_weights_identical_to_numba``, ``differences`` (the semantic-difference
        list), ``unsupported`` (what plain Lava cannot run), ``wall_s``, ``steps``.
    """
    import neuromem
    from neuromem.data import load_ca3_recording
    from neuromem.models.ca3_cam import build_network, score_replay

    rec = load_ca3_recording(recording, data_dir)
    sp, n, m = rec["spikes"], rec["n_cues"], rec["n_bits"]
    il = np.concatenate([sp["INcue"], sp["INcont"]], axis=1).astype(bool)
    steps = il.shape[0]
    net = build_network(n, m, stdp)
    unsupported = list_unsupported(net, "floating_pt", "refuse")
    t0 = time.perf_counter()
    out = run_on_lava(net, steps, {"IL": il}, "floating_pt", plasticity)
    t_lava = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim = neuromem.compile(net, backend="numba")
    ref = sim.run(steps, {"IL": il}).spikes
    t_numba = time.perf_counter() - t0
    score = score_replay(sp, out["spikes"]["OL"], n, reference=ref["OL"])
    w_nb = sim.state["weights"]
    return {
        "recording": recording,
        "stdp": stdp,
        "plasticity": plasticity,
        "steps": steps,
        "operations": score["operations"],
        "recall_operations": score["recall_operations"],
        "recall_operations_matching": score["recall_operations_matching"],
        "recall_operations_matching_numba": score["vs_reference"]["recall_operations_matching"],
        "operations_with_identical_raster": score["operations_with_identical_output_raster"],
        "operations_with_identical_raster_numba": score["vs_reference"][
            "operations_with_identical_output_raster"
        ],
        "populations_identical_to_numba": {
            k: bool(np.array_equal(out["spikes"][k], ref[k])) for k in out["spikes"]
        },
        "final_weights_identical_to_numba": {
            k: bool(np.array_equal(w, np.asarray(w_nb[k]))) for k, w in out["weights"].items()
        },
        "mismatches": [r for r in score["rows"] if not r["same_neurons"] and r["kind"] != "learn"],
        "differences": out["differences"],
        "unsupported": unsupported,
        "wall_s": {"lava": round(t_lava, 3), "numba": round(t_numba, 3)},
    }


# ------------------------------------------------------------- adapters for hardware.compile
def _profile_target(profile: Any) -> str:
    return str(getattr(profile, "target", profile))


def unsupported_for_profile(
    net: Network, profile: Any, precision: str = "floating_pt", plasticity: str = "refuse"
) -> list[dict]:
    """:func:`list_unsupported` with ``"target"`` set to the profile's target (e.g. loihi2)."""
    tgt = _profile_target(profile)
    return [
        {**p, "target": f"{tgt} ({p['target']})"}
        for p in list_unsupported(net, precision, plasticity)
    ]


def differences_for_profile(
    net: Network, profile: Any, precision: str = "floating_pt", plasticity: str = "refuse"
) -> list[dict]:
    """:func:`semantic_differences` for ``compile(net, target)`` (profile unused but named)."""
    return semantic_differences(net, precision, plasticity)


def emit_for_profile(net: Network, profile: Any, steps: int, **options: Any) -> LavaEmission:
    """:func:`emit` for ``compile(net, target)``: ``options`` are emit's keyword arguments."""
    return emit(net, steps, **options)
