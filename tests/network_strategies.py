"""Hypothesis generators of random valid (and one-field-broken) neuromem networks.

One strategy, :func:`net_descs`, draws a whole network *description* (:class:`NetDesc`: plain
values, no spec objects), and :func:`build` turns it into a validated
:class:`neuromem.spec.Network`; the same draw therefore feeds every property (backend agreement,
save/load, chunked runs, reset) and the invalid-network generators, which break exactly one
field of a valid description (:func:`broken_descs`).

Descriptions hold the structure and the scalars as hypothesis draws (so they shrink), and large
arrays (synapse lists, per-neuron values, currents, run-time inputs) as a seed for numpy's PCG64
plus their shape, so a draw stays small and fast to generate.

Sizes are 1..40 neurons, 20..200 steps, delays 1..8 steps; the drive (offset currents, leak
potentials above threshold, Poisson and array sources, external currents) is chosen so that most
networks spike (the tests measure the fraction).
"""

from __future__ import annotations

import hashlib
import keyword
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from neuromem.spec import (
    CurrentInput,
    Discretization,
    Network,
    PoissonSpikes,
    Population,
    Projection,
    SpikeArray,
    SpikeProbe,
    StateProbe,
    all_but_self,
    all_to_all,
    fixed_probability,
    hebbian,
    if_curr_exp,
    nir_cuba_lif,
    nir_lif,
    one_to_one,
    spike_source,
    stdp_pair,
)

# ------------------------------------------------------------------------------ vocabulary
COMPUTED = ("if_curr_exp", "nir_lif", "nir_cuba_lif")
SOURCES = ("poisson", "array", "runtime")
MODELS = {
    "if_curr_exp": if_curr_exp,
    "nir_lif": nir_lif,
    "nir_cuba_lif": nir_cuba_lif,
    "poisson": spike_source,
    "array": spike_source,
    "runtime": spike_source,
}
#: State variables per model (what a StateProbe may record).
STATE = {"if_curr_exp": ("v", "i_exc", "i_inh"), "nir_lif": ("v",), "nir_cuba_lif": ("v", "i_syn")}
#: Ports per model.
PORTS = {"if_curr_exp": ("exc", "inh"), "nir_lif": ("exc",), "nir_cuba_lif": ("exc",)}
#: Per-model parameter ranges (low, high); a population draws a scalar or per-neuron values.
PARAM_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "if_curr_exp": {
        "cm": (0.25, 2.0),
        "tau_m": (2.0, 30.0),
        "v_rest": (-70.0, -60.0),
        "v_reset": (-75.0, -60.0),
        "v_thresh": (-56.0, -48.0),
        "tau_refrac": (0.0, 4.0),
        "tau_syn_E": (0.5, 10.0),
        "tau_syn_I": (0.5, 10.0),
        "i_offset": (0.0, 1.5),  # (tau_m / cm) * i_offset above ~15 mV fires tonically
    },
    "nir_lif": {
        "tau": (2.0, 20.0),
        "r": (0.5, 2.0),
        "v_leak": (0.0, 1.6),  # above v_threshold: tonic firing
        "v_threshold": (0.5, 1.5),
        "v_reset": (-0.5, 0.0),
    },
    "nir_cuba_lif": {
        "tau_mem": (2.0, 20.0),
        "tau_syn": (0.5, 10.0),
        "r": (0.5, 2.0),
        "v_leak": (0.0, 1.6),
        "v_threshold": (0.5, 1.5),
        "v_reset": (-0.5, 0.0),
        "w_in": (0.5, 2.0),
    },
}
#: The parameter that drives each model on its own, and the range drawn for it (the lower
#: part is subthreshold: (tau_m / cm) * i_offset < v_thresh - v_rest, v_leak < v_threshold).
DRIVE = {"if_curr_exp": "i_offset", "nir_lif": "v_leak", "nir_cuba_lif": "v_leak"}
DRIVE_RANGES = {"if_curr_exp": (0.5, 2.0), "nir_lif": (0.6, 2.0), "nir_cuba_lif": (0.6, 2.0)}
#: Initial-value ranges of the state variables.
INITIAL_RANGES = {
    "if_curr_exp": {"v": (-70.0, -46.0), "i_exc": (0.0, 1.0), "i_inh": (0.0, 0.5)},
    "nir_lif": {"v": (-0.5, 1.2)},
    "nir_cuba_lif": {"v": (-0.5, 1.2), "i_syn": (0.0, 1.0)},
}
#: Synaptic weight ranges per post model (units of the port variable).
WEIGHT_RANGES = {"if_curr_exp": (-0.5, 3.0), "nir_lif": (-0.3, 1.2), "nir_cuba_lif": (-0.3, 1.2)}
#: External current ranges per model (i_ext).
CURRENT_RANGES = {"if_curr_exp": (0.0, 1.5), "nir_lif": (0.0, 1.6), "nir_cuba_lif": (0.0, 1.6)}

RULES = (
    "stdp_additive",
    "stdp_multiplicative",
    "stdp_additive_scaled",
    "stdp_multiplicative_scaled",
    "stdp_additive_potentiate",
    "stdp_additive_spinnaker",
    "stdp_multiplicative_potentiate",
    "stdp_multiplicative_spinnaker",
    "hebbian",
)


def make_rule(rule: str):
    """The standard-library plasticity rule named by a description."""
    if rule == "hebbian":
        return hebbian()
    _, wd, *rest = rule.split("_")
    scaled = "scaled" in rest
    coincidence = next((r for r in rest if r in ("potentiate", "spinnaker")), "ignore")
    return stdp_pair(wd, scale_by_w_max=scaled, coincidence=coincidence)


def rule_param_names(rule: str) -> tuple[str, ...]:
    return tuple(make_rule(rule).params)


# ------------------------------------------------------------------------------ descriptions
@dataclass(frozen=True)
class Values:
    """A scalar, or per-element values drawn uniformly in [lo, hi) from ``seed``."""

    scalar: float | None = None
    lo: float = 0.0
    hi: float = 1.0
    seed: int = 0
    extra: int = 0  # elements beyond the n asked for (invalid-network generators)

    def array(self, n: int) -> float | np.ndarray:
        if self.scalar is not None and not self.extra:
            return self.scalar
        if self.scalar is not None:
            return np.full(n + self.extra, self.scalar)
        return np.random.default_rng(self.seed).uniform(self.lo, self.hi, n + self.extra)


@dataclass(frozen=True)
class PopDesc:
    name: str
    kind: str  # one of COMPUTED or SOURCES
    size: int
    params: dict[str, Values] = field(default_factory=dict)
    initial: dict[str, Values] = field(default_factory=dict)
    # poisson: (rate_hz, seed, start, stop); array: (n_spikes, seed, max_step) or
    # ("given", steps, neurons)
    stimulus: tuple | None = None
    runtime_p: float = 0.0  # probability per step of run-time input spikes (0: none)
    runtime_seed: int = 0

    @property
    def computed(self) -> bool:
        return self.kind in COMPUTED


@dataclass(frozen=True)
class ProjDesc:
    name: str
    pre: str
    post: str
    # ("one_to_one",) ("all_to_all",) ("all_but_self",) ("fixed", p, seed, allow_self)
    # ("explicit", n_syn, seed) (random pairs, duplicates allowed)
    connectivity: tuple
    weight: Values
    delay: int | tuple[int, int]  # one delay, or (seed, max_delay) per synapse in 1..max
    port: str = "exc"
    rule: str | None = None
    rule_params: dict[str, float] = field(default_factory=dict)
    # overrides of the built index arrays (used by the invalid-network generators)
    index_override: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class CurrentDesc:
    population: str
    variable: str
    rows: int  # 0: constant (size,) values; k > 0: (k, size), zero afterwards
    values: Values
    extra_columns: int = 0  # columns beyond the population size (invalid-network generators)


@dataclass(frozen=True)
class ProbeDesc:
    kind: str  # "raster" | "events" | "state"
    population: str
    variable: str | None = None
    indices: tuple[int, ...] | None = None


@dataclass(frozen=True)
class NetDesc:
    name: str
    dt: float
    integrator: str
    reset_mode: str
    pops: tuple[PopDesc, ...]
    projs: tuple[ProjDesc, ...]
    currents: tuple[CurrentDesc, ...]
    probes: tuple[ProbeDesc, ...]
    steps: int
    chunks: tuple[int, ...]  # a split of ``steps`` into run calls (zeros allowed)
    # run-time currents "pop.i_ext": (population, constant?, Values)
    runtime_currents: tuple[tuple[str, bool, Values], ...] = ()

    def pop(self, name: str) -> PopDesc:
        return next(p for p in self.pops if p.name == name)

    def pick_backend(self, choices: tuple[str, ...] = ("numba", "torch", "brian2")) -> str:
        """The backend a single-backend check runs this network on: picked by a digest of the
        description (a drawn field would favour the first choice, which hypothesis generates
        and shrinks toward), so the backends share the examples evenly and a failing example
        determines its backend. Brian2 is never picked for ``next_step`` resets."""
        allowed = tuple(b for b in choices if b != "brian2" or self.reset_mode != "next_step")
        digest = hashlib.sha256(repr(self).encode()).digest()
        return allowed[digest[0] % len(allowed)]

    @property
    def backend(self) -> str:
        """:meth:`pick_backend` among the three backends."""
        return self.pick_backend()

    @property
    def plastic(self) -> bool:
        return any(q.rule is not None for q in self.projs)


# ------------------------------------------------------------------------------ building
def connectivity(q: ProjDesc, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
    kind = q.connectivity[0]
    if kind == "one_to_one":
        return one_to_one(n_pre, n_post)
    if kind == "all_to_all":
        return all_to_all(n_pre, n_post)
    if kind == "all_but_self":
        return all_but_self(n_pre)
    if kind == "fixed":
        _, p, seed, allow_self = q.connectivity
        return fixed_probability(n_pre, n_post, p, seed, allow_self=allow_self)
    _, n_syn, seed = q.connectivity
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_pre, n_syn), rng.integers(0, n_post, n_syn)


def synapses(desc: NetDesc, q: ProjDesc) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    """(pre_index, post_index, weight, delay) of a projection description."""
    pre_size = desc.pop(q.pre).size if any(p.name == q.pre for p in desc.pops) else 1
    post_size = desc.pop(q.post).size if any(p.name == q.post for p in desc.pops) else 1
    if q.index_override is not None:
        i, j = q.index_override
    else:
        i, j = connectivity(q, pre_size, post_size)
    w = q.weight.array(i.size)
    if isinstance(q.delay, tuple):
        seed, dmax = q.delay
        d = np.random.default_rng(seed).integers(1, dmax + 1, i.size)
    else:
        d = q.delay
    return i, j, w, d


def stimulus(p: PopDesc):
    """The stimulus of a description: 4 fields are a Poisson train, 3 a spike array."""
    if p.stimulus is None:
        return None
    if len(p.stimulus) == 4:
        rate, seed, start, stop = p.stimulus
        return PoissonSpikes(rate, seed, start, stop)
    if p.stimulus is not None:
        if p.stimulus[0] == "given":
            return SpikeArray(list(p.stimulus[1]), list(p.stimulus[2]))
        n, seed, max_step = p.stimulus
        rng = np.random.default_rng(seed)
        return SpikeArray(rng.integers(0, max_step, n), rng.integers(0, p.size, n))
    return None


def build_population(p: PopDesc) -> Population:
    params = {k: v.array(p.size) for k, v in p.params.items()}
    initial = {k: v.array(p.size) for k, v in p.initial.items()}
    return Population(p.name, p.size, MODELS[p.kind](), params, initial, stimulus(p))


def build_projection(desc: NetDesc, q: ProjDesc) -> Projection:
    i, j, w, d = synapses(desc, q)
    kwargs: dict[str, Any] = {}
    if q.rule is not None:
        kwargs["plasticity"] = make_rule(q.rule)
    if q.rule_params:
        kwargs["plasticity_params"] = dict(q.rule_params)
    return Projection(q.name, q.pre, q.post, i, j, w, d, q.port, **kwargs)


def build_current(desc: NetDesc, c: CurrentDesc) -> CurrentInput:
    size = desc.pop(c.population).size if any(p.name == c.population for p in desc.pops) else 1
    size += c.extra_columns
    shape = (size,) if c.rows == 0 else (c.rows * size,)
    values = np.asarray(c.values.array(shape[0]), dtype=np.float64)
    values = np.broadcast_to(values, shape).copy()
    if c.rows:
        values = values.reshape(c.rows, size)
    return CurrentInput(c.population, c.variable, values)


def build_probe(pb: ProbeDesc):
    if pb.kind == "state":
        return StateProbe(pb.population, pb.variable, pb.indices)
    return SpikeProbe(pb.population, format=pb.kind)


def build(desc: NetDesc) -> Network:
    """The validated Network of a description."""
    return Network(
        desc.name,
        Discretization(dt=desc.dt, integrator=desc.integrator, reset_mode=desc.reset_mode),
        tuple(build_population(p) for p in desc.pops),
        tuple(build_projection(desc, q) for q in desc.projs),
        tuple(build_current(desc, c) for c in desc.currents),
        tuple(build_probe(pb) for pb in desc.probes),
    )


def run_inputs(desc: NetDesc, t0: int = 0, steps: int | None = None) -> dict[str, np.ndarray]:
    """Run-time inputs of steps [t0, t0 + steps) (defaults: the whole run), a pure function
    of the absolute step, so chunked runs get the same inputs as one run."""
    steps = desc.steps - t0 if steps is None else steps
    out: dict[str, np.ndarray] = {}
    for p in desc.pops:
        if p.kind in SOURCES and p.runtime_p > 0:
            rng = np.random.default_rng(p.runtime_seed)
            raster = rng.random((desc.steps, p.size)) < p.runtime_p
            out[p.name] = raster[t0 : t0 + steps]
    for pop, constant, values in desc.runtime_currents:
        size = desc.pop(pop).size
        if constant:
            out[f"{pop}.i_ext"] = np.asarray(values.array(size), dtype=np.float64) * np.ones(size)
        else:
            v = np.asarray(values.array(desc.steps * size), dtype=np.float64)
            v = np.broadcast_to(v, (desc.steps * size,)).reshape(desc.steps, size)
            out[f"{pop}.i_ext"] = v[t0 : t0 + steps]
    return out


# ------------------------------------------------------------------------------ strategies
BACKENDS = ("numba", "torch", "brian2")
SEEDS = st.integers(0, 2**31 - 1)
DTS = st.sampled_from([0.1, 0.25, 0.5, 1.0])


#: Valid names that look like what the backends generate or read (Brian2 / numba / torch
#: identifiers, builtins, the models' own variables): every backend must cope with them.
TRICKY_NAMES = (
    "dt", "t", "i", "j", "N", "v", "w", "spk", "ref", "refsteps", "K", "np", "math", "numba",
    "torch", "step", "run", "kernel", "exp", "clip", "pre", "post", "source", "target", "lif",
    "exc", "inh", "weights", "state", "spikes", "t_in_timesteps", "lastspike",
    "not_refractory", "xi", "rand", "int", "float", "self", "net", "defaultclock", "e", "pi",
    "inf", "nan", "in_i_ext", "acc_exc", "s_v", "Q_x", "G0", "a__w", "x__lo", "tr_p_apre",
    "brian2", "print", "len", "a" * 64,
)  # fmt: skip
NAMES = st.one_of(
    st.sampled_from(TRICKY_NAMES),
    st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,11}", fullmatch=True).filter(
        lambda n: not (keyword.iskeyword(n) or keyword.issoftkeyword(n))
    ),
)


def _round(x: float) -> float:
    """Floats with few significant digits (readable shrunk examples); any float is valid."""
    return float(f"{x:.4g}")


@st.composite
def values(draw, lo: float, hi: float, per_element: bool = True, toward_hi: bool = False) -> Values:
    """A scalar in [lo, hi] or per-element values in [lo, hi) from a seed. Hypothesis favours
    (and shrinks scalars toward) ``lo``; ``toward_hi`` mirrors that to ``hi``."""
    if per_element and draw(st.booleans()):
        return Values(None, lo, hi, draw(SEEDS))
    x = draw(st.floats(lo, hi, allow_nan=False))
    return Values(_round(min(hi, max(lo, lo + hi - x)) if toward_hi else x))


@st.composite
def population_descs(draw, name: str, kind: str, dt: float, max_size: int = 40) -> PopDesc:
    size = draw(st.integers(1, max_size))
    if kind in COMPUTED:
        ranges = PARAM_RANGES[kind]
        chosen = draw(st.sets(st.sampled_from(sorted(ranges))))
        params = {k: draw(values(*ranges[k])) for k in sorted(chosen)}
        # the drive is always drawn (the model defaults are silent); most draws fire tonically
        drive = DRIVE[kind]
        params[drive] = draw(values(*DRIVE_RANGES[kind], toward_hi=True))
        if kind == "if_curr_exp" and "tau_refrac" in params and draw(st.booleans()):
            # a whole number of steps (ceil(period / dt) exactly at the boundary)
            params["tau_refrac"] = Values(draw(st.integers(0, 4)) * dt)
        inits = INITIAL_RANGES[kind]
        initial = {
            k: draw(values(*inits[k]))
            for k in sorted(draw(st.sets(st.sampled_from(sorted(inits)))))
        }
        # the membrane potential always starts spread up to the threshold region (short runs
        # at dt = 0.1 ms would otherwise end before a neuron charges from rest); drive and
        # start favour the strong end, so that even the simplest draws fire
        initial["v"] = draw(values(*inits["v"], toward_hi=True))
        return PopDesc(name, kind, size, params, initial)
    runtime_p = draw(st.sampled_from([0.0, 0.05, 0.2])) if kind != "runtime" else 0.0
    if kind == "runtime":
        runtime_p = draw(st.sampled_from([0.02, 0.1, 0.3]))
    stim = None
    if kind == "poisson":
        p_step = draw(st.floats(0.0, 0.6))
        rate = _round(p_step * 1000.0 / dt)
        start = draw(st.integers(0, 30))
        stop = draw(st.one_of(st.none(), st.integers(start, 250)))
        stim = (rate, draw(SEEDS), start, stop)
    elif kind == "array":
        stim = (draw(st.integers(0, 200)), draw(SEEDS), draw(st.integers(1, 220)))
    return PopDesc(name, kind, size, stimulus=stim, runtime_p=runtime_p, runtime_seed=draw(SEEDS))


@st.composite
def projection_descs(draw, name: str, pops: tuple[PopDesc, ...]) -> ProjDesc:
    pre = draw(st.sampled_from(pops))
    post = draw(st.sampled_from([p for p in pops if p.computed]))
    kinds = ["all_to_all", "fixed", "explicit"]
    if pre.size == post.size:
        kinds.append("one_to_one")
    if pre.name == post.name:
        kinds.append("all_but_self")
    kind = draw(st.sampled_from(kinds))
    if kind == "fixed":
        conn: tuple = ("fixed", draw(st.floats(0.0, 1.0)), draw(SEEDS), draw(st.booleans()))
    elif kind == "explicit":
        conn = ("explicit", draw(st.integers(0, 3 * max(pre.size, post.size))), draw(SEEDS))
    else:
        conn = (kind,)
    weight = draw(values(*WEIGHT_RANGES[post.kind]))
    if draw(st.booleans()):
        delay: int | tuple[int, int] = draw(st.integers(1, 8))
    else:
        delay = (draw(SEEDS), draw(st.integers(1, 8)))
    port = draw(st.sampled_from(PORTS[post.kind]))
    # a third of the projections static, the rest plastic (every rule of the library)
    rule = draw(st.sampled_from((None, None, None, None, *RULES)))
    rule_params: dict[str, float] = {}
    if rule is not None:
        names = rule_param_names(rule)
        lo_w, hi_w = WEIGHT_RANGES[post.kind]
        w_min = _round(draw(st.floats(lo_w, hi_w / 2)))
        w_max = _round(draw(st.floats(w_min, hi_w)))
        rule_params = {"w_min": w_min, "w_max": w_max}
        for k in names:
            if k.startswith("tau"):
                rule_params[k] = _round(draw(st.floats(1.0, 40.0)))
            elif k in ("A_plus", "A_minus", "eta"):
                rule_params[k] = _round(draw(st.floats(0.0, 0.2)))
        rule_params = {k: v for k, v in rule_params.items() if draw(st.booleans()) or "w_" in k}
    return ProjDesc(name, pre.name, post.name, conn, weight, delay, port, rule, rule_params)


@st.composite
def chunkings(draw, steps: int) -> tuple[int, ...]:
    cuts = sorted(draw(st.lists(st.integers(0, steps), max_size=3)))
    bounds = [0, *cuts, steps]
    return tuple(b - a for a, b in zip(bounds, bounds[1:], strict=False))


@st.composite
def net_descs(
    draw,
    reset_modes: tuple[str, ...] = ("same_step",) * 5 + ("next_step",),
    max_size: int = 40,
    max_steps: int = 200,
    max_projections: int = 5,
    drawn_names: bool = True,
) -> NetDesc:
    """A random valid network description (see the module docstring)."""
    dt = draw(DTS)
    integrator = draw(st.sampled_from(["exponential_euler", "euler"]))
    reset_mode = draw(st.sampled_from(reset_modes))
    n_computed = draw(st.integers(1, 3))
    n_sources = draw(st.integers(0, 2))
    kinds = [draw(st.sampled_from(COMPUTED)) for _ in range(n_computed)]
    kinds += [draw(st.sampled_from(SOURCES)) for _ in range(n_sources)]
    n_proj = draw(st.integers(0, max_projections))
    n_names = len(kinds) + n_proj
    if drawn_names and draw(st.booleans()):  # drawn names, unique over pops and projections
        names = draw(st.lists(NAMES, min_size=n_names, max_size=n_names, unique=True))
    else:
        names = [f"{kind[:3]}{k}" for k, kind in enumerate(kinds)]
        names += [f"proj{k}" for k in range(n_proj)]
    pops = tuple(
        draw(population_descs(names[k], kind, dt, max_size)) for k, kind in enumerate(kinds)
    )
    projs = tuple(draw(projection_descs(names[len(kinds) + k], pops)) for k in range(n_proj))
    # hypothesis favours the lower bound: half the draws from the upper half of the range
    # (longer runs: neurons that spike at the start recharge, weights learn), shrinking to 20
    steps = draw(st.one_of(st.integers(20, max_steps), st.integers(max_steps // 2, max_steps)))
    computed = [p for p in pops if p.computed]
    currents = []
    for p in draw(st.lists(st.sampled_from(computed), unique_by=lambda p: p.name, max_size=2)):
        rows = draw(st.sampled_from([0, 0, 1, steps // 2, steps + 10]))
        currents.append(CurrentDesc(p.name, "i_ext", rows, draw(values(*CURRENT_RANGES[p.kind]))))
    runtime_currents = tuple(
        (p.name, draw(st.booleans()), draw(values(*CURRENT_RANGES[p.kind])))
        for p in draw(st.lists(st.sampled_from(computed), unique_by=lambda p: p.name, max_size=2))
    )
    probes: list[ProbeDesc] = []
    for p in pops:
        probes.append(ProbeDesc("raster", p.name))
        if draw(st.booleans()):
            probes.append(ProbeDesc("events", p.name))
        if p.computed:
            for var in sorted(draw(st.sets(st.sampled_from(STATE[p.kind]), max_size=2))):
                idx = draw(
                    st.one_of(
                        st.none(),
                        st.lists(st.integers(0, p.size - 1), min_size=1, max_size=5).map(tuple),
                    )
                )
                probes.append(ProbeDesc("state", p.name, var, idx))
    probes = draw(st.permutations(probes))
    return NetDesc(
        name=draw(st.sampled_from(["net", "random_net", "n1"])),
        dt=dt,
        integrator=integrator,
        reset_mode=reset_mode,
        pops=pops,
        projs=projs,
        currents=tuple(currents),
        probes=tuple(probes),
        steps=steps,
        chunks=draw(chunkings(steps)),
        runtime_currents=runtime_currents,
    )


# ------------------------------------------------------------------------------ invalid networks
#: Names that must be refused for populations and projections (not identifiers, private,
#: keywords, quotes, newlines, empty).
BAD_NAMES = ("a b", "1x", "_x", "class", "def", "a'b", 'a"b', "a\nb", "", "x-y")


@dataclass(frozen=True)
class Broken:
    """A description with one field broken; ``names`` must all appear in the error message
    (``repr`` forms are accepted too, for names with quotes or newlines)."""

    case: str
    desc: NetDesc
    names: tuple[str, ...]


def _replace_pop(desc: NetDesc, which: str, **changes) -> NetDesc:
    return replace(
        desc, pops=tuple(replace(p, **changes) if p.name == which else p for p in desc.pops)
    )


def _replace_proj(desc: NetDesc, which: str, **changes) -> NetDesc:
    return replace(
        desc, projs=tuple(replace(q, **changes) if q.name == which else q for q in desc.projs)
    )


def _rename_pop(desc: NetDesc, old: str, new: str) -> NetDesc:
    """Rename a population and every reference to it."""

    def ref(n: str) -> str:
        return new if n == old else n

    return replace(
        desc,
        pops=tuple(replace(p, name=new) if p.name == old else p for p in desc.pops),
        projs=tuple(replace(q, pre=ref(q.pre), post=ref(q.post)) for q in desc.projs),
        currents=tuple(replace(c, population=ref(c.population)) for c in desc.currents),
        probes=tuple(replace(pb, population=ref(pb.population)) for pb in desc.probes),
        runtime_currents=tuple((ref(p), c, v) for p, c, v in desc.runtime_currents),
    )


@st.composite
def broken_descs(
    draw, case: str | None = None, base: st.SearchStrategy[NetDesc] | None = None
) -> Broken:
    """A valid description with exactly one field made invalid (``case``, a key of
    :data:`CASES`, or any), and the names the error must mention. Cases that need a projection,
    a plastic projection or a source add one to the valid network first."""
    desc = draw(base if base is not None else net_descs(reset_modes=("same_step",)))
    case = case if case is not None else draw(st.sampled_from(sorted(CASES)))
    return CASES[case](draw, desc)


def fresh(desc: NetDesc, stem: str) -> str:
    """A valid name not used by any population or projection of ``desc``."""
    used = {p.name for p in desc.pops} | {q.name for q in desc.projs}
    return next(f"{stem}{k}" for k in range(len(used) + 1) if f"{stem}{k}" not in used)


def _some_pop(draw, desc: NetDesc, computed: bool | None = None) -> PopDesc:
    pool = [p for p in desc.pops if computed is None or p.computed == computed]
    return draw(st.sampled_from(pool))


def _with_projection(draw, desc: NetDesc, rule: str | None = None) -> tuple[NetDesc, ProjDesc]:
    """The description with a projection (an existing one, or a new one) and that projection;
    with ``rule`` given, a projection with that plasticity rule."""
    pool = [q for q in desc.projs if rule is None or q.rule is not None]
    if pool and draw(st.booleans()):
        q = draw(st.sampled_from(pool))
        if rule is not None and q.rule != rule:
            params = {k: v for k, v in q.rule_params.items() if k in rule_param_names(rule)}
            q = replace(q, rule=rule, rule_params=params)
            desc = _replace_proj(desc, q.name, rule=rule, rule_params=params)
        return desc, q
    pre = _some_pop(draw, desc)
    post = _some_pop(draw, desc, computed=True)
    q = ProjDesc(
        fresh(desc, "extra_proj"),
        pre.name,
        post.name,
        ("all_to_all",),
        Values(0.5),
        draw(st.integers(1, 8)),
        rule=rule,
    )
    return replace(desc, projs=(*desc.projs, q)), q


def _with_source(draw, desc: NetDesc, kind: str) -> tuple[NetDesc, PopDesc]:
    pool = [p for p in desc.pops if p.kind == kind and p.stimulus is not None]
    if pool and draw(st.booleans()):
        return desc, draw(st.sampled_from(pool))
    if kind == "poisson":
        p = PopDesc(
            fresh(desc, "extra_src"), kind, draw(st.integers(1, 10)), stimulus=(10.0, 1, 0, None)
        )
    else:
        p = PopDesc(fresh(desc, "extra_src"), kind, draw(st.integers(1, 10)), stimulus=(5, 1, 50))
    return replace(desc, pops=(*desc.pops, p)), p


def case_bad_size(draw, desc):
    p = _some_pop(draw, desc)
    size = draw(st.sampled_from([0, -1, -7, 2.5, "3"]))
    # per-neuron values and a drawn spike array need a size: scalars / no stimulus instead
    scalars = {k: Values(v.lo if v.scalar is None else v.scalar) for k, v in p.params.items()}
    initial = {k: Values(v.lo if v.scalar is None else v.scalar) for k, v in p.initial.items()}
    stim = None if p.kind == "array" else p.stimulus
    desc = _replace_pop(desc, p.name, size=size, params=scalars, initial=initial, stimulus=stim)
    return Broken(f"population size {size!r}", desc, (p.name,))


def case_bad_population_name(draw, desc):
    p = _some_pop(draw, desc)
    bad = draw(st.sampled_from(BAD_NAMES))
    return Broken(f"population name {bad!r}", _rename_pop(desc, p.name, bad), (bad,))


def case_bad_projection_name(draw, desc):
    desc, q = _with_projection(draw, desc)
    bad = draw(st.sampled_from(BAD_NAMES))
    return Broken(f"projection name {bad!r}", _replace_proj(desc, q.name, name=bad), (bad,))


def case_bad_network_name(draw, desc):
    bad = draw(st.sampled_from(BAD_NAMES))
    return Broken(f"network name {bad!r}", replace(desc, name=bad), (bad,))


def case_duplicate_name(draw, desc):
    desc, q = _with_projection(draw, desc)
    p = _some_pop(draw, desc)
    if draw(st.booleans()):  # a projection named like a population
        return Broken(
            "projection named like a population",
            _replace_proj(desc, q.name, name=p.name),
            (p.name,),
        )
    twin = replace(p)
    return Broken(
        "two populations with one name", replace(desc, pops=(*desc.pops, twin)), (p.name,)
    )


def case_unknown_reference(draw, desc):
    desc, q = _with_projection(draw, desc)
    side = draw(st.sampled_from(["pre", "post"]))
    bad = fresh(desc, draw(st.sampled_from(["nope", "ghost", "Exc"])))
    # the synapses as drawn for the defined populations (the builder cannot size them now)
    i, j, _, _ = synapses(desc, q)
    desc = _replace_proj(desc, q.name, **{side: bad}, index_override=(i, j))
    return Broken(f"projection {side} population {bad!r} undefined", desc, (q.name, bad))


def case_index_out_of_range(draw, desc):
    desc, q = _with_projection(draw, desc)
    i, j, _, _ = synapses(desc, q)
    n = max(1, i.size)
    i = np.resize(i, n) if i.size else np.zeros(1, np.int64)
    j = np.resize(j, n) if j.size else np.zeros(1, np.int64)
    side = draw(st.sampled_from(["pre", "post"]))
    size = desc.pop(q.pre if side == "pre" else q.post).size
    bad = draw(st.sampled_from([size, size + 3, -1]))
    k = draw(st.integers(0, n - 1))
    target = (i if side == "pre" else j).copy()
    target[k] = bad
    override = (target, j) if side == "pre" else (i, target)
    desc = _replace_proj(desc, q.name, index_override=override, weight=Values(0.5), delay=1)
    return Broken(f"{side} index {bad}", desc, (q.name, str(bad)))


def case_nonfinite_weight(draw, desc):
    desc, q = _with_projection(draw, desc)
    bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return Broken(f"weight {bad}", _replace_proj(desc, q.name, weight=Values(bad)), (q.name,))


def case_bad_delay(draw, desc):
    desc, q = _with_projection(draw, desc)
    bad = draw(st.sampled_from([0, -1, -3]))
    return Broken(f"delay {bad}", _replace_proj(desc, q.name, delay=bad), (q.name,))


def case_unknown_port(draw, desc):
    desc, q = _with_projection(draw, desc)
    bad = draw(st.sampled_from(["inh2", "excitatory", "v"]))
    post = desc.pop(q.post)
    if bad in PORTS[post.kind]:
        bad = "nope"
    return Broken(f"port {bad!r}", _replace_proj(desc, q.name, port=bad), (q.name, bad))


def case_probe_unknown_variable(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    bad = draw(st.sampled_from(["w", "u", "i_ext", "tau_m", "spike"]))
    pb = ProbeDesc("state", p.name, bad)
    return Broken(
        f"state probe variable {bad!r}", replace(desc, probes=(*desc.probes, pb)), (p.name, bad)
    )


def case_probe_unknown_population(draw, desc):
    kind = draw(st.sampled_from(["raster", "events", "state"]))
    ghost = fresh(desc, "ghost")
    pb = ProbeDesc(kind, ghost, "v" if kind == "state" else None)
    return Broken(
        f"{kind} probe on undefined population",
        replace(desc, probes=(*desc.probes, pb)),
        (ghost,),
    )


def case_probe_index_out_of_range(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    bad = draw(st.sampled_from([p.size, p.size + 5, -1]))
    var = draw(st.sampled_from(STATE[p.kind]))
    probes = tuple(
        pb
        for pb in desc.probes
        if not (pb.kind == "state" and (pb.population, pb.variable) == (p.name, var))
    )
    pb = ProbeDesc("state", p.name, var, (0, bad))
    # the probe is identified by its population and variable; the index is the broken value
    return Broken(
        f"state probe index {bad}", replace(desc, probes=(*probes, pb)), (p.name, var, str(bad))
    )


def case_probe_bad_format(draw, desc):
    p = _some_pop(draw, desc)
    bad = draw(st.sampled_from(["spikes", "Raster", "event"]))
    pb = ProbeDesc(bad, p.name)
    return Broken(
        f"spike probe format {bad!r}", replace(desc, probes=(*desc.probes, pb)), (p.name, bad)
    )


def case_negative_refractory(draw, desc):
    pool = [p for p in desc.pops if p.kind == "if_curr_exp"]
    if not pool:
        p = PopDesc(fresh(desc, "extra_lif"), "if_curr_exp", 3, {"i_offset": Values(1.0)})
        desc = replace(desc, pops=(*desc.pops, p))
    else:
        p = draw(st.sampled_from(pool))
    bad = draw(st.sampled_from([-0.1, -1.0, -5.0]))
    params = {**p.params, "tau_refrac": Values(bad)}
    return Broken(
        f"tau_refrac {bad}", _replace_pop(desc, p.name, params=params), (p.name, "tau_refrac")
    )


#: time constants per model
TAUS = {
    "if_curr_exp": ("tau_m", "tau_syn_E", "tau_syn_I"),
    "nir_lif": ("tau",),
    "nir_cuba_lif": ("tau_mem", "tau_syn"),
}


def case_bad_time_constant(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    tau = draw(st.sampled_from(TAUS[p.kind]))
    bad = draw(st.sampled_from([0.0, -0.0, -1.0, -20.0]))
    params = {**p.params, tau: Values(bad)}
    return Broken(f"{tau} = {bad}", _replace_pop(desc, p.name, params=params), (p.name, tau))


def case_nonfinite_parameter(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    k = draw(st.sampled_from(sorted(PARAM_RANGES[p.kind])))
    bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    params = {**p.params, k: Values(bad)}
    return Broken(f"parameter {k} = {bad}", _replace_pop(desc, p.name, params=params), (p.name, k))


def case_nonfinite_initial(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    k = draw(st.sampled_from(STATE[p.kind]))
    bad = draw(st.sampled_from([math.nan, math.inf]))
    initial = {**p.initial, k: Values(bad)}
    return Broken(f"initial {k} = {bad}", _replace_pop(desc, p.name, initial=initial), (p.name, k))


def case_unknown_parameter(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    bad = draw(st.sampled_from(["tau_x", "threshold", "w_max"]))
    params = {**p.params, bad: Values(1.0)}
    return Broken(
        f"unknown parameter {bad!r}", _replace_pop(desc, p.name, params=params), (p.name, bad)
    )


def case_w_min_above_w_max(draw, desc):
    rule = draw(st.sampled_from(RULES))
    desc, q = _with_projection(draw, desc, rule=rule)
    q = next(x for x in desc.projs if x.name == q.name)
    w_max = draw(st.sampled_from([0.0, 0.5, 1.0]))
    params = {**q.rule_params, "w_min": w_max + draw(st.sampled_from([0.1, 1.0])), "w_max": w_max}
    return Broken(
        "w_min > w_max", _replace_proj(desc, q.name, rule_params=params), (q.name, "w_min")
    )


def case_nonfinite_rule_parameter(draw, desc):
    rule = draw(st.sampled_from(RULES))
    desc, q = _with_projection(draw, desc, rule=rule)
    q = next(x for x in desc.projs if x.name == q.name)
    k = draw(st.sampled_from(rule_param_names(rule)))
    params = {**q.rule_params, k: draw(st.sampled_from([math.nan, math.inf]))}
    return Broken(
        f"plasticity {k} non-finite", _replace_proj(desc, q.name, rule_params=params), (q.name, k)
    )


def case_negative_rule_time_constant(draw, desc):
    rule = draw(st.sampled_from(RULES))
    desc, q = _with_projection(draw, desc, rule=rule)
    q = next(x for x in desc.projs if x.name == q.name)
    k = draw(st.sampled_from([n for n in rule_param_names(rule) if n.startswith("tau")]))
    params = {**q.rule_params, k: draw(st.sampled_from([0.0, -1.0, -20.0]))}
    return Broken(
        f"plasticity {k} <= 0", _replace_proj(desc, q.name, rule_params=params), (q.name, k)
    )


def case_unknown_rule_parameter(draw, desc):
    rule = draw(st.sampled_from(RULES))
    desc, q = _with_projection(draw, desc, rule=rule)
    q = next(x for x in desc.projs if x.name == q.name)
    params = {**q.rule_params, "A_plus_typo": 0.1}
    return Broken(
        "unknown plasticity parameter",
        _replace_proj(desc, q.name, rule_params=params),
        (q.name, "A_plus_typo"),
    )


def case_poisson_probability_above_one(draw, desc):
    desc, p = _with_source(draw, desc, "poisson")
    rate = _round(1000.0 / desc.dt * draw(st.sampled_from([1.01, 1.5, 10.0])))
    _, seed, start, stop = p.stimulus
    return Broken(
        f"poisson rate {rate} Hz at dt {desc.dt}",
        _replace_pop(desc, p.name, stimulus=(rate, seed, start, stop)),
        (p.name,),
    )


def case_poisson_bad_rate(draw, desc):
    desc, p = _with_source(draw, desc, "poisson")
    rate = draw(st.sampled_from([-1.0, math.nan, math.inf]))
    _, seed, start, stop = p.stimulus
    # PoissonSpikes is built before (and without) its population: its error names the rate
    return Broken(
        f"poisson rate {rate}",
        _replace_pop(desc, p.name, stimulus=(rate, seed, start, stop)),
        (str(rate),),
    )


def case_spike_array_neuron_out_of_range(draw, desc):
    desc, p = _with_source(draw, desc, "array")
    bad = draw(st.sampled_from([p.size, p.size + 4, -1]))
    stim = ("given", (0, 3), (0, bad))
    return Broken(
        f"spike array neuron {bad}", _replace_pop(desc, p.name, stimulus=stim), (p.name, str(bad))
    )


def case_spike_array_negative_step(draw, desc):
    desc, p = _with_source(draw, desc, "array")
    stim = ("given", (2, -1), (0, 0))
    # SpikeArray is built before (and without) its population: its error names the step
    return Broken("spike array step -1", _replace_pop(desc, p.name, stimulus=stim), ("-1",))


def case_current_unknown_population(draw, desc):
    ghost = fresh(desc, "ghost")
    c = CurrentDesc(ghost, "i_ext", 0, Values(0.1))
    return Broken(
        "current input to undefined population",
        replace(desc, currents=(*desc.currents, c)),
        (ghost,),
    )


def case_current_not_an_input(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    var = draw(st.sampled_from(["v", "i_offset", "nope"]))
    c = CurrentDesc(p.name, var, 0, Values(0.1))
    currents = tuple(x for x in desc.currents if x.population != p.name)
    return Broken(
        f"current input variable {var!r}", replace(desc, currents=(*currents, c)), (p.name, var)
    )


def case_current_nonfinite(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    c = CurrentDesc(
        p.name,
        "i_ext",
        draw(st.sampled_from([0, 3])),
        Values(draw(st.sampled_from([math.nan, math.inf]))),
    )
    currents = tuple(x for x in desc.currents if x.population != p.name)
    return Broken("current input non-finite", replace(desc, currents=(*currents, c)), (p.name,))


def case_bad_dt(draw, desc):
    bad = draw(st.sampled_from([0.0, -0.1, math.nan, math.inf]))
    return Broken(f"dt {bad}", replace(desc, dt=bad), ("dt",))


def case_parameter_wrong_length(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    k = draw(st.sampled_from(sorted(PARAM_RANGES[p.kind])))
    lo, hi = PARAM_RANGES[p.kind][k]
    extra = draw(st.sampled_from([1, 3, -1] if p.size > 1 else [1, 3]))
    params = {**p.params, k: Values(None, lo, hi, 0, extra)}
    return Broken(
        f"parameter {k} with {p.size + extra} values",
        _replace_pop(desc, p.name, params=params),
        (p.name, k),
    )


def case_weight_wrong_length(draw, desc):
    desc, q = _with_projection(draw, desc)
    w = Values(None, 0.0, 0.5, 0, draw(st.sampled_from([1, 2])))
    return Broken("weight array too long", _replace_proj(desc, q.name, weight=w), (q.name,))


def case_index_length_mismatch(draw, desc):
    desc, q = _with_projection(draw, desc)
    i, j, _, _ = synapses(desc, q)
    override = (np.append(i, 0), j) if draw(st.booleans()) else (i, np.append(j, 0))
    desc = _replace_proj(desc, q.name, index_override=override, weight=Values(0.5), delay=1)
    return Broken("pre and post index lengths differ", desc, (q.name,))


def case_non_integer_delay(draw, desc):
    desc, q = _with_projection(draw, desc)
    bad = draw(st.sampled_from([1.5, 2.25, math.nan]))
    return Broken(f"delay {bad}", _replace_proj(desc, q.name, delay=bad), (q.name,))


def case_non_integer_index(draw, desc):
    desc, q = _with_projection(draw, desc)
    i, j, _, _ = synapses(desc, q)
    i = np.append(i, 0).astype(np.float64)
    i[-1] = 0.5
    desc = _replace_proj(
        desc, q.name, index_override=(i, np.append(j, 0)), weight=Values(0.5), delay=1
    )
    return Broken("pre index 0.5", desc, (q.name,))


def case_plasticity_params_without_rule(draw, desc):
    desc, q = _with_projection(draw, desc)
    desc = _replace_proj(desc, q.name, rule=None, rule_params={"w_max": 1.0})
    return Broken("plasticity_params without a rule", desc, (q.name,))


def case_projection_onto_source(draw, desc):
    desc, src = _with_source(draw, desc, draw(st.sampled_from(["poisson", "array"])))
    desc, q = _with_projection(draw, desc)
    desc = _replace_proj(
        desc, q.name, post=src.name, index_override=None, connectivity=("all_to_all",)
    )
    return Broken("projection onto a spike source", desc, (q.name, src.name))


def case_stimulus_on_computed(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    stim = draw(st.sampled_from([(10.0, 1, 0, None), ("given", (0,), (0,))]))
    return Broken(
        "stimulus on a computed population", _replace_pop(desc, p.name, stimulus=stim), (p.name,)
    )


def case_duplicate_current(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    c = CurrentDesc(p.name, "i_ext", 0, Values(0.1))
    currents = tuple(x for x in desc.currents if x.population != p.name)
    return Broken(
        "two current inputs to one variable", replace(desc, currents=(*currents, c, c)), (p.name,)
    )


def case_current_wrong_columns(draw, desc):
    p = _some_pop(draw, desc, computed=True)
    extra = draw(st.sampled_from([1, 4] if p.size == 1 else [1, 4, -1]))
    c = CurrentDesc(p.name, "i_ext", draw(st.sampled_from([0, 5])), Values(0.1), extra)
    currents = tuple(x for x in desc.currents if x.population != p.name)
    return Broken(
        f"current input with {p.size + extra} columns",
        replace(desc, currents=(*currents, c)),
        (p.name,),
    )


def case_bad_integrator(draw, desc):
    bad = draw(st.sampled_from(["rk4", "Euler", ""]))
    return Broken(f"integrator {bad!r}", replace(desc, integrator=bad), ("integrator", bad))


def case_bad_reset_mode(draw, desc):
    bad = draw(st.sampled_from(["same", "next", "none"]))
    return Broken(f"reset_mode {bad!r}", replace(desc, reset_mode=bad), ("reset_mode", bad))


CASES = {name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")}


# ------------------------------------------------------------------------------ invalid run inputs
@dataclass(frozen=True)
class BrokenRun:
    """A valid network run with one run-time input (or the step count) broken."""

    case: str
    desc: NetDesc
    steps: Any
    inputs: dict[str, Any]
    names: tuple[str, ...]


@st.composite
def broken_runs(draw, case: str | None = None) -> BrokenRun:
    desc = draw(net_descs(reset_modes=("same_step",)))
    case = case if case is not None else draw(st.sampled_from(sorted(RUN_CASES)))
    steps = desc.steps
    inputs = run_inputs(desc)
    return RUN_CASES[case](draw, desc, steps, inputs)


def run_unknown_population(draw, desc, steps, inputs):
    ghost = fresh(desc, "ghost")
    key = draw(st.sampled_from([ghost, f"{ghost}.i_ext"]))
    inputs = {**inputs, key: np.zeros((steps, 1))}
    return BrokenRun(f"input for undefined {key!r}", desc, steps, inputs, (ghost,))


def run_spikes_to_computed(draw, desc, steps, inputs):
    p = _some_pop(draw, desc, computed=True)
    inputs = {**inputs, p.name: np.zeros((steps, p.size), bool)}
    return BrokenRun("spikes for a computed population", desc, steps, inputs, (p.name,))


def run_raster_wrong_shape(draw, desc, steps, inputs):
    desc, p = _with_source(draw, desc, "array")
    shape = draw(st.sampled_from([(steps + 1, p.size), (steps, p.size + 1), (p.size,)]))
    inputs = {**inputs, p.name: np.zeros(shape, bool)}
    return BrokenRun(f"raster of shape {shape}", desc, steps, inputs, (p.name,))


def run_raster_not_boolean(draw, desc, steps, inputs):
    desc, p = _with_source(draw, desc, "array")
    bad = draw(st.sampled_from([0.5, 2, -1]))
    raster = np.zeros((steps, p.size), dtype=np.float64 if bad == 0.5 else np.int64)
    raster[0, 0] = bad
    inputs = {**inputs, p.name: raster}
    return BrokenRun(f"raster with value {bad}", desc, steps, inputs, (p.name,))


def run_current_nonfinite(draw, desc, steps, inputs):
    p = _some_pop(draw, desc, computed=True)
    values = np.zeros((steps, p.size)) if draw(st.booleans()) else np.zeros(p.size)
    values.flat[-1] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    key = f"{p.name}.i_ext"
    return BrokenRun("non-finite current", desc, steps, {**inputs, key: values}, (key,))


def run_current_wrong_shape(draw, desc, steps, inputs):
    p = _some_pop(draw, desc, computed=True)
    shape = draw(st.sampled_from([(steps + 1, p.size), (steps, p.size + 1), (p.size + 1,)]))
    key = f"{p.name}.i_ext"
    return BrokenRun(
        f"current of shape {shape}", desc, steps, {**inputs, key: np.zeros(shape)}, (key,)
    )


def run_current_not_an_input(draw, desc, steps, inputs):
    p = _some_pop(draw, desc, computed=True)
    var = draw(st.sampled_from(["v", "tau_m", "i_offset", "nope"]))
    key = f"{p.name}.{var}"
    return BrokenRun(
        f"current into {key!r}", desc, steps, {**inputs, key: np.zeros(p.size)}, (p.name, var)
    )


def run_bad_steps(draw, desc, steps, inputs):
    bad = draw(st.sampled_from([-1, 2.5, True, "10"]))
    return BrokenRun(f"steps {bad!r}", desc, bad, {}, ("steps",))


RUN_CASES = {
    name[len("run_") :]: fn
    for name, fn in list(globals().items())
    if name.startswith("run_") and name != "run_inputs" and callable(fn)
}
