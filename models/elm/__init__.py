"""Expressive Leaky Memory neuron (Spieler et al., ICLR 2024): thin model API.

Equations, conventions and measured agreement: docs/models/elm.md; the implementations live in
:mod:`neuromem.models.elm.core` (torch: :class:`~neuromem.models.elm.core.ELMTorch`, numba:
:func:`~neuromem.models.elm.core.elm_forward_numba`).

    >>> neuron = ELMNeuron.from_authors("num_memory_20")      # needs NEUROMEM_DATA
    >>> y = neuron(spikes)                                    # (B, T, 1278) -> (B, T, 2)
    >>> neuron.parameter_count()                              # 8002

In a network, the same neuron is an operator node of the spec: ``neuromem.models.elm.ELMNode(name,
params, input=<population>)``, compiled to numba or torch and read with ``StateProbe(name, "y")``
(tests/test_elm_node.py); such networks save and load like any other.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .core import (
    AUTHORS_MODELS,
    ELMParameters,
    ELMTorch,
    elm_forward_numba,
    init_parameters,
    load_authors_model,
    load_golden,
    parameter_count,
)
from .node import ELMNode  # registers the "elm" operator kind

__all__ = [
    "AUTHORS_MODELS",
    "ELMNeuron",
    "ELMNode",
    "ELMParameters",
    "init_parameters",
    "load_authors_model",
    "load_golden",
]


class ELMNeuron:
    """One ELM neuron: parameters plus a torch module built on demand.

    ``backend="torch"`` (differentiable; ``dtype``/``device`` as given) or ``"numba"``
    (float64 inference, CPU). Calling the neuron on spikes (B, T, num_input) returns the outputs
    (B, T, n_out) as a torch tensor (torch) or numpy array (numba).
    """

    def __init__(
        self,
        params: ELMParameters,
        *,
        backend: str = "torch",
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ):
        if backend not in ("torch", "numba"):
            raise ValueError(f"backend must be 'torch' or 'numba', got {backend!r}")
        self.params = params
        self.backend = backend
        self.module = ELMTorch(params, dtype=dtype, device=device) if backend == "torch" else None

    @classmethod
    def from_authors(
        cls, name: str = "num_memory_20", root: str | os.PathLike | None = None, **kwargs
    ) -> ELMNeuron:
        """The authors' trained NeuronIO model ``"num_memory_1"`` or ``"num_memory_20"``."""
        return cls(load_authors_model(name, root), **kwargs)

    @classmethod
    def fresh(cls, *, seed: int = 0, backend: str = "torch", **kwargs) -> ELMNeuron:
        """A fresh seeded model; ``kwargs`` go to :func:`.core.init_parameters`."""
        opts = {k: kwargs.pop(k) for k in ("dtype", "device") if k in kwargs}
        return cls(init_parameters(seed=seed, **kwargs), backend=backend, **opts)

    def parameter_count(self) -> int:
        """Trainable parameters, the authors' counting (4,601 for d_m = 1, 8,002 for d_m = 20)."""
        return parameter_count(self.params)

    def __call__(self, spikes):
        return self.forward(spikes)

    def forward(self, spikes):
        if self.backend == "numba":
            if isinstance(spikes, torch.Tensor):
                spikes = spikes.detach().cpu().numpy()
            return elm_forward_numba(self.params, np.asarray(spikes))
        if not isinstance(spikes, torch.Tensor):
            spikes = torch.as_tensor(np.asarray(spikes))
        return self.module(spikes)
