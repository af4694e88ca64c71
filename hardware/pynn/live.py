"""Building and running a network in a live PyNN simulator module (or an emitted script)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from neuromem.spec import (
    Network,
)

from .checks import _check_simulator
from .portable import _pynn_build, _pynn_collect
from .spec_export import to_pynn_spec


def build(
    net: Network,
    sim: Any,
    steps: int,
    inputs: dict[str, Any] | None = None,
    simulator: str | None = None,
) -> dict[str, Any]:
    """Create ``net`` in the live PyNN module ``sim`` (calls ``sim.setup(timestep=dt, ...)``).

    Parameters
    ----------
    net : Network
    sim : module
        ``pyNN.brian2``, ``pyNN.nest`` or ``pyNN.spiNNaker``.
    steps : int
        Run length in steps (spike sources are materialised as SpikeSourceArray up to it).
    inputs : dict, optional
        Run-time spike rasters of spike sources.
    simulator : str, optional
        Key of ``SETTINGS``; guessed from ``sim.__name__`` when omitted.

    Returns
    -------
    dict
        ``populations`` and ``projections`` (PyNN objects by neuromem name), ``factors``
        (weight factor per (population, receptor)), ``spec`` and ``simulator``.
    """
    simulator = simulator or sim.__name__.rsplit(".", 1)[-1]
    _check_simulator(simulator)
    spec, arrays = to_pynn_spec(net, steps, inputs, simulator)
    handles = _pynn_build(sim, simulator, spec, arrays)
    handles.update(spec=spec, simulator=simulator)
    return handles


def collect(handles: dict[str, Any]) -> dict[str, np.ndarray]:
    """Spike rasters (bool (steps, size)) of the recorded populations after ``sim.run``."""
    return _pynn_collect(handles["simulator"], handles["spec"], handles)


def run(
    net: Network,
    steps: int,
    inputs: dict[str, Any] | None = None,
    simulator: str = "brian2",
    codegen_target: str = "numpy",
) -> dict[str, np.ndarray]:
    """Build ``net`` on ``pyNN.<simulator>``, run ``steps`` steps, return spike rasters.

    ``codegen_target`` sets Brian2's code generation (``"numpy"``: no compilation, fast for
    small networks; ``"cython"``). Rasters: population -> bool (steps, size), step ``t`` =
    neuromem's step ``t``.
    """
    _check_simulator(simulator)
    if simulator == "brian2":
        import brian2

        brian2.prefs.codegen.target = codegen_target
    sim = importlib.import_module(f"pyNN.{simulator}")
    handles = build(net, sim, steps, inputs, simulator)
    sim.run(steps * net.discretization.dt)
    out = collect(handles)
    sim.end()
    return out


def run_script(
    script: str | os.PathLike, simulator: str, timeout: float = 600.0, env: dict | None = None
) -> dict[str, np.ndarray]:
    """Run an emitted script in a subprocess on ``simulator``; return its spike rasters."""
    script = Path(script)
    proc = subprocess.run(
        [sys.executable, str(script), simulator],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} on {simulator} failed:\n{proc.stderr[-4000:]}")
    with np.load(script.parent / (script.stem + "_spikes.npz")) as f:
        return {k: f[k] for k in f.files}
