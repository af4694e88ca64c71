"""The sparse loop of the torch backend: event-driven, the whole time loop in one function.

Runs ``run`` without autograd for networks without plasticity: :func:`generate_sparse_loop`
prints the time loop with event-driven propagation (the spiking neurons' padded CSR rows, one
``index_add_`` per group of projections into one flat ring buffer), no dense matrices. On the
CPU it runs with numpy on the tensors' memory by default (``cpu_engine``), same operations and
bits. At float64 on the CPU the ring sums are accumulated in numba's order: rasters and states
are bit-identical to numba's. :class:`SparseSchedule` builds the propagation tables and runs
the loop.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...codegen import SourceWriter
from ...lower import NUMPY_FUNCS, PHASES
from .printing import _FUNCS, _HoistPrinter, _Names, _pop_printer, _recorded, _refractory

if TYPE_CHECKING:
    from .simulation import TorchSimulation


_SPARSE_TABLE_BYTES = 512 * 2**20  # padded propagation tables above this: dense step path


def generate_sparse_loop(sim: TorchSimulation, engine: str = "torch") -> str:
    """Source of ``loop(S, K, src, cur, T, t0, PI, G)``: ``T`` steps of a network without
    plasticity, without autograd (the ``run`` path), every phase of :data:`PHASES` in order.
    Returns the probed spikes (T, B, n) and state probes (T, B, k) as tensors.

    Differences from :func:`generate` are in the representation only, so the arithmetic (and
    thus every bit at float64) is the same: all ring buffers live in one flat tensor ``GR``
    (per population a block ``(L, ports, B, n)``), propagation is event-driven (the spiking
    neurons of a pre population, their padded CSR rows gathered from ``G`` and one
    ``index_add_`` into ``GR``, which adds sequentially in the pre neurons' order on the CPU,
    as numba does), refractoriness is the first active step per neuron (one comparison per
    step and one in-place fill on spikes instead of four operations), float spikes are made
    once at the end, subexpressions that read no state are evaluated for all steps at once,
    and slots are cleared in place.

    ``engine="numpy"`` (CPU only) prints the same statements with numpy on the tensors' memory
    (zero-copy views; ``np.add.at`` adds in index order like ``index_add_``): numpy's
    per-call overhead is about a third of torch's, which dominates at a few thousand neurons.
    """
    assert engine in ("torch", "numpy")
    npy = engine == "numpy"
    W = "np.where" if npy else "torch.where"
    prog = sim.program
    assert prog.phases == PHASES, "lowering phases changed: update the torch generator"
    L = prog.buffer_length()
    nm = _Names()
    hoisted: dict[str, str] = {}
    c = SourceWriter(depth=2)
    c("t = t0 + k")
    c(f"slot = t % {L}")
    printers = {}
    for p in prog.populations.values():
        if not p.spike_source:
            base = _pop_printer(p, nm, NUMPY_FUNCS if npy else _FUNCS)
            printers[p.name] = _HoistPrinter(base, set(p.state), set(p.inputs), hoisted)
    # ---- deliver
    for p in prog.populations.values():
        for port, (var, scale) in p.ports.items():
            v = nm.s(f"P_{p.name}__{var}")
            c(f"{v} = {v} + RV_{p.name}__{port}[slot] * {nm.c(f'C_{p.name}__{scale}')}")
        if p.ports:
            c(f"RS_{p.name}[slot].fill(0)" if npy else f"RS_{p.name}[slot].zero_()")
    # ---- reset_prev, integrate, threshold, reset
    refr_pops = []
    sel_pops: set[str] = set()
    for p in prog.populations.values():
        n = p.name
        spk = nm.s(f"P_{n}__spk")
        if p.spike_source:
            c(f"{spk} = SRC_{n}[k]")
            continue
        pr = printers[n]
        if p.inputs:
            nm.c(f"Z_{n}")
        # state variables are arrays: where directly (no helper call per step)
        if prog.reset_mode == "next_step":
            for st in p.reset:
                t_ = pr.name(st.target)
                c(f"{t_} = {W}({spk}, {pr(st.value)}, {t_})")
        refractory = _refractory(p)
        uniform = refractory and bool(np.all(p.refractory_steps == p.refractory_steps[0]))
        if refractory:
            refr_pops.append(n)
            # active (not refractory) from the step NEXT = last spike + refsteps + 1 on
            c(f"act = NEXT_{n} <= t")
        for v, e in p.updates.items():
            c(f"new_{v} = {pr(e)}")
        for v in p.updates:
            if v in p.clamped and refractory and npy:  # in place: the loop owns its arrays
                c(f"np.copyto({pr.name(v)}, new_{v}, where=act)")
            elif v in p.clamped and refractory:
                c(f"{pr.name(v)} = {W}(act, new_{v}, {pr.name(v)})")
            else:
                c(f"{pr.name(v)} = new_{v}")
        if p.threshold is None:
            c(f"{spk} = _as_bool({nm.c(f'Z_{n}')})")
        else:
            compare = isinstance(p.threshold.tree, ast.Compare | ast.BoolOp)
            hard = pr(p.threshold) if compare else f"_as_bool({pr(p.threshold)})"
            c(f"{spk} = {hard} & act" if refractory else f"{spk} = {hard}")
        sel = npy and sim.batch_size == 1
        if sel:
            # the spiking neurons' indices, once: resets and refractory clocks are written
            # there (a masked copy walks every neuron), propagation reads them
            c(f"SEL_{n} = {spk}[0].nonzero()[0]")
            sel_pops.add(n)
        if prog.reset_mode == "same_step":
            for st in p.reset:
                t_ = pr.name(st.target)
                value = pr(st.value)
                if sel and _is_float_literal(value):
                    c(f"{t_}[0, SEL_{n}] = {value}")
                elif sel and value in {f"C_{n}__{k}" for k in p.constants}:
                    c(f"{t_}[0, SEL_{n}] = {value}[SEL_{n}]")  # (n,) constant, (1, n) state
                elif npy:
                    c(f"np.copyto({t_}, {value}, where={spk})")
                else:
                    c(f"{t_} = {W}({spk}, {value}, {t_})")
        nxt = f"t + {int(p.refractory_steps[0]) + 1}" if uniform else None
        if uniform and sel:
            c(f"NEXT_{n}[0, SEL_{n}] = {nxt}")
        elif uniform and npy:
            c(f"np.copyto(NEXT_{n}, {nxt}, where={spk})")
        elif uniform:
            c(f"NEXT_{n}.masked_fill_({spk}, {nxt})")
        elif refractory:
            c(f"NEXT_{n} = {W}({spk}, {nm.c(f'C_{n}__refsteps')} + (t + 1), NEXT_{n})")
    # ---- propagate: one index_add_ per group of projections (see _sparse_groups)
    for gi, (pre, _names) in enumerate(sim._sparse_groups):
        spk = nm.s(f"P_{pre}__spk")
        if pre in sel_pops:
            c(f"idx = SEL_{pre}")  # (1, n): the column is the flat index
            c("if idx.size:")
            c(f"    np.add.at(GR, GT{gi}[slot][idx].ravel(), GW{gi}[idx].ravel())")
        elif npy:
            c(f"idx = np.flatnonzero({spk})")
            c("if idx.size:")
            c(f"    np.add.at(GR, GT{gi}[slot][idx].ravel(), GW{gi}[idx].ravel())")
        else:
            c(f"idx = torch.nonzero({spk}.reshape(-1)).view(-1)")
            c("if idx.numel():")
            c(
                f"    GR.index_add_(0, GT{gi}[slot].index_select(0, idx).view(-1), "
                f"GW{gi}.index_select(0, idx).view(-1))"
            )
    # ---- record
    # events-only probes of computed populations (numpy, B == 1): with EV the spiking indices
    # the step found anyway, not the (T, n) raster that would be stacked and searched after
    ev_lists = [n for n in prog.event_probes if n in sel_pops and n not in prog.spike_probes]
    for n in _recorded(prog):
        if n in ev_lists:
            c("if EV:")
            with c.block():
                c(f"EV_{n}.append(SEL_{n})")
            c("else:")
            with c.block():
                c(f"OUT_{n}.append({nm.s(f'P_{n}__spk')})")
        else:
            c(f"OUT_{n}.append({nm.s(f'P_{n}__spk')})")
    for r, (pop, var, _) in enumerate(prog.state_probes):
        x = printers[pop].name(var)
        c(
            f"rec{r}.append({x}[:, PI[{r}]])"
            if npy
            else f"rec{r}.append({x}.index_select(1, PI[{r}]))"
        )
    # ---- header: state, rings, refractory clocks, hoisted values
    a = ".numpy()" if npy else ""  # zero-copy views of CPU tensors
    head = ["def loop(S, K, src, cur, T, t0, PI, G, EV=False):"]
    head += [f"    {k} = K[{k!r}]{a}" for k in sorted(nm.constants)]
    # numpy: private copies, since the loop updates some of them in place
    head += [f"    {k} = S[{k!r}]" + (".numpy().copy()" if npy else "") for k in sorted(nm.state)]
    head += ["    GR, blocks = _gather_rings(S)"]
    if npy:
        head += ["    GR = GR.numpy()", "    PI = [i.numpy() for i in PI]"]
    for p in prog.populations.values():
        if p.spike_source:
            head.append(f"    SRC_{p.name} = src[{p.name!r}]{a}" + ("" if npy else ".unbind(0)"))
            continue
        for v in p.inputs:
            key = f"{p.name}.{v}"
            get = f"cur[{key!r}]{a} if {key!r} in cur else Z_{p.name}"
            head.append(f"    I_{p.name}__{v} = {get}")
        if p.ports:
            blk = f"blocks[{p.name!r}]{a}"
            head.append(
                f"    RS_{p.name} = list({blk})" if npy else f"    RS_{p.name} = {blk}.unbind(0)"
            )
            for i, port in enumerate(p.ports):
                rv = f"list({blk}[:, {i}])" if npy else f"{blk}[:, {i}].unbind(0)"
                head.append(f"    RV_{p.name}__{port} = {rv}")
    for n in refr_pops:
        nxt = f"_next_active(S[{f'P_{n}__ref'!r}], t0){a}"
        if npy:  # int32 clocks when every value fits: a third faster to compare
            top = int(prog.populations[n].refractory_steps.max()) + 1
            nxt = f"_narrow_clock({nxt}, t0 + T + {top})"
        head.append(f"    NEXT_{n} = {nxt}")
    head += [f"    {h} = _over_time({text}, T)" for text, h in hoisted.items()]
    for gi in range(len(sim._sparse_groups)):
        if npy:
            head.append(f"    GT{gi}, GW{gi} = list(G[{gi}][0].numpy()), G[{gi}][1].numpy()")
        else:
            head.append(f"    GT{gi}, GW{gi} = G[{gi}][0].unbind(0), G[{gi}][1]")
    head += [f"    OUT_{n} = []" for n in _recorded(prog)]
    head += [f"    EV_{n} = []" for n in ev_lists]
    head += [f"    rec{r} = []" for r in range(len(prog.state_probes))]
    head += ["    for k in range(T):"]
    back = "_from_numpy" if npy else ""
    stack = "np.stack" if npy else "torch.stack"
    tail = [f"    S[{k!r}] = {back}({k})" for k in sorted(nm.state)]
    for p in prog.populations.values():
        tail.append(f"    S[{f'P_{p.name}__spkf'!r}] = _as_float(S[{f'P_{p.name}__spk'!r}])")
    for n in refr_pops:
        nxt = f"NEXT_{n}.astype(np.int64)" if npy else f"NEXT_{n}"
        tail.append(f"    S[{f'P_{n}__ref'!r}] = _counter({back}({nxt}), t0 + T)")
    tail.append("    _scatter_rings(S, blocks)")
    outs = ", ".join(
        f"{n!r}: _event_lists(EV_{n}) if EV else {back}({stack}(OUT_{n}))"
        if n in ev_lists
        else f"{n!r}: {back}({stack}(OUT_{n}))"
        for n in _recorded(prog)
    )
    recs = ", ".join(f"{back}({stack}(rec{r}))" for r in range(len(prog.state_probes)))
    tail.append(f"    return {{{outs}}}, [{recs}]")
    return "\n".join(head + c.lines + tail) + "\n"


def _event_lists(per_step: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, neurons) int64 from the ascending spiking indices of each step."""
    counts = np.fromiter((a.size for a in per_step), np.int64, len(per_step))
    steps = np.repeat(np.arange(len(per_step), dtype=np.int64), counts)
    neurons = np.concatenate(per_step).astype(np.int64) if per_step else np.zeros(0, np.int64)
    return steps, neurons


def _is_float_literal(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class SparseSchedule:
    """The :class:`~.simulation.TorchSimulation` methods of the sparse loop: propagation
    tables, the flat ring buffer, the run."""

    def _build_sparse(self) -> None:
        """Event-driven propagation tables for :func:`generate_sparse_loop` (networks without
        plasticity): projections grouped into runs (in program order) with one pre population
        and distinct (post, port) targets, so that every ring element receives its terms in
        numba's order (projection, then spiking pre neuron, then CSR position). Per group,
        ``targets[s]`` (s = t mod L) holds for every (batch, pre neuron) row its synapses'
        positions in the flat ring buffer, padded to the longest row with position 0 and
        weight 0 (adding +0.0 changes no ring value: a ring slot starts at +0.0 and never
        holds -0.0)."""
        prog, B = self.program, self.batch_size
        self._sparse = False
        self._sparse_groups: list[tuple[str, list[str]]] = []
        if any(q.plasticity is not None for q in prog.projections.values()):
            return
        L = prog.buffer_length()
        self._ring_blocks: dict[str, tuple[int, int]] = {}  # pop -> (offset, ports)
        off = 0
        for p in prog.populations.values():
            if not p.spike_source and p.ports:
                self._ring_blocks[p.name] = (off, len(p.ports))
                off += L * len(p.ports) * B * p.size
        self._ring_size = off
        for q in prog.projections.values():
            g = self._sparse_groups[-1] if self._sparse_groups else None
            taken = (
                {(prog.projections[x].post, prog.projections[x].port) for x in g[1]} if g else set()
            )
            if g and g[0] == q.pre and (q.post, q.port) not in taken:
                g[1].append(q.name)
            else:
                self._sparse_groups.append((q.pre, [q.name]))
        size = sum(
            L * B * prog.populations[pre].size * self._row_width(names)
            for pre, names in self._sparse_groups
        )
        if size * 8 > _SPARSE_TABLE_BYTES:
            return  # tables too large: the dense step path runs instead
        self._sparse_targets = []
        self._sparse_index = []  # per group: (B * n_pre, F) synapse positions, -1 = padding
        for pre, names in self._sparse_groups:
            n_pre = prog.populations[pre].size
            F = self._row_width(names)
            tgt = np.zeros((L, B, n_pre, F), dtype=np.int64)
            pos = np.full((n_pre, F), -1, dtype=np.int64)  # into the concatenated weights
            col0 = np.zeros(n_pre, dtype=np.int64)
            base = 0
            for qn in names:
                q = prog.projections[qn]
                post = prog.populations[q.post]
                boff, P = self._ring_blocks[q.post]
                pi = list(post.ports).index(q.port)
                counts = np.diff(q.indptr)
                col = np.arange(q.pre_index.size) - q.indptr[q.pre_index] + col0[q.pre_index]
                pos[q.pre_index, col] = base + np.arange(q.pre_index.size)
                for sph in range(L):
                    slot = (sph + q.delay) % L
                    for b in range(B):
                        tgt[sph, b, q.pre_index, col] = (
                            boff + ((slot * P + pi) * B + b) * post.size + q.post_index
                        )
                col0 += counts
                base += q.pre_index.size
            self._sparse_targets.append(
                torch.as_tensor(tgt.reshape(L, B * n_pre, F), device=self.device)
            )
            self._sparse_index.append(torch.as_tensor(np.tile(pos, (B, 1)), device=self.device))
        self._sparse_weights_cache: list[torch.Tensor] | None = None
        self._sparse = True
        self.sparse_sources: dict[str, str] = {}
        self._sparse_loops: dict[str, Callable[..., Any]] = {}
        for engine in ("torch", "numpy") if self.device.type == "cpu" else ("torch",):
            src = generate_sparse_loop(self, engine)
            self.sparse_sources[engine] = src
            exec(compile(src, f"<neuromem torch sparse {engine} {prog.name}>", "exec"), self._ns)
            self._sparse_loops[engine] = self._ns.pop("loop")

    def _row_width(self, names: list[str]) -> int:
        """Synapses of the longest pre neuron row over the projections ``names``."""
        rows = sum(np.diff(self.program.projections[q].indptr) for q in names)
        return max(int(np.max(rows)) if np.size(rows) else 0, 1)

    def _sparse_tables(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(targets, weights) per group; weights gathered from the current static weights
        (padding reads an appended 0.0), cached unless they are trainable parameters."""
        if self._sparse_weights_cache is None or self.trainable:
            weights = self.weights if self.trainable else self._static_weights
            ws = []
            for (_, names), pos in zip(self._sparse_groups, self._sparse_index, strict=True):
                w = torch.cat([weights[q].detach() for q in names] + [self._tensor([0.0])])
                ws.append(w[pos])  # pos -1 = the appended 0.0
            self._sparse_weights_cache = ws
        return list(zip(self._sparse_targets, self._sparse_weights_cache, strict=True))

    def _gather_rings(self, S: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """All ring buffers in one flat tensor; per population a view (L, ports, B, n)."""
        prog, B, L = self.program, self.batch_size, self.program.buffer_length()
        GR = torch.empty(self._ring_size, dtype=self.dtype, device=self.device)
        blocks = {}
        for n, (off, P) in self._ring_blocks.items():
            p = prog.populations[n]
            blk = GR[off : off + L * P * B * p.size].view(L, P, B, p.size)
            for i, port in enumerate(p.ports):
                blk[:, i] = torch.stack(S[f"R_{n}__{port}"])
            blocks[n] = blk
        return GR, blocks

    def _scatter_rings(self, S: dict[str, Any], blocks: dict[str, torch.Tensor]) -> None:
        for n, blk in blocks.items():
            for i, port in enumerate(self.program.populations[n].ports):
                S[f"R_{n}__{port}"] = list(blk[:, i].unbind(0))

    def _loop_sparse(
        self,
        steps: int,
        K: dict[str, torch.Tensor],
        src: dict[str, torch.Tensor],
        cur: dict[str, torch.Tensor],
        record: tuple[str, ...],
        float_spikes: bool,
        events: bool,
    ) -> tuple[dict[str, Any], list[torch.Tensor]]:
        """The sparse loop (no autograd; see ``_loop``)."""
        loop = self._sparse_loops["numpy" if self.cpu_engine == "numpy" else "torch"]
        out, state = loop(
            self._S,
            K,
            src,
            cur,
            steps,
            self.t,
            self._probe_index(),
            self._sparse_tables(),
            events and not float_spikes,
        )
        to_float = self._ns["_as_float"]
        out = {n: to_float(out[n]) if float_spikes else out[n] for n in record}
        return out, state
