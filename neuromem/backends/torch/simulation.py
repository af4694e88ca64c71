"""The torch backend's simulation: options, connectivity and constants, state, run, forward.

:class:`TorchSimulation` generates and compiles the code of its schedules once (:mod:`.step`,
:mod:`.sparse`, :mod:`.layered` with :mod:`.fused`) and inherits the methods that build and run
each of them from its module's mixin class (``StepSchedule``, ``SparseSchedule``,
``LayeredSchedule``, ``WorkBuffers``; ``Runtime`` for the generated code's helpers); ``_loop``
chooses the schedule per call of ``run``/``forward``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import CapabilityError, SpecError
from ..base import Simulation
from ..spins import TorchSpins
from .fused import WorkBuffers
from .layered import LayeredSchedule
from .printing import _reads, _recorded
from .runtime import _SURROGATES, Runtime
from .sparse import SparseSchedule
from .step import StepSchedule, generate

_SCHEDULES = ("auto", "step", "layered")


class TorchSimulation(
    StepSchedule, SparseSchedule, LayeredSchedule, WorkBuffers, Runtime, Simulation, nn.Module
):
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
        self._build_operators()
        # trainable operator parameters are parameters of the simulation module
        self.operator_modules = nn.ModuleDict(
            {n: e for n, e in self._operators.items() if isinstance(e, nn.Module)}
        )
        self._reset()

    def _operator_context(self):
        """Operators in ``run`` build no autograd graph (``forward`` is the training path)."""
        return torch.no_grad()

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

    def _probe_index(self) -> list[torch.Tensor]:
        return [torch.as_tensor(idx, device=self.device) for _, _, idx in self.program.state_probes]

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
        neurons) arrays instead.

        The schedule: layered where the network allows it (``_layered``), except in the exact
        mode unless ``schedule="layered"``; else the sparse loop without autograd where its
        tables were built (``_sparse``); else the step schedule."""
        self._mode(grad)
        K = dict(self._K)
        if self._layered and (self.schedule == "layered" or not self._exact(grad)):
            K.update(self._static_dense())
            return self._loop_layered(steps, K, src, cur, grad, record, float_spikes)
        if self._sparse and not grad:
            return self._loop_sparse(steps, K, src, cur, record, float_spikes, events)
        K.update(self._static_dense())
        return self._loop_step(steps, K, src, cur, record, float_spikes)

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
            Probed population -> float spikes (T, B, n), and ``"node.port"`` -> the outputs of
            every operator node, all part of the autograd graph (operator parameters train
            with the rest: they are parameters of this module).

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
        ops = self._operators
        if ops and self._operators_step_locked():
            raise CapabilityError(
                "forward: an operator output drives the network and reads it; that runs step "
                "by step in run(), not in forward()"
            )
        outputs = self._run_operators(src, ahead=True, in_graph=True) if ops else {}
        for vname, (op, port) in self.program.operator_sources.items():
            src[vname] = self._forward_delayed(op, port, steps, outputs)
        for (pop, var), feeds in self.program.operator_currents.items():
            for op, port in feeds:
                y, key = self._forward_delayed(op, port, steps, outputs), f"{pop}.{var}"
                cur[key] = cur[key] + y if key in cur else y
        grad = torch.is_grad_enabled() and (
            self.trainable
            or any(v.requires_grad for v in (*src.values(), *cur.values()))
            or any(p.requires_grad for p in self.operator_modules.parameters())
        )
        probed = _recorded(self.program)
        if steps:
            out, _ = self._loop(steps, src, cur, grad, probed, True)
        else:
            out = {
                n: torch.zeros(0, B, self.program.populations[n].size, dtype=self.dtype)
                for n in probed
            }
        if ops:
            outputs = self._run_operators({**src, **out}, outputs=outputs, in_graph=True)
            out.update({f"{n}.{p}": y for (n, p), y in outputs.items()})
            for key in self._operator_feeds():
                if steps:
                    last = outputs[key][-1]
                    last = last[0] if last.dim() == 2 else last  # ahead: one for every batch
                    self._operator_carry[key] = last.detach().cpu().numpy().astype(np.float64)
        self.t += steps
        self._detach_state()
        return out

    def _forward_delayed(self, op: str, port: str, steps: int, outputs) -> torch.Tensor:
        """An ahead operator's output one step late, (T, B, n), in the autograd graph."""
        B = self.batch_size
        y = outputs[(op, port)].to(self.dtype)
        y = y.unsqueeze(1).expand(steps, B, y.shape[-1]) if y.dim() == 2 else y
        carry = self._operator_carry.get((op, port))
        c = self._tensor(np.zeros(y.shape[-1]) if carry is None else carry).expand(1, B, -1)
        return torch.cat([c, y[:-1]]) if steps else y
