"""The step schedule of the torch backend: one generated function per time step.

Runs everything the other schedules cannot (e.g. plastic or recurrent networks with autograd):
:func:`generate` prints ``step``, which executes every phase of :data:`neuromem.lower.PHASES`
for one step, with dense connectivity. A static projection is one ``(n_pre, n_post)`` matrix
per delay (duplicate synapses summed). A plastic projection keeps per-batch dense weights in
*layers*: layer ``l`` holds the ``l``-th synapse of every (pre, post) pair, so duplicate
synapses keep their own weights, and a boolean mask marks the connected entries. Exact mode
(CPU, float64, no autograd): ring-buffer sums are accumulated sequentially in numba's order
(bit-identical rasters); otherwise propagation is ``spikes @ W`` and sums may differ from
numba's in the last bits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ...codegen import SourceWriter
from ...lower import PHASES
from .printing import _Names, _plastic_printer, _pop_printer, _trace_printer

if TYPE_CHECKING:
    from .simulation import TorchSimulation


def generate(sim: TorchSimulation) -> str:
    """Source of ``step(S, K, src, cur, t)``, which advances the state dict ``S`` by one step.

    ``K`` holds constants (parameters, hoisted constants, dense static weights, masks),
    ``src`` the spikes of the spike-source populations for this step and ``cur`` the external
    currents (``"population.variable"`` -> tensor).
    """
    prog = sim.program
    assert prog.phases == PHASES, "lowering phases changed: update the torch generator"
    pops = prog.populations
    nm = _Names()
    c = SourceWriter(depth=1)
    c(f"slot = t % {prog.buffer_length()}")
    # ---- deliver
    for p in pops.values():
        for port, (var, scale) in p.ports.items():
            ring, v = nm.s(f"R_{p.name}__{port}"), nm.s(f"P_{p.name}__{var}")
            c(f"{v} = {v} + {ring}[slot] * {nm.c(f'C_{p.name}__{scale}')}")
            c(f"{ring}[slot] = {nm.c(f'Z_{p.name}')}")
    # ---- reset_prev, integrate, threshold, reset
    for p in pops.values():
        n = p.name
        spk, spkf = nm.s(f"P_{n}__spk"), nm.s(f"P_{n}__spkf")
        if p.spike_source:
            c(f"{spk} = _as_bool(src[{n!r}])")
            c(f"{spkf} = _as_float(src[{n!r}])")
            continue
        pr = _pop_printer(p, nm)
        for v in p.inputs:
            c(f"I_{n}__{v} = cur.get({f'{n}.{v}'!r}, {nm.c(f'Z_{n}')})")
        resets = [
            f"{pr.name(s.target)} = _reset({spk}, {spkf}, {pr(s.value)}, {pr.name(s.target)})"
            for s in p.reset
        ]
        if prog.reset_mode == "next_step":
            for line in resets:
                c(line)
        ref = nm.s(f"P_{n}__ref")
        c(f"refr = {ref} > 0")
        c(f"{ref} = {ref} - refr.to({ref}.dtype)")
        for v, e in p.updates.items():
            c(f"new_{v} = {pr(e)}")
        for v in p.updates:
            held = f"_where(refr, {pr.name(v)}, new_{v})" if v in p.clamped else f"new_{v}"
            c(f"{pr.name(v)} = {held}")
        if p.threshold is None:
            c(f"{spk} = torch.zeros_like(refr)")
            c(f"{spkf} = _as_float({spk})")
        else:
            c(f"{spk} = (~refr) & _as_bool({pr(p.threshold)})")
            margin = "None" if p.threshold_margin is None else f"lambda: {pr(p.threshold_margin)}"
            c(f"{spkf} = _spike({spk}, refr, {margin})")
        if prog.reset_mode == "same_step":
            for line in resets:
                c(line)
        c(f"{ref} = _where({spk}, {nm.c(f'C_{n}__refsteps')}, {ref})")
    # ---- plasticity
    for q in prog.projections.values():
        pl = q.plasticity
        if pl is None:
            continue
        Q = f"Q_{q.name}"
        pre, post = pops[q.pre], pops[q.post]
        trp = _trace_printer(q, nm, prog.dt)
        for tr, e in (*pl.pre_traces.items(), *pl.post_traces.items()):
            c(f"{nm.s(f'{Q}__tr_{tr}')} = {trp(e)}")
        layers = sim._layers[q.name]
        for stmts, side, pop, dim in (
            (pl.on_post_synapse, "post", post, 2),
            (pl.on_pre_synapse, "pre", pre, 1),
        ):
            if not stmts or not layers:  # no synapse: nothing to update
                continue
            idx = "cols" if side == "post" else "rows"
            c(f"{idx} = _active({nm.s(f'P_{pop.name}__spk')})")
            c(f"if {idx} is not None:")
            c.indent(1)
            if side == "post":
                sp = _plastic_printer(
                    q,
                    nm,
                    "[:, :, None]",
                    ".index_select(1, cols)[:, None, :]",
                    q.pre,
                    q.post,
                    prog.dt,
                )
            else:
                sp = _plastic_printer(
                    q,
                    nm,
                    ".index_select(1, rows)[:, :, None]",
                    "[:, None, :]",
                    q.pre,
                    q.post,
                    prog.dt,
                )
            # index_select, not advanced indexing: much faster on CPU (bool tensors above all)
            ev = f"P_{pop.name}__spk.index_select(1, {idx})" + (
                "[:, None, :]" if side == "post" else "[:, :, None]"
            )
            for ly in range(len(layers)):
                W, M = nm.s(f"{Q}__W{ly}"), nm.c(f"M_{q.name}__{ly}")
                msel = f"{M}.index_select({dim - 1}, {idx})"
                c(f"w = {W}.index_select({dim}, {idx})")
                c(f"cond = {ev} & {msel}")
                for s in stmts:
                    c(f"w = _where(cond, {sp(s.value)}, w)")
                c(f"{W} = _put({W}, {dim}, {idx}, w)")
            c.indent(-1)
        for stmts, pop in ((pl.on_post_neuron, post), (pl.on_pre_neuron, pre)):
            for s in stmts:
                tgt = nm.s(f"{Q}__tr_{s.target}")
                c(f"{tgt} = _where({nm.s(f'P_{pop.name}__spk')}, {trp(s.value)}, {tgt})")
    # ---- propagate
    for q in prog.projections.values():
        ring = nm.s(f"R_{q.post}__{q.port}")
        spk, spkf = nm.s(f"P_{q.pre}__spk"), nm.s(f"P_{q.pre}__spkf")
        if q.plasticity is None:
            for d in q.delays:
                W = nm.c(f"D_{q.name}__{d}")
                c(f"s = (t + {d}) % {prog.buffer_length()}")
                c(f"{ring}[s] = _prop({ring}[s], {spk}, {spkf}, {W}, None)")
        else:
            for ly, delays in enumerate(sim._layers[q.name]):
                W = nm.s(f"Q_{q.name}__W{ly}")
                for d in delays:
                    F = "None" if len(delays) == 1 else nm.c(f"F_{q.name}__{ly}__{d}")
                    c(f"s = (t + {d}) % {prog.buffer_length()}")
                    c(f"{ring}[s] = _prop({ring}[s], {spk}, {spkf}, {W}, {F})")
    # ---- record: done by the caller from S after the step
    head = ["def step(S, K, src, cur, t):"]
    head += [f"    {k} = K[{k!r}]" for k in sorted(nm.constants)]
    head += [f"    {k} = S[{k!r}]" for k in sorted(nm.state)]
    tail = [f"    S[{k!r}] = {k}" for k in sorted(nm.state) if not k.startswith("R_")]
    return "\n".join(head + c.lines + tail) + "\n"


class StepSchedule:
    """The :class:`~.simulation.TorchSimulation` method that runs the step schedule."""

    def _loop_step(
        self,
        steps: int,
        K: dict[str, torch.Tensor],
        src: dict[str, torch.Tensor],
        cur: dict[str, torch.Tensor],
        record: tuple[str, ...],
        float_spikes: bool,
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """The step schedule: the generated step function once per step (see ``_loop``)."""
        # inputs unbound once (not indexed per step, which would make the backward pass
        # quadratic in steps)
        src_t = {k: v.unbind(0) for k, v in src.items()}
        cur_t = {k: v.unbind(0) for k, v in cur.items()}
        S, step = self._S, self._step
        spikes: dict[str, list[torch.Tensor]] = {k: [] for k in record}
        probes = [
            (f"P_{pop}__{var}", torch.as_tensor(idx, device=self.device))
            for pop, var, idx in self.program.state_probes
        ]
        state: list[list[torch.Tensor]] = [[] for _ in probes]
        suffix = "__spkf" if float_spikes else "__spk"
        for k in range(steps):
            step(
                S,
                K,
                {n: v[k] for n, v in src_t.items()},
                {n: v[k] for n, v in cur_t.items()},
                self.t + k,
            )
            for n in record:
                spikes[n].append(S[f"P_{n}{suffix}"])
            for r, (key, idx) in enumerate(probes):
                state[r].append(S[key].index_select(1, idx))
        return {k: torch.stack(v) for k, v in spikes.items()}, [torch.stack(v) for v in state]
