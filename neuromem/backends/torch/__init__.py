"""torch backend: code generated from the lowered program, vectorised over neurons.

All code is Python source printed from the checked expression trees (never from user text),
compiled once per simulation. Every tensor of the state has a leading batch axis: ``(B, n)``
for neurons, ``(B, n_pre, n_post)`` for plastic weights. Three schedules execute
:data:`neuromem.lower.PHASES`; which one runs is chosen per call of ``run``/``forward``:

* **sparse loop** (:mod:`.sparse`, :func:`generate_sparse_loop`; ``run`` without autograd,
  networks without plasticity): the whole time loop in one generated function, event-driven
  propagation, no dense matrices; numpy or torch on the CPU. At float64 on the CPU rasters and
  states are bit-identical to numba's.
* **layered** (:mod:`.layered`, :func:`generate_population_loop`; networks without plasticity
  whose projections between computed populations form no cycle; the default for ``forward``
  and for float32 or CUDA runs): populations in topological order, each projection's input for
  all steps of the chunk by matrix products, only the neuron recurrence step by step. With
  autograd, a population runs as one fused node whose backward is generated
  (:mod:`.fused`, :func:`generate_population_backward`).
* **step** (:mod:`.step`, :func:`generate`; everything else, e.g. plastic or recurrent
  networks with autograd): one generated step function per time step, dense connectivity.

With an autograd graph (``trainable=True`` or inputs requiring grad in
:meth:`TorchSimulation.forward`), spikes come from a Heaviside with a surrogate derivative on
the lowered ``threshold_margin`` and resets are blends ``x * (1 - s) + x_reset * s`` (the fused
backward differentiates the same blend).

Modules
-------
- :mod:`.simulation`: :class:`TorchSimulation` (options, connectivity, state, run, forward).
- :mod:`.step`, :mod:`.sparse`, :mod:`.layered`, :mod:`.fused`: each schedule's generator and
  the simulation's methods that run it.
- :mod:`.runtime`: what generated code calls (namespace, per-call helpers, surrogate spike).
- :mod:`.printing`: names and printers the generators share.
"""

from __future__ import annotations

from .fused import generate_population_backward
from .layered import generate_population_loop
from .runtime import SpikeFunction
from .simulation import TorchSimulation
from .sparse import generate_sparse_loop
from .step import generate

__all__ = [
    "TorchSimulation",
    "SpikeFunction",
    "generate",
    "generate_sparse_loop",
    "generate_population_loop",
    "generate_population_backward",
]
