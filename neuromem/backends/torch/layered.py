"""The layered schedule of the torch backend: populations one after the other.

For networks without plasticity whose projections between computed populations form no cycle
(the default for ``forward`` and for float32 or CUDA runs): populations in topological order,
each projection's input for all steps of the chunk by one matrix product per delay over all
``T * B`` rows, only the neuron recurrence step by step (:func:`generate_population_loop`).
With autograd, a population runs as one fused node with a generated backward (:mod:`.fused`)
where the generator can differentiate its step, else the loop builds the per-step autograd
graph. :class:`LayeredSchedule` builds the loops and runs the schedule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...codegen import SourceWriter
from ...equations import Statement
from ...errors import SpecError
from ...lower import PHASES, PopulationProgram
from .fused import (
    _FusedPopulation,
    _FusedRun,
    _NotFusable,
    _saved_names,
    _steps,
    generate_population_backward,
)
from .printing import _HoistPrinter, _Names, _pop_printer, _refractory

if TYPE_CHECKING:
    from .simulation import TorchSimulation


def generate_population_loop(
    sim: TorchSimulation,
    p: PopulationProgram,
    driven_ports: tuple[str, ...],
    variant: str,
    keep: set[str] | None = None,
) -> str:
    """Source of ``loop(S, K, X, cur, T, PI, SV)``: ``T`` steps of one computed population whose
    synaptic input for every step is known in advance (the layered schedule).

    ``X`` maps each port in ``driven_ports`` to a list of ``T`` tensors: the events arriving in
    each step, already multiplied by the port's scale (phase ``deliver``). ``cur`` maps the
    population's input variables to (T, B, n) tensors; ``PI`` holds the index tensors of its
    state probes. The phases ``reset_prev`` .. ``reset`` are the same statements as in
    :func:`generate`; subexpressions that read no state are evaluated once for all ``T`` steps.

    ``variant``: ``"autograd"`` builds the autograd graph (surrogate spikes, blended resets);
    ``"plain"`` computes values only (resets by ``where``, float spikes made once at the end);
    ``"saving"`` is ``"plain"`` that also copies what :func:`generate_population_backward`
    reads (state after delivery ``U_*`` and after integration ``Z_*``, refractory flags;
    only the names in ``keep`` when given: :func:`_saved_names`) into step ``k`` of the
    caller's (T, B, n) buffers ``SV[name]``. It runs one time block of a
    :class:`_FusedPopulation` at a time, which writes the float spikes itself.
    Returns the hard spikes, the float spikes (a list, one (T, B, n) tensor, or None for
    ``"saving"``) and the probed values of every step.
    """
    prog = sim.program
    assert prog.phases == PHASES, "lowering phases changed: update the torch generator"
    assert variant in ("autograd", "plain", "saving")
    graph, save = variant == "autograd", variant == "saving"
    n = p.name
    nm = _Names()
    base = _pop_printer(p, nm)
    hoisted: dict[str, str] = {}
    pr = _HoistPrinter(base, set(p.state), set(p.inputs), hoisted)
    zero = nm.c(f"Z_{n}")
    refractory = _refractory(p)
    c = SourceWriter(depth=2)
    spk, spkf = nm.s(f"P_{n}__spk"), nm.s(f"P_{n}__spkf")

    def reset(stmt: Statement) -> None:
        t = pr.name(stmt.target)
        if graph:
            c(f"{t} = _reset({spk}, {spkf}, {pr(stmt.value)}, {t})")
        else:
            c(f"{t} = _where({spk}, {pr(stmt.value)}, {t})")

    for port, (var, _scale) in p.ports.items():
        if port in driven_ports:
            v = nm.s(f"P_{n}__{var}")
            c(f"{v} = {v} + X_{port}[k]")
    if prog.reset_mode == "next_step":
        for stmt in p.reset:
            reset(stmt)
    if save:
        for v in p.state:
            if keep is None or f"U_{v}" in keep:
                c(f"U_{v}[k].copy_({pr.name(v)})")
    refr = "None"
    if refractory:  # else the counter stays 0: no refractory bookkeeping in the loop
        ref = nm.s(f"P_{n}__ref")
        refr = "refr"
        c(f"refr = {ref} > 0")
        c(f"{ref} = {ref} - refr.to({ref}.dtype)")
        if save:
            c("R[k].copy_(refr)")
    for v, e in p.updates.items():
        c(f"new_{v} = {pr(e)}")
    for v in p.updates:
        held = (
            f"_where(refr, {pr.name(v)}, new_{v})" if v in p.clamped and refractory else f"new_{v}"
        )
        c(f"{pr.name(v)} = {held}")
    if save:
        for v in p.state:
            if keep is None or f"Z_{v}" in keep:
                c(f"Z_{v}[k].copy_({pr.name(v)})")
    if p.threshold is None:
        c(f"{spk} = _as_bool({zero})")
    else:
        hard = f"_as_bool({pr(p.threshold)})"
        c(f"{spk} = (~refr) & {hard}" if refractory else f"{spk} = {hard}")
    if graph:
        margin = "None" if p.threshold_margin is None else f"lambda: {pr(p.threshold_margin)}"
        c(f"{spkf} = _spike({spk}, {refr}, {margin})")
    if prog.reset_mode == "same_step":
        for stmt in p.reset:
            reset(stmt)
    if refractory:
        c(f"{ref} = _where({spk}, {nm.c(f'C_{n}__refsteps')}, {ref})")
    c(f"out_spk.append({spk})")
    if graph:
        c(f"out_spkf.append({spkf})")
    probes = [(var, r) for r, (pop, var, _) in enumerate(prog.state_probes) if pop == n]
    for var, r in probes:
        c(f"rec{r}.append({pr.name(var)}.index_select(1, PI[{r}]))")
    head = ["def loop(S, K, X, cur, T, PI, SV=None):"]
    head += [f"    {k} = K[{k!r}]" for k in sorted(nm.constants)]
    head += [f"    {k} = S[{k!r}]" for k in sorted(nm.state)]
    head += [f"    I_{n}__{v} = cur.get({v!r}, {zero})" for v in p.inputs]
    head += [f"    {h} = _over_time({text}, T)" for text, h in hoisted.items()]
    head += [f"    X_{port} = X[{port!r}]" for port in driven_ports]
    head += ["    out_spk, out_spkf = [], []"]
    head += [f"    rec{r} = []" for _, r in probes]
    saved = _saved_names(p, keep) if save else []
    head += [f"    {x} = SV[{x!r}].unbind(0)" for x in saved]
    head += ["    for k in range(T):"]
    tail = []
    if not graph:  # float spikes once for the chunk; the last step's for the state
        tail += [f"    {spkf} = _as_float({spk})"]
        tail += [
            "    out_spkf = None" if save else "    out_spkf = _as_float(torch.stack(out_spk))"
        ]
    tail += [f"    S[{k!r}] = {k}" for k in sorted(nm.state)]
    recs = ", ".join(f"{r}: rec{r}" for _, r in probes)
    tail += [f"    return out_spk, out_spkf, {{{recs}}}"]
    return "\n".join(head + c.lines + tail) + "\n"


class LayeredSchedule:
    """The :class:`~.simulation.TorchSimulation` methods of the layered schedule: order,
    generated loops, arrivals, the run."""

    def _layered_obstacle(self) -> str | None:
        """Why the layered schedule cannot run this network (None if it can)."""
        prog = self.program
        plastic = [q.name for q in prog.projections.values() if q.plasticity is not None]
        if plastic:
            return f"projection {plastic[0]!r} is plastic"
        computed = [n for n, p in prog.populations.items() if not p.spike_source]
        pending = {n: 0 for n in computed}
        for q in prog.projections.values():
            if not prog.populations[q.pre].spike_source:
                pending[q.post] += 1
        order = [n for n in computed if pending[n] == 0]
        for n in order:  # Kahn's algorithm, appending while iterating
            for q in prog.projections.values():
                if q.pre == n:
                    pending[q.post] -= 1
                    if pending[q.post] == 0:
                        order.append(q.post)
        if len(order) < len(computed):
            cyc = sorted(set(computed) - set(order))
            return f"projections between populations {cyc} form a cycle"
        self._layer_order = order
        return None

    def _build_layers(self) -> None:
        """Topological order, the incoming (projection, delay) pairs of every port in the
        order in which the step schedule adds them to a ring slot (earliest emission first,
        then projection and delay order), and one loop function per computed population."""
        reason = self._layered_obstacle()
        self._layered = reason is None and self.schedule != "step"
        if self.schedule == "layered" and reason is not None:
            raise SpecError(
                f"torch backend: schedule 'layered' cannot run network {self.net.name!r}: "
                f"{reason} (use schedule='step')"
            )
        self._ports_in: dict[str, dict[str, list[tuple[str, int]]]] = {}
        self._pop_loops: dict[str, dict[str, Callable[..., Any]]] = {}
        self._pop_bwd: dict[str, Callable[..., Any]] = {}
        self._pop_saved: dict[str, list[str]] = {}  # population -> what its backward reads
        self.layer_sources: dict[str, str] = {}
        self.fused_obstacles: dict[str, str] = {}  # population -> why it has no fused backward
        if not self._layered:
            return
        prog = self.program
        names = list(prog.projections)
        for n in self._layer_order:
            p = prog.populations[n]
            ports: dict[str, list[tuple[str, int]]] = {}
            for port in p.ports:
                pairs = [
                    (q.name, d)
                    for q in prog.projections.values()
                    if q.post == n and q.port == port
                    for d in q.delays
                ]
                if pairs:
                    ports[port] = sorted(pairs, key=lambda x: (-x[1], names.index(x[0])))
            self._ports_in[n] = ports
            # the shared namespace: _mode() swaps its helpers for every run
            self._pop_loops[n] = {}
            try:
                bwd = generate_population_backward(self, p, tuple(ports))
            except _NotFusable as exc:
                self.fused_obstacles[n] = str(exc)
                bwd = None
            # the forward keeps only what the backward reads
            keep = set(re.findall(r"saved\['(\w+)'\]", bwd)) if bwd else None
            self._pop_saved[n] = _saved_names(p, keep)
            for variant in ("autograd", "plain", "saving"):
                src = generate_population_loop(self, p, tuple(ports), variant, keep)
                self.layer_sources[f"{n}:{variant}"] = src
                exec(compile(src, f"<neuromem torch layer {n} {variant}>", "exec"), self._ns)
                self._pop_loops[n][variant] = self._ns.pop("loop")
            if bwd is not None:
                self.layer_sources[f"{n}:backward"] = bwd
                exec(compile(bwd, f"<neuromem torch layer {n} backward>", "exec"), self._ns)
                self._pop_bwd[n] = self._ns.pop("bwd")

    def _loop_layered(
        self,
        steps: int,
        K: dict[str, torch.Tensor],
        src: dict[str, torch.Tensor],
        cur: dict[str, torch.Tensor],
        grad: bool,
        record: tuple[str, ...],
        float_spikes: bool,
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """The layered schedule: for each computed population in topological order, the
        arrivals of every step of the chunk (ring-buffer leftovers of earlier chunks plus one
        matrix product per incoming projection and delay, over all ``T * B`` rows), then its
        neuron recurrence step by step. Events arriving after the chunk go to the ring buffer,
        so chunked runs equal whole runs. Equals the step schedule up to the order of terms
        inside the matrix products.

        With autograd, a population whose step the generator can differentiate runs as one
        :class:`_FusedPopulation` node (generated forward and backward loops); otherwise the
        per-step autograd graph is built."""
        prog, S, T = self.program, self._S, steps
        fspikes: dict[str, torch.Tensor] = {}  # population -> float spikes (T, B, n)
        out: dict[str, torch.Tensor] = {}
        for n, x in src.items():
            fspikes[n] = x if x.dtype == self.dtype else x.to(self.dtype)
            S[f"P_{n}__spk"] = x[-1] if x.dtype == torch.bool else x[-1] != 0
            S[f"P_{n}__spkf"] = fspikes[n][-1]
            if n in record:
                out[n] = fspikes[n] if float_spikes else x if x.dtype == torch.bool else x != 0
        probes: dict[int, torch.Tensor] = {}
        for n in self._layer_order:
            pcur = {k.split(".", 1)[1]: v for k, v in cur.items() if k.split(".", 1)[0] == n}
            PI = {
                r: torch.as_tensor(idx, device=self.device)
                for r, (pop, _, idx) in enumerate(prog.state_probes)
                if pop == n
            }
            loops, bwd = self._pop_loops[n], self._pop_bwd.get(n)
            fusable = grad and bwd is not None and not any(v.requires_grad for v in pcur.values())
            X = self._arrivals(n, K, fspikes, T, fusable)
            inputs = [x for _, ys, _ in X.values() for x in ys]
            needs_grad = grad and any(x.requires_grad for x in (*inputs, *pcur.values()))
            if needs_grad and fusable:
                ports = {p: ("mm" if len(ys) == 2 else "Y", h, d) for p, (h, ys, d) in X.items()}
                run = _FusedRun(self, n, K, pcur, PI, T, ports)
                soft = _FusedPopulation.apply(run, *inputs)
                hard, rec = None, run.rec
            else:
                loop = loops["autograd" if needs_grad else "plain"]
                Xl = {p: _steps(h, ys[0], d, T) for p, (h, ys, d) in X.items()}
                hard, soft, rec = loop(S, K, Xl, pcur, T, PI)
                soft = torch.stack(soft) if isinstance(soft, list) else soft
            fspikes[n] = soft
            if n in record:
                out[n] = soft if float_spikes else torch.stack(hard) if hard else soft != 0
            for r, values in rec.items():
                probes[r] = torch.stack(values)
        return out, [probes[r] for r in range(len(prog.state_probes))]

    def _arrivals(
        self,
        n: str,
        K: dict[str, torch.Tensor],
        fspikes: dict[str, torch.Tensor],
        T: int,
        fusable: bool = False,
    ) -> dict[str, tuple[list[torch.Tensor], tuple[torch.Tensor, ...], int]]:
        """Input of every step of the chunk to each driven port of population ``n``, times the
        port's scale, as ``(head, (Y,), d)``: step ``k`` gets ``head[k]`` for ``k < d`` and
        ``Y[k - d]`` after ((T, B, n) rows); the events arriving after the chunk go to the ring.
        With ``fusable`` (a :class:`_FusedPopulation` will run ``n``), a port fed by one
        projection with one delay, the longest, and a unit scale, whose product needs a
        gradient, gets ``(head, (pre, W), d)`` instead: the node computes ``pre @ W`` itself.

        Terms are added to a slot in the step schedule's order: earlier emission first (the
        ring's leftovers, then larger delays), then projection and delay order."""
        prog, S, B = self.program, self._S, self.batch_size
        L, t0 = prog.buffer_length(), self.t
        p = prog.populations[n]
        X: dict[str, tuple[list[torch.Tensor], tuple[torch.Tensor, ...], int]] = {}
        for port, pairs in self._ports_in[n].items():
            ring = S[f"R_{n}__{port}"]
            new_ring = [K[f"Z_{n}"]] * L
            scale = p.ports[port][1]
            C = None if np.all(p.constants[scale] == 1.0) else K[f"C_{n}__{scale}"]
            if fusable and len(pairs) == 1 and pairs[0][1] == L - 1 and T >= L - 1 and C is None:
                qn, d = pairs[0]
                pre, W = fspikes[prog.projections[qn].pre], K[f"D_{qn}__{d}"]
                # CPU only: there the rows of a product do not depend on the other rows (MKL;
                # cuBLAS may pick another algorithm for fewer rows). Autograd would take a
                # transposed branch for column-major operands.
                plain = W.is_contiguous() and min(W.shape) > 1 and T * B > 1
                if plain and self.device.type == "cpu" and (pre.requires_grad or W.requires_grad):
                    with torch.no_grad():  # the rows arriving after the chunk (detached state)
                        late = pre[T - d :].reshape(d * B, pre.shape[2]) @ W
                    for j in range(d):
                        new_ring[(t0 + T + j) % L] = late[j * B : (j + 1) * B]
                    S[f"R_{n}__{port}"] = new_ring
                    X[port] = ([ring[(t0 + j) % L] for j in range(d)], (pre, W), d)
                    continue
            Ys = []
            for qn, d in pairs:
                pre = fspikes[prog.projections[qn].pre]
                W = K[f"D_{qn}__{d}"]
                Ys.append((d, (pre.reshape(T * B, pre.shape[2]) @ W).view(T, B, p.size)))
            if len(Ys) == 1 and Ys[0][0] == L - 1 and T >= L - 1:
                # one delay, the longest: the ring's leftovers are the first d steps, the
                # product's rows the others (no copy); its last d rows go to the ring
                d, Y = Ys[0]
                head = [ring[(t0 + j) % L] for j in range(d)]
                for j in range(d):
                    new_ring[(t0 + T + j) % L] = Y[T - d + j]
            else:
                d, head = 0, []
                Y = torch.zeros(T + L - 1, B, p.size, dtype=self.dtype, device=self.device)
                for j in range(L - 1):  # events emitted before this chunk
                    Y[j] += ring[(t0 + j) % L]
                for dd, Yd in Ys:
                    Y[dd : dd + T] += Yd
                for j in range(L - 1):  # events arriving after this chunk
                    new_ring[(t0 + T + j) % L] = Y[T + j]
                Y = Y[:T]
            S[f"R_{n}__{port}"] = new_ring
            X[port] = (
                head if C is None else [h * C for h in head],
                (Y if C is None else Y * C,),
                d,
            )
        return X
