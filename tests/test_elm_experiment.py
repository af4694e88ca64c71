"""The ELM experiment (experiments/elm.py): a tiny end-to-end run and the task's determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuromem import cli


@pytest.fixture(scope="module")
def elm_exp():
    return cli.load_experiment(cli.discover()["elm"])


TINY = {
    "horizons": [3, 6],
    "n_train": 8,
    "n_test": 8,
    "batch": 4,
    "epochs": 1,
    "max_steps": 2,
    "elm_d_m": 2,
    "lif_hidden": 3,
    "lstm_hidden": 2,
}
TINY_TASK = {
    "n_classes": 3,
    "n_signal": 5,
    "n_recall": 1,
    "cue_len": 3,
    "recall_len": 2,
    "pattern_rate": 0.3,
    "noise_rate": 0.02,
    "pattern_seed": 0,
}


def test_tiny_run_writes_json_and_figures(elm_exp, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROMEM_PROGRESS", "0")
    summary = elm_exp.run(quick=True, out_dir=tmp_path, config=TINY, task=TINY_TASK)
    doc = json.loads((tmp_path / "elm_quick.json").read_text())
    assert not (tmp_path / "elm.json").exists()  # quick never writes the full results
    assert doc["setting"] == "quick" and "golden" in doc
    assert set(doc["training"]) == {"3", "6"}
    for row in doc["training"].values():
        assert set(row) == {"elm", "lif", "lstm"}
        for r in row.values():
            assert 0.0 <= r["test_accuracy"] <= 1.0
            assert r["parameters"] > 0 and r["train_wall_s"] >= 0
            assert r["optimizer_steps"] == 2
    assert isinstance(doc["elm_advantage_over_lif_grows_with_horizon"], bool)
    assert set(doc["elm_minus_lif_accuracy"]) == {"3", "6"}
    assert doc["chance"] == pytest.approx(1 / 3)
    for name in doc["figures"]:
        assert name.startswith("elm_quick") and (tmp_path / name).stat().st_size > 5_000
    assert summary["parameters"]["elm"] == doc["training"]["3"]["elm"]["parameters"]


def test_task_is_deterministic_by_seed(elm_exp):
    x1, y1 = elm_exp.make_task(16, 30, seed=3)
    x2, y2 = elm_exp.make_task(16, 30, seed=3)
    x3, y3 = elm_exp.make_task(16, 30, seed=4)
    xt, _ = elm_exp.make_task(16, 30, seed=3, split="test")
    assert x1.shape == (16, 20 + 30 + 10, 34) and y1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3) and not torch.equal(x1, xt)
    # the recall channels fire only in the recall window; the label decides the cue pattern
    assert x1[:, -10:, 32:].eq(1).all() and x1[:, :-10, 32:].eq(0).all()
    pats = elm_exp.task_for(30).patterns()
    cue = x1[:, :20, :32].numpy().astype(bool)
    assert np.all(cue >= pats[y1.numpy()])


def test_models_have_similar_parameter_counts(elm_exp):
    task = elm_exp.task_for(10)
    counts = {
        m: elm_exp.build_model(m, task, {**elm_exp.FULL, "batch": 2}).parameter_count()
        for m in elm_exp.MODELS
    }
    assert max(counts.values()) / min(counts.values()) < 1.3, counts
