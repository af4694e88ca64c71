"""torch backend: one time step generated from the lowered program, vectorised over neurons.

The step function is Python source printed from the checked expression trees (never from user
text), compiled once per simulation and called once per time step. Every tensor of the state has
a leading batch axis: ``(B, n)`` for neurons, ``(B, n_pre, n_post)`` for plastic weights.

Connectivity is dense. A static projection becomes one ``(n_pre, n_post)`` matrix per delay
(duplicate synapses summed). A plastic projection keeps per-batch dense weights in *layers*:
layer ``l`` holds the ``l``-th synapse of every (pre, post) pair, so duplicate synapses keep
their own weights, and a boolean mask marks the connected entries.

Two arithmetic modes:

* exact (CPU, float64, no autograd graph; what ``run`` uses on the CPU): ring-buffer sums are
  accumulated sequentially in the same order as the numba backend (``cumsum`` over the rows of
  the spiking pre neurons), so rasters are bit-identical to numba's.
* vectorised (autograd, CUDA or float32): propagation is ``spikes @ W``; sums may differ from
  numba's in the last bits.

With an autograd graph (``trainable=True`` or inputs requiring grad in :meth:`forward`), spikes
come from a Heaviside with a surrogate derivative on the lowered ``threshold_margin`` and resets
are blends ``x * (1 - s) + x_reset * s``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..codegen import SourceWriter
from ..equations import Expression, Printer, Statement
from ..errors import CapabilityError, SpecError
from ..lower import PHASES, PopulationProgram, ProjectionProgram
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


def _pop_printer(p: PopulationProgram, nm: _Names) -> Printer:
    def name(n: str) -> str:
        if n in p.state:
            return nm.s(f"P_{p.name}__{n}")
        if n in p.inputs:
            return f"I_{p.name}__{n}"
        if n == "dt" and n not in p.constants:
            return repr(float(p.dt))
        return nm.c(f"C_{p.name}__{n}")

    return Printer(name, _FUNCS, "array")


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
            if not stmts:
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
        self._check_neuron_statements()
        self._build_connectivity()
        self.source = generate(self)
        self._ns = self._namespace()
        exec(compile(self.source, f"<neuromem torch step {self.program.name}>", "exec"), self._ns)
        self._step: Callable[..., None] = self._ns["step"]
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
            return x if x.dtype == dtype else x.to(dtype)

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
            # set per call by _mode(): exact/vectorised propagation, hard/surrogate spikes
            "_prop": None,
            "_spike": None,
            "_reset": None,
            "_put": None,
        }

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
            return SpikeFunction.apply(m, hard, slope, kind) * (~refr).to(dtype)

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
        out = {}
        weights = self.weights if self.trainable else self._static_weights
        for q in self.program.projections.values():
            if q.plasticity is not None:
                continue
            w = weights[q.name]
            n_pre = self.program.populations[q.pre].size
            n_post = self.program.populations[q.post].size
            for d in q.delays:
                sel = np.flatnonzero(q.delay == d)
                idx = (
                    torch.as_tensor(q.pre_index[sel], device=self.device),
                    torch.as_tensor(q.post_index[sel], device=self.device),
                )
                dense = torch.zeros(n_pre, n_post, dtype=self.dtype, device=self.device)
                out[f"D_{q.name}__{d}"] = dense.index_put(
                    idx, w[torch.as_tensor(sel, device=self.device)], accumulate=True
                )
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
    ) -> tuple[dict[str, list[torch.Tensor]], list[list[torch.Tensor]]]:
        """Run ``steps`` steps; ``src``/``cur`` are time-major tensors, unbound once here (not
        indexed per step, which would make the backward pass quadratic in ``steps``)."""
        self._mode(grad)
        K = dict(self._K)
        K.update(self._static_dense())
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
        return spikes, state

    def _run(self, steps, spikes, currents):
        B = self.batch_size
        src = {
            n: self._tensor(r, torch.bool).unsqueeze(1).expand(steps, B, r.shape[1])
            for n, r in spikes.items()
        }
        cur = {f"{p}.{v}": self._tensor(x) for (p, v), x in currents.items()}
        with torch.no_grad():
            rec, state = self._loop(steps, src, cur, False, self.program.spike_probes, False)
        out = {}
        for n in self.program.spike_probes:
            size = self.program.populations[n].size
            r = torch.stack(rec[n]).cpu().numpy() if steps else np.zeros((0, B, size), bool)
            out[n] = r[:, 0] if B == 1 else r
        st = {}
        for (pop, var, idx), rows in zip(self.program.state_probes, state, strict=True):
            a = (
                torch.stack(rows).cpu().numpy().astype(np.float64)
                if steps
                else np.zeros((0, B, idx.size))
            )
            st[f"{pop}.{var}"] = a[:, 0] if B == 1 else a
        return out, st

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
            stim = self._tensor(raster).unsqueeze(1).expand(steps, B, raster.shape[1])
            src[name] = torch.maximum(src[name], stim) if name in src else stim
        grad = torch.is_grad_enabled() and (
            self.trainable or any(v.requires_grad for v in (*src.values(), *cur.values()))
        )
        rec, _ = self._loop(steps, src, cur, grad, self.program.spike_probes, True)
        out = {
            n: torch.stack(v)
            if steps
            else torch.zeros(0, B, self.program.populations[n].size, dtype=self.dtype)
            for n, v in rec.items()
        }
        self.t += steps
        self._detach_state()
        return out
