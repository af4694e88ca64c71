"""The authors' CA3 recording replayed through PyNN and scored against numba."""

from __future__ import annotations

from typing import Any

import numpy as np

from .checks import differences
from .live import run


def replay_ca3_on_pynn(
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
    (:func:`differences` for the simulator), ``wall_time_s``.
    """
    import time

    import neuromem
    from neuromem.data import load_ca3_recording
    from neuromem.models.ca3_cam import build_network, score_replay

    rec = load_ca3_recording(recording, data_dir)
    sp, n, m = rec["spikes"], rec["n_cues"], rec["n_bits"]
    steps = sp["INcue"].shape[0]
    il = np.concatenate([sp["INcue"], sp["INcont"]], axis=1)
    net = build_network(n, m, stdp)
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
