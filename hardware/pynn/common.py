"""Simulator names, limits and the export error shared by the PyNN exporter."""

from __future__ import annotations

from neuromem.errors import SpecError

#: PyNN simulators this module targets (``pyNN.<name>``).
SIMULATORS = ("spiNNaker", "brian2", "nest")

#: Largest delay sPyNNaker 7 maps (steps): 16 ring-buffer slots on the post core times 9 with
#: delay-extension cores (``get_max_delay`` docstring: "most likely value is timestep * 144").
SPINNAKER_MAX_DELAY_STEPS = 144

_PORT_RECEPTOR = {"exc": "excitatory", "inh": "inhibitory"}
_STDP_NAME = "stdp_pair_"


class PyNNExportError(SpecError):
    """A network cannot be expressed on a PyNN target; ``problems`` holds the list of
    :func:`unsupported` entries (element, target, limit, message)."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(p["message"] for p in problems))
