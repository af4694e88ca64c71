"""Glauber spin updates per second: neuromem's O(K) low-rank field against a dense O(N^2) one.

The multitasking Hebbian network (K diluted patterns, N = 20,000 spins) at zero noise and at
finite beta, for K = 3 and K = log2(N). Peer: the same Glauber dynamics with a dense coupling
matrix (h_i = sum_j J_ij sigma_j), run in the same process. One thread everywhere (this machine
has 2 shared cores). Writes ``benchmarks/results/glauber_spins.json`` and ``.png``.

    .venv/bin/python benchmarks/glauber_spins.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import neuromem  # noqa: E402
from neuromem.spec import (  # noqa: E402
    DenseCouplings,
    Discretization,
    GlauberSpins,
    Network,
    OverlapProbe,
    diluted_patterns,
    hebbian_couplings,
)

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"zero_noise": 5e7, "finite_beta": 2e7}  # numba low-rank, updates per second


def _sim(couplings, xi, beta, backend, update="sequential", rng="backend", **options):
    n = xi.shape[1]
    init = np.where(np.random.default_rng(0).random(n) < 0.5, 1.0, -1.0)
    node = GlauberSpins(
        "s", couplings, beta=beta, initial=init, update=update, tie="random", seed=1, rng=rng
    )
    net = Network("bench", Discretization(dt=1.0), spins=(node,), probes=(OverlapProbe("s", xi),))
    return neuromem.compile(net, backend=backend, **options)


def _rate(sim, sweeps: int, updates_per_sweep: int, repeats: int) -> dict[str, float]:
    sim.run(1)  # compile / warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sim.run(sweeps)
        times.append(time.perf_counter() - t)
    per_sweep = [t / sweeps for t in times]
    return {
        "updates_per_s_best": updates_per_sweep / min(per_sweep),
        "updates_per_s_median": updates_per_sweep / statistics.median(per_sweep),
        "sweep_s_min": min(per_sweep),
        "sweep_s_median": statistics.median(per_sweep),
        "repeats": repeats,
        "sweeps_per_repeat": sweeps,
    }


def main(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    n = 4000 if quick else 20_000
    repeats = 5
    rows = []
    for k in (3, int(round(math.log2(n)))):
        xi = diluted_patterns(k, n, 0.3, seed=7)
        dense = DenseCouplings(hebbian_couplings(xi).dense())
        for label, beta in (("zero_noise", math.inf), ("finite_beta", 2.0)):
            ours = _rate(_sim(hebbian_couplings(xi), xi, beta, "numba"), 20, n, repeats)
            peer = _rate(_sim(dense, xi, beta, "numba"), 1 if not quick else 3, n, repeats)
            torch_sync = _rate(
                _sim(
                    hebbian_couplings(xi), xi, beta, "torch", "synchronous", "backend", batch_size=8
                ),
                5,
                8 * n,
                repeats,
            )
            rows.append(
                {
                    "N": n,
                    "K": k,
                    "regime": label,
                    "beta": "inf" if math.isinf(beta) else beta,
                    "numba_low_rank_sequential": ours,
                    "peer_numba_dense_sequential": peer,
                    "ratio_low_rank_over_dense": ours["updates_per_s_best"]
                    / peer["updates_per_s_best"],
                    "torch_low_rank_synchronous_batch8": torch_sync,
                    "target_updates_per_s": TARGETS[label],
                    "meets_target": ours["updates_per_s_best"] > TARGETS[label],
                }
            )
            print(
                f"N={n} K={k} {label}: numba {ours['updates_per_s_best']:.3g}/s "
                f"(dense {peer['updates_per_s_best']:.3g}/s, "
                f"x{rows[-1]['ratio_low_rank_over_dense']:.0f}); "
                f"torch sync x8 {torch_sync['updates_per_s_best']:.3g}/s",
                flush=True,
            )
    doc = {
        "benchmark": "glauber_spins",
        "what": "Glauber single-spin updates per second, multitasking Hebbian couplings, "
        "sequential random order (numba), synchronous batch of 8 replicas (torch)",
        "peer": "same dynamics with a dense N x N coupling matrix, same process",
        "threads": 1,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "note": "2 shared cores",
        },
        "versions": {
            "neuromem": neuromem.__version__,
            "numba": numba.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "glauber_spins_quick" if quick else "glauber_spins"
    with open(RESULTS / f"{name}.json", "w") as f:
        json.dump(doc, f, indent=1)
    _figure(rows, RESULTS / f"{name}.png")
    return doc


def _figure(rows, path: Path) -> None:
    labels = [f"K={r['K']}\n{r['regime'].replace('_', ' ')}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    for off, key, name in (
        (-0.25, "numba_low_rank_sequential", "neuromem numba, O(K) field"),
        (0.0, "torch_low_rank_synchronous_batch8", "neuromem torch, sync x8"),
        (0.25, "peer_numba_dense_sequential", "dense O(N^2) peer"),
    ):
        ax.bar(x + off, [r[key]["updates_per_s_best"] for r in rows], 0.25, label=name)
    for i, r in enumerate(rows):
        ax.hlines(r["target_updates_per_s"], i - 0.4, i + 0.4, colors="k", linestyles="--")
    ax.set_yscale("log")
    ax.set_xticks(x, labels)
    ax.set_ylabel("spin updates / s (one thread)")
    ax.set_title(f"Glauber dynamics, N = {rows[0]['N']} (dashed: targets)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 4000 instead of 20,000")
    main(parser.parse_args().quick)
