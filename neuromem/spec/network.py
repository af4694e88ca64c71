"""Network specification: populations, projections, stimuli, probes and the discretisation.

Pure data, immutable after construction, validated on construction. Arrays are stored read-only.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import SpecError
from .limits import check_bytes, current
from .models import NeuronModel, PlasticityRule
from .names import check_name, element
from .operators import OperatorNode, operator_order
from .spins import GlauberSpins, OverlapProbe

Scalar = float | int
ArrayLike = Any


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


_INT64_MAX = np.iinfo(np.int64).max


def _as_array(x: ArrayLike, where: str) -> np.ndarray:
    """``np.asarray(x)`` for numbers only: strings, objects and ragged lists are refused."""
    try:
        a = np.asarray(x)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SpecError(f"{where}: expected numbers, got {type(x).__name__} ({exc})") from None
    if a.dtype.kind == "O":
        big = [v for v in a.ravel() if isinstance(v, int) and abs(v) > _INT64_MAX]
        if big:
            raise SpecError(f"{where}: value {big[0]} is out of range (64-bit integers)")
    if a.dtype.kind not in "biuf":
        raise SpecError(f"{where}: expected numbers, got values of dtype {a.dtype}")
    return a


def _as_float(x: ArrayLike, where: str) -> np.ndarray:
    a = _as_array(x, where)
    if a.dtype.kind == "b":
        raise SpecError(f"{where}: expected numbers, got booleans")
    return a.astype(np.float64)


def _int_array(x: ArrayLike, where: str) -> np.ndarray:
    a = _as_array(x, where)
    if a.ndim != 1:
        raise SpecError(f"{where}: expected a 1-d integer array, got shape {a.shape}")
    if a.size and a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a)) | (np.abs(a) > 2.0**62)
        if bad.any():
            raise SpecError(f"{where}: expected integers, got {a[bad][0]!r}")
    elif a.size and a.dtype.kind == "u" and int(a.max()) > _INT64_MAX:
        raise SpecError(f"{where}: value {int(a.max())} is out of range")
    elif a.dtype.kind == "b":
        raise SpecError(f"{where}: expected integers, got booleans")
    return _readonly(a.astype(np.int64))


def _float_array(x: ArrayLike, n: int, where: str) -> np.ndarray:
    a = _as_float(x, where)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise SpecError(f"{where}: size mismatch, expected {n} values, got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise SpecError(f"{where}: non-finite value {a[bad][0]} at index {int(np.argmax(bad))}")
    return _readonly(a)


@dataclass(frozen=True)
class Discretization:
    """How continuous equations become time steps. Required: simulators disagree exactly here.

    Parameters
    ----------
    dt : float
        Time step (ms).
    integrator : {"exponential_euler", "euler"}
        ``exponential_euler``: each variable is integrated exactly with the others held at their
        start-of-step values (sPyNNaker's and Brian2's scheme; exact for linear ODEs driven by
        piecewise-constant input). ``euler``: forward Euler.
    reset_mode : {"same_step", "next_step"}
        ``same_step``: the reset is applied in the step of the spike (PyNN, Brian2, sPyNNaker).
        ``next_step``: applied at the start of the following step (snnTorch/NIR-style).
    delay_semantics : {"deliver_before_integration"}
        A spike emitted in step t through a delay of d >= 1 steps is added to its port at the
        start of step t + d, before that step's integration.
    rng : {"host_pregenerated"}
        Random spike trains are drawn on the host from numpy's PCG64 with the stimulus seed, so
        every backend sees the same spikes.
    """

    dt: float
    integrator: Literal["exponential_euler", "euler"] = "exponential_euler"
    reset_mode: Literal["same_step", "next_step"] = "same_step"
    delay_semantics: Literal["deliver_before_integration"] = "deliver_before_integration"
    rng: Literal["host_pregenerated"] = "host_pregenerated"

    def __post_init__(self) -> None:
        if (
            isinstance(self.dt, bool)
            or not isinstance(self.dt, int | float | np.floating | np.integer)
            or not math.isfinite(self.dt)
            or self.dt <= 0
        ):
            raise SpecError(f"discretization: dt must be a positive number of ms, got {self.dt!r}")
        object.__setattr__(self, "dt", float(self.dt))
        for name, allowed in (
            ("integrator", ("exponential_euler", "euler")),
            ("reset_mode", ("same_step", "next_step")),
            ("delay_semantics", ("deliver_before_integration",)),
            ("rng", ("host_pregenerated",)),
        ):
            if getattr(self, name) not in allowed:
                raise SpecError(
                    f"discretization: {name} {getattr(self, name)!r} is not one of {allowed}"
                )

    def steps(self, t_ms: float) -> int:
        """Convert a duration in ms to a whole number of steps (error if not a multiple of dt)."""
        k = round(t_ms / self.dt)
        if abs(k * self.dt - t_ms) > 1e-9 * max(1.0, abs(t_ms)):
            raise SpecError(f"discretization: {t_ms} ms is not a whole number of dt={self.dt} ms")
        return k


# ------------------------------------------------------------------------------------ stimuli
@dataclass(frozen=True)
class SpikeArray:
    """Given spikes of a spike source: neuron ``neurons[k]`` fires in step ``steps[k]``."""

    steps: np.ndarray
    neurons: np.ndarray

    def __post_init__(self) -> None:
        s = _int_array(self.steps, "spike array steps")
        n = _int_array(self.neurons, "spike array neurons")
        if s.shape != n.shape:
            raise SpecError(f"spike array: size mismatch, {s.size} steps but {n.size} neurons")
        if s.size and s.min() < 0:
            raise SpecError(f"spike array: negative step {int(s.min())}")
        object.__setattr__(self, "steps", s)
        object.__setattr__(self, "neurons", n)

    @classmethod
    def from_raster(cls, raster: ArrayLike) -> SpikeArray:
        """From a boolean (steps, neurons) raster."""
        r = np.asarray(raster, dtype=bool)
        steps, neurons = np.nonzero(r)
        return cls(steps, neurons)


@dataclass(frozen=True)
class PoissonSpikes:
    """Poisson spike trains: each step a neuron fires with probability ``rate_hz * dt / 1000``.

    Drawn on the host (numpy PCG64, ``seed``) over steps ``[start, stop)``.
    """

    rate_hz: float
    seed: int
    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        for k in ("rate_hz", "seed", "start", "stop"):
            v = getattr(self, k)
            ok = isinstance(v, numbers.Real) if k == "rate_hz" else isinstance(v, int | np.integer)
            if isinstance(v, bool) or not (ok or (k == "stop" and v is None)):
                kind = "a number" if k == "rate_hz" else "an integer"
                raise SpecError(f"poisson stimulus: {k} must be {kind}, got {v!r}")
        if not math.isfinite(self.rate_hz) or self.rate_hz < 0:
            raise SpecError(f"poisson stimulus: rate must be >= 0 Hz, got {self.rate_hz}")
        if not isinstance(self.seed, int | np.integer):
            raise SpecError(f"poisson stimulus: seed must be an integer, got {self.seed!r}")
        if self.start < 0 or (self.stop is not None and self.stop < self.start):
            raise SpecError(f"poisson stimulus: bad step window [{self.start}, {self.stop})")
        object.__setattr__(self, "rate_hz", float(self.rate_hz))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "start", int(self.start))
        if self.stop is not None:
            object.__setattr__(self, "stop", int(self.stop))


@dataclass(frozen=True)
class CurrentInput:
    """Drives an external input variable of a population (e.g. ``i_ext`` in nA).

    ``values`` is (steps, size) — one row per step from step 0, zero afterwards — or (size,)
    for a constant drive.
    """

    population: str
    variable: str
    values: np.ndarray

    def __post_init__(self) -> None:
        check_name(self.population, "current input", "population")
        check_name(self.variable, element("current input to", self.population), "variable")
        v = _as_float(self.values, f"current input to {self.population!r}")
        if v.ndim not in (1, 2):
            raise SpecError(f"current input to {self.population!r}: values must be 1-d or 2-d")
        if not np.all(np.isfinite(v)):
            raise SpecError(f"current input to {self.population!r}: non-finite values")
        object.__setattr__(self, "values", _readonly(v))


# ------------------------------------------------------------------------------------ probes
SPIKE_FORMATS = ("raster", "events")


@dataclass(frozen=True)
class SpikeProbe:
    """Records the spikes of a population.

    Parameters
    ----------
    population : str
    format : {"raster", "events"}
        ``"raster"``: a bool array (steps, size) per run call (``Probes.spikes``);
        ``"events"``: the (step, neuron) pairs of the spikes in time order, ascending neuron
        within a step (``Probes.events``), O(spikes) memory.
    """

    population: str
    format: str = "raster"

    def __post_init__(self) -> None:
        check_name(self.population, "spike probe", "population")
        if self.format not in SPIKE_FORMATS:
            raise SpecError(
                f"spike probe on {self.population!r}: format {self.format!r} is not one of "
                f"{', '.join(map(repr, SPIKE_FORMATS))}"
            )


@dataclass(frozen=True)
class StateProbe:
    """Records a state variable of a population in every step, after reset."""

    population: str
    variable: str
    indices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_name(self.population, "state probe", "population")
        check_name(self.variable, element("state probe on", self.population), "variable")
        if self.indices is not None:
            where = element("state probe on", self.population)
            if isinstance(self.indices, str | bytes) or not hasattr(self.indices, "__iter__"):
                raise SpecError(f"{where}: indices must be a sequence of integers")
            idx = []
            for i in self.indices:
                if isinstance(i, bool) or not isinstance(i, int | np.integer):
                    raise SpecError(f"{where}: index {i!r} is not an integer")
                idx.append(int(i))
            object.__setattr__(self, "indices", tuple(idx))


# ------------------------------------------------------------------------------------ nodes
@dataclass(frozen=True)
class Population:
    """A group of neurons of one model.

    Parameters
    ----------
    name : str
    size : int
    model : NeuronModel
    params : dict
        Parameter values (scalars or per-neuron arrays) overriding the model defaults.
    initial : dict
        Initial state values overriding the model defaults.
    stimulus : SpikeArray or PoissonSpikes, optional
        Only for spike-source models; without one, spikes are given to ``run`` as inputs.
    """

    name: str
    size: int
    model: NeuronModel
    params: dict[str, Any] = field(default_factory=dict)
    initial: dict[str, Any] = field(default_factory=dict)
    stimulus: SpikeArray | PoissonSpikes | None = None

    def __post_init__(self) -> None:
        where = element("population", self.name)
        check_name(self.name, element("population", self.name), "name")
        if not isinstance(self.model, NeuronModel):
            raise SpecError(
                f"{where}: model must be a NeuronModel, got {type(self.model).__name__}"
            )
        for k in ("params", "initial"):
            if not isinstance(getattr(self, k), dict):
                raise SpecError(f"{where}: {k} must be a mapping")
        if self.stimulus is not None and not isinstance(self.stimulus, SpikeArray | PoissonSpikes):
            raise SpecError(f"{where}: stimulus must be a SpikeArray or PoissonSpikes")
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int | np.integer)
            or self.size <= 0
        ):
            raise SpecError(f"{where}: size must be a positive integer, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))
        per_neuron = len(self.model.params) + 2 * len(self.model.state) + len(self.model.inputs)
        check_bytes(8.0 * self.size * (per_neuron + 2), where, f"{self.size} neurons")
        params = {}
        for k, v in self.params.items():
            if k not in self.model.params:
                raise SpecError(
                    f"{where}: unknown parameter {k!r} for model "
                    f"{self.model.name!r} (has {', '.join(self.model.params)})"
                )
            params[k] = _float_array(v, self.size, f"{where}, parameter {k!r}")
        for k, (_, default) in self.model.params.items():
            if k not in params:
                if default is None:
                    raise SpecError(
                        f"{where}: parameter {k!r} of model {self.model.name!r} "
                        "has no default and was not given"
                    )
                params[k] = _float_array(default, self.size, f"{where}, parameter {k!r}")
        initial = {}
        for k, v in self.initial.items():
            if k not in self.model.state:
                raise SpecError(
                    f"{where}: unknown state variable {k!r} for model {self.model.name!r}"
                )
            initial[k] = _float_array(v, self.size, f"{where}, initial {k!r}")
        for k, (_, default) in self.model.state.items():
            initial.setdefault(k, _float_array(default, self.size, f"{where}, initial {k!r}"))
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "initial", initial)
        if self.stimulus is not None:
            if not self.model.spike_source:
                raise SpecError(
                    f"{where}: a spike stimulus needs a spike-source model, not {self.model.name!r}"
                )
            if isinstance(self.stimulus, SpikeArray) and self.stimulus.neurons.size:
                n = self.stimulus.neurons
                bad = (n < 0) | (n >= self.size)
                if bad.any():
                    raise SpecError(
                        f"{where}: spike array names neuron {int(n[bad][0])}, out of range for "
                        f"size {self.size}"
                    )


@dataclass(frozen=True)
class Projection:
    """Synapses from ``pre`` to ``post``: explicit index arrays, weights and integer delays.

    Parameters
    ----------
    name : str
    pre, post : str
        Population names.
    pre_index, post_index : array of int
        One entry per synapse.
    weight : float or array
        Per synapse (units of the port's variable before scaling, e.g. nA).
    delay : int or array of int
        Per synapse, in steps (>= 1).
    port : str
        Port of the post model that receives the events (e.g. ``"exc"``).
    plasticity : PlasticityRule, optional
    plasticity_params : dict
        Values for the rule's parameters (scalars).
    pre_port : str, optional
        When ``pre`` is an operator node: its spike output port (default: its only one). The
        operator's spikes of step ``t`` are emitted in step ``t + 1`` (operators run after
        propagation; docs/architecture.md).
    """

    name: str
    pre: str
    post: str
    pre_index: np.ndarray
    post_index: np.ndarray
    weight: Any
    delay: Any = 1
    port: str = "exc"
    plasticity: PlasticityRule | None = None
    plasticity_params: dict[str, float] = field(default_factory=dict)
    pre_port: str | None = None

    def __post_init__(self) -> None:
        where = element("projection", self.name)
        if self.pre_port is not None:
            check_name(self.pre_port, where, "pre_port")
        check_name(self.name, element("projection", self.name), "name")
        check_name(self.pre, where, "pre population")
        check_name(self.post, where, "post population")
        check_name(self.port, where, "port")
        if self.plasticity is not None and not isinstance(self.plasticity, PlasticityRule):
            raise SpecError(f"{where}: plasticity must be a PlasticityRule")
        if not isinstance(self.plasticity_params, dict):
            raise SpecError(f"{where}: plasticity_params must be a mapping")
        pre = _int_array(self.pre_index, f"{where}, pre_index")
        post = _int_array(self.post_index, f"{where}, post_index")
        if pre.shape != post.shape:
            raise SpecError(
                f"{where}: size mismatch, {pre.size} pre indices but {post.size} post indices"
            )
        n = pre.size
        weight = _float_array(self.weight, n, f"{where}, weight")
        d = np.asarray(self.delay)
        if d.ndim == 0:
            d = np.full(n, d)
        delay = _int_array(d, f"{where}, delay")
        if delay.shape != (n,):
            raise SpecError(f"{where}: size mismatch, expected {n} delays, got {delay.size}")
        if n and delay.min() < 1:
            raise SpecError(
                f"{where}: delay {int(delay.min())} steps; delays must be >= 1 step "
                "(a spike cannot act within the step that emits it)"
            )
        for k, v in (
            ("pre_index", pre),
            ("post_index", post),
            ("weight", weight),
            ("delay", delay),
        ):
            object.__setattr__(self, k, v)
        if self.plasticity is not None:
            rule = self.plasticity
            params = {}
            for k, v in self.plasticity_params.items():
                if k not in rule.params:
                    raise SpecError(
                        f"{where}: unknown parameter {k!r} of plasticity rule {rule.name!r}"
                    )
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise SpecError(f"{where}: plasticity parameter {k!r} must be a number")
                if not math.isfinite(float(v)):
                    raise SpecError(f"{where}: plasticity parameter {k!r} is {v}")
                params[k] = float(v)
            for k, (_, default) in rule.params.items():
                if k not in params:
                    if default is None:
                        raise SpecError(f"{where}: plasticity parameter {k!r} not given")
                    params[k] = float(default)
            if "w_min" in params and "w_max" in params and params["w_min"] > params["w_max"]:
                raise SpecError(
                    f"{where}: plasticity parameter w_min = {params['w_min']} is above "
                    f"w_max = {params['w_max']}"
                )
            object.__setattr__(self, "plasticity_params", params)
        elif self.plasticity_params:
            raise SpecError(f"{where}: plasticity_params given without a plasticity rule")


def _pre_size(pr: Projection, pops: dict[str, Population], ops: dict[str, OperatorNode]) -> int:
    """Size of a projection's pre side: a population, or an operator's spike output port."""
    if pr.pre in pops:
        return pops[pr.pre].size
    if pr.pre not in ops:
        raise SpecError(
            f"projection {pr.name!r}: undefined pre population {pr.pre!r} (nor an operator node)"
        )
    op = ops[pr.pre]
    spiking = {p: port for p, port in op.output_ports().items() if port.kind == "spikes"}
    port = (
        pr.pre_port
        if pr.pre_port is not None
        else (next(iter(spiking)) if len(spiking) == 1 else None)
    )
    if port not in spiking:
        raise SpecError(
            f"projection {pr.name!r}: pre operator {pr.pre!r} has no spike output port "
            f"{pr.pre_port!r} (spike outputs: {', '.join(spiking) or 'none'}; name one with "
            "pre_port)"
        )
    return spiking[port].size


@dataclass(frozen=True)
class Network:
    """A whole network; validated on construction.

    Parameters
    ----------
    name : str
    discretization : Discretization
    populations, projections : sequence
    currents : sequence of CurrentInput
    probes : sequence of SpikeProbe / StateProbe / OverlapProbe
    spins : sequence of GlauberSpins
        Spin nodes; one network step is one sweep of each (they do not interact with the
        spiking populations).
    operators : sequence of OperatorNode
        Operator nodes (``neuromem.spec.operators``): each reads the spikes of populations or
        the outputs of other operators; a spike output may be the ``pre`` of a projection.
    """

    name: str
    discretization: Discretization
    populations: tuple[Population, ...] = ()
    projections: tuple[Projection, ...] = ()
    currents: tuple[CurrentInput, ...] = ()
    probes: tuple[SpikeProbe | StateProbe | OverlapProbe, ...] = ()
    spins: tuple[GlauberSpins, ...] = ()
    operators: tuple[OperatorNode, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.name, element("network", self.name), "name")
        if not isinstance(self.discretization, Discretization):
            raise SpecError(
                f"network {self.name!r}: a Discretization is required (dt, "
                "integrator, reset mode, delay semantics, RNG policy)"
            )
        for k in ("populations", "projections", "currents", "probes", "spins", "operators"):
            object.__setattr__(self, k, tuple(getattr(self, k)))
        pops: dict[str, Population] = {}
        for p in self.populations:
            if not isinstance(p, Population):
                raise SpecError(f"network {self.name!r}: {p!r} is not a Population")
            if p.name in pops:
                raise SpecError(f"network {self.name!r}: two populations named {p.name!r}")
            pops[p.name] = p
        ops = self._check_operators(pops)
        names = set()
        for pr in self.projections:
            where = f"projection {pr.name!r}"
            if pr.name in names or pr.name in pops or pr.name in ops:
                raise SpecError(f"network {self.name!r}: name {pr.name!r} used twice")
            names.add(pr.name)
            sizes = {"pre": _pre_size(pr, pops, ops), "post": None}
            if pr.post not in pops:
                raise SpecError(f"{where}: undefined post population {pr.post!r}")
            sizes["post"] = pops[pr.post].size
            if pr.pre_port is not None and pr.pre in pops:
                raise SpecError(f"{where}: pre_port is only for an operator node as pre")
            for side, pname, idx in (
                ("pre", pr.pre, pr.pre_index),
                ("post", pr.post, pr.post_index),
            ):
                n = sizes[side]
                if idx.size and (idx.min() < 0 or idx.max() >= n):
                    bad = int(idx.max() if idx.max() >= n else idx.min())
                    raise SpecError(
                        f"{where}: {side} index {bad} out of range for "
                        f"{'population' if pname in pops else 'operator output'} "
                        f"{pname!r} of size {n}"
                    )
            post_model = pops[pr.post].model
            if pr.port not in post_model.ports:
                raise SpecError(
                    f"{where}: population {pr.post!r} (model {post_model.name!r}) has "
                    f"no port {pr.port!r}; ports: {', '.join(post_model.ports)}"
                )
        self._check_budgets(pops)
        for p in pops.values():
            stim = p.stimulus
            if isinstance(stim, PoissonSpikes):
                prob = stim.rate_hz * self.discretization.dt / 1000.0
                if prob > 1.0:
                    raise SpecError(
                        f"population {p.name!r}: Poisson rate {stim.rate_hz} Hz is a spike "
                        f"probability of {prob:g} per step of {self.discretization.dt} ms "
                        "(at most 1)"
                    )
        for c in self.currents:
            if c.population not in pops:
                raise SpecError(f"current input: undefined population {c.population!r}")
            p = pops[c.population]
            if c.variable not in p.model.inputs:
                raise SpecError(
                    f"current input to {p.name!r}: {c.variable!r} is not an input "
                    f"variable of model {p.model.name!r} (inputs: {p.model.inputs})"
                )
            if c.values.shape[-1] != p.size:
                raise SpecError(
                    f"current input to {p.name!r}: size mismatch, {c.values.shape[-1]}"
                    f" columns for {p.size} neurons"
                )
        spins: dict[str, GlauberSpins] = {}
        for sp in self.spins:
            if not isinstance(sp, GlauberSpins):
                raise SpecError(f"network {self.name!r}: {sp!r} is not a GlauberSpins node")
            if sp.name in spins or sp.name in pops or sp.name in names or sp.name in ops:
                raise SpecError(f"network {self.name!r}: name {sp.name!r} used twice")
            spins[sp.name] = sp
        for pb in self.probes:
            if isinstance(pb, StateProbe) and pb.population in ops:
                op = ops[pb.population]
                outs = op.output_ports()
                if pb.variable not in outs:
                    raise SpecError(
                        f"state probe on {op.where}: {pb.variable!r} is not an output port "
                        f"(outputs: {', '.join(outs)})"
                    )
                if pb.indices is not None:
                    raise SpecError(f"state probe on {op.where}: indices are not supported")
                continue
            if isinstance(pb, OverlapProbe):
                if pb.spins not in spins:
                    raise SpecError(f"overlap probe: undefined spin node {pb.spins!r}")
                if pb.patterns.shape[1] != spins[pb.spins].size:
                    raise SpecError(
                        f"overlap probe on {pb.spins!r}: size mismatch, patterns have "
                        f"{pb.patterns.shape[1]} columns for {spins[pb.spins].size} spins"
                    )
                continue
            if isinstance(pb, StateProbe) and pb.population in spins:
                if pb.variable != "sigma":
                    raise SpecError(
                        f"state probe on spins {pb.population!r}: the only variable is 'sigma'"
                    )
                continue
            if pb.population not in pops:
                raise SpecError(f"probe: undefined population {pb.population!r}")
            if isinstance(pb, StateProbe):
                model = pops[pb.population].model
                if pb.variable not in model.state:
                    raise SpecError(
                        f"state probe on {pb.population!r}: {pb.variable!r} is not "
                        f"a state variable of {model.name!r}"
                    )
                size = pops[pb.population].size
                bad = [i for i in pb.indices or () if i < 0 or i >= size]
                if bad:
                    raise SpecError(
                        f"state probe on {pb.population!r}, variable {pb.variable!r}: index "
                        f"{bad[0]} out of range for size {size}"
                    )

    def _check_operators(self, pops: dict[str, Population]) -> dict[str, OperatorNode]:
        """Operator nodes: unique names, sources that exist with matching sizes, no cycle.
        Returns them by name, in an order in which each runs after the operators it reads."""
        ops: dict[str, OperatorNode] = {}
        for op in self.operators:
            if not isinstance(op, OperatorNode):
                raise SpecError(f"network {self.name!r}: {op!r} is not an operator node")
            if op.name in ops or op.name in pops:
                raise SpecError(f"network {self.name!r}: name {op.name!r} used twice")
            ops[op.name] = op
        for op in ops.values():
            ports = op.input_ports()
            for port, (src, out_port) in op.sources().items():
                if out_port is None and src in pops:
                    size, what = pops[src].size, f"population {src!r}"
                elif out_port is not None and src in ops:
                    outs = ops[src].output_ports()
                    if out_port not in outs:
                        raise SpecError(
                            f"{op.where}: input port {port!r} reads {src}.{out_port}, but "
                            f"{ops[src].where} has no output port {out_port!r} "
                            f"(outputs: {', '.join(outs)})"
                        )
                    size, what = outs[out_port].size, f"output {src}.{out_port}"
                else:
                    raise SpecError(
                        f"{op.where}: input port {port!r} reads {op.inputs[port]!r}, which is "
                        "not a population or operator output ('node.port') of this network"
                    )
                if size != ports[port].size:
                    raise SpecError(
                        f"{op.where}: size mismatch: input port {port!r} has "
                        f"{ports[port].size} values, {what} has {size}"
                    )
            outs = op.output_ports()
            for port, target in op.drives.items():
                pop, var = target.split(".", 1)
                if pop not in pops or var not in pops[pop].model.inputs:
                    raise SpecError(
                        f"{op.where}: drives {target!r}, which is not an input variable of a "
                        "population of this network"
                    )
                if outs[port].size != pops[pop].size:
                    raise SpecError(
                        f"{op.where}: size mismatch: output {port!r} has {outs[port].size} "
                        f"values, population {pop!r} has {pops[pop].size}"
                    )
        return {op.name: op for op in operator_order(list(ops.values()))}

    def _check_budgets(self, pops: dict[str, Population]) -> None:
        """Refuse a network whose delay rings or arrays exceed :mod:`neuromem.spec.limits`."""
        where = element("network", self.name)
        receivers: dict[tuple[str, str], int] = {}
        max_delay, synapses = 1, 0
        for pr in self.projections:
            synapses += pr.pre_index.size
            if pr.delay.size:
                max_delay = max(max_delay, int(pr.delay.max()))
            receivers[(pr.post, pr.port)] = pops[pr.post].size
        slots = (max_delay + 1) * max(sum(receivers.values()), 1)
        if self.projections and slots > current().max_ring_slots:
            raise SpecError(
                f"{where}: the delay rings would need {slots:,} slots (longest delay "
                f"{max_delay} steps + 1, times {sum(receivers.values()):,} receiving neurons), "
                f"more than the budget of {current().max_ring_slots:,} "
                "(neuromem.spec.limits.set_limits(max_ring_slots=...) raises it)"
            )
        neurons = sum(
            8.0 * p.size * (len(p.params) + 2 * len(p.initial) + 2) for p in pops.values()
        )
        check_bytes(neurons + 8.0 * 6 * synapses + 8.0 * slots, where, "the network's arrays")

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise SpecError(f"network {self.name!r}: undefined population {name!r}")

    def projection(self, name: str) -> Projection:
        for p in self.projections:
            if p.name == name:
                return p
        raise SpecError(f"network {self.name!r}: undefined projection {name!r}")
