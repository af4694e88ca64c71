"""A network as a JSON document plus named arrays, and back.

:func:`to_dict` writes the document of ``network.json`` and the arrays of ``arrays.npz``;
:func:`from_dict` rebuilds the network from an untrusted document, element by element: the
structure with the checks of :mod:`.schema`, the values with the spec constructors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import SpecError
from ..models import NeuronModel, PlasticityRule
from ..names import check_name
from ..network import (
    CurrentInput,
    Discretization,
    Network,
    PoissonSpikes,
    Population,
    Projection,
    SpikeArray,
    SpikeProbe,
    StateProbe,
)
from ..operators import OperatorNode, is_json_scalar, operator_class
from ..spins import DenseCouplings, GlauberSpins, LowRankCouplings, OverlapProbe
from . import schema
from .npz import NUMERIC_KINDS, Npz, NpzError
from .schema import (
    DocError,
    check_entries,
    check_items,
    check_kind,
    check_object,
    check_typed,
    fail,
    item_path,
    key_path,
    located,
)

FORMAT = "neuromem-network"
VERSION = 1


# ================================================================== network -> document
class _Arrays:
    """Collects arrays under unique keys for the .npz file."""

    def __init__(self) -> None:
        self.data: dict[str, np.ndarray] = {}

    def put(self, key: str, a: np.ndarray) -> str:
        self.data[key] = np.asarray(a)
        return key


def _stimulus_to_dict(s, key: str, arrays: _Arrays) -> dict[str, Any] | None:
    if s is None:
        return None
    if isinstance(s, SpikeArray):
        return {
            "type": "SpikeArray",
            "steps": arrays.put(key + ".steps", s.steps),
            "neurons": arrays.put(key + ".neurons", s.neurons),
        }
    return {
        "type": "PoissonSpikes",
        "rate_hz": s.rate_hz,
        "seed": int(s.seed),
        "start": s.start,
        "stop": s.stop,
    }


def _operator_to_dict(op: OperatorNode, arrays: _Arrays) -> dict[str, Any]:
    """An operator node as its kind declares it: JSON scalars, and arrays in the .npz."""
    scalars, fields = op.to_fields()
    for f, v in scalars.items():
        if not is_json_scalar(v):
            raise SpecError(f"save: {op.where}: field {f!r} is not a JSON scalar ({v!r:.60})")
    for f in fields:
        check_name(f, f"save: {op.where}", "array field")
    k = f"op.{op.name}"
    return {
        "kind": op.kind,
        "module": type(op).__module__,
        "name": op.name,
        "inputs": dict(op.inputs),
        "drives": dict(op.drives),
        "scalars": scalars,
        "arrays": {f: arrays.put(f"{k}.{f}", a) for f, a in fields.items()},
    }


def to_dict(net: Network) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON document and the arrays of a network.

    Parameters
    ----------
    net : Network
        The network to describe.

    Returns
    -------
    doc : dict
        The content of ``network.json``; arrays appear in it by their keys.
    arrays : dict of str to numpy.ndarray
        The content of ``arrays.npz``.

    Raises
    ------
    SpecError
        If two different models or rules share a name, or an ELM node's ``meta`` is not
        JSON-serialisable.
    """
    arrays = _Arrays()
    d = net.discretization
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "name": net.name,
        "discretization": {
            "dt": d.dt,
            "integrator": d.integrator,
            "reset_mode": d.reset_mode,
            "delay_semantics": d.delay_semantics,
            "rng": d.rng,
        },
        "models": {},
        "rules": {},
        "populations": [],
        "projections": [],
        "currents": [],
        "probes": [],
        "spins": [],
    }
    for p in net.populations:
        doc["models"].setdefault(p.model.name, p.model.to_dict())
        if doc["models"][p.model.name] != p.model.to_dict():
            raise SpecError(f"save: two different neuron models are named {p.model.name!r}")
        k = f"pop.{p.name}"
        doc["populations"].append(
            {
                "name": p.name,
                "size": p.size,
                "model": p.model.name,
                "params": {n: arrays.put(f"{k}.param.{n}", v) for n, v in p.params.items()},
                "initial": {n: arrays.put(f"{k}.init.{n}", v) for n, v in p.initial.items()},
                "stimulus": _stimulus_to_dict(p.stimulus, f"{k}.stimulus", arrays),
            }
        )
    for pr in net.projections:
        k = f"proj.{pr.name}"
        rule = None
        if pr.plasticity is not None:
            rule = pr.plasticity.name
            doc["rules"].setdefault(rule, pr.plasticity.to_dict())
            if doc["rules"][rule] != pr.plasticity.to_dict():
                raise SpecError(f"save: two different plasticity rules are named {rule!r}")
        doc["projections"].append(
            {
                "name": pr.name,
                "pre": pr.pre,
                "post": pr.post,
                "port": pr.port,
                "pre_index": arrays.put(k + ".pre", pr.pre_index),
                "post_index": arrays.put(k + ".post", pr.post_index),
                "weight": arrays.put(k + ".weight", pr.weight),
                "delay": arrays.put(k + ".delay", pr.delay),
                "plasticity": rule,
                "plasticity_params": dict(pr.plasticity_params),
            }
            | ({} if pr.pre_port is None else {"pre_port": pr.pre_port})
        )
    for i, c in enumerate(net.currents):
        doc["currents"].append(
            {
                "population": c.population,
                "variable": c.variable,
                "values": arrays.put(f"current.{i}", c.values),
            }
        )
    for sp in net.spins:
        k = f"spins.{sp.name}"
        c = sp.couplings
        if isinstance(c, LowRankCouplings):
            couplings = {
                "type": "low_rank",
                "vectors": arrays.put(k + ".vectors", c.vectors),
                "weights": arrays.put(k + ".weights", c.weights),
                "scale": c.scale,
            }
        else:
            couplings = {"type": "dense", "matrix": arrays.put(k + ".matrix", c.matrix)}
        doc["spins"].append(
            {
                "name": sp.name,
                "couplings": couplings,
                "beta": sp.beta,
                "initial": arrays.put(k + ".initial", sp.initial),
                "update": sp.update,
                "tie": sp.tie,
                "seed": sp.seed,
                "rng": sp.rng,
            }
        )
    doc["operators"] = [_operator_to_dict(op, arrays) for op in net.operators]
    for i, pb in enumerate(net.probes):
        if isinstance(pb, SpikeProbe):
            doc["probes"].append(
                {"type": "spikes", "population": pb.population, "format": pb.format}
            )
        elif isinstance(pb, OverlapProbe):
            doc["probes"].append(
                {
                    "type": "overlap",
                    "spins": pb.spins,
                    "patterns": arrays.put(f"probe.{i}.patterns", pb.patterns),
                }
            )
        else:
            doc["probes"].append(
                {
                    "type": "state",
                    "population": pb.population,
                    "variable": pb.variable,
                    "indices": None if pb.indices is None else list(pb.indices),
                }
            )
    return doc, arrays.data


# ================================================================== document -> network
class ArrayGetter:
    """Hands out the arrays named by the document, refusing missing and non-numeric ones.

    ``used`` collects the keys handed out, so that unreferenced arrays can be refused.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray] | Npz) -> None:
        self.arrays = arrays
        self.used: set[str] = set()

    def __call__(self, key: Any, where: str) -> np.ndarray:
        check_kind(key, "array", where)
        if key not in self.arrays:
            fail(where, f"array {key[:80]!r} is missing from arrays.npz")
        try:
            a = self.arrays[key]
        except NpzError as exc:
            raise DocError(where, f"arrays.npz: array {key!r}: {exc}") from None
        if not isinstance(a, np.ndarray) or a.dtype.kind not in NUMERIC_KINDS:
            got = f"dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
            fail(where, f"array {key!r} holds {got}; expected booleans, integers or floats")
        self.used.add(key)
        return a


def rebuild(doc: Any, arr: ArrayGetter, source: str) -> Network:
    """The network of a parsed ``network.json``; any refusal is a :class:`SpecError`
    ``"load: <source>: <element>: <what is wrong>"``."""
    try:
        return _build(doc, arr)
    except DocError as exc:
        raise schema.refusal(source, exc) from exc.__cause__


def from_dict(
    doc: dict[str, Any], arrays: Mapping[str, np.ndarray], *, source: str = "network document"
) -> Network:
    """Rebuild a network (validated again) from its JSON document and arrays.

    Parameters
    ----------
    doc : dict
        A document as written by :func:`to_dict` (or parsed from an untrusted file).
    arrays : mapping of str to numpy.ndarray
        The arrays the document names.
    source : str
        What the refusals call the document.

    Raises
    ------
    SpecError
        ``"load: <source>: <element>: <what is wrong>"``, for any refusal.
    """
    return rebuild(doc, ArrayGetter(arrays), source)


def _named(
    entries: dict,
    section: str,
    cls: type[NeuronModel] | type[PlasticityRule],
    kinds: Mapping[str, str],
    pairs: tuple[str, ...],
    strings: tuple[str, ...],
    string_lists: tuple[str, ...] = (),
) -> dict:
    """The models or rules of the document's object ``section``, keyed by their names.

    ``pairs``, ``strings``: keys of objects whose values are [unit, default] pairs, strings;
    ``string_lists``: keys of lists of strings.
    """
    spec, optional = schema.fields_spec(cls, kinds)
    built = {}
    for n, m in entries.items():
        w = f"{section}[{n[:80]!r}]"
        check_object(m, w, spec, optional)
        for k in pairs:
            check_entries(m[k], key_path(w, k), "pair")
        for k in strings:
            check_entries(m[k], key_path(w, k), "str")
        for k in string_lists:
            check_items(m[k], key_path(w, k), "str")
        if m["name"] != n:
            fail(key_path(w, "name"), f"{m['name'][:80]!r} differs from its key {n[:80]!r}")
        with located(w):
            built[n] = cls.from_dict(m)
    return built


def _array_entries(d: dict, key: str, where: str, arr: ArrayGetter) -> dict[str, np.ndarray]:
    """The arrays named by the values of the object ``d[key]``."""
    w = key_path(where, key)
    return {n: arr(k, f"{w}[{n[:40]!r}]") for n, k in check_entries(d[key], w, "array").items()}


def _build(doc: Any, arr: ArrayGetter) -> Network:
    """The network of a parsed ``network.json`` (raises :class:`DocError`)."""
    check_kind(doc, "object", "the document")
    fmt = doc.get("format")
    if fmt != FORMAT:
        fail("", f"not a neuromem network file (format {fmt!r})")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        fail("", f"unsupported version {version!r} (this neuromem reads version {VERSION})")
    check_object(doc, "", schema.TOP, schema.TOP_OPTIONAL)

    disc = check_object(
        doc["discretization"],
        "discretization",
        schema.DISCRETIZATION,
        tuple(schema.DISCRETIZATION)[1:],
    )
    with located("discretization"):
        discretization = Discretization(**disc)

    models = _named(
        doc["models"],
        "models",
        NeuronModel,
        schema.MODEL,
        pairs=("state", "params", "ports"),
        strings=("odes",),
        string_lists=("clamped", "inputs"),
    )
    rules = _named(
        doc["rules"],
        "rules",
        PlasticityRule,
        schema.RULE,
        pairs=("params",),
        strings=("pre_traces", "post_traces"),
    )

    pops = []
    for i, p in enumerate(doc["populations"]):
        w = item_path("populations", i, p)
        check_object(p, w, schema.POPULATION)
        if p["model"] not in models:
            fail(key_path(w, "model"), f"unknown neuron model {p['model'][:80]!r}")
        params = _array_entries(p, "params", w, arr)
        initial = _array_entries(p, "initial", w, arr)
        stim = p["stimulus"]
        if stim is not None:
            sw = key_path(w, "stimulus")
            check_typed(stim, sw, "type", schema.STIMULI)
            with located(sw):
                if stim["type"] == "SpikeArray":
                    s = key_path(sw, "steps"), key_path(sw, "neurons")
                    stim = SpikeArray(arr(stim["steps"], s[0]), arr(stim["neurons"], s[1]))
                else:
                    stim = PoissonSpikes(stim["rate_hz"], stim["seed"], stim["start"], stim["stop"])
        with located(w):
            pops.append(Population(p["name"], p["size"], models[p["model"]], params, initial, stim))

    projs = []
    for i, pr in enumerate(doc["projections"]):
        w = item_path("projections", i, pr)
        check_object(pr, w, schema.PROJECTION, schema.PROJECTION_OPTIONAL)
        rule = pr["plasticity"]
        if rule is not None and rule not in rules:
            fail(key_path(w, "plasticity"), f"unknown plasticity rule {rule[:80]!r}")
        a = {k: arr(pr[k], key_path(w, k)) for k in schema.PROJECTION_ARRAYS}
        with located(w):
            projs.append(
                Projection(
                    pr["name"],
                    pr["pre"],
                    pr["post"],
                    a["pre_index"],
                    a["post_index"],
                    a["weight"],
                    a["delay"],
                    pr["port"],
                    None if rule is None else rules[rule],
                    pr["plasticity_params"],
                    pr.get("pre_port"),
                )
            )

    currents = []
    for i, c in enumerate(doc["currents"]):
        w = item_path("currents", i, c)
        check_object(c, w, schema.CURRENT)
        values = arr(c["values"], key_path(w, "values"))
        with located(w):
            currents.append(CurrentInput(c["population"], c["variable"], values))

    probes = []
    for i, pb in enumerate(doc["probes"]):
        w = item_path("probes", i, pb)
        check_typed(pb, w, "type", schema.PROBES)
        if pb["type"] == "spikes":
            with located(w):
                probes.append(SpikeProbe(pb["population"], pb.get("format", "raster")))
        elif pb["type"] == "overlap":
            patterns = arr(pb["patterns"], key_path(w, "patterns"))
            with located(w):
                probes.append(OverlapProbe(pb["spins"], patterns))
        else:
            idx = pb["indices"]
            if idx is not None:
                check_items(idx, key_path(w, "indices"), "int")
            with located(w):
                probes.append(
                    StateProbe(
                        pb["population"], pb["variable"], None if idx is None else tuple(idx)
                    )
                )

    spins = []
    for i, sp in enumerate(doc.get("spins", [])):
        w = item_path("spins", i, sp)
        check_object(sp, w, schema.SPINS)
        cw = key_path(w, "couplings")
        c = check_typed(sp["couplings"], cw, "type", schema.COUPLINGS)
        with located(cw):
            if c["type"] == "low_rank":
                vectors = arr(c["vectors"], key_path(cw, "vectors"))
                weights = arr(c["weights"], key_path(cw, "weights"))
                couplings = LowRankCouplings(vectors, weights, c["scale"])
            else:
                couplings = DenseCouplings(arr(c["matrix"], key_path(cw, "matrix")))
        initial = arr(sp["initial"], key_path(w, "initial"))
        with located(w):
            spins.append(
                GlauberSpins(
                    sp["name"],
                    couplings,
                    sp["beta"],
                    initial,
                    sp["update"],
                    sp["tie"],
                    sp["seed"],
                    sp["rng"],
                )
            )

    operators = []
    for i, op in enumerate(doc.get("operators", [])):
        w = item_path("operators", i, op)
        op = check_object(op, w, schema.OPERATOR)
        inputs = check_entries(op["inputs"], key_path(w, "inputs"), "str")
        drives = check_entries(op["drives"], key_path(w, "drives"), "str")
        aw = key_path(w, "arrays")
        fields = {f: arr(key, key_path(aw, f)) for f, key in op["arrays"].items()}
        with located(w):
            cls = operator_class(op["kind"], op["module"])
            operators.append(cls.from_fields(op["name"], inputs, op["scalars"], fields, drives))

    with located(""):
        return Network(
            doc["name"],
            discretization,
            tuple(pops),
            tuple(projs),
            tuple(currents),
            tuple(probes),
            tuple(spins),
            tuple(operators),
        )
