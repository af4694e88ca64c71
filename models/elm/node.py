"""The ELM layer as an operator kind of the spec (``kind = "elm"``) with its numba and torch
implementations.

An :class:`ELMNode` reads the spikes of one population (input port ``spikes``) and emits the
ELM outputs ``y`` (``params.num_output`` per step), read with ``StateProbe(node, "y")``.
Reference semantics of step ``t``: the synaptic traces decay and take this step's input spikes,
the memory units update from the branch sums and their previous values, ``y_t`` is read out
(docs/models/elm.md; Spieler et al., ICLR 2024). The trace is a linear scan and the memory a
causal recurrence, so a run chunk is evaluated at once with the state carried to the next
chunk, which equals the step-by-step definition (tests/test_elm_node.py compares chunkings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from neuromem.backends.operators import register_implementation
from neuromem.errors import SpecError
from neuromem.spec.operators import OperatorNode, Port, register_operator

from .core import ELMParameters, ELMTorch, elm_forward_numba


@register_operator
@dataclass(frozen=True, init=False)
class ELMNode(OperatorNode):
    """ELM neurons driven by population ``input`` (its size must be ``params.num_input``).

    Parameters
    ----------
    name : str
    params : neuromem.models.elm.ELMParameters
    input : str
        Name of the population whose spikes are the ELM's input (a spike source or neurons).
    """

    kind = "elm"
    params: Any = None

    def __init__(
        self,
        name: str,
        params: Any = None,
        input: str | None = None,
        *,
        inputs: Mapping[str, str] | None = None,
        drives: Mapping[str, str] | None = None,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "drives", dict(drives or {}))
        object.__setattr__(self, "params", params)
        object.__setattr__(
            self, "inputs", dict(inputs) if inputs is not None else {"spikes": input}
        )
        self.__post_init__()

    def validate(self) -> None:
        if not isinstance(self.params, ELMParameters):
            raise SpecError(f"{self.where}: params must be neuromem.models.elm.ELMParameters")

    @property
    def input(self) -> str:
        """The population read."""
        return self.inputs["spikes"]

    def input_ports(self) -> dict[str, Port]:
        return {"spikes": Port(self.params.num_input, "spikes")}

    def output_ports(self) -> dict[str, Port]:
        return {"y": Port(self.params.num_output)}

    def to_fields(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fields of ``params``: its arrays, and its scalars with ``meta``."""
        scalars, arrays = {}, {}
        for f in dataclasses.fields(self.params):
            v = getattr(self.params, f.name)
            (arrays if isinstance(v, np.ndarray) else scalars)[f.name] = v
        return scalars, arrays

    @classmethod
    def from_fields(cls, name, inputs, scalars, arrays, drives=None) -> ELMNode:
        return cls(name, ELMParameters(**scalars, **arrays), inputs=inputs, drives=drives)


@register_implementation("elm", "numba")
class NumbaELM:
    """Float64 ELM inference on the CPU."""

    def __init__(self, node: ELMNode, sim=None) -> None:
        self.node = node
        self.reset()

    def reset(self) -> None:
        p = self.node.params
        self.state = (np.zeros((1, p.num_synapse)), np.zeros((1, p.d_m)))

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spikes = inputs["spikes"]
        return {"y": elm_forward_numba(self.node.params, spikes[None], self.state)[0]}


@register_implementation("elm", "torch")
class TorchELM(nn.Module):
    """ELM on a torch device; a batch of B independent inputs when the simulation is batched.
    Its parameters are parameters of the simulation."""

    def __init__(self, node: ELMNode, sim) -> None:
        super().__init__()
        self.node, self.batch = node, sim.batch_size
        self.module = ELMTorch(node.params, dtype=sim.dtype, device=sim.device)
        self.reset()

    def reset(self) -> None:
        self.state = None

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        import torch

        x = inputs["spikes"]
        x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, np.float64))
        x = x[:, None, :] if x.dim() == 2 else x  # (T, B, n)
        y = self.module(x.transpose(0, 1), state=self.state)
        self.state = self.module.last_state
        y = y.transpose(0, 1)  # (T, B, n_out)
        return {"y": y[:, 0] if self.batch == 1 else y}
