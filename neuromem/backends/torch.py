"""torch backend: code generated from the lowered program, vectorised over neurons.

All code is Python source printed from the checked expression trees (never from user text),
compiled once per simulation. Every tensor of the state has a leading batch axis: ``(B, n)``
for neurons, ``(B, n_pre, n_post)`` for plastic weights. Three schedules execute
:data:`neuromem.lower.PHASES`; which one runs is chosen per call of ``run``/``forward``:

* **sparse loop** (:func:`generate_sparse_loop`; ``run`` without autograd, networks without
  plasticity): the whole time loop in one generated function; event-driven propagation (the
  spiking neurons' padded CSR rows, one ``index_add_`` per group of projections into one flat
  ring buffer), no dense matrices. On the CPU it runs with numpy on the tensors' memory by
  default (``cpu_engine``), same operations and bits. At float64 on the CPU the ring sums are
  accumulated in numba's order: rasters and states are bit-identical to numba's.
* **layered** (:func:`generate_population_loop`; networks without plasticity whose projections
  between computed populations form no cycle; the default for ``forward`` and for float32 or
  CUDA runs): populations in topological order, each projection's input for all steps of the
  chunk by one matrix product per delay over all ``T * B`` rows, only the neuron recurrence
  step by step. With autograd, a population runs as one :class:`_FusedPopulation` node whose
  backward pass is generated from sympy derivatives of the same expressions
  (:func:`generate_population_backward`), instead of a per-step autograd graph; on the CPU
  the node computes a port's product itself, one cache-sized block of steps at a time, and
  keeps its (T, B, n) work tensors in buffers reused across calls.
* **step** (:func:`generate`; everything else, e.g. plastic or recurrent networks with
  autograd): one generated step function per time step, dense connectivity. A static
  projection is one ``(n_pre, n_post)`` matrix per delay (duplicate synapses summed). A plastic
  projection keeps per-batch dense weights in *layers*: layer ``l`` holds the ``l``-th synapse
  of every (pre, post) pair, so duplicate synapses keep their own weights, and a boolean mask
  marks the connected entries. Exact mode (CPU, float64, no autograd): ring-buffer sums are
  accumulated sequentially in numba's order (bit-identical rasters); otherwise propagation is
  ``spikes @ W`` and sums may differ from numba's in the last bits.

With an autograd graph (``trainable=True`` or inputs requiring grad in :meth:`forward`), spikes
come from a Heaviside with a surrogate derivative on the lowered ``threshold_margin`` and resets
are blends ``x * (1 - s) + x_reset * s`` (the fused backward differentiates the same blend).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..codegen import SourceWriter
from ..equations import Expression, Printer, Statement
from ..errors import CapabilityError, SpecError
from ..lower import NUMPY_FUNCS, PHASES, PopulationProgram, ProjectionProgram
from .base import Simulation
from .operators import TorchELM
from .spins import TorchSpins

_FUNCS = {
    "exp": "_exp",
    "log": "_log",
    "sqrt": "_sqrt",
    "tanh": "_tanh",
    "abs": "_abs",
    "clip": "_clip",
    "minimum": "_minimum",
    "maximum": "_maximum",
    "where": "_where",
}

_SURROGATES = ("fast_sigmoid", "sigmoid")
_SCHEDULES = ("auto", "step", "layered")
_SPARSE_TABLE_BYTES = 512 * 2**20  # padded propagation tables above this: dense step path
_PER_STEP_FACTORS = 4096  # B * n from which backward factors are computed step by step
_BLOCK_BYTES = 2**20  # a fused population's time block: (steps, B, n) values in this many bytes
_FREE_BYTES = 2**28  # work buffers of the fused populations kept for reuse, at most


# ------------------------------------------------------------------------------ surrogate spike
class SpikeFunction(torch.autograd.Function):
    """Heaviside forward (the given hard spikes), surrogate derivative backward.

    ``fast_sigmoid`` (SuperSpike, Zenke & Ganguli 2018): ``1 / (1 + slope * |m|) ** 2``;
    ``sigmoid``: ``slope * sig(slope * m) * (1 - sig(slope * m))``; ``m`` is the threshold margin.
    """

    @staticmethod
    def forward(
        ctx,
        margin: torch.Tensor,
        hard: torch.Tensor,
        slope: float,  # type: ignore[override]
        kind: str,
    ) -> torch.Tensor:
        ctx.save_for_backward(margin)
        ctx.slope, ctx.kind = slope, kind
        return hard.to(margin.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (m,) = ctx.saved_tensors
        if ctx.kind == "fast_sigmoid":
            d = 1.0 / (1.0 + ctx.slope * m.abs()) ** 2
        else:
            sg = torch.sigmoid(ctx.slope * m)
            d = ctx.slope * sg * (1.0 - sg)
        return grad * d, None, None, None


# ------------------------------------------------------------------------------ code generation
class _Names:
    """Collects the constants and state entries the generated body reads (to load only those)."""

    def __init__(self) -> None:
        self.constants: set[str] = set()
        self.state: set[str] = set()

    def c(self, key: str) -> str:
        self.constants.add(key)
        return key

    def s(self, key: str) -> str:
        self.state.add(key)
        return key


def _pop_printer(p: PopulationProgram, nm: _Names, funcs: dict[str, str] = _FUNCS) -> Printer:
    def name(n: str) -> str:
        if n in p.state:
            return nm.s(f"P_{p.name}__{n}")
        if n in p.inputs:
            return f"I_{p.name}__{n}"
        if n == "dt" and n not in p.constants:
            return repr(float(p.dt))
        return nm.c(f"C_{p.name}__{n}")

    return Printer(name, funcs, "array")


def _plastic_printer(
    q: ProjectionProgram, nm: _Names, pre_sel: str, post_sel: str, pre: str, post: str, dt: float
) -> Printer:
    """Names for synaptic statements on ``(B, rows, cols)`` blocks; ``pre_sel``/``post_sel``
    select and shape the per-neuron vectors (e.g. ``.index_select(1, rows)[:, :, None]``)."""
    pl = q.plasticity
    assert pl is not None

    def name(n: str) -> str:
        if n == "w":
            return "w"
        if n in pl.pre_traces:
            return nm.s(f"Q_{q.name}__tr_{n}") + pre_sel
        if n in pl.post_traces:
            return nm.s(f"Q_{q.name}__tr_{n}") + post_sel
        if n == "pre_event":
            return nm.s(f"P_{pre}__spk") + pre_sel
        if n == "post_event":
            return nm.s(f"P_{post}__spk") + post_sel
        if n == "dt" and n not in pl.constants:
            return repr(float(dt))
        return nm.c(f"C_{q.name}__{n}")

    return Printer(name, _FUNCS, "array")


def _trace_printer(q: ProjectionProgram, nm: _Names, dt: float) -> Printer:
    pl = q.plasticity
    assert pl is not None

    def name(n: str) -> str:
        if n in pl.pre_traces or n in pl.post_traces:
            return nm.s(f"Q_{q.name}__tr_{n}")
        if n == "dt" and n not in pl.constants:
            return repr(float(dt))
        return nm.c(f"C_{q.name}__{n}")

    return Printer(name, _FUNCS, "array")


def _reads(stmts: tuple[Statement, ...] | dict[str, Expression]) -> set[str]:
    exprs = stmts.values() if isinstance(stmts, dict) else [s.value for s in stmts]
    return set().union(*[e.names for e in exprs]) if exprs else set()


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
        if prog.reset_mode == "next_step":
            for s in p.reset:
                c(
                    f"{pr.name(s.target)} = _reset({spk}, {spkf}, {pr(s.value)}, "
                    f"{pr.name(s.target)})"
                )
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
            for s in p.reset:
                c(
                    f"{pr.name(s.target)} = _reset({spk}, {spkf}, {pr(s.value)}, "
                    f"{pr.name(s.target)})"
                )
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


class _HoistPrinter(Printer):
    """Prints like ``base`` but replaces every maximal subtree that reads no state variable
    (only constants, inputs and ``dt``) by ``H<i>[k]``: a value computed once for all steps of
    a run chunk (elementwise, so each step sees the same bits as computing it in the step)."""

    def __init__(
        self, base: Printer, dynamic: set[str], timed: set[str], hoisted: dict[str, str]
    ) -> None:
        super().__init__(base.name, base.functions, base.mode)
        self._base, self._dynamic, self._timed, self.hoisted = base, dynamic, timed, hoisted

    def _p(self, n: ast.AST) -> str:
        # inputs (time-indexed) are hoisted even alone; constants and dt are read as they are
        if not isinstance(n, ast.Name | ast.Constant) or (
            isinstance(n, ast.Name) and n.id in self._timed
        ):
            names = {x.id for x in ast.walk(n) if isinstance(x, ast.Name)}
            if not names & self._dynamic:
                text = self._base._p(n)
                return self.hoisted.setdefault(text, f"H{len(self.hoisted)}") + "[k]"
        return super()._p(n)


def _saved_names(p: PopulationProgram, keep: set[str] | None) -> list[str]:
    """What the ``"saving"`` loop keeps for the fused backward: ``U_<var>`` (state after
    delivery), ``Z_<var>`` (after integration), ``R`` (refractory flags, bool); only those
    in ``keep`` (the names the backward reads) when given, ``R`` always when refractory."""
    saved = [f"U_{v}" for v in p.state] + [f"Z_{v}" for v in p.state]
    saved += ["R"] if np.any(p.refractory_steps > 0) else []
    return [x for x in saved if keep is None or x in keep or x == "R"]


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
    refractory = bool(np.any(p.refractory_steps > 0))
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
        refractory = bool(np.any(p.refractory_steps > 0))
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


def _recorded(prog) -> tuple[str, ...]:
    """Populations whose spikes the loops record: raster probes, then events probes."""
    return tuple(dict.fromkeys(prog.spike_probes + prog.event_probes))


class _NotFusable(Exception):
    pass


def _derivatives(expr: Expression, wrt: tuple[str, ...], where: str) -> dict[str, Expression]:
    """Nonzero partial derivatives of ``expr`` by each name in ``wrt`` (sympy, printed back into
    the grammar); raises :class:`_NotFusable` where an expression has no derivative there."""
    import sympy

    from ..lower import _Nonlinear, _to_expression, _to_sympy

    symbols: dict[str, sympy.Symbol] = {}
    try:
        e = _to_sympy(expr, symbols)
    except _Nonlinear as exc:
        raise _NotFusable(f"{where}: {exc}") from None
    out = {}
    for v in wrt:
        if v not in symbols:
            continue
        d = sympy.diff(e, symbols[v])
        if d != 0:
            try:
                out[v] = _to_expression(d, where)
            except SpecError as exc:  # e.g. sign(x) from abs: outside the grammar
                raise _NotFusable(str(exc)) from None
    return out


def generate_population_backward(
    sim: TorchSimulation, p: PopulationProgram, driven_ports: tuple[str, ...]
) -> str:
    """Source of ``bwd(K, saved, SF, G, cur, T, OUT)``: backpropagation through the ``T`` steps
    of the ``"saving"`` loop of :func:`generate_population_loop`, derived symbolically (sympy)
    from the same lowered expressions. ``SF``: float spikes (T, B, n); ``G``: the gradient of
    the loss by them. The gradient by each driven port's input in step ``k`` is copied into
    ``OUT[port][k]`` (a (B, n) row of the caller's buffer; None: not wanted), so no per-step
    tensors are kept and no (T, B, n) tensor is stacked from them.

    One step, forward: ``u`` = state after delivery, ``z_j = new_j(u)`` (``u_j`` while
    refractory for clamped ``j``), ``s = H(m(z))`` with ``ds/dm`` the surrogate (zero while
    refractory), then for each reset target ``y_r = z_r (1 - s) + value_r(z) s`` (the blend of
    the autograd schedule). Every factor that depends only on saved values (``z``, ``u``,
    spikes, refractory flags) is computed for all ``T`` steps at once before the reverse loop,
    which is left with a few multiply-adds per step and variable.
    Raises :class:`_NotFusable` for what it cannot derive (``next_step`` reset, reset values
    reading earlier reset targets, expressions without a derivative in the grammar).
    """
    prog = sim.program
    n = p.name
    where = f"population {n!r}"
    if prog.reset_mode != "same_step":
        raise _NotFusable("reset_mode 'next_step'")
    nm = _Names()
    refractory = bool(np.any(p.refractory_steps > 0))
    names = tuple(p.state)
    targets = [s.target for s in p.reset]
    if len(set(targets)) < len(targets):
        raise _NotFusable(f"{where}: a variable is reset twice")
    for i, st in enumerate(p.reset):
        if st.value.names & set(targets[:i]):
            raise _NotFusable(f"{where}: reset value reads an earlier reset target")
    used: set[str] = set()  # stacked saved tensors the precomputation reads

    def printer(prefix: str) -> Printer:
        def name(x: str) -> str:
            if x in p.state:
                used.add(f"{prefix}{x}")
                return f"{prefix}{x}"
            if x in p.inputs:
                return f"{'i' if prefix.islower() else 'I'}_{x}"
            if x == "dt" and x not in p.constants:
                return repr(float(p.dt))
            return nm.c(f"C_{n}__{x}")

        return Printer(name, _FUNCS, "array")

    # Factors that vary over steps: for small populations computed for the whole chunk at
    # once (few large operations); for large ones (B * n >= _PER_STEP_FACTORS) step by step
    # inside the loop, where the step's tensors are still in cache (a chunk-wide operation on
    # T * B * n values is memory-bound and slower than T operations on cached B * n values).
    per_step = sim.batch_size * p.size >= _PER_STEP_FACTORS
    Zp, Up, SFn, NRn, RRn = (
        ("z_", "u_", "sf", "nr", "rr") if per_step else ("Z_", "U_", "SF", "NR", "RR")
    )
    pz, pu = printer(Zp), printer(Up)

    def factor_of(pr: Printer, e: Expression) -> tuple[str, bool]:
        """Printed factor and whether it varies over steps (reads state or inputs)."""
        return f"({pr(e)})", bool(e.names & (set(p.state) | set(p.inputs)))

    pre = SourceWriter(depth=1)  # once per chunk
    c = SourceWriter(depth=2)  # the reverse loop
    body = SourceWriter(depth=2)  # per-step factors (per_step mode), before the recursion
    terms_sf = ["G[k]"]
    terms_z: dict[str, list[str]] = {v: [] for v in names}
    nf = 0

    def factor(text: str, timed: bool = True) -> str:
        """Name under which step k reads the factor ``text``."""
        nonlocal nf
        nf += 1
        if timed and per_step:
            body(f"F{nf} = {text}")
            return f"F{nf}"
        pre(f"F{nf} = {text}")
        return f"F{nf}[k]" if timed else f"F{nf}"

    # reset blends
    for st in p.reset:
        r = st.target
        used.add(f"{Zp}{r}")
        terms_sf.append(f"gy_{r} * {factor(f'({pz(st.value)}) - {Zp}{r}')}")
        terms_z[r].append(f"gy_{r} * {factor(f'1.0 - {SFn}')}")
        for x, d in _derivatives(st.value, names, where).items():
            terms_z[x].append(f"gy_{r} * {factor(f'{SFn} * {factor_of(pz, d)[0]}')}")
    for v in names:
        if v not in targets:
            terms_z[v].insert(0, f"gy_{v}")
    # surrogate spike
    if p.threshold is not None and p.threshold_margin is not None:
        ds = f"_surrogate({pz(p.threshold_margin)})"
        ds_ref = factor(f"{ds} * {NRn}" if refractory else ds)
        for x, d in _derivatives(p.threshold_margin, names, where).items():
            if d.text in ("1", "1.0"):
                terms_z[x].append(f"g_sf * {ds_ref}")
            else:
                f, timed = factor_of(pz, d)
                terms_z[x].append(f"g_sf * {ds_ref} * {factor(f, timed)}")
    # clamping and integration: the factors multiplying gz_j in the gradient by u_x
    parts: dict[str, dict[str, list[tuple[str, bool]]]] = {v: {} for v in names}
    for v in names:
        if v not in p.updates:
            parts[v].setdefault(v, []).append(("1.0", False))
        elif v in p.clamped and refractory:
            parts[v].setdefault(v, []).append((RRn, True))
    for j, e in p.updates.items():
        gate = refractory and j in p.clamped
        for x, d in _derivatives(e, names, where).items():
            f, timed = factor_of(pu, d)
            parts[x].setdefault(j, []).append((f"{NRn} * {f}", True) if gate else (f, timed))
    terms_u: dict[str, list[str]] = {v: [] for v in names}
    for x in names:
        for j, fs in parts[x].items():
            text = " + ".join(f for f, _ in fs)
            if text in ("(1)", "(1.0)", "1.0"):
                terms_u[x].append(f"gz_{j}")
            else:
                terms_u[x].append(f"gz_{j} * {factor(text, any(t for _, t in fs))}")
    c("g_sf = " + " + ".join(terms_sf))
    for v in names:
        c(f"gz_{v} = {' + '.join(terms_z[v]) if terms_z[v] else '0.0'}")
    for v in names:
        c(f"gy_{v} = {' + '.join(terms_u[v]) if terms_u[v] else f'0.0 * gy_{v}'}")
    for port, (var, _scale) in p.ports.items():
        if port in driven_ports:
            c(f"o = gX_{port}[k]")
            c("if o is not None:")
            with c.block():
                c(f"o.copy_(gy_{var})")
    head = ["def bwd(K, saved, SF, G, cur, T, OUT):"]
    head += [f"    {k} = K[{k!r}]" for k in sorted(nm.constants)]
    step_lines = []
    if per_step:
        head += [f"    I_{v} = _over_time(cur.get({v!r}, K[{f'Z_{n}'!r}]), T)" for v in p.inputs]
        head += [
            f"    {x.upper()[0]}{x[1:]} = saved[{(x.upper()[0] + x[1:])!r}].unbind(0)"
            for x in sorted(used)
        ]
        step_lines += [f"        i_{v} = I_{v}[k]" for v in p.inputs]
        step_lines += [f"        {x} = {x.upper()[0]}{x[1:]}[k]" for x in sorted(used)]
        head += ["    SFl = SF.unbind(0)"]
        step_lines += ["        sf = SFl[k]"]
        if refractory:
            head += ["    R = saved['R'].unbind(0)"]
            step_lines += ["        nr = _as_float(~R[k])", "        rr = _as_float(R[k])"]
    else:
        head += [f"    I_{v} = cur.get({v!r}, K[{f'Z_{n}'!r}])" for v in p.inputs]
        head += [f"    {x} = saved[{x!r}]" for x in sorted(used)]
        if refractory:
            head += [
                "    R = saved['R']",
                "    NR = _as_float(~R)",
                "    RR = _as_float(R)",
            ]
    head += pre.lines
    head += [f"    gy_{v} = torch.zeros_like(G[0])" for v in names]
    head += [f"    gX_{port} = OUT[{port!r}]" for port in driven_ports]
    head += ["    for k in range(T - 1, -1, -1):"]
    tail = ["    return None"]
    return "\n".join(head + step_lines + body.lines + c.lines + tail) + "\n"


def _steps(head: list[torch.Tensor], Y: torch.Tensor, d: int, T: int) -> list[torch.Tensor]:
    """Per-step inputs: ``head`` for the first ``d`` steps, then the rows of ``Y``."""
    return [*head, *Y.unbind(0)[: T - d]] if d else list(Y.unbind(0))


class _FusedRun:
    """One population over a run chunk, as :class:`_FusedPopulation` runs it: the generated
    ``"saving"`` loop over blocks of steps and the generated backward.

    ``ports`` maps each driven port to ``(kind, head, d)``: step ``k`` receives ``head[k]`` for
    ``k < d``, then row ``k - d`` of the port's arrivals. Kind ``"Y"``: the arrivals (T, B, n)
    are one input of the node. Kind ``"mm"``: two inputs, the presynaptic float spikes
    ``pre`` (T, B, n_pre) and the weights ``W`` (n_pre, n); the node computes ``pre @ W``
    itself, one block of steps at a time into a reused buffer that stays in cache (with MKL
    on the CPU the rows of a product do not depend on the other rows: the same bits as one
    product over all ``T * B`` rows; tests/test_torch_layered.py checks it), and in the
    backward the products autograd's ``mm`` would compute.
    What the backward reads (``saved``: :func:`_saved_names`) and the gradient by the
    arrivals go to work buffers of the simulation, reused across calls; so the only new
    (T, B, n) tensors of a call are the float spikes and, for a ``"Y"`` port, the gradient.
    """

    def __init__(
        self,
        sim: TorchSimulation,
        n: str,
        K: dict[str, torch.Tensor],
        cur: dict[str, torch.Tensor],
        PI: dict[int, torch.Tensor],
        T: int,
        ports: dict[str, tuple[str, list[torch.Tensor], int]],
    ) -> None:
        self.sim, self.K, self.cur, self.PI, self.T, self.ports = sim, K, cur, PI, T, ports
        self.loop, self.bwd = sim._pop_loops[n]["saving"], sim._pop_bwd[n]
        self.names, self.size = sim._pop_saved[n], sim.program.populations[n].size
        self.rec: dict[int, list[torch.Tensor]] = {}
        self.saved: dict[str, torch.Tensor] = {}

    def forward(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Float spikes (T, B, n); keeps the probes and what the backward reads."""
        sim, T, n = self.sim, self.T, self.size
        B = sim.batch_size
        # steps per block: the block's arrivals, states and spikes stay in cache
        block = max(1, min(T, _BLOCK_BYTES // (B * n * sim.dtype.itemsize)))
        src: dict[str, Any] = {}
        it = iter(inputs)
        for port, (kind, head, d) in self.ports.items():
            if kind == "mm":
                pre, W = next(it), next(it)
                src[port] = (pre.reshape(T * B, pre.shape[2]), W, sim._buffer((block * B, n)))
            else:
                src[port] = _steps(head, next(it), d, T)
        self.saved = {
            x: sim._buffer((T, B, n), torch.bool if x == "R" else None) for x in self.names
        }
        soft = torch.empty(T, B, n, dtype=sim.dtype, device=sim.device)
        spk = sim._buffer((block, B, n), torch.bool)
        for k0 in range(0, T, block):
            k1 = min(T, k0 + block)
            X = {}
            for port, (kind, head, d) in self.ports.items():
                if kind != "mm":
                    X[port] = src[port][k0:k1]
                    continue
                pre, W, buf = src[port]
                r0, r1 = max(k0, d) - d, k1 - d  # product rows arriving in this block
                X[port] = head[k0:k1]
                if r1 > r0:
                    Y = torch.mm(pre[r0 * B : r1 * B], W, out=buf[: (r1 - r0) * B])
                    X[port] = [*X[port], *Y.view(r1 - r0, B, n).unbind(0)]
            cur = {v: x[k0:k1] if x.dim() == 3 else x for v, x in self.cur.items()}
            SV = {x: b[k0:k1] for x, b in self.saved.items()}
            hard, _, rec = self.loop(sim._S, self.K, X, cur, k1 - k0, self.PI, SV)
            torch.stack(hard, out=spk[: k1 - k0])
            soft[k0:k1].copy_(spk[: k1 - k0].view(torch.uint8))  # 0/1 as _as_float gives
            for r, values in rec.items():
                self.rec.setdefault(r, []).extend(values)
        sim._release(spk, *(v[2] for v in src.values() if isinstance(v, tuple)))
        return soft

    def backward(
        self, g: torch.Tensor, soft: torch.Tensor, inputs: tuple[torch.Tensor, ...], needs
    ) -> list[torch.Tensor | None]:
        """Gradients by the node's inputs (``needs``: which are wanted)."""
        sim, T, n = self.sim, self.T, self.size
        B = sim.batch_size
        out, gys = {}, []
        for port, (kind, _, d) in self.ports.items():
            # "mm": a work buffer, consumed below; "Y": handed to autograd
            gy = sim._buffer((T, B, n)) if kind == "mm" else g.new_empty(T, B, n)
            if d:  # rows of the arrivals that left the chunk (into the ring): no gradient
                gy[T - d :].zero_()
            out[port] = [None] * d + list(gy.unbind(0)[: T - d])
            gys.append(gy)
        self.bwd(self.K, self.saved, soft, g.unbind(0), self.cur, T, out)
        sim._release(*self.saved.values())
        self.saved = {}
        grads: list[torch.Tensor | None] = []
        i = 0
        for (kind, _, _), gy in zip(self.ports.values(), gys, strict=True):
            if kind != "mm":
                grads.append(gy)
                i += 1
                continue
            pre, W = inputs[i], inputs[i + 1]
            gf, pf = gy.view(T * B, n), pre.reshape(T * B, pre.shape[2])
            # as autograd differentiates pre.reshape(T * B, n_pre) @ W (row-major operands)
            grads.append(gf.mm(W.t()).view(pre.shape) if needs[i] else None)
            grads.append(pf.t().mm(gf) if needs[i + 1] else None)
            sim._release(gy)
            i += 2
        return grads


class _FusedPopulation(torch.autograd.Function):
    """One population over a run chunk as one autograd node (:class:`_FusedRun`): forward by
    the ``"saving"`` loop without a graph, backward by the generated BPTT loop (far fewer
    tensor operations and no per-step autograd bookkeeping). Gradients flow to the port
    inputs only: the arrivals, or the presynaptic spikes and weights of a product."""

    @staticmethod
    def forward(ctx, run, *inputs):  # type: ignore[override]
        with torch.no_grad():
            soft = run.forward(inputs)
        ctx.run, ctx.soft = run, soft
        # the backward's products read pre and W; the arrivals of a "Y" port are not kept
        keep = [
            f for k, _, _ in run.ports.values() for f in ((True, True) if k == "mm" else (False,))
        ]
        ctx.save_for_backward(*(x if f else None for x, f in zip(inputs, keep, strict=True)))
        return soft

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        if ctx.run is None:  # its saved values are work buffers again
            raise RuntimeError(
                "neuromem torch backend: a fused population's backward ran twice "
                "(retain_graph is not supported by the layered schedule; use schedule='step')"
            )
        with torch.no_grad():
            grads = ctx.run.backward(g, ctx.soft, ctx.saved_tensors, ctx.needs_input_grad[1:])
        ctx.run = ctx.soft = None
        return (None, *grads)


# ------------------------------------------------------------------------------ the simulation
class TorchSimulation(Simulation, nn.Module):
    """Simulation with torch: batches, CPU or CUDA, float32/float64, surrogate gradients.

    Parameters
    ----------
    net : Network
    dtype : torch.dtype
        ``torch.float64`` (default; CPU rasters are bit-identical to numba's) or
        ``torch.float32``.
    device : str or torch.device
        ``"cpu"`` or ``"cuda[:k]"``.
    batch_size : int
        Independent copies of the network run side by side (same initial state and weights).
    trainable : bool
        Static projection weights become :class:`torch.nn.Parameter` (``self.weights``) and
        :meth:`forward` builds an autograd graph with surrogate spikes.
    surrogate : {"fast_sigmoid", "sigmoid"}
        Derivative used for spikes in the backward pass.
    surrogate_slope : float
        Steepness of the surrogate, per unit of the threshold margin (mV for IF_curr_exp).
    schedule : {"auto", "step", "layered"}
        ``"step"``: every phase of every population, step by step (any network).
        ``"layered"``: populations one after the other in topological order, each
        projection's input for all steps of a run chunk by one matrix product per delay, only
        the neuron recurrence step by step; needs a network without plasticity whose
        projections between computed populations form no cycle (else :class:`SpecError`).
        ``"auto"`` (default): layered where the network allows it, except in the exact mode
        (CPU float64 without autograd), whose sums must follow numba's order.
    cpu_engine : {"numpy", "torch"}
        How ``run`` (no autograd) executes the step loop of a network without plasticity on
        the CPU: ``"numpy"`` (default) evaluates the generated statements with numpy on the
        tensors' memory (same operations, same bits; numpy's per-call overhead is about a
        third of torch's, which dominates a step at a few thousand neurons); ``"torch"``
        with torch operations. CUDA always uses torch.

    Notes
    -----
    ``run`` returns spikes of shape (steps, size) when ``batch_size == 1`` else
    (steps, B, size); state probes (steps, k) or (steps, B, k). ``state`` gives (size,) /
    (n_syn,) arrays when ``batch_size == 1`` else a leading batch axis. ``reset()`` restores
    state and plastic weights but keeps the (possibly trained) static weight parameters.
    All inputs of every spike-source population in a batch are the same in ``run``; use
    :meth:`forward` to give each batch element its own inputs.
    """

    backend = "torch"

    def __init__(self, net, **options: Any) -> None:
        dtype = options.pop("dtype", torch.float64)
        device = options.pop("device", "cpu")
        batch_size = options.pop("batch_size", 1)
        trainable = options.pop("trainable", False)
        surrogate = options.pop("surrogate", "fast_sigmoid")
        slope = options.pop("surrogate_slope", 10.0)
        schedule = options.pop("schedule", "auto")
        cpu_engine = options.pop("cpu_engine", "numpy")
        nn.Module.__init__(self)
        Simulation.__init__(self, net, **options)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype.replace("torch.", ""), None)
        if dtype not in (torch.float32, torch.float64):
            raise SpecError(
                f"torch backend: dtype must be torch.float32 or torch.float64, got {dtype!r}"
            )
        if not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise SpecError(
                f"torch backend: batch_size must be a positive integer, got {batch_size!r}"
            )
        if surrogate not in _SURROGATES:
            raise SpecError(
                f"torch backend: surrogate must be one of {_SURROGATES}, got {surrogate!r}"
            )
        self.dtype: torch.dtype = dtype
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.trainable = bool(trainable)
        self.surrogate, self.surrogate_slope = surrogate, float(slope)
        if schedule not in _SCHEDULES:
            raise SpecError(
                f"torch backend: schedule must be one of {_SCHEDULES}, got {schedule!r}"
            )
        self.schedule: str = schedule
        if cpu_engine not in ("numpy", "torch"):
            raise SpecError(
                f"torch backend: cpu_engine must be 'numpy' or 'torch', got {cpu_engine!r}"
            )
        self.cpu_engine: str = cpu_engine if self.device.type == "cpu" else "torch"
        self._check_neuron_statements()
        self._build_connectivity()
        self.source = generate(self)
        self._ns = self._namespace()
        exec(compile(self.source, f"<neuromem torch step {self.program.name}>", "exec"), self._ns)
        self._step: Callable[..., None] = self._ns["step"]
        self._build_layers()
        self._build_sparse()
        self._K = self._constants()
        self._spin_nodes = [
            TorchSpins(sp, self.batch_size, self.device, self.dtype)
            for sp in self.program.spins.values()
        ]
        self._operators = {
            n: TorchELM(op, self.batch_size, self.device, self.dtype)
            for n, op in self.program.operators.items()
        }
        self._reset()

    # --------------------------------------------------------------- setup
    def _tensor(self, x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype or self.dtype, device=self.device)

    def _check_neuron_statements(self) -> None:
        # A trace statement of one side reading the other side's trace is indexed by its own
        # neuron (as numba does); that only has a meaning when both sides have the same size.
        for q in self.program.projections.values():
            pl = q.plasticity
            if pl is None:
                continue
            n_pre = self.program.populations[q.pre].size
            n_post = self.program.populations[q.post].size
            cross = (_reads(pl.on_post_neuron) & set(pl.pre_traces)) | (
                _reads(pl.on_pre_neuron) & set(pl.post_traces)
            )
            if cross and n_pre != n_post:
                raise CapabilityError(
                    f"projection {q.name!r}: trace statements read "
                    f"{sorted(cross)} of the other side, whose size differs"
                )

    def _build_connectivity(self) -> None:
        """Static weights (parameters when trainable) and the layers of plastic projections."""
        self._layers: dict[str, list[tuple[int, ...]]] = {}
        self._layer_of: dict[str, np.ndarray] = {}
        # static dense matrices per (projection, delay): a permutation of w, or a scatter
        self._dense_gather: dict[str, torch.Tensor | None] = {}
        self._dense_scatter: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._dense_cache: dict[str, torch.Tensor] | None = None
        # (shape, dtype) -> free work buffers of the fused populations (_buffer, _release)
        self._free: dict[tuple[tuple[int, ...], torch.dtype], list[torch.Tensor]] = {}
        static: dict[str, torch.Tensor] = {}
        for q in self.program.projections.values():
            if q.plasticity is None:
                static[q.name] = self._tensor(q.weight)
                continue
            n_post = self.program.populations[q.post].size
            pair = q.pre_index * n_post + q.post_index
            order = np.argsort(pair, kind="stable")
            first = np.r_[0, np.flatnonzero(np.diff(pair[order])) + 1]
            rank = np.arange(pair.size) - np.repeat(first, np.diff(np.r_[first, pair.size]))
            layer = np.empty(pair.size, dtype=np.int64)
            layer[order] = rank
            self._layer_of[q.name] = layer
            n_layers = int(layer.max()) + 1 if layer.size else 0
            self._layers[q.name] = [
                tuple(int(d) for d in np.unique(q.delay[layer == ly])) for ly in range(n_layers)
            ]
        if self.trainable:
            self.weights = nn.ParameterDict({k: nn.Parameter(v) for k, v in static.items()})
        else:
            self._static_weights = static

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

    def _namespace(self) -> dict[str, Any]:
        dtype, device = self.dtype, self.device

        def t(x):
            return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=dtype, device=device)

        def minimum(a, b):
            return torch.minimum(t(a), t(b))

        def maximum(a, b):
            return torch.maximum(t(a), t(b))

        def where(c, a, b):
            # two python numbers would give torch's default dtype, not ours
            if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
                a = t(a)
            return torch.where(t(c), a, b)

        def as_bool(x):
            return x if x.dtype == torch.bool else x != 0

        def as_float(x):
            if x.dtype == torch.bool:  # via uint8: converting bool is several times slower
                return x.view(torch.uint8).to(dtype)
            return x if x.dtype == dtype else x.to(dtype)

        def over_time(x, T):
            # a (T, B, n) value -> its T steps; anything without a time axis serves every step
            if isinstance(x, torch.Tensor) and x.dim() == 3:
                return x.unbind(0)
            return list(x) if isinstance(x, np.ndarray) and x.ndim == 3 else [x] * T

        def active(spk):
            # neurons that spiked in any batch element; None lets the step skip the block
            idx = torch.nonzero(spk.any(0)).flatten()
            return idx if idx.numel() else None

        return {
            "torch": torch,
            "_exp": lambda x: torch.exp(t(x)),
            "_log": lambda x: torch.log(t(x)),
            "_sqrt": lambda x: torch.sqrt(t(x)),
            "_tanh": lambda x: torch.tanh(t(x)),
            "_abs": lambda x: torch.abs(t(x)),
            "_minimum": minimum,
            "_maximum": maximum,
            "_clip": lambda x, lo, hi: minimum(maximum(x, lo), hi),
            "_where": where,
            "_as_bool": as_bool,
            "_as_float": as_float,
            "_active": active,
            "_over_time": over_time,
            "np": np,
            "_from_numpy": lambda x: torch.from_numpy(np.ascontiguousarray(x)),
            "_gather_rings": self._gather_rings,
            "_scatter_rings": self._scatter_rings,
            # refractory counter c after step t0 - 1 (steps t0 .. t0 + c - 1 are refractory)
            # <-> the first active step NEXT = t0 + c
            "_next_active": lambda c, t0: c + t0,
            "_counter": lambda nxt, t_end: (nxt - t_end).clamp(min=0),
            "_narrow_clock": lambda a, top: a.astype(np.int32) if top < 2**31 - 1 else a,
            "_event_lists": _event_lists,
            "_surrogate": self._surrogate_derivative,
            # set per call by _mode(): exact/vectorised propagation, hard/surrogate spikes
            "_prop": None,
            "_spike": None,
            "_reset": None,
            "_put": None,
        }

    def _probe_index(self) -> list[torch.Tensor]:
        return [torch.as_tensor(idx, device=self.device) for _, _, idx in self.program.state_probes]

    def _surrogate_derivative(self, m: torch.Tensor) -> torch.Tensor:
        """``ds/dm`` of the surrogate spike, as :class:`SpikeFunction` computes it."""
        if self.surrogate == "fast_sigmoid":
            return 1.0 / (1.0 + self.surrogate_slope * m.abs()) ** 2
        sg = torch.sigmoid(self.surrogate_slope * m)
        return self.surrogate_slope * sg * (1.0 - sg)

    def _mode(self, grad: bool) -> None:
        """Select the helpers of the step function for a run with or without autograd."""
        ns = self._ns
        dtype = self.dtype
        exact = not grad and self.device.type == "cpu" and dtype == torch.float64

        def prop_exact(acc, spk, spkf, W, F):
            # Sequential sums in the pre neurons' order, as numba accumulates its ring buffer
            # (numpy: one cheap in-place add per spiking row; torch's reductions reorder sums).
            if not bool(spk.any()):
                return acc
            out = acc.numpy().copy()
            Wn, Fn = W.numpy(), None if F is None else F.numpy()
            for b, i in torch.nonzero(spk).tolist():
                row = Wn[i] if Wn.ndim == 2 else Wn[b, i]
                np.add(out[b], row if Fn is None else row * Fn[i], out=out[b])
            return torch.from_numpy(out)

        def prop_dense(acc, spk, spkf, W, F):
            return acc + (spkf.unsqueeze(1) @ (W if F is None else W * F)).squeeze(1)

        def put_inplace(W, dim, idx, w):
            return W.index_copy_(dim, idx, w)

        def put(W, dim, idx, w):
            return W.index_copy(dim, idx, w)

        slope, kind = self.surrogate_slope, self.surrogate

        def spike_hard(hard, refr, margin):
            return hard.to(dtype)

        def spike_surrogate(hard, refr, margin):
            if margin is None:
                return hard.to(dtype)
            m = margin()
            if not isinstance(m, torch.Tensor) or not m.requires_grad:
                return hard.to(dtype)
            s = SpikeFunction.apply(m, hard, slope, kind)
            return s if refr is None else s * (~refr).to(dtype)

        def reset_where(s, sf, new, old):
            return torch.where(s, new, old)

        def reset_blend(s, sf, new, old):
            return old * (1.0 - sf) + new * sf

        ns["_prop"] = prop_exact if exact else prop_dense
        ns["_spike"] = spike_surrogate if grad else spike_hard
        ns["_reset"] = reset_blend if grad else reset_where
        ns["_put"] = put if grad else put_inplace

    def _constants(self) -> dict[str, torch.Tensor]:
        K: dict[str, torch.Tensor] = {}
        B = self.batch_size
        for p in self.program.populations.values():
            K[f"Z_{p.name}"] = torch.zeros(B, p.size, dtype=self.dtype, device=self.device)
            for k, v in p.constants.items():
                K[f"C_{p.name}__{k}"] = self._tensor(v)
            K[f"C_{p.name}__refsteps"] = self._tensor(p.refractory_steps, torch.int64)
        for q in self.program.projections.values():
            if q.plasticity is None:
                continue
            for k, v in q.plasticity.constants.items():
                K[f"C_{q.name}__{k}"] = self._tensor(v)
            n_pre = self.program.populations[q.pre].size
            n_post = self.program.populations[q.post].size
            layer = self._layer_of[q.name]
            for ly, delays in enumerate(self._layers[q.name]):
                sel = layer == ly
                m = np.zeros((n_pre, n_post), dtype=bool)
                m[q.pre_index[sel], q.post_index[sel]] = True
                K[f"M_{q.name}__{ly}"] = self._tensor(m, torch.bool)
                if len(delays) > 1:
                    for d in delays:
                        f = np.zeros((n_pre, n_post))
                        s = sel & (q.delay == d)
                        f[q.pre_index[s], q.post_index[s]] = 1.0
                        K[f"F_{q.name}__{ly}__{d}"] = self._tensor(f)
        return K

    def _static_dense(self) -> dict[str, torch.Tensor]:
        """Dense (n_pre, n_post) weights per static projection and delay, built from the
        current (possibly trainable) per-synapse weights so that gradients reach them."""
        if not self.trainable and self._dense_cache is not None:
            return self._dense_cache  # fixed weights: built once
        out = {}
        weights = self.weights if self.trainable else self._static_weights
        for q in self.program.projections.values():
            if q.plasticity is not None:
                continue
            w = weights[q.name]
            n_pre = self.program.populations[q.pre].size
            n_post = self.program.populations[q.post].size
            for d in q.delays:
                key = f"D_{q.name}__{d}"
                sel = np.flatnonzero(q.delay == d)
                if key not in self._dense_gather and key not in self._dense_scatter:
                    pair = q.pre_index[sel] * n_post + q.post_index[sel]
                    if pair.size == n_pre * n_post and np.array_equal(
                        np.sort(pair), np.arange(pair.size)
                    ):  # every pair once: the dense matrix is a permutation of w
                        perm = sel[np.argsort(pair)]
                        full = np.array_equal(perm, np.arange(w.numel()))
                        self._dense_gather[key] = (
                            None if full else torch.as_tensor(perm, device=self.device)
                        )
                    else:
                        self._dense_scatter[key] = (
                            torch.as_tensor(q.pre_index[sel], device=self.device),
                            torch.as_tensor(q.post_index[sel], device=self.device),
                            torch.as_tensor(sel, device=self.device),
                        )
                if key in self._dense_gather:
                    # all-to-all: a view (or one gather), no scatter in forward or backward
                    g = self._dense_gather[key]
                    out[key] = (w if g is None else w[g]).view(n_pre, n_post)
                    continue
                pre_i, post_i, sel_t = self._dense_scatter[key]
                dense = torch.zeros(n_pre, n_post, dtype=self.dtype, device=self.device)
                out[key] = dense.index_put((pre_i, post_i), w[sel_t], accumulate=True)
        if not self.trainable:
            self._dense_cache = out
        return out

    # --------------------------------------------------------------- state
    def _reset(self) -> None:
        prog = self.program
        B, L = self.batch_size, prog.buffer_length()
        S: dict[str, Any] = {}
        for p in prog.populations.values():
            n = p.name
            S[f"P_{n}__spk"] = torch.zeros(B, p.size, dtype=torch.bool, device=self.device)
            S[f"P_{n}__spkf"] = torch.zeros(B, p.size, dtype=self.dtype, device=self.device)
            if p.spike_source:
                continue
            for v, x in p.state.items():
                S[f"P_{n}__{v}"] = self._tensor(x).expand(B, p.size).clone()
            S[f"P_{n}__ref"] = torch.zeros(B, p.size, dtype=torch.int64, device=self.device)
            for port in p.ports:
                S[f"R_{n}__{port}"] = [self._K[f"Z_{n}"]] * L
        for q in prog.projections.values():
            pl = q.plasticity
            if pl is None:
                continue
            n_pre = prog.populations[q.pre].size
            n_post = prog.populations[q.post].size
            for tr in pl.pre_traces:
                S[f"Q_{q.name}__tr_{tr}"] = torch.zeros(
                    B, n_pre, dtype=self.dtype, device=self.device
                )
            for tr in pl.post_traces:
                S[f"Q_{q.name}__tr_{tr}"] = torch.zeros(
                    B, n_post, dtype=self.dtype, device=self.device
                )
            layer = self._layer_of[q.name]
            for ly in range(len(self._layers[q.name])):
                sel = layer == ly
                w = np.zeros((n_pre, n_post))
                w[q.pre_index[sel], q.post_index[sel]] = q.weight[sel]
                S[f"Q_{q.name}__W{ly}"] = self._tensor(w).expand(B, n_pre, n_post).clone()
        self._S = S

    def _detach_state(self) -> None:
        for k, v in self._S.items():
            self._S[k] = [x.detach() for x in v] if isinstance(v, list) else v.detach()

    @property
    def state(self) -> dict[str, dict[str, np.ndarray]]:
        """Population -> variable -> values; ``"weights"`` -> projection -> weights in the spec's
        synapse order. Arrays have a leading batch axis when ``batch_size > 1``."""

        def out(x: torch.Tensor) -> np.ndarray:
            a = x.detach().cpu().numpy().astype(np.float64)
            return a[0].copy() if self.batch_size == 1 else a.copy()

        res: dict[str, dict[str, np.ndarray]] = {}
        for p in self.program.populations.values():
            if not p.spike_source:
                res[p.name] = {v: out(self._S[f"P_{p.name}__{v}"]) for v in p.state}
        weights: dict[str, np.ndarray] = {}
        static = self.weights if self.trainable else self._static_weights
        for q in self.program.projections.values():
            if q.plasticity is None:
                w = static[q.name].detach().cpu().numpy().astype(np.float64)[q.order]
                weights[q.name] = (
                    w
                    if self.batch_size == 1
                    else np.broadcast_to(w, (self.batch_size, w.size)).copy()
                )
                continue
            # gather each synapse from its layer, CSR order -> spec order, batch first
            w_csr = np.zeros((self.batch_size, q.weight.size))
            layer = self._layer_of[q.name]
            for ly in range(len(self._layers[q.name])):
                sel = np.flatnonzero(layer == ly)
                W = self._S[f"Q_{q.name}__W{ly}"].detach().cpu().numpy()
                w_csr[:, sel] = W[:, q.pre_index[sel], q.post_index[sel]]
            w = w_csr[:, q.order]
            weights[q.name] = w[0] if self.batch_size == 1 else w
        res["weights"] = weights
        return res

    # --------------------------------------------------------------- time loop
    def _loop(
        self,
        steps: int,
        src: dict[str, torch.Tensor],
        cur: dict[str, torch.Tensor],
        grad: bool,
        record: tuple[str, ...],
        float_spikes: bool,
        events: bool = False,
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """Run ``steps >= 1`` steps; ``src``/``cur`` are time-major (T, B, n) tensors. Returns
        the spikes of the populations in ``record`` (T, B, n) and the state probes (T, B, k).
        With ``events`` the sparse numpy loop may give an events-only probe as (steps,
        neurons) arrays instead."""
        self._mode(grad)
        K = dict(self._K)
        exact = not grad and self.device.type == "cpu" and self.dtype == torch.float64
        if self._layered and (self.schedule == "layered" or not exact):
            K.update(self._static_dense())
            return self._loop_layered(steps, K, src, cur, grad, record, float_spikes)
        if self._sparse and not grad:
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
        K.update(self._static_dense())
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

    def _buffer(self, shape: tuple[int, ...], dtype: torch.dtype | None = None) -> torch.Tensor:
        """An uninitialised work buffer of the fused populations, reused across calls: large
        (T, B, n) tensors allocated afresh in every call cost page faults and zeroing by the
        OS (glibc maps allocations above 32 MiB anew each time)."""
        free = self._free.get((tuple(shape), dtype or self.dtype))
        if free:
            return free.pop()
        return torch.empty(shape, dtype=dtype or self.dtype, device=self.device)

    def _release(self, *buffers: torch.Tensor) -> None:
        """Give back buffers from :meth:`_buffer` that nothing reads any more; the most recently
        used shapes are kept, up to ``_FREE_BYTES`` in all."""
        for b in buffers:
            key = (tuple(b.shape), b.dtype)
            self._free[key] = [*self._free.pop(key, []), b]  # most recent last
        total = sum(b.nbytes for free in self._free.values() for b in free)
        while total > _FREE_BYTES:
            free = self._free[next(iter(self._free))]
            total -= free.pop(0).nbytes
            if not free:
                del self._free[next(iter(self._free))]

    def _run(self, steps, spikes, currents):
        B = self.batch_size
        src = {
            n: self._tensor(r, torch.bool).unsqueeze(1).expand(steps, B, r.shape[1])
            for n, r in spikes.items()
        }
        # (T, 1, n): a time axis, broadcast over the batch
        cur = {f"{p}.{v}": self._tensor(x).unsqueeze(1) for (p, v), x in currents.items()}
        rec: dict[str, torch.Tensor] = {}
        state: list[torch.Tensor] = []
        if steps:
            with torch.no_grad():
                rec, state = self._loop(
                    steps, src, cur, False, _recorded(self.program), False, events=True
                )
        out, events = {}, {}
        for n in self.program.spike_probes:
            size = self.program.populations[n].size
            r = rec[n].cpu().numpy() if steps else np.zeros((0, B, size), bool)
            out[n] = r[:, 0] if B == 1 else r
        for n in self.program.event_probes:
            if steps and isinstance(rec[n], tuple):  # recorded as events already
                events[n] = rec[n]
                continue
            size = self.program.populations[n].size
            r = rec[n] if steps else torch.zeros((0, B, size), dtype=torch.bool)
            # only the indices leave the device; (T, 1, n) -> (step, neuron) pairs
            idx = torch.nonzero(r[:, 0] if B == 1 else r).cpu().numpy().astype(np.int64)
            events[n] = tuple(np.ascontiguousarray(idx[:, k]) for k in range(idx.shape[1]))
        st = {}
        for r_i, (pop, var, idx) in enumerate(self.program.state_probes):
            a = state[r_i].cpu().numpy().astype(np.float64) if steps else np.zeros((0, B, idx.size))
            st[f"{pop}.{var}"] = a[:, 0] if B == 1 else a
        return out, st, events

    def forward(
        self, inputs: dict[str, torch.Tensor] | None = None, steps: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Differentiable simulation of ``steps`` steps from the current state.

        Parameters
        ----------
        inputs : dict
            Spike-source population -> spikes (T, B, n) or (T, n) (broadcast over the batch),
            any float or bool tensor (values other than 0 count as spikes; their value is what
            propagates, so gradients reach the inputs); ``"population.variable"`` -> external
            current (T, B, n) or (T, n). Stimuli of the spec are added (maximum) to the spikes.
        steps : int, optional
            Needed only when ``inputs`` give no time axis.

        Returns
        -------
        dict[str, torch.Tensor]
            Probed population -> float spikes (T, B, n), part of the autograd graph.

        Notes
        -----
        Advances ``t``; probes are not recorded. The state is detached afterwards, so call
        ``reset()`` between independent examples when training.
        """
        inputs = dict(inputs or {})
        lengths = {int(v.shape[0]) for v in inputs.values()}
        if steps is None:
            if len(lengths) != 1:
                raise SpecError("forward: give inputs with one common number of steps, or steps")
            steps = lengths.pop()
        elif lengths - {steps}:
            raise SpecError(f"forward: inputs have {sorted(lengths)} steps, expected {steps}")
        B = self.batch_size
        src, cur = {}, {}
        for key, x in inputs.items():
            pop = key.split(".", 1)[0]
            if pop not in self.program.populations:
                raise SpecError(f"forward: input for undefined population {pop!r}")
            p = self.program.populations[pop]
            x = torch.as_tensor(x, device=self.device)
            x = x.to(self.dtype) if x.dtype != self.dtype else x
            if x.dim() == 2:
                x = x.unsqueeze(1).expand(steps, B, p.size)
            if tuple(x.shape) != (steps, B, p.size):
                raise SpecError(
                    f"forward: input {key!r} has shape {tuple(x.shape)}, expected "
                    f"({steps}, {B}, {p.size}) or ({steps}, {p.size})"
                )
            if "." in key:
                if key.split(".", 1)[1] not in p.inputs:
                    raise SpecError(f"forward: {key!r} is not an input variable")
                cur[key] = x
            elif not p.spike_source:
                raise SpecError(f"forward: population {pop!r} is not a spike source")
            else:
                src[pop] = x
        # the spec's own stimuli and current inputs (host-side, as in run)
        for (pop, var), rows in self._current_inputs(steps, {}).items():
            key = f"{pop}.{var}"
            spec = self._tensor(rows).unsqueeze(1)
            cur[key] = spec + cur[key] if key in cur else spec.expand(steps, B, rows.shape[1])
        for name, raster in self._spike_inputs(steps, {}).items():
            if name in src and not raster.any():
                continue  # no stimulus spikes in this chunk: the given input as it is
            stim = self._tensor(raster).unsqueeze(1).expand(steps, B, raster.shape[1])
            src[name] = torch.maximum(src[name], stim) if name in src else stim
        grad = torch.is_grad_enabled() and (
            self.trainable or any(v.requires_grad for v in (*src.values(), *cur.values()))
        )
        probed = _recorded(self.program)
        if steps:
            out, _ = self._loop(steps, src, cur, grad, probed, True)
        else:
            out = {
                n: torch.zeros(0, B, self.program.populations[n].size, dtype=self.dtype)
                for n in probed
            }
        self.t += steps
        self._detach_state()
        return out
