"""What the Lava target cannot express: the mapping's refusals plus, in fixed point, the
quantisation limits.

It sits above :mod:`.mapping` and :mod:`.quantise` because it needs both; ``mapping`` imports
neither of them and ``quantise`` only ``mapping``, so there is no import cycle.
"""

from __future__ import annotations

from neuromem.spec import Network

from .mapping import _analyse
from .quantise import quantize


def list_unsupported(
    net: Network, precision: str = "floating_pt", plasticity: str = "refuse"
) -> list[dict]:
    """Everything in ``net`` that the Lava target cannot express.

    Parameters
    ----------
    net : Network
    precision : {"floating_pt", "fixed_pt"}
    plasticity : {"refuse", "host"}
        ``"host"`` (floating point only) accepts plastic projections, whose weights are then
        updated by the host between one-step runs.

    Returns
    -------
    list of dict
        Keys ``"element"`` (e.g. ``"projection 'p1'"``), ``"target"`` (``"lava:<precision>"``),
        ``"limit"`` and ``"message"``. In fixed point this includes the quantisation limits
        (weight exponent outside Loihi's [-8, 7], bias beyond 13+3 bits, threshold or state
        beyond 24 bits).
    """
    problems, _, _ = _analyse(net, precision, plasticity)
    if precision == "fixed_pt" and not problems:
        problems = quantize(net, _strict=False).stats["unsupported"]
    return problems
