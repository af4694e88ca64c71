"""The ``neuromem`` command: discovery from the installed package, the report table, exit
statuses, refused options, and the demo that needs no data."""

import json
import os
import types

import pytest

from neuromem import cli

needs_data = pytest.mark.skipif(
    not os.environ.get("NEUROMEM_DATA"),
    reason="NEUROMEM_DATA is not set (the authors' CA3 recordings)",
)


def test_list_names_every_experiment(capsys):
    assert cli.main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("ca3_cam", "demo", "elm", "multitasking_hopfield", "sparsey"):
        assert name in out
    assert "__init__" not in out


def test_unknown_experiment_is_refused(capsys):
    assert cli.main(["run", "no_such_experiment"]) == 2
    assert "unknown experiment 'no_such_experiment'" in capsys.readouterr().err


def test_a_backend_the_experiment_ignores_is_refused(capsys, tmp_path):
    assert cli.main(["run", "sparsey", "--backend", "torch", "--out", str(tmp_path)]) == 2
    assert "takes no --backend" in capsys.readouterr().err
    assert cli.main(["run", "demo", "--backend", "loihi", "--out", str(tmp_path)]) == 2
    assert "cannot run on loihi" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before anything ran


def test_the_report_shows_each_row_and_a_failing_row_fails(capsys, tmp_path):
    summary = {
        "acceptance": {
            "accuracy": {"ours": 0.876, "paper": 0.91, "pass": False},
            "identical": {"pass": True},
        }
    }
    (tmp_path / "x.json").write_text("{}")
    assert cli.report("x", summary, tmp_path, [tmp_path / "x.json"]) == 1
    out = capsys.readouterr().out
    assert "1 of 2 acceptance rows pass" in out
    assert "FAIL  accuracy" in out and "ours=0.876, paper=0.91" in out
    assert f"results in {tmp_path}/: x.json" in out
    assert cli.report("x", {"acceptance": {"identical": {"pass": True}}}, tmp_path, []) == 0


def test_the_demo_runs_without_data_and_writes_where_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NEUROMEM_DATA", raising=False)
    out = tmp_path / "results"
    assert cli.main(["run", "demo", "--backend", "numba", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no replay of the authors' recordings" in text
    assert "pass  numba: recall cue 0 after re-learning" in text
    doc = json.loads((out / "demo.json").read_text())
    assert all(row["pass"] for row in doc["acceptance"].values())
    assert (out / "demo.png").stat().st_size > 10_000


def test_json_prints_the_raw_result(tmp_path, monkeypatch, capsys):
    fake = types.SimpleNamespace(
        DESCRIPTION="fake", run=lambda **kw: {"acceptance": {"a": {"pass": True}}, "n": 3}
    )
    monkeypatch.setattr(cli, "discover", lambda: {"fake": "fake"})
    monkeypatch.setattr(cli, "load_experiment", lambda name: fake)
    assert cli.main(["run", "fake", "--json", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    raw, _ = json.JSONDecoder().raw_decode(out)  # the JSON first, then the report
    assert raw["n"] == 3 and "1 of 1 acceptance rows pass" in out


@needs_data
def test_ca3_experiment_writes_json_and_figure(tmp_path):
    module = cli.load_experiment(cli.discover()["ca3_cam"])
    module.run(backends=["numba"], out_dir=tmp_path)
    doc = json.loads((tmp_path / "ca3_cam.json").read_text())
    exp2 = doc["backends"]["numba"]["exp2_stress_testbench"]
    assert exp2["operations"] == 60 and exp2["recall_operations"] == 45
    assert (tmp_path / "ca3_cam.png").stat().st_size > 10_000
