"""SpiNNaker export through PyNN: emit a PyNN script, build and run a network on a PyNN backend.

One network, three PyNN simulators: ``spiNNaker`` (sPyNNaker, the target), ``brian2`` and
``nest`` (PyNN's software backends, used to check an export before it goes to a board).

Public functions
----------------
- :func:`unsupported` lists what a target cannot express (``list[dict]`` with ``element``,
  ``target``, ``limit``, ``message``); :func:`check` raises :class:`PyNNExportError` with them.
- :func:`differences` lists the semantic differences between neuromem's reference meaning and
  a PyNN simulator that remain after the settings below (``list[dict]`` with ``element`` and
  ``difference``).
- :func:`emit_script` writes a standalone PyNN script (plus an ``.npz`` of spike times and
  connection lists beside it) that runs unchanged on any of the three simulators: the
  simulator is one line (``SIMULATOR = ...``) or the script's first argument.
- :func:`build` creates the network in a live PyNN simulator module; :func:`run` builds, runs
  and returns spike rasters in neuromem's format (bool ``(steps, size)`` per population, step
  ``t`` = neuromem's step ``t``).

Timing: one neuromem step is one PyNN time step, ``timestep = dt``
------------------------------------------------------------------
neuromem (= sPyNNaker): a spike in step ``t`` through a delay of ``d`` steps is added to the
synaptic current at the start of step ``t + d`` and acts on that step's integration; the
event adds the step-averaged current ``w tau_syn/dt (1 - exp(-dt/tau_syn))``, which is then
held over the step while ``v`` integrates exactly (docs/standard_library.md). What each PyNN
simulator needs to mean the same (``SETTINGS``):

==================  ===========================  ============================  =============
setting             spiNNaker (sPyNNaker 7)      brian2 (pyNN.brian2 0.13)     nest (NEST 3)
==================  ===========================  ============================  =============
PyNN delay (ms)     ``d * dt``                   ``(d - 1) * dt``: Brian2      ``(d - 1)*dt``
                                                 delivers in the ``synapses``  (so d = 1 is
                                                 slot, after that step's       not
                                                 integration                   expressible)
weight (nA)         ``w`` (its synapse type is   ``w * k``, ``k`` = step-      ``w * k``
                    the step average)            average / exponential-
                                                 current response over one
                                                 step (exact at step ends)
tau_refrac          ``r * dt``                   ``(r + 1) * dt`` (Brian2:     ``r * dt``
                                                 refractory while steps since
                                                 spike < tau_refrac/dt)
inhibitory weights  negative (sPyNNaker takes    negative (added to i_syn)     negative
                    ``abs``)
STDP                ``backprop_delay=False``     ``dendritic_delay_fraction``  default
                                                 ``= 0`` (the only value it    (``= 1``:
                                                 accepts): pre spikes timed    post spikes
                                                 on arrival                    delayed by d)
spike source times  ``s * dt``                   ``s * dt`` (source clock set  ``(s+1)*dt``
                                                 to ``dt``)
recorded spike      ``t * dt``                   ``t * dt``                    ``(t+1)*dt``
==================  ===========================  ============================  =============

``r = ceil(tau_refrac / dt)`` is neuromem's refractory step count. Measured (tests and the
replays of the paper models, docs/hardware.md): with these settings pyNN.brian2 gives numba's
spikes exactly for an 851-step replay of a plastic recurrent network (every population) and
small test networks; pyNN.nest does for static networks with delays >= 2 steps (delay-1
projections are refused on NEST). On that replay, dropping one Brian2 setting gives 17/45
(delay), 22/45 (refractory) or 32/45 (weight factor) matching recalls instead of 45/45.
sPyNNaker is mapped on its virtual board only (:mod:`neuromem.hardware.spynnaker_reports`);
note that sPyNNaker 7.4.1 crashes on a SpikeSourceArray without any spike. Brian2 integrates
``IF_curr_exp`` with the exact solution of the coupled (v, i_syn) system; with ``k`` above
the membrane potential at every step end equals neuromem's (float rounding aside). Its
threshold is ``v > v_thresh`` (neuromem, sPyNNaker and NEST: ``>=``), listed by
:func:`differences`.
"""

from __future__ import annotations

from .checks import check, differences, unsupported
from .common import SIMULATORS, SPINNAKER_MAX_DELAY_STEPS, PyNNExportError
from .live import build, collect, run, run_script
from .portable import SETTINGS
from .portable import _weight_factor as _weight_factor  # used by tests
from .script import emit_script
from .spec_export import to_pynn_spec

__all__ = [
    "SETTINGS",
    "SIMULATORS",
    "SPINNAKER_MAX_DELAY_STEPS",
    "PyNNExportError",
    "build",
    "check",
    "collect",
    "differences",
    "emit_script",
    "run",
    "run_script",
    "to_pynn_spec",
    "unsupported",
]
