"""Operator nodes fed by spiking populations (NIR-style blocks with their own semantics).

``ELMNode``: a layer of Expressive Leaky Memory neurons (Spieler et al., ICLR 2024) reading the
spikes of one population; its outputs are read with ``StateProbe(node, "y")``. In each step,
after the spiking populations (architecture.md, phase ``operators``), the node takes that step's
input spikes, updates its synaptic traces and memory units, and emits ``y``. It has no outgoing
projections, so backends may evaluate it over a run's whole input at once (the trace is a linear
scan) as long as the result equals the step-by-step definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from .names import check_name, element


@dataclass(frozen=True)
class ELMNode:
    """ELM neurons driven by population ``input`` (its size must be ``params.num_input``).

    Parameters
    ----------
    name : str
    params : neuromem.elm.ELMParameters
    input : str
        Name of the population whose spikes are the ELM's input (a spike source or neurons).
    """

    name: str
    params: Any
    input: str

    def __post_init__(self) -> None:
        from ..elm import ELMParameters  # torch is imported only when an ELM is used

        check_name(self.name, element("ELM node", self.name), "name")
        check_name(self.input, element("ELM node", self.name), "input population")
        if not isinstance(self.params, ELMParameters):
            raise SpecError(f"ELM node {self.name!r}: params must be neuromem.elm.ELMParameters")

    @property
    def outputs(self) -> int:
        return self.params.num_output
