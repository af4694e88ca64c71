"""Running an emission on Lava's CPU simulation, host-side plasticity included."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from neuromem.lower import lower
from neuromem.spec import Network

from .emit import LavaEmission, emit


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
