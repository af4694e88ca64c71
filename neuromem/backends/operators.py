"""Operator nodes (ELM) on the numba and torch backends.

An ELM node reads the spikes of its input population; backends evaluate it over each ``run``
chunk at once (the synaptic trace is a linear scan) and carry its traces and memory to the next
chunk, which equals the step-by-step definition (spec/operators.py).
"""

from __future__ import annotations

import numpy as np


class NumbaELM:
    """Float64 ELM inference on the CPU."""

    def __init__(self, node) -> None:
        self.node = node
        self.reset()

    def reset(self) -> None:
        p = self.node.params
        self.state = (np.zeros((1, p.num_synapse)), np.zeros((1, p.d_m)))

    def run(self, spikes: np.ndarray) -> np.ndarray:
        from ..elm import elm_forward_numba

        return elm_forward_numba(self.node.params, spikes[None], self.state)[0]


class TorchELM:
    """ELM on a torch device; a batch of B independent inputs when the simulation is batched."""

    def __init__(self, node, batch: int, device, dtype) -> None:
        from ..elm import ELMTorch

        self.node, self.batch = node, batch
        self.module = ELMTorch(node.params, dtype=dtype, device=device)
        self.reset()

    def reset(self) -> None:
        self.state = None

    def run(self, spikes: np.ndarray) -> np.ndarray:
        import torch

        x = np.asarray(spikes, dtype=np.float64)
        x = x[:, None, :] if x.ndim == 2 else x  # (T, B, n)
        with torch.no_grad():
            y = self.module(torch.as_tensor(x).transpose(0, 1), state=self.state)
        self.state = self.module.last_state
        y = y.transpose(0, 1).cpu().numpy()  # (T, B, n_out)
        return y[:, 0] if self.batch == 1 else y
