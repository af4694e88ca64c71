"""Versioned save/load of a Network: ``<dir>/network.json`` plus ``<dir>/arrays.npz``.

A save writes into a temporary directory beside the target and renames it into place, so a save
that fails half-way leaves nothing behind (and an existing save untouched).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpecError
from .models import NeuronModel, PlasticityRule
from .network import (
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
from .operators import ELMNode
from .spins import DenseCouplings, GlauberSpins, LowRankCouplings, OverlapProbe

FORMAT = "neuromem-network"
VERSION = 1


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


_ELM_ARRAYS = (
    "routing_index",
    "routing_mask",
    "w_s",
    "tau_s",
    "tau_m",
    "mlp_w0",
    "mlp_b0",
    "mlp_w1",
    "mlp_b1",
    "w_y",
    "b_y",
)
_ELM_SCALARS = (
    "num_input",
    "num_branch",
    "num_synapse_per_branch",
    "lambda_value",
    "activation",
    "learn_memory_tau",
    "dt",
)


def _elm_to_dict(op: ELMNode, arrays: _Arrays) -> dict[str, Any]:
    p = op.params
    try:
        json.dumps(p.meta)
    except TypeError:
        raise SpecError(
            f"save: ELM node {op.name!r}: params.meta is not JSON-serialisable"
        ) from None
    k = f"op.{op.name}"
    return {
        "type": "elm",
        "name": op.name,
        "input": op.input,
        "meta": p.meta,
        "scalars": {n: getattr(p, n) for n in _ELM_SCALARS},
        "arrays": {n: arrays.put(f"{k}.{n}", getattr(p, n)) for n in _ELM_ARRAYS},
    }


def _elm_from_dict(d: dict[str, Any], arr) -> ELMNode:
    from ..elm import ELMParameters

    if d.get("type") != "elm":
        raise SpecError(f"load: unknown operator type {d.get('type')!r}")
    params = ELMParameters(
        **d["scalars"], **{n: arr(key) for n, key in d["arrays"].items()}, meta=d["meta"]
    )
    return ELMNode(d["name"], params, d["input"])


def to_dict(net: Network) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON document and the arrays of a network."""
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
    doc["operators"] = [_elm_to_dict(op, arrays) for op in net.operators]
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


def from_dict(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Network:
    """Rebuild a network (validated again) from its JSON document and arrays."""
    if doc.get("format") != FORMAT:
        raise SpecError(f"load: not a neuromem network file (format {doc.get('format')!r})")
    if doc.get("version") != VERSION:
        raise SpecError(
            f"load: unsupported version {doc.get('version')!r} (this neuromem reads "
            f"version {VERSION})"
        )

    def arr(key: str) -> np.ndarray:
        if key not in arrays:
            raise SpecError(f"load: array {key!r} is missing from arrays.npz")
        return arrays[key]

    models = {n: NeuronModel.from_dict(m) for n, m in doc["models"].items()}
    rules = {n: PlasticityRule.from_dict(r) for n, r in doc["rules"].items()}
    pops = []
    for p in doc["populations"]:
        stim = p["stimulus"]
        if stim is not None:
            if stim["type"] == "SpikeArray":
                stim = SpikeArray(arr(stim["steps"]), arr(stim["neurons"]))
            else:
                stim = PoissonSpikes(stim["rate_hz"], stim["seed"], stim["start"], stim["stop"])
        pops.append(
            Population(
                p["name"],
                p["size"],
                models[p["model"]],
                params={n: arr(k) for n, k in p["params"].items()},
                initial={n: arr(k) for n, k in p["initial"].items()},
                stimulus=stim,
            )
        )
    projs = [
        Projection(
            pr["name"],
            pr["pre"],
            pr["post"],
            arr(pr["pre_index"]),
            arr(pr["post_index"]),
            arr(pr["weight"]),
            arr(pr["delay"]),
            pr["port"],
            rules[pr["plasticity"]] if pr["plasticity"] else None,
            pr["plasticity_params"],
        )
        for pr in doc["projections"]
    ]
    currents = [
        CurrentInput(c["population"], c["variable"], arr(c["values"])) for c in doc["currents"]
    ]
    probes = [
        SpikeProbe(pb["population"], pb.get("format", "raster"))
        if pb["type"] == "spikes"
        else OverlapProbe(pb["spins"], arr(pb["patterns"]))
        if pb["type"] == "overlap"
        else StateProbe(
            pb["population"],
            pb["variable"],
            None if pb["indices"] is None else tuple(pb["indices"]),
        )
        for pb in doc["probes"]
    ]
    spins = []
    for sp in doc.get("spins", []):
        c = sp["couplings"]
        couplings = (
            LowRankCouplings(arr(c["vectors"]), arr(c["weights"]), c["scale"])
            if c["type"] == "low_rank"
            else DenseCouplings(arr(c["matrix"]))
        )
        spins.append(
            GlauberSpins(
                sp["name"],
                couplings,
                sp["beta"],
                arr(sp["initial"]),
                sp["update"],
                sp["tie"],
                sp["seed"],
                sp["rng"],
            )
        )
    operators = [_elm_from_dict(op, arr) for op in doc.get("operators", [])]
    return Network(
        doc["name"],
        Discretization(**doc["discretization"]),
        tuple(pops),
        tuple(projs),
        tuple(currents),
        tuple(probes),
        tuple(spins),
        tuple(operators),
    )


def save(net: Network, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save ``net`` to the directory ``path`` (created atomically).

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"save: {path} exists (pass overwrite=True to replace it)")
    doc, arrays = to_dict(net)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        with open(tmp / "network.json", "w") as f:
            json.dump(doc, f, indent=1)
        np.savez(tmp / "arrays.npz", **arrays)
        if path.exists():
            # swap via a unique side name, and swap back if the second rename fails
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load(path: str | os.PathLike) -> Network:
    """Load a network saved by :func:`save`."""
    path = Path(path)
    try:
        with open(path / "network.json") as f:
            doc = json.load(f)
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError as exc:
        raise SpecError(f"load: {exc.filename} not found") from None
    except (json.JSONDecodeError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SpecError(f"load: {path} is corrupt: {exc}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"load: {path / 'network.json'} is not a network document")
    try:
        return from_dict(doc, arrays)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise SpecError(
            f"load: {path / 'network.json'} is malformed ({type(exc).__name__}: {exc})"
        ) from None
