"""The structure of ``network.json``, and the checks of an untrusted document against it.

Each check names the element it refuses by its path in the document, e.g.
``populations[2] ('exc').stimulus``, by raising :class:`DocError`; :func:`refusal` turns that
into the :class:`~neuromem.errors.SpecError` the caller sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from ...errors import SpecError


class DocError(Exception):
    """A refusal at one element of the document (``where``: its path, e.g. ``probes[3]``)."""

    def __init__(self, where: str, msg: str) -> None:
        super().__init__(where, msg)
        self.where, self.msg = where, msg


def fail(where: str, msg: str) -> NoReturn:
    """Refuse the element at ``where``."""
    raise DocError(where, msg)


def refusal(source: str, exc: DocError) -> SpecError:
    """The error a caller sees: ``load: <source>: <element>: <what is wrong>``."""
    where = f"{exc.where}: " if exc.where else ""
    return SpecError(f"load: {source}: {where}{exc.msg}")


#: Raised by constructors for bad values that are not SpecError (converted to SpecError).
_STRAY = (LookupError, TypeError, AttributeError, ValueError, ArithmeticError, RecursionError)


@contextlib.contextmanager
def located(where: str) -> Iterator[None]:
    """Re-raise whatever rebuilding the element at ``where`` raises as a located refusal."""
    try:
        yield
    except DocError:
        raise
    except SpecError as exc:
        raise DocError(where, str(exc)) from exc
    except _STRAY as exc:
        raise DocError(where, f"cannot be rebuilt ({type(exc).__name__}: {exc})") from exc


def key_path(where: str, key: str) -> str:
    """The path of ``key`` of the object at ``where``."""
    return f"{where}.{key}" if where else key


def item_path(where: str, i: int, d: Any) -> str:
    """The path of item ``i`` of the list at ``where``, with the item's name if it has one."""
    name = d.get("name") if isinstance(d, dict) else None
    if isinstance(name, str):
        return f"{where}[{i}] ({name[:80]!r})"
    return f"{where}[{i}]"


_KIND_TEXT = {
    "str": "a string",
    "int": "an integer",
    "num": "a number",
    "bool": "true or false",
    "object": "an object",
    "list": "a list",
    "pair": "a [unit, default] pair",
    "array": "the name of an array in arrays.npz",
    "any": "a value",
}


def describe(v: Any) -> str:
    """How a JSON value is described in a refusal."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return f"a list of {len(v)}"
    if isinstance(v, int) and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    if not isinstance(v, str | int | float):
        return type(v).__name__
    text = repr(v)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"a string ({text})" if isinstance(v, str) else f"a number ({text})"


def check_kind(v: Any, kind: str, where: str) -> Any:
    """``v`` if it has the JSON kind ``kind`` (``"str?"``: a string or null), else refuse."""
    if kind.endswith("?"):
        if v is None:
            return v
        kind = kind[:-1]
    if kind in ("str", "array"):
        ok = isinstance(v, str)
    elif kind == "int":
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif kind == "num":
        ok = isinstance(v, int | float) and not isinstance(v, bool)
    elif kind == "bool":
        ok = isinstance(v, bool)
    elif kind == "object":
        ok = isinstance(v, dict)
    elif kind == "list":
        ok = isinstance(v, list)
    elif kind == "pair":
        ok = isinstance(v, list) and len(v) == 2
    else:
        ok = True
    if not ok:
        fail(where, f"expected {_KIND_TEXT[kind]}, got {describe(v)}")
    return v


def check_object(
    d: Any, where: str, spec: Mapping[str, str], optional: tuple[str, ...] = ()
) -> dict:
    """``d`` if it is an object with the keys of ``spec`` (all but ``optional`` required, no
    others), each of its JSON kind."""
    check_kind(d, "object", where or "the document")
    for k in spec:
        if k not in d and k not in optional:
            fail(where, f"missing key {k!r}")
    for k in d:
        if k not in spec:
            shown = k if len(k) <= 40 else k[:37] + "..."
            fail(where, f"unknown key {shown!r} (expected {', '.join(map(repr, spec))})")
    for k, v in d.items():
        check_kind(v, spec[k], key_path(where, k))
    return d


def check_entries(d: dict, where: str, kind: str) -> dict:
    """Every value of the object ``d`` has the JSON kind ``kind``."""
    for k, v in d.items():
        check_kind(v, kind, f"{where}[{k[:40]!r}]")
    return d


def check_items(items: list, where: str, kind: str) -> list:
    """Every item of the list ``items`` has the JSON kind ``kind``."""
    for i, v in enumerate(items):
        check_kind(v, kind, f"{where}[{i}]")
    return items


def check_typed(d: Any, where: str, key: str, specs: Mapping[str, tuple[dict, tuple]]) -> dict:
    """An object whose ``key`` (e.g. ``"type"``) picks its spec among ``specs``."""
    check_kind(d, "object", where)
    if key not in d:
        fail(where, f"missing key {key!r}")
    t = d[key]
    if not isinstance(t, str) or t not in specs:
        shown = repr(t[:40]) if isinstance(t, str) else describe(t)
        fail(
            key_path(where, key), f"unknown {key} {shown} (expected {', '.join(map(repr, specs))})"
        )
    spec, optional = specs[t]
    return check_object(d, where, {key: "str", **spec}, optional)


def fields_spec(cls: type, known: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Keys of a saved model/rule: its dataclass fields (those with defaults and unknown
    kinds are optional, so fields added later load from older files)."""
    spec, optional = {}, []
    for f in dataclasses.fields(cls):
        spec[f.name] = known.get(f.name, "any")
        has_default = f.default is not dataclasses.MISSING or (
            f.default_factory is not dataclasses.MISSING
        )
        if f.name not in known and has_default:
            optional.append(f.name)
    return spec, tuple(optional)


# ------------------------------------------------------------------ the elements
# Kinds: "str", "int", "num", "bool", "object", "list", "pair", "array" (an array's key),
# "any"; a trailing "?" also allows null. Typed elements map their type to (keys, optional).
MODEL = {
    "name": "str",
    "state": "object",
    "params": "object",
    "odes": "object",
    "threshold": "str?",
    "reset": "str?",
    "refractory": "str?",
    "clamped": "list",
    "ports": "object",
    "inputs": "list",
    "spike_source": "bool",
}
RULE = {
    "name": "str",
    "params": "object",
    "pre_traces": "object",
    "post_traces": "object",
    "on_pre": "str",
    "on_post": "str",
}
TOP = {
    "format": "str",
    "version": "int",
    "name": "str",
    "discretization": "object",
    "models": "object",
    "rules": "object",
    "populations": "list",
    "projections": "list",
    "currents": "list",
    "probes": "list",
    "spins": "list",
    "operators": "list",
}
TOP_OPTIONAL = ("spins", "operators")  # files saved before spins and operators existed
DISCRETIZATION = {
    "dt": "num",
    "integrator": "str",
    "reset_mode": "str",
    "delay_semantics": "str",
    "rng": "str",
}
POPULATION = {
    "name": "str",
    "size": "int",
    "model": "str",
    "params": "object",
    "initial": "object",
    "stimulus": "object?",
}
STIMULI = {
    "SpikeArray": ({"steps": "array", "neurons": "array"}, ()),
    "PoissonSpikes": ({"rate_hz": "num", "seed": "int", "start": "int", "stop": "int?"}, ()),
}
PROJECTION = {
    "name": "str",
    "pre": "str",
    "post": "str",
    "port": "str",
    "pre_index": "array",
    "post_index": "array",
    "weight": "array",
    "delay": "array",
    "plasticity": "str?",
    "plasticity_params": "object",
    "pre_port": "str",
}
#: Keys a projection may leave out (``pre_port``: only for an operator as ``pre``).
PROJECTION_OPTIONAL = ("pre_port",)
PROJECTION_ARRAYS = ("pre_index", "post_index", "weight", "delay")
CURRENT = {"population": "str", "variable": "str", "values": "array"}
PROBES = {
    "spikes": ({"population": "str", "format": "str"}, ("format",)),
    "overlap": ({"spins": "str", "patterns": "array"}, ()),
    "state": ({"population": "str", "variable": "str", "indices": "list?"}, ()),
}
SPINS = {
    "name": "str",
    "couplings": "object",
    "beta": "num",
    "initial": "array",
    "update": "str",
    "tie": "str",
    "seed": "int",
    "rng": "str",
}
COUPLINGS = {
    "low_rank": ({"vectors": "array", "weights": "array", "scale": "num"}, ()),
    "dense": ({"matrix": "array"}, ()),
}
#: An operator node: its kind (and the module that registered it, named in errors only), its
#: name and inputs, and the fields its kind declares (neuromem.spec.operators).
OPERATOR = {
    "kind": "str",
    "module": "str",
    "name": "str",
    "inputs": "object",
    "drives": "object",
    "scalars": "object",
    "arrays": "object",
}
