"""A first look, with nothing but the package: a CA3 spiking memory learns three associations,
recalls them by cue and by content, forgets one by re-learning its cue, on numba and torch.

With the authors' SpiNNaker recordings in the data directory (``--data`` or
``$NEUROMEM_DATA``, folder ``ca3/``) it then replays them as ``neuromem run ca3_cam`` does.
Brian2 runs only when asked (``--backend brian2``: it compiles Cython for minutes the first
time, cached afterwards). Writes ``demo.json`` and ``demo.png`` to the output folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuromem.errors import DataError
from neuromem.models.ca3_cam import BACKENDS, CA3Memory

DESCRIPTION = "First look: a CA3 memory learns, recalls by cue and content, forgets (no data)"
SUPPORTED_BACKENDS = BACKENDS
N_CUES, N_BITS = 6, 10
STORE = {0: [1, 4, 7], 1: [2, 5], 2: [0, 8, 9]}  # cue -> content bits
RELEARN = (0, [3, 6])  # cue 0 gets a new content: the old one is forgotten


def _bits(v: np.ndarray) -> list[int]:
    return np.flatnonzero(v).tolist()


def script(backend: str) -> dict[str, Any]:
    """The demo's operations on one backend; what each recall gave and what it should give."""
    memory = CA3Memory(N_CUES, N_BITS, backend=backend)
    checks = []
    for cue, bits in STORE.items():
        memory.learn(cue, bits)
    for cue, bits in STORE.items():
        checks.append((f"recall cue {cue}", _bits(memory.recall(cue=cue)), bits))
    checks.append(("recall content [5]", _bits(memory.recall(content=[5])), [1]))
    memory.learn(*RELEARN)
    checks.append(("recall cue 0 after re-learning", _bits(memory.recall(cue=0)), RELEARN[1]))
    checks.append(("recall content [4] (forgotten)", _bits(memory.recall(content=[4])), []))
    raster = np.concatenate([op.raster for op in memory.history])
    marks = [(op.start, op.kind) for op in memory.history]
    return {
        "checks": [{"operation": o, "got": g, "expected": e} for o, g, e in checks],
        "raster": raster,
        "marks": marks,
    }


def run(
    quick: bool = False,
    backends: list[str] | None = None,
    data: str | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run the demo on ``backends`` (default numba and torch); ``quick`` changes nothing."""
    out = Path(out_dir) if out_dir is not None else Path("neuromem-results")
    out.mkdir(parents=True, exist_ok=True)
    backends = list(backends or ("numba", "torch"))
    runs, times = {}, {}
    for backend in backends:
        if backend == "brian2":
            print("demo: Brian2 builds its Cython code once (minutes; cached afterwards)")
        t0 = time.perf_counter()
        runs[backend] = script(backend)
        times[backend] = round(time.perf_counter() - t0, 2)
        ok = all(c["got"] == c["expected"] for c in runs[backend]["checks"])
        print(f"demo: {backend}: {len(runs[backend]['checks'])} recalls, "
              f"{'all as expected' if ok else 'NOT as expected'} ({times[backend]} s)")  # fmt: skip
    first = runs[backends[0]]
    acceptance = {
        f"{backend}: {c['operation']}": {
            "got": c["got"],
            "expected": c["expected"],
            "pass": c["got"] == c["expected"],
        }
        for backend, r in runs.items()
        for c in r["checks"]
    }
    if len(runs) > 1:
        acceptance["backends give the same output spikes"] = {
            "backends": backends,
            "pass": all(np.array_equal(r["raster"], first["raster"]) for r in runs.values()),
        }
    res = {
        "experiment": "demo",
        "network": {"cues": N_CUES, "content_bits": N_BITS},
        "wall_time_s": times,
        "checks": {b: r["checks"] for b, r in runs.items()},
        "acceptance": acceptance,
    }
    res["replay"] = _replay(backends, data, out)
    if res["replay"]["ran"]:  # the replay's own rows: the authors' outputs reproduced
        for row, value in res["replay"]["summary"]["acceptance"].items():
            acceptance[f"replay {row}"] = value
    with open(out / "demo.json", "w") as fh:
        json.dump(res, fh, indent=1)
    _figure(first, backends[0], out / "demo.png")
    return {"acceptance": acceptance, "wall_time_s": times, "replay": res["replay"]}


def _replay(backends: list[str], data: str | None, out: Path) -> dict[str, Any]:
    """The authors' recordings replayed, when the data directory has them."""
    from neuromem.data import verified_path

    try:
        verified_path("ca3/exp2_stress_testbench.json", data)
    except DataError as exc:
        print(f"demo: no replay of the authors' recordings ({exc})")
        return {"ran": False, "reason": str(exc)}
    from . import ca3_cam

    print("demo: replaying the authors' SpiNNaker recordings (ca3_cam)")
    summary = ca3_cam.run(backends=backends, data=data, out_dir=out)
    return {"ran": True, "summary": summary}


def _figure(result: dict[str, Any], backend: str, path: Path) -> None:
    raster = result["raster"]
    fig = Figure(figsize=(11, 4.2))
    ax = fig.subplots()
    t, i = np.nonzero(raster)
    ax.scatter(t, i, marker="|", s=40, c=np.where(i < N_CUES, "tab:blue", "tab:orange"))
    ax.axhline(N_CUES - 0.5, color="grey", lw=0.6)
    for start, kind in result["marks"]:
        ax.axvline(start, color="0.85", lw=0.6, zorder=0)
        ax.text(start + 0.5, N_CUES + N_BITS - 0.3, kind.replace("_", " "), fontsize=7,
                rotation=90, va="top")  # fmt: skip
    ticks = range(N_CUES + N_BITS)
    ax.set_yticks(ticks, [f"cue {k}" if k < N_CUES else f"bit {k - N_CUES}" for k in ticks],
                  fontsize=7)  # fmt: skip
    ax.set(xlabel="time step (1 ms)", ylabel="output neurons",
           title=f"CA3 memory on {backend}: learn 3, recall by cue and by content, "
           "re-learn cue 0 (forget)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
