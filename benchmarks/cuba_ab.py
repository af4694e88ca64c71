"""Regression check: the numba backend's CUBA simulation time at two revisions, in one run.

    .venv/bin/python benchmarks/cuba_ab.py --before REV [--rounds 3] [--sizes 4000 16000 64000]

Checks out ``REV`` into a temporary git worktree and times, in alternating subprocesses (so both
trees see the same machine state), ``benchmarks/cuba.py``'s numba measurement of each tree
itself: Brian2's CUBA network, 1 s (10,000 steps), min over 5 runs after a warm-up compile, one
thread. Writes ``benchmarks/results/cuba_ab.json`` with each tree's min per size and round and
the ratio now / before of the mins over all rounds (< 1: faster now).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# Runs in a subprocess with the tree to measure first on sys.path (the editable install's
# finder is removed so that ``import neuromem`` is that tree's package).
_WORKER = r"""
import json, sys
tree, n = sys.argv[1], int(sys.argv[2])
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
sys.path.insert(0, tree)
sys.path.insert(0, tree + "/benchmarks")
import neuromem, cuba
assert neuromem.__file__.startswith(tree), neuromem.__file__
net = cuba.network(n, cuba.connectivity(n))
stats, events, _ = cuba._measure_numba(net, 5, 120.0)
print(json.dumps({"min_s": stats["min_s"], "median_s": stats["median_s"],
                  "spikes": int(len(events[0]))}))
"""


def _time(tree: Path, n: int, cache: Path) -> dict:
    env = {
        **os.environ,
        "NEUROMEM_CACHE": str(cache),
        "NEUROMEM_PROGRESS": "0",
        "NUMBA_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", _WORKER, str(tree), str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(before: str, rounds: int, sizes: list[int]) -> dict:
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", before], capture_output=True, text=True, check=True
    ).stdout.strip()
    now = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cuba_ab_") as d:
        old = Path(d) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), rev],
            check=True,
        )
        try:
            trees = {"before": old, "now": ROOT}
            runs: dict[str, dict[int, list[dict]]] = {k: {n: [] for n in sizes} for k in trees}
            for r in range(rounds):
                for n in sizes:
                    for name in ("before", "now") if r % 2 == 0 else ("now", "before"):
                        res = _time(trees[name], n, Path(d) / f"cache_{name}")
                        runs[name][n].append(res)
                        print(f"round {r} N={n} {name}: {res['min_s']:.4f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)])
    rows = []
    for n in sizes:
        b = min(x["min_s"] for x in runs["before"][n])
        a = min(x["min_s"] for x in runs["now"][n])
        same = {x["spikes"] for x in runs["before"][n]} == {x["spikes"] for x in runs["now"][n]}
        rows.append(
            {
                "n": n,
                "before_min_s": b,
                "now_min_s": a,
                "ratio_now_before": a / b,
                "same_spike_count": same,
                "before": runs["before"][n],
                "now": runs["now"][n],
            }
        )
        print(f"N={n}: now/before = {a / b:.3f} (min {a:.4f} s vs {b:.4f} s), same spikes: {same}")
    doc = {
        "benchmark": "cuba_ab",
        "what": "numba CUBA simulation time (1 s, min of 5 runs per process) at two revisions, "
        "alternating subprocesses, one thread",
        "before": rev,
        "now": now,
        "rounds": rounds,
        "rows": rows,
        "total_s": time.perf_counter() - t0,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cuba_ab.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000, 64000])
    a = ap.parse_args()
    main(a.before, a.rounds, a.sizes)
