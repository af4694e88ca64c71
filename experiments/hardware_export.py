"""CA3 memory exported to neuromorphic hardware: Loihi (Lava), SpiNNaker (PyNN/sPyNNaker), NIR.

For every hardware profile the CA3 network of the authors' stress testbench is compiled
(quantise -> check -> report); where a target can run it, the testbench is replayed there
(:mod:`neuromem.models.ca3_hardware`) and scored as in ``experiments/ca3_cam.py``:

- Loihi 2 via Lava, floating point: STDP cannot run on Lava's learning engine, so the two
  plastic projections are updated on the host between one-step Lava runs (flagged).
- SpiNNaker via PyNN: the emitted network on PyNN's Brian2 backend, and on NEST where its delay
  convention allows; mapped on sPyNNaker's virtual board (placements and routing, no spikes).
- NIR: static graphs only, so the plastic CA3 network is refused (the reasons are recorded).

Writes ``experiments/results/hardware_export.json``, ``hardware_export.png`` and one text
report per target under ``experiments/results/hardware_export/``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

import neuromem
from neuromem.data import load_ca3_recording
from neuromem.hardware import available_targets, compile
from neuromem.models import ca3_hardware
from neuromem.models.ca3_cam import build_network
from neuromem.progress import progress_bar

DESCRIPTION = "CA3 memory exported to Loihi (Lava), SpiNNaker (PyNN/sPyNNaker) and NIR"
RESULTS = Path(__file__).resolve().parent / "results"


def _skipped(reason: str) -> dict[str, Any]:
    return {"ran": False, "reason": reason}


def _lava_replay(recording: str, data: str | None) -> dict[str, Any]:
    from neuromem.hardware import lava

    if not lava.lava_available():
        return _skipped("lava-nc is not installed (bash run.sh extras)")
    r = ca3_hardware.replay_on_lava(recording, data, plasticity="host")
    return {"ran": True, **{k: v for k, v in r.items() if k not in ("mismatches", "unsupported")}}


def _pynn_replay(recording: str, data: str | None, simulator: str) -> dict[str, Any]:
    import importlib.util

    from neuromem.hardware import pynn

    if importlib.util.find_spec(simulator if simulator == "nest" else "brian2") is None:
        return _skipped(f"{simulator} is not installed (bash run.sh extras)")
    rec = load_ca3_recording(recording, data)
    net = build_network(rec["n_cues"], rec["n_bits"])
    refused = pynn.unsupported(net, simulator)
    if refused:
        return {**_skipped("refused by the exporter"), "refusals": refused}
    r = ca3_hardware.replay_on_pynn(recording, simulator, data)
    return {"ran": True, **{k: v for k, v in r.items() if k not in ("spikes",)}}


def _spinnaker_mapping(recording: str, data: str | None) -> dict[str, Any]:
    from neuromem.hardware import spynnaker_reports

    if spynnaker_reports.spynnaker_version() is None:
        return _skipped("sPyNNaker is not installed (bash run.sh extras)")
    rec = load_ca3_recording(recording, data)
    sp = rec["spikes"]
    net = build_network(rec["n_cues"], rec["n_bits"])
    il = np.concatenate([sp["INcue"], sp["INcont"]], axis=1)
    t0 = time.perf_counter()
    mapping = spynnaker_reports.map_on_virtual_board(net, il.shape[0], {"IL": il})
    return {"ran": True, "wall_time_s": round(time.perf_counter() - t0, 1), **mapping}


def figure(results: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    runs = {
        k: v for k, v in results["replays"].items() if v.get("ran") and "recall_operations" in v
    }
    fig = Figure(figsize=(11, 4.4))
    a, b = fig.subplots(1, 2)
    names = list(runs)
    total = [v["recall_operations"] for v in runs.values()]
    match = [v["recall_operations_matching"] for v in runs.values()]
    a.barh(names, total, color="0.85", label="recall operations")
    a.barh(names, match, color="tab:green", label="same output neurons as the authors")
    a.set_xlabel(f"recall operations ({results['recording']})")  # exp1 in the quick setting
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8, ncol=2)
    targets = results["targets"]
    cores = {t: v["report"]["totals"]["cores"] for t, v in targets.items()}
    t_names = [t for t, c in cores.items() if c is not None]
    ok = [targets[t]["report"]["ok"] for t in t_names]
    b.bar(t_names, [cores[t] for t in t_names], color=["tab:blue" if o else "tab:red" for o in ok])
    mapped = results["replays"].get("spinnaker1 sPyNNaker virtual board (mapping)", {})
    if mapped.get("ran"):
        b.bar(["sPyNNaker\nvirtual board"], [mapped["cores_used"]], color="tab:green")
    b.set_ylabel("cores (profile estimate; green: mapped)")
    b.tick_params(axis="x", labelrotation=30, labelsize=8)
    b.set_title("blue: compiles, red: refused (see reports)", fontsize=9)
    fig.suptitle("CA3 memory on neuromorphic targets")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(
    quick: bool = False,
    backends: list[str] | None = None,
    data: str | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Compile the CA3 memory for every target and replay where a target runs it.

    ``quick`` replays the short exp1 recording instead of the exp2 stress testbench and skips
    the sPyNNaker mapping; ``backends`` is not used (the targets are hardware profiles).
    """
    recording = "exp1_learn_recall_forget" if quick else "exp2_stress_testbench"
    out = Path(out_dir) if out_dir is not None else RESULTS
    suffix = "_quick" if quick else ""
    reports_dir = out / f"hardware_export{suffix}"
    reports_dir.mkdir(parents=True, exist_ok=True)
    rec = load_ca3_recording(recording, data)
    net = build_network(rec["n_cues"], rec["n_bits"])
    results: dict[str, Any] = {
        "experiment": "hardware_export",
        "recording": recording,
        "network": {"name": net.name, "n_cues": rec["n_cues"], "n_bits": rec["n_bits"]},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "neuromem": neuromem.__version__,
        },
        "targets": {},
        "replays": {},
    }
    for target in available_targets():
        # Lava can update the STDP weights on the host between steps; the others refuse
        plasticity = "host" if target.startswith("loihi") else "refuse"
        comp = compile(net, target, strict=False, emit=False, plasticity=plasticity)
        comp.report.write(reports_dir / target)
        results["targets"][target] = {"plasticity": plasticity, "report": comp.report.to_dict()}
    jobs = {
        "loihi2 (Lava floating point, STDP on host)": lambda: _lava_replay(recording, data),
        "spinnaker1 via pyNN.brian2": lambda: _pynn_replay(recording, data, "brian2"),
        "spinnaker1 via pyNN.nest": lambda: _pynn_replay(recording, data, "nest"),
    }
    if not quick:
        jobs["spinnaker1 sPyNNaker virtual board (mapping)"] = lambda: _spinnaker_mapping(
            recording, data
        )
    with progress_bar(total=len(jobs), desc="hardware_export") as bar:
        for name, job in jobs.items():
            results["replays"][name] = job()
            bar.update(1)
    mapping = results["replays"].get("spinnaker1 sPyNNaker virtual board (mapping)", {})
    if mapping.get("ran"):
        # the toolchain's own placements go into the SpiNNaker report beside our estimate
        comp = compile(net, "spinnaker1", strict=False, emit=False)
        comp.report.placements = {
            "source": f"sPyNNaker {mapping['spynnaker_version']} virtual board",
            "populations": mapping["populations"],
            "cores_used": mapping["cores_used"],
            "routing": mapping["routing"],
        }
        comp.report.write(reports_dir / "spinnaker1")
        results["targets"]["spinnaker1"]["report"] = comp.report.to_dict()
    # acceptance: every replay that ran gives the authors' output neurons on every recall (a
    # replay that could not run here is reported with its reason, not judged)
    results["acceptance"] = {
        f"replay {k}": {
            "recalls_matching": v["recall_operations_matching"],
            "recalls": v["recall_operations"],
            "pass": v["recall_operations_matching"] == v["recall_operations"],
        }
        for k, v in results["replays"].items()
        if v.get("ran") and "recall_operations" in v
    }
    with open(out / f"hardware_export{suffix}.json", "w") as f:
        json.dump(results, f, indent=1, default=float)
    figure(results, out / f"hardware_export{suffix}.png")
    return {
        "acceptance": results["acceptance"],
        "targets": {t: v["report"]["ok"] for t, v in results["targets"].items()},
        "replays": {
            k: (
                f"{v['recall_operations_matching']}/{v['recall_operations']} recalls"
                if v.get("ran") and "recall_operations" in v
                else ("mapped" if v.get("ran") else v["reason"])
            )
            for k, v in results["replays"].items()
        },
    }
