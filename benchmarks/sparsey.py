"""Sparsey frames per second: the numba CSA against the plain numpy implementation of the same
CSA (``neuromem.models.sparsey.csa.NumpyEngine``, vectorised over the macs), in one run.

One level at the MNIST size (the level 1 of ``experiments/sparsey.py``: a grid of macs of
16 x 16 cells on 5 x 5 pixel RFs of a 24 x 16 skeleton image), learning frames (the CSA's draw and
single-trial learning) and recognition frames (max V), on MNIST skeletons; both engines choose
the same codes (checked here). Then the time to store and to retrieve one item against the
number already stored, for the same level (slope per 1,000 items stored). One thread.
Writes ``benchmarks/results/sparsey.json`` and ``.png``.

    .venv/bin/python benchmarks/sparsey.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402

import neuromem  # noqa: E402
from neuromem.datasets import load_mnist  # noqa: E402
from neuromem.models.sparsey import Sparsey  # noqa: E402
from neuromem.models.sparsey.mnist import (  # noqa: E402
    LEVEL1,
    mnist_hierarchy,
    per_class,
    preprocess,
)
from neuromem.models.sparsey.timing import per_item_times  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_RATIO = 10.0


def _fps(backend: str, frames: np.ndarray, repeats: int) -> dict:
    """Best-of-``repeats`` frames per second of learning all ``frames`` from empty weights,
    then of recognising them; and the codes of the last repeat."""
    learn, recog = [], []
    for _ in range(repeats):
        model = Sparsey(mnist_hierarchy(1), frames.shape[1], seed=0, backend=backend)
        t0 = time.perf_counter()
        learnt = model.learn(frames)
        learn.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        seen = model.recognise(frames)
        recog.append(time.perf_counter() - t0)
    n = len(frames)
    return {
        "learn_fps": n / min(learn),
        "recognise_fps": n / min(recog),
        "learn_fps_median": n / float(np.median(learn)),
        "recognise_fps_median": n / float(np.median(recog)),
        "codes": (learnt.winners[0], seen.winners[0]),
    }


def main(quick: bool = False, data: str | None = None) -> dict:
    X, y = load_mnist("train", data)
    frames = preprocess(X[per_class(y, 20 if quick else 200)])
    repeats = 2 if quick else 5
    Sparsey(mnist_hierarchy(1), frames.shape[1], backend="numba").learn(frames[:2])  # compile
    runs = {b: _fps(b, frames, repeats) for b in ("numba", "numpy")}
    same = all(
        np.array_equal(a, b)
        for a, b in zip(runs["numba"].pop("codes"), runs["numpy"].pop("codes"), strict=True)
    )
    ratio = {k: runs["numba"][k] / runs["numpy"][k] for k in ("learn_fps", "recognise_fps")}

    more = preprocess(X[per_class(y, 100 if quick else 500, start=200)])
    model = Sparsey(mnist_hierarchy(1), frames.shape[1], seed=1, backend="numba")
    curve = per_item_times(model, more, block=100 if quick else 250)
    doc = {
        "benchmark": "sparsey",
        "neuromem": neuromem.__version__,
        "machine": {
            "python": platform.python_version(),
            "numba": numba.__version__,
            "threads": numba.get_num_threads(),
            "cpu": platform.processor(),
        },  # fmt: skip
        "level": LEVEL1 | {"macs": mnist_hierarchy(1)[0].macs, "input": "24 x 16 skeleton"},
        "frames": int(len(frames)),
        "repeats": repeats,
        "engines": runs,
        "numba_over_numpy": ratio,
        "goal_ratio": GOAL_RATIO,
        "pass": bool(min(ratio.values()) >= GOAL_RATIO),
        "identical_codes": bool(same),
        "per_item_vs_stored": curve,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = "sparsey_quick" if quick else "sparsey"
    with open(RESULTS / f"{stem}.json", "w") as f:
        json.dump(doc, f, indent=1)
    _figure(doc, RESULTS / f"{stem}.png")
    return doc


def _figure(doc: dict, path: Path) -> None:
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    names = ["learn_fps", "recognise_fps"]
    x = np.arange(len(names))
    for i, engine in enumerate(("numba", "numpy")):
        ax[0].bar(x + 0.4 * i, [doc["engines"][engine][k] for k in names], 0.4, label=engine)
    ax[0].set(xticks=x + 0.2, xticklabels=["learning", "recognition"], yscale="log",
              ylabel="frames per second (one thread)",
              title="numba / numpy: " + ", ".join(f"{v:.0f}x" for v in
                                                doc["numba_over_numpy"].values()))  # fmt: skip
    ax[0].legend()
    c = doc["per_item_vs_stored"]
    ax[1].plot(c["stored_at_block_end"], c["store_us_per_item"], "o-", label="store")
    ax[1].plot(c["stored_at_block_end"], c["retrieve_us_per_item"], "s-", label="retrieve")
    ax[1].set(xlabel="items stored", ylabel="us per item", ylim=(0, None),
              title="time per item against items stored (numba)")  # fmt: skip
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and repeats")
    parser.add_argument("--data", help="data directory (default: $NEUROMEM_DATA)")
    args = parser.parse_args()
    out = main(args.quick, args.data)
    print(
        json.dumps({k: out[k] for k in ("numba_over_numpy", "pass", "identical_codes")}, indent=1)
    )
    print(json.dumps(out["per_item_vs_stored"]["slope_us_per_1000_stored"], indent=1))
