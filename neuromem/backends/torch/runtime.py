"""What the generated code of the torch backend calls while it runs.

:meth:`Runtime._namespace` is the namespace every generated function is compiled in (the
functions of the grammar on tensors, conversions, the ring-buffer helpers of the sparse loop);
:meth:`Runtime._mode` sets, for each call of ``run``/``forward``, the helpers that differ with
and without autograd: propagation (exact sums in numba's order, or ``spikes @ W``), spikes and
resets, in-place or out-of-place weight updates.

With an autograd graph (``trainable=True`` or inputs requiring grad in ``forward``), spikes
come from a Heaviside with a surrogate derivative on the lowered ``threshold_margin``
(:class:`SpikeFunction`) and resets are blends ``x * (1 - s) + x_reset * s`` (the fused
backward of :mod:`.fused` differentiates the same blend, with the same surrogate).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .sparse import _event_lists

_SURROGATES = ("fast_sigmoid", "sigmoid")


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
        return grad * _surrogate(m, ctx.slope, ctx.kind), None, None, None


def _surrogate(m: torch.Tensor, slope: float, kind: str) -> torch.Tensor:
    """``ds/dm`` of the surrogate spike ``kind`` at the threshold margin ``m``."""
    if kind == "fast_sigmoid":
        return 1.0 / (1.0 + slope * m.abs()) ** 2
    sg = torch.sigmoid(slope * m)
    return slope * sg * (1.0 - sg)


class Runtime:
    """The :class:`~.simulation.TorchSimulation` methods that make the generated code's
    namespace and select its helpers per call."""

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

    def _surrogate_derivative(self, m: torch.Tensor) -> torch.Tensor:
        """``ds/dm`` of the surrogate spike, as :class:`SpikeFunction` computes it."""
        return _surrogate(m, self.surrogate_slope, self.surrogate)

    def _exact(self, grad: bool) -> bool:
        """The exact mode (CPU, float64, no autograd): sums in numba's order."""
        return not grad and self.device.type == "cpu" and self.dtype == torch.float64

    def _mode(self, grad: bool) -> None:
        """Select the helpers of the step function for a run with or without autograd."""
        ns = self._ns
        dtype = self.dtype
        exact = self._exact(grad)

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
