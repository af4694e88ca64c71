"""NIR (Neuromorphic Intermediate Representation, nir 1.0.8) export and import.

Public functions: :func:`to_nir` (emitter), :func:`from_nir` (importer), :func:`unsupported`
(what ``to_nir`` refuses, as ``list[dict]``), :func:`semantic_differences` (what is exported
exactly but differs in a stated way), :func:`step_offsets` (how many steps a node of an
imported graph lags zero-delay execution) and :func:`run_norse` (the runner: a graph executed
by Norse's NIR importer).

Conventions (what a NIR graph *means* here)
-------------------------------------------
NIR defines continuous-time equations and leaves the discretisation to the simulator. This module
uses the one Norse 1.1 executes (``norse.torch.from_nir``: box spikes, forward Euler, same-step
reset, zero-delay edges), made exact on the neuromem side:

* **Spikes are boxes.** A spike in step ``t`` is the value 1 during that step (not a Dirac
  delta); the output of an ``Affine``/``Linear`` node, ``x_t = W s_t + b``, is the input current
  ``I`` of the next node, held over step ``t``. A non-zero ``Affine`` bias is refused on import:
  under the one-step edge delay below it would act one step before the spikes of its edge.
* **Forward Euler, same-step reset, step dt.** NIR ``LIF`` (``tau dv/dt = v_leak - v + r I``)
  becomes ``v' = v + dt/tau (v_leak - v + r x_t)``; spike when ``v' > v_threshold``; then
  ``v' = v_reset`` in the same step. ``CubaLIF`` first updates the synaptic current,
  ``I' = I + dt/tau_syn (-I + w_in x_t)``, then ``v`` with ``I'``. Neurons start at rest
  (``v = v_leak``, ``I = 0``). ``r`` is a dimensionless gain, ``v_leak`` the rest potential and
  ``tau``/``tau_mem``/``tau_syn`` time constants in the unit of ``dt``: this module writes ms
  (graph metadata ``time_unit = "ms"``); a file with time constants in seconds is read with
  ``dt`` in seconds (only ``dt/tau`` enters the dynamics of these models).
* **Edge delay.** neuromem has no zero-delay connection (a spike cannot act within the step that
  emits it), while Norse evaluates all nodes of a step in topological order. Each connection
  (an ``Affine``/``Linear`` edge, or a direct edge between two neuron nodes) therefore costs
  **one step**, and a ``Delay`` node adds its delay (a multiple of ``dt``) on top: a neuromem
  projection of delay ``d`` steps is ``Linear -> Delay((d - 1) dt) -> neuron`` (no ``Delay``
  node when ``d = 1``). For a *layered* feed-forward graph (every path from an ``Input`` to a
  node crosses the same number ``k`` of connections) this is exact: the neuromem raster of the
  node is the zero-delay raster shifted by ``k`` steps (:func:`step_offsets`), because a neuron
  at rest with no input stays at rest for the first ``k`` steps. Graphs written by
  :func:`to_nir` carry this convention in their metadata (``delay_convention``) and are read
  under it whatever their shape; other graphs must be layered and acyclic unless
  ``allow_unlayered=True``.

Which neuromem model is which NIR node (exact in real arithmetic; floating-point operation order
differs between simulators, so membrane values agree to a few ulp, not bit for bit):

* NIR ``LIF`` == ``nir_cuba_lif`` with ``tau_syn = dt``, ``w_in = 1``, ``integrator="euler"``,
  ``reset_mode="same_step"``. With ``tau_syn = dt`` forward Euler empties the synaptic current
  exactly each step (``I + (-dt/dt) I = 0``), so ``i_syn`` after delivery is exactly the box
  current ``x_t`` and ``v' = v + dt/tau_mem (v_leak - v + r x_t)``. This is the model to train
  for NIR; foreign ``LIF`` nodes are imported as it.
* NIR ``CubaLIF`` == ``nir_cuba_lif`` (euler) with ``w_in(neuromem) = w_in(NIR) dt / tau_syn``:
  neuromem adds an event's ``w_in w`` to ``i_syn`` whole, the box-Euler synapse adds
  ``dt/tau_syn`` of it.
* ``nir_lif`` (euler) == NIR ``LIF`` with every incoming weight scaled by ``(tau - dt) / (dt r)``
  (needs ``tau > dt``, ``r != 0``): neuromem adds an event to ``v`` *before* the step's leak
  (``v' = (v + w)(1 - dt/tau) + ...``), NIR adds ``dt/tau r W`` after it. Exported with node
  metadata ``neuromem_model = "nir_LIF"``, which :func:`from_nir` uses to rebuild ``nir_lif``
  with the inverse scaling.
* ``if_curr_exp`` (euler) == NIR ``CubaLIF`` (``tau_mem = tau_m``, ``r = tau_m / cm``,
  ``v_leak = v_rest``, ``w_in = s tau_syn / dt`` with the step-average port scale ``s``) when
  ``tau_refrac`` gives 0 refractory steps, ``tau_syn_E == tau_syn_I``, ``i_offset == 0``;
  inhibitory weights become negative. Imported back as ``nir_cuba_lif``.

``exponential_euler`` and ``next_step`` networks are refused: no NIR parameters make a box-Euler
executor reproduce them (it would take rewritten time constants). Plasticity, spin and
operator nodes, current inputs, stimuli and initial states away from rest have no NIR form and
are refused (:func:`unsupported`). State probes are not exported, and neuromem's threshold is
``v >= v_threshold`` where NIR and Norse use ``>`` (they differ only when ``v`` lands exactly on
the threshold): both are listed by :func:`semantic_differences`.

Norse 1.1.0's importer (``norse.torch.from_nir``) deviates from the NIR spec; the tests check
each of these explicitly: it casts every parameter and weight to float32; it ignores ``LIF.r``
(warning only) and ``v_reset`` of ``LIF``/``CubaLIF`` (resets to 0); its ``CubaLIF`` synapse
starts at and leaks towards ``v_leak`` instead of 0; it drops ``Delay`` nodes (the node
vanishes from the module, leaving the graph disconnected); and its exporter writes
``LIF.tau = dt / tau_mem_inv`` instead of ``1 / tau_mem_inv``. :func:`run_norse` can run Norse's
importer in float64 (it swaps Norse's float32 tensor conversion for a float64 one and changes
nothing else).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from typing import Any
from unittest import mock

import numpy as np

from neuromem.errors import SpecError
from neuromem.lower import lower
from neuromem.spec import (
    Discretization,
    Network,
    Population,
    Projection,
    SpikeProbe,
    StateProbe,
    if_curr_exp,
    nir_cuba_lif,
    nir_lif,
    spike_source,
)
from neuromem.spec.names import MAX_NAME_LENGTH, name_problem

from .nodes import node_kind, operator_element

TARGET = "nir"

#: Graph metadata value of ``delay_convention`` that marks graphs written by :func:`to_nir`.
DELAY_CONVENTION = (
    "neuromem: each Affine/Linear connection is one step dt; Delay nodes add their delay"
)
SPIKE_CONVENTION = "box: a spike is the value 1 during its step; Affine output is a current"
#: NIR node types :func:`from_nir` reads.
IMPORTABLE = ("Input", "Output", "LIF", "CubaLIF", "Affine", "Linear", "Delay")

_NEURON_TYPES = ("LIF", "CubaLIF")
_TRANSFORM_TYPES = ("Affine", "Linear", "Delay")


def _nir():
    try:
        import nir
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SpecError("target 'nir': the package 'nir' (1.0.8) is not installed") from e
    return nir


def _entry(element: str, limit: str, reason: str) -> dict[str, str]:
    # the message stands alone (the compile report prints messages only)
    message = f"{element}: target {TARGET!r} ({limit}): {reason}"
    return {"element": element, "target": TARGET, "limit": limit, "message": message}


def _error(entries: list[dict[str, str]]) -> SpecError:
    return SpecError("; ".join(e["message"] for e in entries))


# ------------------------------------------------------------------------------------ export
def _kind(p: Population) -> str | None:
    """Which supported library model ``p`` uses (compared by value, not by name)."""
    for kind, factory in (
        ("spike_source", spike_source),
        ("nir_cuba_lif", nir_cuba_lif),
        ("nir_lif", nir_lif),
        ("if_curr_exp", if_curr_exp),
    ):
        if p.model == factory():
            return kind
    return None


def _at_rest(p: Population, kind: str) -> str | None:
    """Why the initial state is not NIR's rest state (v = v_leak, currents 0), or None."""
    rest = {
        "nir_cuba_lif": {"v": p.params.get("v_leak"), "i_syn": 0.0},
        "nir_lif": {"v": p.params.get("v_leak")},
        "if_curr_exp": {"v": p.params.get("v_rest"), "i_exc": 0.0, "i_inh": 0.0},
    }[kind]
    for var, value in rest.items():
        if not np.array_equal(p.initial[var], np.broadcast_to(value, p.initial[var].shape)):
            return f"initial {var!r} is not the rest value (NIR neurons start at rest)"
    return None


def unsupported(net: Network, profile: Any = None) -> list[dict[str, str]]:
    """Everything of ``net`` that :func:`to_nir` cannot express exactly.

    Parameters
    ----------
    net : Network
    profile : HardwareProfile, optional
        Accepted for ``neuromem.hardware.compile``; NIR has no hardware limits to read from it.

    Returns
    -------
    list of dict
        Keys ``"element"`` (e.g. ``"projection 'p1'"``), ``"target"`` (``"nir"``),
        ``"limit"`` (the rule that is broken) and ``"message"``. Empty when ``net`` exports.
    """
    out: list[dict[str, str]] = []
    d = net.discretization
    if d.integrator != "euler":
        out.append(
            _entry(
                f"network {net.name!r}",
                "integrator: euler",
                f"integrator {d.integrator!r}: NIR graphs are executed with forward Euler (Norse "
                "1.1) and no NIR time constant reproduces another integrator exactly; "
                "use Discretization(integrator='euler')",
            )
        )
    if d.reset_mode != "same_step":
        out.append(
            _entry(
                f"network {net.name!r}",
                "reset_mode: same_step",
                f"reset_mode {d.reset_mode!r}: NIR's LIF is executed (Norse 1.1) with the "
                "reset in the step of the spike",
            )
        )
    for sp in net.spins:
        out.append(
            _entry(f"spin node {sp.name!r}", "no operator nodes", "Glauber spins have no NIR form")
        )
    for op in net.operators:
        out.append(
            _entry(
                operator_element(op),
                "no operator nodes",
                f"operator nodes (kind {node_kind(op)}) have no NIR form",
            )
        )
    for c in net.currents:
        out.append(
            _entry(
                f"current input to {c.population!r}",
                "no current inputs",
                "NIR graphs take spikes at Input nodes only",
            )
        )
    lowered = None
    for p in net.populations:
        where = f"population {p.name!r}"
        kind = _kind(p)
        if kind is None:
            out.append(
                _entry(
                    where,
                    "models: spike_source, nir_lif, nir_cuba_lif, if_curr_exp",
                    f"model {p.model.name!r} has no exact NIR counterpart",
                )
            )
            continue
        if kind == "spike_source":
            if p.stimulus is not None:
                out.append(
                    _entry(
                        where,
                        "no stimuli",
                        "a NIR Input carries no data; give the spikes at run time instead",
                    )
                )
            continue
        why = _at_rest(p, kind)
        if why:
            out.append(_entry(where, "initial state at rest", why))
        if kind == "nir_lif":
            if np.any(p.params["tau"] <= d.dt):
                out.append(
                    _entry(where, "tau > dt", "nir_lif with tau <= dt has no NIR LIF weights")
                )
            if np.any(p.params["r"] == 0):
                out.append(_entry(where, "r != 0", "nir_lif with r = 0 has no NIR LIF weights"))
        if kind == "if_curr_exp":
            lowered = lowered or lower(net)
            if np.any(lowered.populations[p.name].refractory_steps != 0):
                out.append(
                    _entry(
                        where,
                        "no refractory period",
                        "NIR's CubaLIF has no refractory period; tau_refrac must give 0 steps",
                    )
                )
            if not np.array_equal(p.params["tau_syn_E"], p.params["tau_syn_I"]):
                out.append(
                    _entry(
                        where,
                        "tau_syn_E == tau_syn_I",
                        "a NIR CubaLIF has one synaptic current",
                    )
                )
            if np.any(p.params["i_offset"] != 0):
                out.append(
                    _entry(
                        where,
                        "i_offset == 0",
                        "i_offset drives v directly; NIR's CubaLIF has no such term",
                    )
                )
    for pr in net.projections:
        if pr.plasticity is not None:
            out.append(
                _entry(
                    f"projection {pr.name!r}",
                    "static weights",
                    f"plasticity rule {pr.plasticity.name!r}: NIR has no plasticity",
                )
            )
    return out


def semantic_differences(net: Network, profile: Any = None) -> list[dict[str, str]]:
    """What :func:`to_nir` exports but means something slightly different in NIR.

    Parameters
    ----------
    net : Network
    profile : HardwareProfile, optional
        Accepted for ``neuromem.hardware.compile`` (unused).

    Returns
    -------
    list of dict
        Keys ``"element"`` and ``"difference"``.
    """
    out = []
    for p in net.populations:
        if p.model.spike_source or _kind(p) is None:
            continue
        out.append(
            {
                "element": f"population {p.name!r}",
                "difference": "threshold v >= v_threshold in neuromem, v > v_threshold in NIR "
                "and Norse: they differ only when v lands exactly on the threshold",
            }
        )
    for pb in net.probes:
        if isinstance(pb, StateProbe):
            out.append(
                {
                    "element": f"state probe {pb.population}.{pb.variable}",
                    "difference": "not exported: NIR Output nodes carry spikes only",
                }
            )
    return out


def _dense(pr: Projection, sel: np.ndarray, n_pre: int, n_post: int, sign: float) -> np.ndarray:
    """(n_post, n_pre) weight matrix of the synapses ``sel``; duplicates sum."""
    W = np.zeros((n_post, n_pre))
    np.add.at(W, (pr.post_index[sel], pr.pre_index[sel]), sign * pr.weight[sel])
    return W


def _free(nodes: dict[str, Any], name: str, element: str) -> None:
    if name in nodes:
        raise SpecError(f"{element}: target {TARGET!r}: NIR node name {name!r} is already used")


def to_nir(net: Network, profile: Any = None, *, plasticity: str = "refuse") -> Any:
    """Export the static inference part of ``net`` as a ``nir.NIRGraph``.

    Spike sources become ``Input`` nodes, ``nir_cuba_lif`` populations ``LIF`` (``tau_syn = dt``
    and ``w_in = 1``) or ``CubaLIF`` nodes, ``nir_lif`` populations ``LIF`` and ``if_curr_exp``
    populations ``CubaLIF`` (module docstring: conventions and conditions); each projection
    becomes one ``Linear`` node per distinct delay (dense ``(n_post, n_pre)`` weights,
    duplicate synapses summed), followed by a ``Delay`` node of ``(d - 1) dt`` when the delay
    ``d`` exceeds one step. Spike-probed populations (or, without spike probes, populations with
    no outgoing projection) get an ``Output`` node. Parameters are per-neuron float64 arrays;
    time constants in ms.

    Graph metadata: ``source``, ``network``, ``dt``, ``time_unit``, ``integrator``,
    ``reset_mode``, ``threshold``, ``spike_convention``, ``delay_convention``. Neuron nodes carry
    ``neuromem_population`` and ``neuromem_model``; ``Linear`` nodes ``neuromem_projection``,
    ``port`` and ``delay_steps``.

    Parameters
    ----------
    net : Network
    profile : HardwareProfile, optional
        Accepted for ``neuromem.hardware.compile`` (unused: NIR is floating point, no limits).
    plasticity : {"refuse", "host"}
        ``neuromem.hardware.compile``'s plasticity mode. A NIR graph is static, so plastic
        projections are refused in either mode (there is no host loop around a NIR file).

    Returns
    -------
    nir.NIRGraph

    Raises
    ------
    SpecError
        Naming every element :func:`unsupported` lists, the target ``'nir'`` and the limit.
    """
    if plasticity not in ("refuse", "host"):
        raise SpecError(f"to_nir: target {TARGET!r}: plasticity={plasticity!r}, expected 'refuse'")
    bad = unsupported(net)
    if bad:
        raise _error(bad)
    nir = _nir()
    d = net.discretization
    dt = d.dt
    program = lower(net)
    pops = {p.name: p for p in net.populations}
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    # per post population: factor applied to incoming weights (nir_lif only), per neuron
    in_scale: dict[str, np.ndarray] = {}
    common = {"dt": dt, "time_unit": "ms", "integrator": d.integrator, "reset_mode": d.reset_mode}
    for p in net.populations:
        kind = _kind(p)
        meta = {"neuromem_population": p.name, "neuromem_model": p.model.name, **common}
        q = p.params
        if kind == "spike_source":
            nodes[p.name] = nir.Input(np.array([p.size]), metadata=meta)
        elif kind == "nir_cuba_lif":
            if np.all(q["tau_syn"] == dt) and np.all(q["w_in"] == 1.0):
                nodes[p.name] = nir.LIF(
                    tau=q["tau_mem"].copy(),
                    r=q["r"].copy(),
                    v_leak=q["v_leak"].copy(),
                    v_threshold=q["v_threshold"].copy(),
                    v_reset=q["v_reset"].copy(),
                    metadata=meta,
                )
            else:
                nodes[p.name] = nir.CubaLIF(
                    tau_syn=q["tau_syn"].copy(),
                    tau_mem=q["tau_mem"].copy(),
                    r=q["r"].copy(),
                    v_leak=q["v_leak"].copy(),
                    v_threshold=q["v_threshold"].copy(),
                    v_reset=q["v_reset"].copy(),
                    w_in=q["w_in"] * (q["tau_syn"] / dt),
                    metadata=meta,
                )
        elif kind == "nir_lif":
            nodes[p.name] = nir.LIF(
                tau=q["tau"].copy(),
                r=q["r"].copy(),
                v_leak=q["v_leak"].copy(),
                v_threshold=q["v_threshold"].copy(),
                v_reset=q["v_reset"].copy(),
                metadata=meta,
            )
            in_scale[p.name] = (q["tau"] - dt) / (dt * q["r"])
        else:  # if_curr_exp
            scale = program.populations[p.name].constants["_port_exc"]
            nodes[p.name] = nir.CubaLIF(
                tau_syn=q["tau_syn_E"].copy(),
                tau_mem=q["tau_m"].copy(),
                r=q["tau_m"] / q["cm"],
                v_leak=q["v_rest"].copy(),
                v_threshold=q["v_thresh"].copy(),
                v_reset=q["v_reset"].copy(),
                w_in=scale * (q["tau_syn_E"] / dt),
                metadata=meta,
            )
    for pr in net.projections:
        n_pre, n_post = pops[pr.pre].size, pops[pr.post].size
        sign = -1.0 if (_kind(pops[pr.post]) == "if_curr_exp" and pr.port == "inh") else 1.0
        delays = np.unique(pr.delay)
        for dl in delays.tolist():
            sel = pr.delay == dl
            W = _dense(pr, sel, n_pre, n_post, sign)
            if pr.post in in_scale:
                W = W * in_scale[pr.post][:, None]
            name = pr.name if delays.size == 1 else f"{pr.name}__d{dl}"
            _free(nodes, name, f"projection {pr.name!r}")
            nodes[name] = nir.Linear(
                weight=W,
                metadata={"neuromem_projection": pr.name, "port": pr.port, "delay_steps": dl},
            )
            edges.append((pr.pre, name))
            if dl == 1:
                edges.append((name, pr.post))
            else:
                delay_name = f"{name}__delay"
                _free(nodes, delay_name, f"projection {pr.name!r}")
                nodes[delay_name] = nir.Delay(
                    np.full(n_post, (dl - 1) * dt), metadata={"delay_steps": dl - 1, **common}
                )
                edges += [(name, delay_name), (delay_name, pr.post)]
    probed = [pb.population for pb in net.probes if isinstance(pb, SpikeProbe)]
    if not probed:
        has_out = {pr.pre for pr in net.projections}
        probed = [p.name for p in net.populations if p.name not in has_out]
    for name in dict.fromkeys(probed):
        out = f"{name}__output"
        _free(nodes, out, f"population {name!r}")
        nodes[out] = nir.Output(np.array([pops[name].size]), metadata={"neuromem_population": name})
        edges.append((name, out))
    metadata = {
        "source": "neuromem",
        "network": net.name,
        "threshold": "v >= v_threshold",
        "spike_convention": SPIKE_CONVENTION,
        "delay_convention": DELAY_CONVENTION,
        **common,
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


# ------------------------------------------------------------------------------------ import
def _type(node: Any) -> str:
    return type(node).__name__


def _ident(name: str, taken: set[str]) -> str:
    """A unique valid spec name for a NIR node name (see ``neuromem.spec.names``): other
    characters become ``_``; a name that is still invalid (a keyword such as NIR's usual
    ``in``, a leading digit or ``_``) gets the prefix ``n_``."""
    s = re.sub(r"[^0-9A-Za-z_]", "_", str(name))[: MAX_NAME_LENGTH - 8]
    if name_problem(s) is not None:
        s = f"n_{s}"
    base, k = s, 1
    while s in taken:
        s, k = f"{base}_{k}", k + 1
    taken.add(s)
    return s


def _vector(node: Any, field: str, where: str) -> np.ndarray:
    a = np.asarray(getattr(node, field), dtype=np.float64)
    if a.ndim != 1:
        raise SpecError(
            f"{where}: target {TARGET!r}: parameter {field!r} has shape {a.shape}; only 1-d "
            "(fully connected) layers are supported"
        )
    return a


def _size(node: Any, key: str, where: str) -> int:
    t = node.input_type["input"] if key == "input" else node.output_type["output"]
    shape = np.atleast_1d(np.asarray(t)).astype(int)
    if shape.size != 1:
        raise SpecError(
            f"{where}: target {TARGET!r}: shape {tuple(shape)}; only 1-d inputs and outputs"
        )
    return int(shape[0])


def _delay_steps(node: Any, dt: float, where: str) -> np.ndarray:
    d = np.asarray(node.delay, dtype=np.float64)
    if d.ndim != 1:
        raise SpecError(f"{where}: target {TARGET!r}: delay must be 1-d, got shape {d.shape}")
    k = np.round(d / dt)
    if np.any(k < 0) or np.any(np.abs(k * dt - d) > 1e-9 * np.maximum(1.0, np.abs(d))):
        raise SpecError(
            f"{where}: target {TARGET!r}: delays {d.tolist()} are not whole non-negative "
            f"multiples of dt={dt}"
        )
    return k.astype(np.int64)


def _connections(graph: Any) -> list[tuple[str, list[str], str]]:
    """Every path source -> (Affine|Linear|Delay)* -> sink between neuron/Input/Output nodes."""
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
    out = []

    def walk(src: str, node: str, chain: list[str]) -> None:
        for nxt in succ[node]:
            t = _type(graph.nodes[nxt])
            if t in _TRANSFORM_TYPES:
                if nxt in chain:
                    raise SpecError(
                        f"NIR node {nxt!r}: target {TARGET!r}: a loop of Affine/Linear/Delay "
                        "nodes without a neuron in it has no step to delay it"
                    )
                walk(src, nxt, [*chain, nxt])
            else:
                out.append((src, chain, nxt))

    for name, node in graph.nodes.items():
        if _type(node) in ("Input", *_NEURON_TYPES):
            walk(name, name, [])
    return out


def _levels(sources: Iterable[str], conns: list[tuple[str, str]]) -> dict[str, int] | None:
    """Connections from the inputs to each node, or None if the graph is cyclic or some node
    is reached over paths of different lengths."""
    succ: dict[str, list[str]] = {}
    indeg: dict[str, int] = {}
    for a, b in conns:
        succ.setdefault(a, []).append(b)
        indeg[b] = indeg.get(b, 0) + 1
    level = {s: 0 for s in sources}
    ready = [s for s in level if indeg.get(s, 0) == 0]
    seen = 0
    while ready:
        a = ready.pop()
        seen += 1
        for b in succ.get(a, []):
            if b in level and level[b] != level[a] + 1:
                return None
            level[b] = level[a] + 1
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    nodes = set(level) | set(indeg)
    return level if seen == len(nodes) else None


def step_offsets(graph: Any) -> dict[str, int]:
    """Steps by which each node of a layered feed-forward graph lags zero-delay execution
    (e.g. Norse) when imported by :func:`from_nir`: the number of connections from the inputs.
    An ``Output`` node has the offset of the node it reads.

    Raises
    ------
    SpecError
        If the graph is cyclic or not layered (the lag is then not one number per node).
    """
    conns = _connections(graph)
    inputs = [n for n, node in graph.nodes.items() if _type(node) == "Input"]
    pairs = [(a, b) for a, _, b in conns if _type(graph.nodes[b]) != "Output"]
    level = _levels(inputs, pairs)
    if level is None:
        raise SpecError(
            f"NIR graph: target {TARGET!r}: not a layered feed-forward graph (a cycle, or paths "
            "of different lengths to one node); its timing is neuromem's one step per connection"
        )
    for a, _, b in conns:
        if _type(graph.nodes[b]) == "Output":
            level[b] = level[a]
    return level


def from_nir(
    graph: Any, dt: float, *, name: str = "nir_import", allow_unlayered: bool = False
) -> Network:
    """Build a neuromem network from a NIR graph (module docstring: conventions).

    Reads ``Input``, ``Output``, ``LIF``, ``CubaLIF``, ``Affine``, ``Linear`` and ``Delay``
    nodes (what Norse and snnTorch export for fully connected networks). ``Input`` nodes become
    spike sources (give their spikes to ``run``), ``LIF`` nodes ``nir_cuba_lif`` populations with
    ``tau_syn = dt`` (or ``nir_lif`` for a ``LIF`` that :func:`to_nir` wrote from one),
    ``CubaLIF`` nodes ``nir_cuba_lif``, each connection a projection to port ``exc`` with one
    synapse per non-zero weight and delay ``1 + Delay steps``, each ``Output`` a spike probe.
    Neurons start at rest. The discretisation is ``Discretization(dt, "euler", "same_step")``.

    Parameters
    ----------
    graph : nir.NIRGraph
    dt : float
        Time step, in the unit of the graph's time constants (ms for graphs of :func:`to_nir`;
        a graph with time constants in seconds gives the same dynamics with ``dt`` in seconds).
        Required: NIR does not fix it.
    name : str
        Network name.
    allow_unlayered : bool
        Accept a graph without neuromem metadata that is cyclic or not layered; it then runs
        with one step per connection, which differs from zero-delay execution.

    Returns
    -------
    Network

    Raises
    ------
    SpecError
        Naming the node, the target ``'nir'`` and the reason for anything else: other node
        types, sub-graphs, multi-dimensional shapes, non-zero ``Affine`` bias, two
        ``Affine``/``Linear`` nodes in one connection, delays that are not multiples of ``dt``.
    """
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise SpecError(f"from_nir: target {TARGET!r}: expected a nir.NIRGraph, got {graph!r}")
    disc = Discretization(dt=dt, integrator="euler", reset_mode="same_step")
    dt = disc.dt
    for n, node in graph.nodes.items():
        if _type(node) not in IMPORTABLE:
            raise SpecError(
                f"NIR node {n!r} ({_type(node)}): target {TARGET!r}: not importable; "
                f"supported: {', '.join(IMPORTABLE)}"
            )
    ours = str(graph.metadata.get("delay_convention", "")) == DELAY_CONVENTION
    conns = _connections(graph)
    if not ours and not allow_unlayered:
        step_offsets(graph)  # raises for cyclic / unlayered graphs
    taken: set[str] = set()
    pop_name: dict[str, str] = {}
    populations: list[Population] = []
    sizes: dict[str, int] = {}
    in_scale: dict[str, np.ndarray] = {}
    for n, node in graph.nodes.items():
        t, where = _type(node), f"NIR node {n!r} ({_type(node)})"
        if t not in ("Input", *_NEURON_TYPES):
            continue
        pop_name[n] = _ident(n, taken)
        if t == "Input":
            sizes[n] = _size(node, "input", where)
            populations.append(Population(pop_name[n], sizes[n], spike_source()))
            continue
        v = {f: _vector(node, f, where) for f in ("r", "v_leak", "v_threshold", "v_reset")}
        if t == "LIF":
            tau = _vector(node, "tau", where)
            if node.metadata.get("neuromem_model") == nir_lif().name:
                if np.any(tau <= dt) or np.any(v["r"] == 0):
                    raise SpecError(
                        f"{where}: target {TARGET!r}: a nir_lif export needs tau > dt and r != 0"
                    )
                model, params = nir_lif(), {"tau": tau, **v}
                in_scale[n] = (dt * v["r"]) / (tau - dt)
            else:
                model = nir_cuba_lif()
                params = {"tau_mem": tau, "tau_syn": dt, "w_in": 1.0, **v}
        else:
            tau_syn = _vector(node, "tau_syn", where)
            w_in = np.broadcast_to(np.asarray(node.w_in, dtype=np.float64), tau_syn.shape)
            model = nir_cuba_lif()
            params = {
                "tau_mem": _vector(node, "tau_mem", where),
                "tau_syn": tau_syn,
                "w_in": w_in * (dt / tau_syn),
                **v,
            }
        sizes[n] = v["r"].size
        populations.append(
            Population(pop_name[n], sizes[n], model, params, initial={"v": v["v_leak"]})
        )
    projections: list[Projection] = []
    probes: list[SpikeProbe] = []
    for src, chain, dst in conns:
        where = f"NIR connection {' -> '.join([src, *chain, dst])}"
        if _type(graph.nodes[dst]) == "Output":
            if chain:
                raise SpecError(
                    f"{where}: target {TARGET!r}: an Output must read a neuron or Input node "
                    "directly (neuromem probes spikes, not currents)"
                )
            if _size(graph.nodes[dst], "input", where) != sizes[src]:
                raise SpecError(f"{where}: target {TARGET!r}: size mismatch")
            probes.append(SpikeProbe(pop_name[src]))
            continue
        n_pre, n_post = sizes[src], sizes[dst]
        W: np.ndarray | None = None
        pre_delay, post_delay = np.zeros(n_pre, np.int64), np.zeros(n_post, np.int64)
        for c in chain:
            node = graph.nodes[c]
            t = _type(node)
            if t == "Delay":
                steps = _delay_steps(node, dt, f"NIR node {c!r} (Delay)")
                if W is None:
                    if steps.size != n_pre:
                        raise SpecError(f"{where}: target {TARGET!r}: Delay size mismatch")
                    pre_delay += steps
                else:
                    if steps.size != n_post:
                        raise SpecError(f"{where}: target {TARGET!r}: Delay size mismatch")
                    post_delay += steps
                continue
            if W is not None:
                raise SpecError(
                    f"{where}: target {TARGET!r}: two Affine/Linear nodes in one connection "
                    "(compose them first)"
                )
            W = np.asarray(node.weight, dtype=np.float64)
            if W.shape != (n_post, n_pre):
                raise SpecError(
                    f"{where}: target {TARGET!r}: weight shape {W.shape}, expected "
                    f"({n_post}, {n_pre})"
                )
            if t == "Affine" and np.any(np.asarray(node.bias) != 0):
                raise SpecError(
                    f"NIR node {c!r} (Affine): target {TARGET!r}: non-zero bias; a constant "
                    "current would act from step 0, one step before the spikes through the "
                    "same connection (one step per connection), so it cannot be imported exactly"
                )
        if W is None:
            if n_pre != n_post:
                raise SpecError(f"{where}: target {TARGET!r}: identity edge with size mismatch")
            W = np.eye(n_post)
        if dst in in_scale:
            W = W * in_scale[dst][:, None]
        post_i, pre_i = np.nonzero(W)
        if pre_i.size == 0:
            continue
        pname = _ident(f"{src}__{dst}" if not chain else "__".join(chain), taken)
        projections.append(
            Projection(
                pname,
                pop_name[src],
                pop_name[dst],
                pre_i,
                post_i,
                W[post_i, pre_i],
                delay=1 + pre_delay[pre_i] + post_delay[post_i],
            )
        )
    return Network(name, disc, tuple(populations), tuple(projections), probes=tuple(probes))


# ------------------------------------------------------------------------------------ runner
def run_norse(graph: Any, spikes: np.ndarray, dt: float, *, float64: bool = True) -> np.ndarray:
    """Run ``graph`` with Norse's NIR importer (``norse.torch.from_nir``), step by step.

    Parameters
    ----------
    graph : nir.NIRGraph
        One ``Input`` and one ``Output`` node (a limit of nirtorch's graph executor).
    spikes : array (steps, n_in)
        Input spikes, 0/1.
    dt : float
        Step, in the unit of the graph's time constants (ms for :func:`to_nir` graphs).
    float64 : bool
        Norse 1.1.0's importer casts all parameters and weights to float32; with ``True`` the
        import converts them to float64 instead (nothing else of Norse changes).

    Returns
    -------
    np.ndarray
        Bool raster (steps, n_out) of the ``Output`` node, zero-delay execution.
    """
    import torch
    from norse.torch import from_nir as norse_from_nir
    from norse.torch.utils import import_nir

    def to_tensor64(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x.to(torch.float64)
        return torch.as_tensor(np.asarray(x, dtype=np.float64))

    dtype = torch.float64 if float64 else torch.float32
    with warnings.catch_warnings():
        # Norse 1.1 loads through nirtorch.load, which nirtorch 2.6 marks as deprecated
        warnings.filterwarnings("ignore", "nirtorch.*deprecated", DeprecationWarning)
        if float64:
            with mock.patch.object(import_nir, "_to_tensor", to_tensor64):
                module = norse_from_nir(graph, ignore_warnings=True, dt=dt)
        else:
            module = norse_from_nir(graph, ignore_warnings=True, dt=dt)
    x = torch.as_tensor(np.asarray(spikes), dtype=dtype)
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            z, state = module(x[t], state)
            out.append(z.detach().cpu().numpy() > 0)
    return np.array(out, dtype=bool).reshape(x.shape[0], -1)


__all__ = [
    "DELAY_CONVENTION",
    "IMPORTABLE",
    "TARGET",
    "from_nir",
    "run_norse",
    "semantic_differences",
    "step_offsets",
    "to_nir",
    "unsupported",
]
