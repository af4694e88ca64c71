import json
import os

import pytest

from neuromem import cli

needs_data = pytest.mark.skipif(
    not os.environ.get("NEUROMEM_DATA"),
    reason="NEUROMEM_DATA is not set (the authors' CA3 recordings)",
)


def test_list_names_every_experiment(capsys):
    assert cli.main(["run", "--list"]) == 0
    assert "ca3_cam" in capsys.readouterr().out


def test_unknown_experiment_is_refused(capsys):
    assert cli.main(["run", "no_such_experiment"]) == 2
    assert "unknown experiment 'no_such_experiment'" in capsys.readouterr().err


@needs_data
def test_ca3_experiment_writes_json_and_figure(tmp_path):
    module = cli.load_experiment(cli.discover()["ca3_cam"])
    module.run(backends=["numba"], out_dir=tmp_path)
    doc = json.loads((tmp_path / "ca3_cam.json").read_text())
    exp2 = doc["backends"]["numba"]["exp2_stress_testbench"]
    assert exp2["operations"] == 60 and exp2["recall_operations"] == 45
    assert (tmp_path / "ca3_cam.png").stat().st_size > 10_000
