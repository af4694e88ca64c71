"""A ``--quick`` run never replaces the committed full results: every file an experiment
writes in its quick setting is named ``*_quick*`` (the fast experiments run here; the slower
ones with ``-m slow``)."""

from __future__ import annotations

import os

import pytest

from neuromem import cli

#: Experiments whose committed results a quick run must not replace, with their quick-run
#: options; those that take minutes even when quick are marked slow.
FAST = {"ca3_cam": ["numba"], "ca3_stdp_identification": ["numba"], "sparsey": None,
        "sparsey_architecture": None}  # fmt: skip
SLOW = {"multitasking_hopfield": ["numba"], "elm": None, "hardware_export": None}
NOT_COMMITTED = {"demo"}  # writes only into the user's output folder

needs_data = pytest.mark.skipif(
    not os.environ.get("NEUROMEM_DATA"), reason="NEUROMEM_DATA is not set (datasets, recordings)"
)


def test_every_experiment_is_covered():
    assert set(cli.discover()) == set(FAST) | set(SLOW) | NOT_COMMITTED


@needs_data
@pytest.mark.parametrize(
    "name, backends",
    [*FAST.items(), *(pytest.param(n, b, marks=pytest.mark.slow) for n, b in SLOW.items())],
)
def test_a_quick_run_writes_only_quick_files(name, backends, tmp_path):
    if name == "hardware_export":  # its replays need the optional peers (bash run.sh extras)
        pytest.importorskip("pyNN", reason="PyNN is not installed (bash run.sh extras)")
    module = cli.load_experiment(cli.discover()[name])
    module.run(quick=True, backends=backends, out_dir=tmp_path)
    written = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert written, f"{name} --quick wrote nothing"
    assert all("_quick" in path for path in written), written
