"""Neuron models and plasticity rules, written once as equations.

Units follow one consistent system so that no conversion factors appear in equations:
time ms, voltage mV, current nA, capacitance nF, resistance MOhm, rate Hz (converted where used).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from ..equations import Expression, Statement, parse_expression, parse_statements
from ..errors import SpecError
from .names import check_name, check_names, element

#: Names every equation may read besides its model's own variables.
BUILTINS = frozenset({"dt"})
#: Flags synaptic plasticity statements may read: did the pre / post neuron spike this step.
EVENT_FLAGS = frozenset({"pre_event", "post_event"})


def _mapping(d: Any, where: str, field: str) -> dict[str, Any]:
    """A fresh dict copy of ``d`` (None: empty); anything that is not a mapping is refused."""
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise SpecError(f"{where}: {field} must be a mapping, got {type(d).__name__}")
    return dict(d)


def _names_tuple(x: Any, where: str, field: str) -> tuple[str, ...]:
    if isinstance(x, str) or not isinstance(x, list | tuple):
        raise SpecError(f"{where}: {field} must be a list of names, got {x!r}")
    return tuple(x)


def _check_entries(d: dict[str, Any], where: str, what: str, default_required: bool) -> None:
    """Each entry is (unit string, default number or None); defaults are finite."""
    for k, v in d.items():
        ok = isinstance(v, tuple | list) and len(v) == 2 and isinstance(v[0], str)
        default = v[1] if ok else None
        if ok and default is None:
            ok = not default_required
        elif ok:
            ok = isinstance(default, numbers.Real) and not isinstance(default, bool)
            if ok and not math.isfinite(default):
                raise SpecError(f"{where}: {what} {k!r} has non-finite default {default}")
        if not ok:
            need = "a number" if default_required else "a number or None"
            raise SpecError(f"{where}: {what} {k!r} must be (unit string, {need}), got {v!r}")


@dataclass(frozen=True)
class NeuronModel:
    """A point-neuron model given as equations.

    Parameters
    ----------
    name : str
        Model name (appears in error messages and saved files).
    state : dict[str, tuple[str, float]]
        State variable -> (unit, default initial value).
    params : dict[str, tuple[str, float | None]]
        Parameter -> (unit, default value or None when it must be given).
    odes : dict[str, str]
        State variable -> right-hand side of ``d var / dt`` (units of var per ms).
    threshold : str or None
        Boolean expression; a neuron spikes in a step where it is true. ``None``: never spikes.
    reset : str
        Statements applied to a neuron in the step it spikes (e.g. ``"v = v_reset"``).
    refractory : str or None
        Parameter holding the refractory period (ms); it lasts ``ceil(period / dt)`` steps.
    clamped : tuple of str
        State variables that are not integrated while refractory (usually the membrane).
    ports : dict[str, tuple[str, str]]
        Synaptic port -> (state variable, scale expression). An event of weight ``w`` arriving at
        the port adds ``w * scale`` to the variable (scale may read params and ``dt``).
    inputs : tuple of str
        External input variables (e.g. ``i_ext``, nA); zero unless a current stimulus drives them.
    spike_source : bool
        True for populations whose spikes are given (stimulus or run-time input), not computed.
    """

    name: str
    state: dict[str, tuple[str, float]] = field(default_factory=dict)
    params: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    odes: dict[str, str] = field(default_factory=dict)
    threshold: str | None = None
    reset: str | None = None
    refractory: str | None = None
    clamped: tuple[str, ...] = ()
    ports: dict[str, tuple[str, str]] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    spike_source: bool = False

    def __post_init__(self) -> None:
        where = element("neuron model", self.name)
        check_name(self.name, element("neuron model", self.name), "name")
        for d in ("state", "params", "odes", "ports"):
            object.__setattr__(self, d, _mapping(getattr(self, d), where, d))
        object.__setattr__(self, "clamped", _names_tuple(self.clamped, where, "clamped"))
        object.__setattr__(self, "inputs", _names_tuple(self.inputs, where, "inputs"))
        check_names(self.state, where, "state variable name")
        check_names(self.params, where, "parameter name")
        check_names(self.inputs, where, "input name")
        check_names(self.ports, where, "port name")
        _check_entries(self.state, where, "state variable", default_required=True)
        _check_entries(self.params, where, "parameter", default_required=False)
        for port, target in self.ports.items():
            if not (isinstance(target, tuple) and len(target) == 2):
                raise SpecError(f"{where}: port {port!r} must be (state variable, scale)")
        if not isinstance(self.spike_source, bool):
            raise SpecError(f"{where}: spike_source must be True or False")
        clash = (set(self.state) & set(self.params)) | (
            set(self.inputs) & (set(self.state) | set(self.params))
        )
        if clash:
            raise SpecError(f"{where}: name(s) {sorted(clash)} used twice")
        for n in (*self.state, *self.params, *self.inputs):
            if n in BUILTINS or n in EVENT_FLAGS:
                raise SpecError(f"{where}: variable name {n!r} is reserved")
        for var in self.odes:
            if var not in self.state:
                raise SpecError(f"{where}: equation for {var!r}, which is not a state variable")
        for var in self.clamped:
            if var not in self.state:
                raise SpecError(f"{where}: clamped variable {var!r} is not a state variable")
        if self.refractory is not None and self.refractory not in self.params:
            raise SpecError(f"{where}: refractory parameter {self.refractory!r} is not a parameter")
        for port, (var, _) in self.ports.items():
            if var not in self.state:
                raise SpecError(f"{where}: port {port!r} targets {var!r}, not a state variable")
        # parse everything once so that errors surface on construction
        self.ode_expressions()
        self.threshold_expression()
        self.reset_statements()
        self.port_scales()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.state) | frozenset(self.params) | frozenset(self.inputs) | BUILTINS

    def ode_expressions(self) -> dict[str, Expression]:
        return {
            v: parse_expression(rhs, f"neuron model {self.name!r}, equation d{v}/dt", self.names)
            for v, rhs in self.odes.items()
        }

    def threshold_expression(self) -> Expression | None:
        if self.threshold is None:
            return None
        return parse_expression(
            self.threshold, f"neuron model {self.name!r}, threshold", self.names
        )

    def reset_statements(self) -> tuple[Statement, ...]:
        if not self.reset:
            return ()
        return parse_statements(
            self.reset, f"neuron model {self.name!r}, reset", self.names, targets=self.state
        )

    def port_scales(self) -> dict[str, tuple[str, Expression]]:
        known = frozenset(self.params) | BUILTINS
        return {
            p: (var, parse_expression(scale, f"neuron model {self.name!r}, port {p!r}", known))
            for p, (var, scale) in self.ports.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": {k: list(v) for k, v in self.state.items()},
            "params": {k: list(v) for k, v in self.params.items()},
            "odes": dict(self.odes),
            "threshold": self.threshold,
            "reset": self.reset,
            "refractory": self.refractory,
            "clamped": list(self.clamped),
            "ports": {k: list(v) for k, v in self.ports.items()},
            "inputs": list(self.inputs),
            "spike_source": self.spike_source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronModel:
        return cls(
            name=d["name"],
            state={k: (v[0], v[1]) for k, v in d["state"].items()},
            params={k: (v[0], v[1]) for k, v in d["params"].items()},
            odes=d["odes"],
            threshold=d["threshold"],
            reset=d["reset"],
            refractory=d["refractory"],
            clamped=tuple(d["clamped"]),
            ports={k: (v[0], v[1]) for k, v in d["ports"].items()},
            inputs=tuple(d["inputs"]),
            spike_source=d["spike_source"],
        )


@dataclass(frozen=True)
class PlasticityRule:
    """A spike-timing plasticity rule with per-neuron traces.

    Traces live on neurons, not synapses (all-to-all pairing). In each step, after
    threshold/reset: traces integrate their ODEs; the synaptic statements of ``on_post`` run for
    every synapse whose post neuron spiked this step, then those of ``on_pre`` for every synapse
    whose pre neuron spiked this step; then the trace statements of both. So traces read by
    synaptic statements never include this step's spikes: pairs at equal times count only
    through the flags ``pre_event`` / ``post_event`` (true when the other side also spiked this
    step). Pre spikes are timed at emission, post spikes when they occur (no dendritic delay,
    sPyNNaker's ``backprop_delay=False``); the weight a spike carries is the one after its own
    update. See docs/architecture.md.

    Parameters
    ----------
    name : str
    params : dict[str, tuple[str, float | None]]
        Parameter -> (unit, default).
    pre_traces, post_traces : dict[str, str]
        Trace -> right-hand side of its ODE (e.g. ``"-apre / tau_plus"``); initial value 0.
    on_pre, on_post : str
        Statements. They may assign ``w`` and the traces of their own side and read ``w``,
        all traces, parameters and the flags ``pre_event`` and ``post_event``.
    """

    name: str
    params: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    pre_traces: dict[str, str] = field(default_factory=dict)
    post_traces: dict[str, str] = field(default_factory=dict)
    on_pre: str = ""
    on_post: str = ""

    def __post_init__(self) -> None:
        where = element("plasticity rule", self.name)
        check_name(self.name, element("plasticity rule", self.name), "name")
        for d in ("params", "pre_traces", "post_traces"):
            object.__setattr__(self, d, _mapping(getattr(self, d), where, d))
        check_names(self.params, where, "parameter name")
        check_names(self.pre_traces, where, "pre trace name")
        check_names(self.post_traces, where, "post trace name")
        _check_entries(self.params, where, "parameter", default_required=False)
        for k in ("on_pre", "on_post"):
            if not isinstance(getattr(self, k), str):
                raise SpecError(f"{where}: {k} must be a string of statements")
        names = [*self.params, *self.pre_traces, *self.post_traces, "w"]
        if len(set(names)) != len(names):
            raise SpecError(f"{where}: a name is used twice among {names}")
        reserved = sorted(set(names[:-1]) & (BUILTINS | EVENT_FLAGS))
        if reserved:
            raise SpecError(f"{where}: name(s) {reserved} are reserved")
        self.trace_odes()
        self.pre_statements()
        self.post_statements()

    @property
    def names(self) -> frozenset[str]:
        return (
            frozenset(self.params)
            | frozenset(self.pre_traces)
            | frozenset(self.post_traces)
            | {"w"}
            | EVENT_FLAGS
            | BUILTINS
        )

    def trace_odes(self) -> dict[str, Expression]:
        out = {}
        for side, traces in (("pre", self.pre_traces), ("post", self.post_traces)):
            own = frozenset(traces) | frozenset(self.params) | BUILTINS
            for tr, rhs in traces.items():
                out[tr] = parse_expression(
                    rhs, f"plasticity rule {self.name!r}, {side} trace {tr!r}", own
                )
        return out

    def _statements(self, text: str, side: str, own: dict[str, str]):
        if not text:
            return (), ()
        stmts = parse_statements(
            text, f"plasticity rule {self.name!r}, on_{side}", self.names, targets={"w", *own}
        )
        synaptic = tuple(s for s in stmts if s.target == "w")
        neuronal = tuple(s for s in stmts if s.target != "w")
        for s in neuronal:
            if s.value.names & ({"w"} | EVENT_FLAGS):
                raise SpecError(
                    f"plasticity rule {self.name!r}, on_{side}: trace {s.target!r} "
                    "cannot depend on the weight w or the event flags"
                )
        return synaptic, neuronal

    def pre_statements(self):
        """(per-synapse statements, per-pre-neuron trace statements) run on a pre spike."""
        return self._statements(self.on_pre, "pre", self.pre_traces)

    def post_statements(self):
        """(per-synapse statements, per-post-neuron trace statements) run on a post event."""
        return self._statements(self.on_post, "post", self.post_traces)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": {k: list(v) for k, v in self.params.items()},
            "pre_traces": dict(self.pre_traces),
            "post_traces": dict(self.post_traces),
            "on_pre": self.on_pre,
            "on_post": self.on_post,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlasticityRule:
        return cls(
            name=d["name"],
            params={k: (v[0], v[1]) for k, v in d["params"].items()},
            pre_traces=d["pre_traces"],
            post_traces=d["post_traces"],
            on_pre=d["on_pre"],
            on_post=d["on_post"],
        )
