"""Loihi export through Lava (lava-nc 0.10): map, quantise, emit and run neuromem networks.

A neuromem :class:`~neuromem.spec.Network` of LIF populations (``if_curr_exp``, ``nir_lif``,
``nir_cuba_lif``), spike sources and static projections becomes Lava processes:

- LIF population -> ``lava.proc.lif.process.LIF`` (``LIFRefractory`` in floating point when it
  has a refractory period), spike source -> ``lava.proc.io.source.RingBuffer`` holding the
  whole raster, projection -> one ``Dense`` (delay 1) or ``DelayDense`` (delay d > 1, Lava
  delay ``d - 1``) per distinct delay, spikes -> ``lava.proc.io.sink.RingBuffer``, ``v``/``u``
  -> ``lava.proc.monitor.process.Monitor``.
- It runs on Lava's CPU simulation (``Loihi2SimCfg``) in ``"floating_pt"`` or bit-accurate
  ``"fixed_pt"``. :func:`quantize` gives the integer parameters and their error statistics;
  :func:`neuromem.hardware.fixed_point.simulate` runs the same integers bit-exactly in numba.

The mapping to Lava's LIF (``u' = u (1 - du) + a``, ``v' = v (1 - dv) + u' + bias``, spike when
``v > vth``, reset to 0) is exact in real arithmetic: Lava's ``v`` is ``v - v_reset`` (mV), the
rest potential enters through the bias, ``u`` is the membrane drive of the step (synaptic
current times its gain after the events of the step), and the port scale (IF_curr_exp's
step-averaged current) and the gain are folded into the weights. :func:`semantic_differences`
names every difference (exact re-expressions included); :func:`list_unsupported` lists what
cannot be expressed, and the emitter refuses it with :class:`LavaTargetError`.

Plasticity: Lava 0.10's learning engine (``LearningDense`` with a sum-of-products ``dw``)
cannot express neuromem's rules (no clip to ``[w_min, w_max]``: the floating-point model only
saturates at 0; no ordering of post-before-pre updates within a step; no ``pre_event`` /
``post_event`` flags), so plastic projections are refused by default. ``plasticity="host"``
(floating point only) keeps them as Lava ``Dense`` processes whose weights the host updates
after every one-step run from the spikes Lava produced, with the exact lowered rule; this is
listed as the semantic difference ``plasticity_on_host`` (what Loihi's learning engine would do
is not measured).

Lava is imported lazily (through :mod:`neuromem.hardware._lava_compat`): mapping, quantising
and the unsupported / difference lists work without lava-nc installed.
"""

from __future__ import annotations

from ..fixed_point import simulate as simulate_fixed_point
from .checks import list_unsupported
from .common import (
    BIAS_EXP_MAX,
    BIAS_MANT_RANGE,
    MAX_DELAY_FIXED,
    PRECISIONS,
    TARGET,
    UV_MAX,
    VTH_MAX,
    WEIGHT_EXP_RANGE,
    LavaTargetError,
    lava_available,
)
from .emit import LavaEmission, emit
from .mapping import (
    LavaMapping,
    PopulationMap,
    ProjectionMap,
    map_network,
    semantic_differences,
)
from .quantise import quantize
from .run import run, run_on_lava
from .targets import differences_for_profile, emit_for_profile, unsupported_for_profile

__all__ = [
    "LavaTargetError",
    "PRECISIONS",
    "lava_available",
    "map_network",
    "list_unsupported",
    "semantic_differences",
    "quantize",
    "emit",
    "run",
    "run_on_lava",
    "simulate_fixed_point",
    "unsupported_for_profile",
    "differences_for_profile",
    "emit_for_profile",
    "LavaMapping",
    "PopulationMap",
    "ProjectionMap",
    "LavaEmission",
    "TARGET",
    "MAX_DELAY_FIXED",
    "WEIGHT_EXP_RANGE",
    "VTH_MAX",
    "BIAS_MANT_RANGE",
    "BIAS_EXP_MAX",
    "UV_MAX",
]
