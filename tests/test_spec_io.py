"""save -> load round-trips bit-exactly, runs identically, and fails atomically."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pytest

import neuromem
from neuromem.errors import SpecError
from neuromem.models.ca3_cam import build_network
from neuromem.spec import (
    CurrentInput,
    Discretization,
    Network,
    PoissonSpikes,
    Population,
    Projection,
    SpikeArray,
    SpikeProbe,
    StateProbe,
    all_to_all,
    fixed_probability,
    hebbian,
    if_curr_exp,
    load,
    nir_cuba_lif,
    save,
    spike_source,
    stdp_pair,
)
from neuromem.spec import io as spec_io


# ------------------------------------------------------------------ networks
def stimulus_network() -> Network:
    """Poisson and array stimuli, a constant and a time-varying current input, state probes,
    per-neuron parameters, two plasticity rules and mixed delays."""
    rng = np.random.default_rng(7)
    lif = if_curr_exp()
    pops = (
        Population(
            "noise", 20, spike_source(), stimulus=PoissonSpikes(150.0, seed=11, start=3, stop=180)
        ),
        Population("given", 4, spike_source(), stimulus=SpikeArray([0, 5, 5, 40], [0, 1, 3, 2])),
        Population(
            "exc",
            10,
            lif,
            {
                "tau_m": rng.uniform(5.0, 25.0, 10),
                "cm": 0.25,
                "v_thresh": -55.0,
                "tau_refrac": 2.0,
                "tau_syn_E": rng.uniform(1.0, 5.0, 10),
            },
            {"v": rng.uniform(-70.0, -60.0, 10)},
        ),
        Population("cuba", 3, nir_cuba_lif(), {"tau_mem": [5.0, 7.5, 10.0]}),
    )
    pre, post = fixed_probability(20, 10, 0.3, seed=5)
    projs = (
        Projection(
            "noise_exc",
            "noise",
            "exc",
            pre,
            post,
            rng.uniform(0.0, 1.5, pre.size),
            rng.integers(1, 6, pre.size),
            plasticity=stdp_pair("multiplicative"),
            plasticity_params={"A_plus": 0.1, "A_minus": 0.12, "w_max": 2.0},
        ),
        Projection("given_exc", "given", "exc", *all_to_all(4, 10), 0.8, 2, "inh"),
        Projection(
            "exc_cuba",
            "exc",
            "cuba",
            *all_to_all(10, 3),
            0.3,
            1,
            plasticity=hebbian(),
            plasticity_params={"eta": 0.05},
        ),
    )
    currents = (
        CurrentInput("exc", "i_ext", rng.uniform(0.0, 0.4, (150, 10))),
        CurrentInput("cuba", "i_ext", np.array([0.05, 0.0, 0.1])),
    )
    probes = (
        SpikeProbe("noise"),
        SpikeProbe("exc"),
        SpikeProbe("cuba"),
        SpikeProbe("exc", format="events"),
        StateProbe("exc", "v"),
        StateProbe("exc", "i_exc", (0, 4, 9)),
        StateProbe("cuba", "i_syn"),
    )
    return Network("stim", Discretization(dt=0.5), pops, projs, currents, probes)


def ca3_network() -> Network:
    return build_network(5, 10)


NETWORKS = {"ca3": ca3_network, "stimulus": stimulus_network}


# ------------------------------------------------------------------ exact comparison
def assert_identical(a, b, where="net"):
    """Every field equal, arrays with the same dtype, shape and bytes, floats bit-equal."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: values differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert math.isnan(a) and math.isnan(b) or a.hex() == b.hex(), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("which", list(NETWORKS))
def test_round_trip_is_bit_exact(tmp_path, which):
    net = NETWORKS[which]()
    path = save(net, tmp_path / "saved")
    assert sorted(os.listdir(path)) == ["arrays.npz", "network.json"]
    back = load(path)
    assert_identical(net, back)
    # and a second generation is identical too (nothing drifts through repeated saves)
    assert_identical(net, load(save(back, tmp_path / "again")))


def test_saved_document_is_versioned(tmp_path):
    doc = json.loads((save(ca3_network(), tmp_path / "x") / "network.json").read_text())
    assert doc["format"] == "neuromem-network" and doc["version"] == spec_io.VERSION
    assert doc["discretization"] == {
        "dt": 1.0,
        "integrator": "exponential_euler",
        "reset_mode": "same_step",
        "delay_semantics": "deliver_before_integration",
        "rng": "host_pregenerated",
    }


def _run(net: Network, steps: int, inputs=None):
    sim = neuromem.compile(net, backend="numba")
    res = sim.run(steps, inputs)
    return res, sim.state


@pytest.mark.parametrize("which", list(NETWORKS))
def test_loaded_network_runs_bit_identically(tmp_path, which):
    net = NETWORKS[which]()
    back = load(save(net, tmp_path / "saved"))
    inputs = None
    steps = 200
    if which == "ca3":
        rng = np.random.default_rng(3)
        il = np.zeros((steps, 15), bool)
        for k, t0 in enumerate(range(0, 100, 14)):  # learn 5 memories then recall by cue
            il[t0 : t0 + 3, k % 5] = True
            il[t0 : t0 + 3, 5 + rng.choice(10, 3, replace=False)] = True
        for k, t0 in enumerate(range(100, 170, 14)):
            il[t0, k] = True
        inputs = {"IL": il}
    a, state_a = _run(net, steps, inputs)
    b, state_b = _run(back, steps, inputs)
    assert sum(int(r.sum()) for r in a.spikes.values()) > 0, "the test network is silent"
    assert_identical(a.spikes, b.spikes, "spikes")
    assert_identical(a.events, b.events, "events")
    assert_identical(a.state, b.state, "state probes")
    assert_identical(state_a, state_b, "final state")


def test_save_refuses_an_existing_path(tmp_path):
    net = ca3_network()
    path = save(net, tmp_path / "x")
    before = (path / "network.json").read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        save(net, path)
    assert (path / "network.json").read_bytes() == before
    (tmp_path / "plain").write_text("not a save")
    with pytest.raises(FileExistsError):
        save(net, tmp_path / "plain")


def test_save_overwrite_replaces(tmp_path):
    path = save(ca3_network(), tmp_path / "x")
    save(stimulus_network(), path, overwrite=True)
    assert load(path).name == "stim"
    assert sorted(os.listdir(tmp_path)) == ["x"]


def _failing_savez(*args, **kwargs):
    raise OSError("disk full (simulated)")


def test_failed_save_writes_nothing(tmp_path, monkeypatch):
    written = []
    real_dump = json.dump

    def dump(doc, f, **kw):
        real_dump(doc, f, **kw)
        written.append(f.name)

    monkeypatch.setattr(spec_io.json, "dump", dump)
    monkeypatch.setattr(spec_io.np, "savez", _failing_savez)
    target = tmp_path / "x"
    with pytest.raises(OSError, match="simulated"):
        save(ca3_network(), target)
    assert written and written[0].endswith("network.json"), "json was not written first"
    assert not target.exists()
    assert os.listdir(tmp_path) == [], f"left behind: {os.listdir(tmp_path)}"


def test_failed_overwrite_keeps_the_old_save(tmp_path, monkeypatch):
    net = ca3_network()
    target = save(net, tmp_path / "x")
    files = {f: (target / f).read_bytes() for f in os.listdir(target)}
    monkeypatch.setattr(spec_io.np, "savez", _failing_savez)
    with pytest.raises(OSError, match="simulated"):
        save(stimulus_network(), target, overwrite=True)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["x"]
    assert {f: (target / f).read_bytes() for f in os.listdir(target)} == files
    assert_identical(net, load(target))


def test_failed_rename_during_overwrite_keeps_the_old_save(tmp_path, monkeypatch):
    net = ca3_network()
    target = save(net, tmp_path / "x")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old -> .x.old succeeded; tmp -> x fails
            raise OSError("rename failed (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(spec_io.os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        save(stimulus_network(), target, overwrite=True)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["x"]
    assert_identical(net, load(target))


# ------------------------------------------------------------------ load errors
@pytest.fixture
def saved(tmp_path):
    return save(ca3_network(), tmp_path / "x")


def test_load_missing_directory(tmp_path):
    with pytest.raises(SpecError, match=r"load: .*nothing.*network.json not found"):
        load(tmp_path / "nothing")


def test_load_missing_arrays(saved):
    (saved / "arrays.npz").unlink()
    with pytest.raises(SpecError, match=r"load: .*arrays.npz not found"):
        load(saved)


def test_load_corrupt_json(saved):
    (saved / "network.json").write_text('{"format": "neuromem-network", "vers')
    with pytest.raises(SpecError, match=r"load: .*x is corrupt"):
        load(saved)


def test_load_garbage_arrays(saved):
    (saved / "arrays.npz").write_bytes(b"garbage, not an npz file")
    with pytest.raises(SpecError, match=r"load: .*x is corrupt"):
        load(saved)


def test_load_truncated_arrays(saved):
    data = (saved / "arrays.npz").read_bytes()
    (saved / "arrays.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SpecError, match=r"load: .*corrupt"):
        load(saved)


def test_load_missing_array_key(saved):
    with np.load(saved / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "proj.il_cueCue.weight"}
    np.savez(saved / "arrays.npz", **arrays)
    with pytest.raises(SpecError, match=r"load: array 'proj.il_cueCue.weight' is missing"):
        load(saved)


@pytest.mark.parametrize(
    "field, value, msg",
    [
        ("version", 99, r"load: unsupported version 99"),
        ("version", None, r"load: unsupported version None"),
        ("format", "something-else", r"load: not a neuromem network file"),
    ],
)
def test_load_wrong_version_or_format(saved, field, value, msg):
    doc = json.loads((saved / "network.json").read_text())
    doc[field] = value
    (saved / "network.json").write_text(json.dumps(doc))
    with pytest.raises(SpecError, match=msg):
        load(saved)


def test_load_revalidates(saved):
    """A hand-edited file is validated again: a delay of 0 is refused with the element named."""
    with np.load(saved / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["proj.il_cueCue.delay"] = np.zeros_like(arrays["proj.il_cueCue.delay"])
    np.savez(saved / "arrays.npz", **arrays)
    with pytest.raises(SpecError, match=r"projection 'il_cueCue': delay 0 steps"):
        load(saved)


def test_spike_probe_format_round_trips_and_is_checked(tmp_path):
    """The format of a spike probe is saved; a file without it (older saves) loads as a
    raster probe, and a bad format in a hand-edited file is refused naming the probe."""
    path = save(stimulus_network(), tmp_path / "x")
    doc = json.loads((path / "network.json").read_text())
    spikes = [pb for pb in doc["probes"] if pb["type"] == "spikes"]
    assert [pb["format"] for pb in spikes] == ["raster"] * 3 + ["events"]
    assert load(path).probes[3] == SpikeProbe("exc", format="events")
    del spikes[0]["format"]
    spikes[3]["format"] = "sparse"
    (path / "network.json").write_text(json.dumps(doc))
    with pytest.raises(SpecError, match=r"spike probe on 'exc': format 'sparse'"):
        load(path)
    spikes[3]["format"] = "events"
    (path / "network.json").write_text(json.dumps(doc))
    assert load(path).probes[0] == SpikeProbe("noise", format="raster")
