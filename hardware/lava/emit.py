"""Building the Lava processes of a mapped (and, in fixed point, quantised) network."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuromem.errors import SpecError
from neuromem.lower import source_spikes
from neuromem.spec import Network

from .. import _lava_compat
from ..fixed_point import (
    FixedPointNetwork,
)
from .common import _raise, lava_available
from .mapping import (
    LavaMapping,
    _analyse,
    _build_mapping,
    _model_kind,
    semantic_differences,
)
from .quantise import quantize


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
