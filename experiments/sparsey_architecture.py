"""Sparsey on MNIST: how the level-1 architecture was chosen, scored on a validation split of
the training set, never on the test set.

Round 1 varies one factor at a time around a base, round 2 combines the factors that helped;
the chosen configuration (the best mean of the two read-outs) is ``LEVEL1`` in
``neuromem.models.sparsey.mnist``. Train: the first 200 training images per class (single
trial); validation: training images 300..399 per class. Read-outs as in
``experiments/sparsey.py`` (linear SVM and the Hebbian log-count mapping on level-1 codes).
Writes ``experiments/results/sparsey_architecture.json`` (``--quick``:
``sparsey_architecture_quick.json``, 20 per class, fewer variants).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from neuromem.datasets import load_mnist
from neuromem.models.sparsey import Level, MacParams, Sparsey, grid_rf
from neuromem.models.sparsey.mnist import (
    IMAGE_SHAPE,
    HebbianReadout,
    per_class,
    preprocess,
    svm_accuracy,
    svm_c_scores,
)
from neuromem.progress import progress_bar

DESCRIPTION = "Sparsey MNIST: level-1 architecture chosen on a validation split (numba)"
RESULTS = Path(__file__).resolve().parent / "results"

#: The SVM's C in rounds 1 and 2; round 3 then chooses C for the chosen configuration.
SVM_C_ROUND1 = 0.01

#: Round 1's base: a first guess (the level 1 of the first MNIST runs).
ROUND1_BASE: dict[str, Any] = {
    "grid": (11, 7), "rf": (5, 5), "Q": 16, "K": 16, "pi_min": 2, "freeze_at": 0.1,
}  # fmt: skip

#: Round 1: one factor at a time around the base.
VARIANTS: dict[str, list[Any]] = {
    "rf": [(4, 4), (6, 6), (7, 7), (8, 8)],
    "grid": [(8, 6), (14, 9), (20, 13)],
    "pi_min": [1, 3],
    "freeze_at": [0.05, 0.2, 1.0],
    "inflection": [0.3, 0.7, 0.9],
    "gain": [8.0, 60.0],
    "g_minus": [0.0, 0.3],
    "chi": [10.0, 1000.0],
    "K": [8, 32],
    "Q": [8, 32],
}

#: Round 2: combinations of the factors that beat the base in round 1 (grid, inflection,
#: gain, pi_min, rf, chi), scored the same way.
COMBINATIONS: list[dict[str, Any]] = [
    {"grid": (20, 13), "inflection": 0.9},
    {"grid": (20, 13), "inflection": 0.7, "gain": 8.0},
    {"grid": (20, 13), "inflection": 0.9, "pi_min": 3},
    {"grid": (20, 13), "rf": (6, 6), "inflection": 0.9},
    {"grid": (14, 9), "inflection": 0.9, "gain": 8.0},
    {"grid": (20, 13), "inflection": 0.9, "gain": 8.0},
    {"grid": (20, 13), "inflection": 0.9, "chi": 10.0},
]


def _codes(config: dict, train, val):
    """Level-1 codes (learnt, recognised training, recognised validation) and learning time."""
    (tx, _), (vx, _) = train, val
    geometry = {k: config[k] for k in ("grid", "rf")}
    params = MacParams(**{k: v for k, v in config.items() if k not in geometry})
    level = Level(params, grid_rf(IMAGE_SHAPE, geometry["grid"], geometry["rf"]))
    model = Sparsey((level,), tx.shape[1], seed=0)
    t0 = time.perf_counter()
    learnt = model.learn(tx)
    learn_s = time.perf_counter() - t0
    return learnt.cells(0), model.recognise(tx).cells(0), model.recognise(vx).cells(0), learn_s


def score(config: dict, train, val, C: float = SVM_C_ROUND1) -> dict[str, float]:
    """Validation accuracy (SVM, Hebbian) and learning time of one level-1 configuration."""
    (_, ty), (_, vy) = train, val
    learnt, a, b, learn_s = _codes(config, train, val)
    hebbian = HebbianReadout().fit(learnt, ty).predict(b)
    return {
        "svm": svm_accuracy(a, ty, b, vy, C=C),
        "hebbian": float((hebbian == vy).mean()),
        "learning_s": round(learn_s, 3),
    }


def run(
    quick: bool = False,
    backends: list[str] | None = None,
    data: str | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    out = Path(out_dir) if out_dir is not None else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_mnist("train", data)
    n = 20 if quick else 200
    tr, va = per_class(y, n), per_class(y, n // 2, start=300)
    train, val = (preprocess(X[tr]), y[tr]), (preprocess(X[va]), y[va])
    base = dict(ROUND1_BASE)
    variants = {k: v[:1] for k, v in VARIANTS.items()} if quick else VARIANTS
    combos = COMBINATIONS[:1] if quick else COMBINATIONS
    configs = [("base", None, base)] + [
        (k, v, base | {k: v}) for k, values in variants.items() for v in values
    ]
    configs += [("combination", c, base | c) for c in combos]
    rows = []
    with progress_bar(len(configs), "sparsey architecture") as bar:
        for factor, value, config in configs:
            rows.append({"factor": factor, "value": value} | score(config, train, val))
            bar.update()
    i_best = max(range(len(rows)), key=lambda i: rows[i]["svm"] + rows[i]["hebbian"])
    best = rows[i_best] | {"config": configs[i_best][2]}
    _, a, b, _ = _codes(best["config"], train, val)
    scores = svm_c_scores(a, train[1], b, val[1])
    svm_c = {str(C): acc for C, acc in scores.items()}
    res = {
        "experiment": "sparsey_architecture",
        "quick": quick,
        "train_per_class": n,
        "validation": f"training images 300..{300 + n // 2 - 1} per class",
        "base": base,
        "rows": rows,
        "rule": "the configuration with the best mean of the two read-outs on validation",
        "best": best,
        "svm_C_for_best": svm_c,
        "svm_C_chosen": float(max(scores, key=scores.get)),
    }
    stem = "sparsey_architecture_quick" if quick else "sparsey_architecture"
    with open(out / f"{stem}.json", "w") as fh:
        json.dump(res, fh, indent=1, default=list)
    return {"base": rows[0], "best": best, "variants": len(rows)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=1, default=list))
