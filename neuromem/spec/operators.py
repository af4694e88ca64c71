"""Operator nodes: blocks of a network that are not spiking populations, as plug-ins.

An operator *kind* (an ELM layer, a Hopfield memory, a model's own block) is declared once, in
the module of the model that owns it, as a frozen dataclass that subclasses
:class:`OperatorNode` and is registered with :func:`register_operator`. The spec, the lowering,
save/load and every backend handle it through this protocol only; none of them names a kind.

What a kind declares
--------------------
- ``kind`` (class attribute): its registry key, a plain identifier (saved in ``network.json``).
- fields: ``name`` and ``inputs`` (input port -> source) first, then its own fields. Arrays are
  ``np.ndarray`` fields (stored read-only, saved in ``arrays.npz``); everything else is a JSON
  scalar (numbers, strings, booleans, None, lists and dicts of them). A kind whose fields do
  not fit this overrides :meth:`OperatorNode.to_fields` / :meth:`OperatorNode.from_fields`.
- :meth:`OperatorNode.input_ports` / :meth:`OperatorNode.output_ports`: named ports with sizes
  and a value kind (``"spikes"`` or ``"real"``). An input reads the spikes of a population (its
  source is the population's name) or an output of another operator (``"node.port"``). A
  ``"spikes"`` output may be the ``pre`` of a projection; any output may be probed with
  ``StateProbe(node, port)`` or read by another operator.
- ``trainable`` (class attribute): the array fields the torch implementation learns.
- ``phase`` (class attribute): where in ``neuromem.lower.PHASES`` it runs (``"operators"``,
  after the spiking populations' step).
- the reference semantics of one time step, in the class docstring: what the outputs of step
  ``t`` are given the inputs of step ``t`` and the operator's state.

The meaning of a step (docs/architecture.md, phase ``operators``): in step ``t`` every operator
reads its inputs of step ``t`` (this step's spikes of its populations, this step's outputs of
the operators it reads, which run before it) and emits its outputs of step ``t``. A spike output
that drives a projection acts like a spike source whose spikes in step ``t + 1`` are the
operator's output of step ``t``: operators run after propagation, so their spikes enter the
network one step later, and then travel with the projection's delay.

Backends implement a kind with :func:`neuromem.backends.operators.register_implementation`,
also from the model's module, so that adding a kind edits no file of the library.
"""

from __future__ import annotations

import dataclasses
import importlib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import SpecError
from .names import check_name, element, name_problem

#: Value kinds of a port.
PORT_KINDS = ("spikes", "real")

#: Operator kinds that ship with neuromem live in modules under this package; load imports
#: such a module (named in the file) to register its kind. No other module named by a file is
#: ever imported: a kind of your own is registered by importing its module before ``load``.
SHIPPED_PACKAGE = "neuromem.models."

_KINDS: dict[str, type[OperatorNode]] = {}


@dataclass(frozen=True)
class Port:
    """A port of an operator: ``size`` values per step of kind ``"spikes"`` or ``"real"``."""

    size: int
    kind: str = "real"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int | np.integer):
            raise SpecError(f"port: size must be an integer, got {self.size!r}")
        if self.size <= 0:
            raise SpecError(f"port: size must be positive, got {self.size}")
        if self.kind not in PORT_KINDS:
            raise SpecError(f"port: kind {self.kind!r} is not one of {PORT_KINDS}")


@dataclass(frozen=True)
class OperatorNode:
    """Base of every operator kind (see the module docstring).

    Parameters
    ----------
    name : str
        The node's name, unique in the network.
    inputs : dict[str, str]
        Input port -> source: a population name (its spikes) or ``"node.port"`` (an output of
        another operator node).
    drives : dict[str, str]
        Real output port -> ``"population.input"``: the output is added to that input variable
        of the population (e.g. a current, nA), as a ``CurrentInput`` is, one step later (the
        operator's output of step ``t`` drives step ``t + 1``).
    """

    kind: ClassVar[str] = ""
    phase: ClassVar[str] = "operators"
    trainable: ClassVar[frozenset[str]] = frozenset()

    name: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    drives: Mapping[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ declared by a kind
    def input_ports(self) -> dict[str, Port]:
        """Input port -> :class:`Port`."""
        raise NotImplementedError(f"operator kind {self.kind!r} must declare input_ports")

    def output_ports(self) -> dict[str, Port]:
        """Output port -> :class:`Port`."""
        raise NotImplementedError(f"operator kind {self.kind!r} must declare output_ports")

    def validate(self) -> None:
        """Checks of the kind's own fields (raise :class:`SpecError` naming the node)."""

    # ------------------------------------------------------------------ the protocol
    @property
    def where(self) -> str:
        """The node in error messages: ``"operator 'x' (kind 'elm')"``."""
        return f"{element('operator', self.name)} (kind {self.kind!r})"

    def __post_init__(self) -> None:
        check_name(self.name, element("operator", self.name), "name")
        if type(self).kind not in _KINDS or _KINDS[type(self).kind] is not type(self):
            raise SpecError(
                f"{self.where}: {type(self).__name__} is not a registered operator kind "
                "(decorate it with neuromem.spec.operators.register_operator)"
            )
        if not isinstance(self.inputs, Mapping):
            raise SpecError(f"{self.where}: inputs must be a mapping of port -> source")
        inputs = dict(self.inputs)
        for port, source in inputs.items():
            check_name(port, self.where, "input port")
            _check_source(source, self.where, port)
        object.__setattr__(self, "inputs", inputs)
        if not isinstance(self.drives, Mapping):
            raise SpecError(f"{self.where}: drives must be a mapping of port -> 'population.input'")
        drives = dict(self.drives)
        for port, target in drives.items():
            check_name(port, self.where, "driving port")
            pop, dot, var = target.partition(".") if isinstance(target, str) else ("", "", "")
            if not dot:
                raise SpecError(
                    f"{self.where}: drives[{port!r}] must be 'population.input', got {target!r}"
                )
            check_name(pop, self.where, f"population driven by port {port!r}")
            check_name(var, self.where, f"input variable driven by port {port!r}")
        object.__setattr__(self, "drives", drives)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                a = np.array(v, copy=True)
                a.setflags(write=False)
                object.__setattr__(self, f.name, a)
        self.validate()
        ins, outs = self.input_ports(), self.output_ports()
        for ports, what in ((ins, "input port"), (outs, "output port")):
            for p, port in ports.items():
                check_name(p, self.where, what)
                if not isinstance(port, Port):
                    raise SpecError(f"{self.where}: {what} {p!r} must be a Port")
        for port in drives:
            if port not in outs or outs[port].kind != "real":
                raise SpecError(f"{self.where}: drives names {port!r}, which is not a real output")
        missing = sorted(set(ins) - set(inputs))
        extra = sorted(set(inputs) - set(ins))
        if missing or extra:
            raise SpecError(
                f"{self.where}: inputs must name a source for each input port "
                f"({', '.join(ins) or 'none'}); missing {missing}, unknown {extra}"
            )

    def sources(self) -> dict[str, tuple[str, str | None]]:
        """Input port -> (source element, output port or None for a population's spikes)."""
        out = {}
        for port, source in self.inputs.items():
            node, _, out_port = source.partition(".")
            out[port] = (node, out_port or None)
        return out

    def to_fields(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON scalars, arrays) of the kind's own fields, for save."""
        scalars, arrays = {}, {}
        for f in dataclasses.fields(self):
            if f.name in ("name", "inputs", "drives"):
                continue
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                arrays[f.name] = v
            else:
                scalars[f.name] = v
        return scalars, arrays

    @classmethod
    def from_fields(
        cls,
        name: str,
        inputs: dict[str, str],
        scalars: dict[str, Any],
        arrays: dict[str, Any],
        drives: dict[str, str] | None = None,
    ) -> OperatorNode:
        """The node from what :meth:`to_fields` gave (used by load)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"name", "inputs", "drives"}
        unknown = sorted((set(scalars) | set(arrays)) - known)
        if unknown:
            raise SpecError(
                f"{element('operator', name)} (kind {cls.kind!r}): unknown field(s) {unknown}"
            )
        return cls(name, inputs, drives or {}, **scalars, **arrays)


def _check_source(source: Any, where: str, port: str) -> None:
    if not isinstance(source, str):
        raise SpecError(f"{where}: the source of input port {port!r} must be a string")
    node, dot, out_port = source.partition(".")
    check_name(node, where, f"source of input port {port!r}")
    if dot:
        check_name(out_port, where, f"output port of the source of input port {port!r}")


def register_operator(cls: type[OperatorNode]) -> type[OperatorNode]:
    """Class decorator: register an operator kind (its ``kind`` must be a plain identifier
    not registered by another class)."""
    if not (isinstance(cls, type) and issubclass(cls, OperatorNode)):
        raise SpecError(f"register_operator: {cls!r} is not an OperatorNode subclass")
    if "kind" not in cls.__dict__:
        raise SpecError(f"register_operator: {cls.__name__} must set its own class attribute kind")
    kind = cls.kind
    if name_problem(kind) is not None:
        raise SpecError(f"register_operator: kind {kind!r} of {cls.__name__}: {name_problem(kind)}")
    old = _KINDS.get(kind)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise SpecError(
            f"register_operator: kind {kind!r} is already registered by "
            f"{old.__module__}.{old.__qualname__}"
        )
    _KINDS[kind] = cls
    return cls


def operator_class(kind: str, module: str | None = None) -> type[OperatorNode]:
    """The class registered for ``kind``.

    ``module`` is the module that registered the kind when the network was saved (it comes
    from the file): it is imported only if it is a module of neuromem's own models
    (:data:`SHIPPED_PACKAGE`), otherwise only named in the error."""
    if kind not in _KINDS and _is_shipped(module):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SpecError(f"operator kind {kind!r}: cannot import {module!r} ({exc})") from None
    if kind not in _KINDS:
        hint = (
            f"; it was registered by module {module!r} when saved: import that module first"
            if isinstance(module, str) and module
            else ""
        )
        raise SpecError(
            f"operator kind {kind!r} is not registered (registered: "
            f"{', '.join(sorted(_KINDS)) or 'none'}){hint}"
        )
    return _KINDS[kind]


def _is_shipped(module: object) -> bool:
    return (
        isinstance(module, str)
        and module.startswith(SHIPPED_PACKAGE)
        and all(part.isidentifier() and part.isascii() for part in module.split("."))
    )


def operator_order(ops: list[OperatorNode]) -> list[OperatorNode]:
    """``ops`` ordered so that every node comes after the operators it reads (stable: the
    given order where there is a choice); a cycle is a :class:`SpecError` naming it."""
    by_name = {op.name: op for op in ops}
    done: dict[str, bool] = {}  # name -> finished (False while on the stack)
    out: list[OperatorNode] = []

    def visit(op: OperatorNode, path: list[str]) -> None:
        if done.get(op.name) is True:
            return
        if op.name in done:
            cycle = " -> ".join([*path[path.index(op.name) :], op.name])
            raise SpecError(f"operators: the inputs form a cycle {cycle}")
        done[op.name] = False
        for src, port in op.sources().values():
            if port is not None and src in by_name:
                visit(by_name[src], [*path, op.name])
        done[op.name] = True
        out.append(op)

    for op in ops:
        visit(op, [])
    return out


def operator_kinds() -> dict[str, type[OperatorNode]]:
    """Registered kind -> class."""
    return dict(_KINDS)


def is_json_scalar(v: Any) -> bool:
    """Whether ``v`` can be a scalar field of an operator in ``network.json``."""
    if v is None or isinstance(v, bool | str):
        return True
    if isinstance(v, numbers.Real):
        return True
    if isinstance(v, list | tuple):
        return all(is_json_scalar(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and is_json_scalar(x) for k, x in v.items())
    return False
