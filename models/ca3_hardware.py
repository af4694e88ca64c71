"""The CA3 memory on neuromorphic targets: the authors' recordings replayed through the hardware
exporters and scored as in ``experiments/ca3_cam.py``.

The hardware layer (:mod:`neuromem.hardware`) takes specs and lowered programs only; this module
supplies what is particular to CA3: the network (:func:`neuromem.models.ca3_cam.build_network`),
the recorded stimulus (``INcue`` and ``INcont`` replayed into ``IL``) and the scoring
(:func:`neuromem.models.ca3_cam.score_replay`), against the authors' recording and against
neuromem's numba backend on the same stimulus.

- :func:`replay_on_lava`: Loihi through Lava's CPU simulation (floating point); the two STDP
  projections cannot run on Lava's learning engine and are updated on the host between one-step
  Lava runs (:func:`neuromem.hardware.lava.run_on_lava` with ``plasticity="host"``).
- :func:`replay_on_pynn`: the exported network built live in a PyNN simulator
  (:func:`neuromem.hardware.pynn.run`).

Measured on the exp2 stress testbench (851 steps): both give 45/45 recalls and every population
raster identical to numba (Lava: both final weight sets too; PyNN: on pyNN.brian2).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import neuromem
from neuromem.data import load_ca3_recording

from .ca3_cam import build_network, score_replay


def _testbench(recording: str, data_dir: str | None, stdp: str):
    """The recording, its network and the ``IL`` stimulus (``INcue`` then ``INcont``)."""
    rec = load_ca3_recording(recording, data_dir)
    sp, n, m = rec["spikes"], rec["n_cues"], rec["n_bits"]
    il = np.concatenate([sp["INcue"], sp["INcont"]], axis=1)
    return sp, n, build_network(n, m, stdp), il


def replay_on_lava(
    recording: str = "exp2_stress_testbench",
    data_dir: str | None = None,
    stdp: str = "identified",
    plasticity: str = "host",
) -> dict[str, Any]:
    """Replay an authors' CA3 recording on Lava (floating point) and score it.

    The network is :func:`neuromem.models.ca3_cam.build_network`; the recorded stimulus is
    replayed into ``IL`` in one run; the output is scored with the model's own
    ``segment_operations`` / ``compare_outputs`` against the authors' recording and against
    neuromem's numba backend on the same stimulus.

    Parameters
    ----------
    recording : str
        ``"exp1_learn_recall_forget"`` or ``"exp2_stress_testbench"``.
    data_dir : str, optional
        ``NEUROMEM_DATA`` (default: the environment variable).
    stdp : str
        STDP variant of the CA3 model.
    plasticity : {"host", "refuse"}
        The two STDP projections cannot run on Lava's learning engine; ``"host"`` runs them on
        the host between one-step Lava runs (semantic difference ``plasticity_on_host``);
        ``"refuse"`` raises :class:`~neuromem.hardware.lava.LavaTargetError` listing them.

    Returns
    -------
    dict
        ``recall_operations``, ``recall_operations_matching`` (same output neurons as the
        authors), ``recall_operations_matching_numba``, ``operations_with_identical_raster``
        (vs the authors) and ``populations_identical_to_numba`` (population -> bool),
        ``final_weights_identical_to_numba``, ``differences`` (the semantic-difference
        list), ``unsupported`` (what plain Lava cannot run), ``wall_s``, ``steps``.
    """
    from neuromem.hardware.lava import list_unsupported, run_on_lava

    sp, n, net, il = _testbench(recording, data_dir, stdp)
    il = il.astype(bool)
    steps = il.shape[0]
    unsupported = list_unsupported(net, "floating_pt", "refuse")
    t0 = time.perf_counter()
    out = run_on_lava(net, steps, {"IL": il}, "floating_pt", plasticity)
    t_lava = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim = neuromem.compile(net, backend="numba")
    ref = sim.run(steps, {"IL": il}).spikes
    t_numba = time.perf_counter() - t0
    score = score_replay(sp, out["spikes"]["OL"], n, reference=ref["OL"])
    w_nb = sim.state["weights"]
    return {
        "recording": recording,
        "stdp": stdp,
        "plasticity": plasticity,
        "steps": steps,
        "operations": score["operations"],
        "recall_operations": score["recall_operations"],
        "recall_operations_matching": score["recall_operations_matching"],
        "recall_operations_matching_numba": score["vs_reference"]["recall_operations_matching"],
        "operations_with_identical_raster": score["operations_with_identical_output_raster"],
        "operations_with_identical_raster_numba": score["vs_reference"][
            "operations_with_identical_output_raster"
        ],
        "populations_identical_to_numba": {
            k: bool(np.array_equal(out["spikes"][k], ref[k])) for k in out["spikes"]
        },
        "final_weights_identical_to_numba": {
            k: bool(np.array_equal(w, np.asarray(w_nb[k]))) for k, w in out["weights"].items()
        },
        "mismatches": [r for r in score["rows"] if not r["same_neurons"] and r["kind"] != "learn"],
        "differences": out["differences"],
        "unsupported": unsupported,
        "wall_s": {"lava": round(t_lava, 3), "numba": round(t_numba, 3)},
    }


def replay_on_pynn(
    recording: str = "exp2_stress_testbench",
    simulator: str = "brian2",
    data_dir: str | None = None,
    stdp: str = "identified",
    codegen_target: str = "numpy",
) -> dict[str, Any]:
    """Replay an authors' CA3 recording through PyNN and score it as experiments/ca3_cam.py.

    Returns a dict: ``recall_operations`` and ``recall_operations_matching`` (against the
    authors' output, as the experiment scores it), ``operations_with_identical_output_raster``,
    the same against numba (``*_vs_numba``), ``population_raster_identical_to_numba``
    (population -> bool), ``first_difference_step`` per differing population, ``differences``
    (:func:`neuromem.hardware.pynn.differences` for the simulator), ``wall_time_s``, ``spikes``
    (PyNN's rasters).
    """
    from neuromem.hardware.pynn import differences, run

    sp, n, net, il = _testbench(recording, data_dir, stdp)
    steps = sp["INcue"].shape[0]
    t0 = time.perf_counter()
    ours = run(net, steps, {"IL": il}, simulator, codegen_target)
    wall = time.perf_counter() - t0
    ref = neuromem.compile(net, backend="numba").run(steps, {"IL": il}).spikes
    score = score_replay(sp, ours["OL"], n, reference=ref["OL"])
    same = {k: bool(np.array_equal(ours[k], ref[k])) for k in ours}
    first = {k: int(np.nonzero((ours[k] != ref[k]).any(1))[0][0]) for k, v in same.items() if not v}
    return {
        "recording": recording,
        "simulator": simulator,
        "stdp": stdp,
        "steps": int(steps),
        "operations": score["operations"],
        "recall_operations": score["recall_operations"],
        "recall_operations_matching": score["recall_operations_matching"],
        "operations_with_identical_output_raster": score["operations_with_identical_output_raster"],
        "recall_operations_matching_numba": score["vs_reference"]["recall_operations_matching"],
        "operations_with_identical_output_raster_vs_numba": score["vs_reference"][
            "operations_with_identical_output_raster"
        ],
        "population_raster_identical_to_numba": same,
        "first_difference_step": first,
        "mismatching_recalls": [
            r for r in score["rows"] if r["kind"] != "learn" and not r["same_neurons"]
        ],
        "differences": differences(net, simulator),
        "wall_time_s": round(wall, 3),
        "spikes": ours,
    }
