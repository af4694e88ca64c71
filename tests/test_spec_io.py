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
from neuromem.spec.limits import limits


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


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_failed_rename_during_overwrite_keeps_the_old_save(tmp_path, monkeypatch, exchange):
    """The swap fails (renameat2 exchange, or the rename of the new save into place after the
    old one was moved aside): the old save is back in place and nothing else is left."""
    net = ca3_network()
    target = save(net, tmp_path / "x")
    if exchange:

        def renameat2(src, dst, flags):
            if flags == spec_io.atomic.RENAME_EXCHANGE:
                raise OSError("exchange failed (simulated)")
            return False

        monkeypatch.setattr(spec_io.atomic, "renameat2", renameat2)
    else:
        monkeypatch.setattr(spec_io.atomic, "USE_RENAMEAT2", False)
        real_rename = os.rename
        calls = []

        def rename(src, dst):
            calls.append((str(src), str(dst)))
            if str(dst) == str(target) and ".x.new-" in str(src):  # x -> .x.old-* happened
                raise OSError("rename failed (simulated)")
            return real_rename(src, dst)

        monkeypatch.setattr(spec_io.os, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        save(stimulus_network(), target, overwrite=True)
    monkeypatch.undo()
    if not exchange:
        moves = [tuple(os.path.basename(p).split("-")[0] for p in c) for c in calls]
        assert moves[1:4] == [("x", ".x.old"), (".x.new", "x"), (".x.old", "x")], calls
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
    with pytest.raises(SpecError, match=r"load: .*x/network.json is corrupt: not valid JSON"):
        load(saved)


def test_load_garbage_arrays(saved):
    (saved / "arrays.npz").write_bytes(b"garbage, not an npz file")
    with pytest.raises(SpecError, match=r"load: .*x/arrays.npz is corrupt: not an .npz archive"):
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
    with pytest.raises(
        SpecError,
        match=r"load: .*x/network.json: projections\[\d+\] \('il_cueCue'\)\.weight: "
        r"array 'proj.il_cueCue.weight' is missing from arrays.npz",
    ):
        load(saved)


@pytest.mark.parametrize(
    "field, value, msg",
    [
        ("version", 99, r"load: .*network.json: unsupported version 99"),
        ("version", None, r"load: .*network.json: unsupported version None"),
        ("version", True, r"load: .*network.json: unsupported version True"),
        ("version", 1.0, r"load: .*network.json: unsupported version 1.0"),
        ("format", "something-else", r"load: .*network.json: not a neuromem network file"),
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


# ------------------------------------------------------------------ hand-edited network.json
def _edit(path, change):
    """Apply ``change(doc)`` to the saved network.json of ``path``."""
    doc = json.loads((path / "network.json").read_text())
    change(doc)
    (path / "network.json").write_text(json.dumps(doc))


def _pop(doc, name):
    return next(p for p in doc["populations"] if p["name"] == name)


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return change


def _delete(*keys):
    def change(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]

    return change


STIM_EDITS = {
    "missing population size": (
        _delete("populations", 2, "size"),
        r"populations\[2\] \('exc'\): missing key 'size'",
    ),
    "missing top-level key": (
        _delete("probes"),
        r"missing key 'probes'",
    ),
    "string for an object": (
        _set("discretization", "fast"),
        r"discretization: expected an object, got a string \('fast'\)",
    ),
    "string for a model": (
        _set("models", "IF_curr_exp", "lif"),
        r"models\['IF_curr_exp'\]: expected an object, got a string",
    ),
    "list for a number": (
        _set("populations", 2, "size", [10]),
        r"populations\[2\] \('exc'\)\.size: expected an integer, got a list of 1",
    ),
    "boolean for an integer": (
        _set("populations", 2, "size", True),
        r"populations\[2\] \('exc'\)\.size: expected an integer, got true",
    ),
    "string for a number": (
        _set("discretization", "dt", "0.5"),
        r"discretization\.dt: expected a number, got a string \('0\.5'\)",
    ),
    "string for a list": (
        _set("populations", "exc"),
        r"populations: expected a list, got a string \('exc'\)",
    ),
    "object for a list": (
        _set("probes", {}),
        r"probes: expected a list, got an object",
    ),
    "unknown top-level key": (
        _set("colour", "red"),
        r"unknown key 'colour'",
    ),
    "unknown projection key": (
        _set("projections", 0, "colour", "red"),
        r"projections\[0\] \('noise_exc'\): unknown key 'colour'",
    ),
    "unknown model key": (
        _set("models", "IF_curr_exp", "colour", "red"),
        r"models\['IF_curr_exp'\]: unknown key 'colour'",
    ),
    "missing model key": (
        _delete("models", "IF_curr_exp", "odes"),
        r"models\['IF_curr_exp'\]: missing key 'odes'",
    ),
    "model entry not a pair": (
        _set("models", "IF_curr_exp", "state", "v", -65.0),
        r"models\['IF_curr_exp'\]\.state\['v'\]: expected a \[unit, default\] pair, got a number",
    ),
    "model renamed": (
        _set("models", "IF_curr_exp", "name", "lif"),
        r"models\['IF_curr_exp'\]\.name: 'lif' differs from its key 'IF_curr_exp'",
    ),
    "unknown model": (
        _set("populations", 2, "model", "nope"),
        r"populations\[2\] \('exc'\)\.model: unknown neuron model 'nope'",
    ),
    "unknown rule": (
        _set("projections", 2, "plasticity", "oja"),
        r"projections\[2\] \('exc_cuba'\)\.plasticity: unknown plasticity rule 'oja'",
    ),
    "rule missing key": (
        _delete("rules", "hebbian", "on_pre"),
        r"rules\['hebbian'\]: missing key 'on_pre'",
    ),
    "unknown stimulus type": (
        _set("populations", 0, "stimulus", "type", "Gamma"),
        r"populations\[0\] \('noise'\)\.stimulus\.type: unknown type 'Gamma'",
    ),
    "stimulus missing key": (
        _delete("populations", 0, "stimulus", "seed"),
        r"populations\[0\] \('noise'\)\.stimulus: missing key 'seed'",
    ),
    "stimulus list for a number": (
        _set("populations", 0, "stimulus", "rate_hz", [150.0]),
        r"populations\[0\] \('noise'\)\.stimulus\.rate_hz: expected a number, got a list",
    ),
    "probe without type": (
        _delete("probes", 4, "type"),
        r"probes\[4\]: missing key 'type'",
    ),
    "unknown probe type": (
        _set("probes", 4, "type", "voltage"),
        r"probes\[4\]\.type: unknown type 'voltage'",
    ),
    "probe index not an integer": (
        _set("probes", 5, "indices", [0, "4"]),
        r"probes\[5\]\.indices\[1\]: expected an integer, got a string \('4'\)",
    ),
    "array name not a string": (
        _set("projections", 0, "weight", 3),
        r"projections\[0\] \('noise_exc'\)\.weight: expected the name of an array in "
        r"arrays\.npz, got a number \(3\)",
    ),
    "array name unknown": (
        _set("populations", 2, "params", "cm", "pop.exc.param.nope"),
        r"populations\[2\] \('exc'\)\.params\['cm'\]: array 'pop\.exc\.param\.nope' is "
        r"missing from arrays\.npz",
    ),
    "current missing values": (
        _delete("currents", 1, "values"),
        r"currents\[1\]: missing key 'values'",
    ),
    # values are validated by the constructors; their refusal is located too
    "bad plasticity parameter": (
        _set("projections", 0, "plasticity_params", "A_plus", "big"),
        r"projections\[0\] \('noise_exc'\): .*'A_plus' must be a number",
    ),
    "bad discretization value": (
        _set("discretization", "integrator", "rk4"),
        r"discretization: .*integrator 'rk4' is not one of",
    ),
    "unknown population in a projection": (
        _set("projections", 1, "pre", "nobody"),
        r".*'nobody'",
    ),
}


@pytest.mark.parametrize("case", list(STIM_EDITS))
def test_load_refuses_an_edited_document_naming_the_element(tmp_path, case):
    change, msg = STIM_EDITS[case]
    path = save(stimulus_network(), tmp_path / "x")
    _edit(path, change)
    with pytest.raises(SpecError, match=r"^load: \S*/x/network\.json: " + msg) as info:
        load(path)
    assert type(info.value.__cause__) is not RecursionError


@pytest.mark.parametrize(
    "text, msg",
    [
        ("", r"not valid JSON"),
        ("[1, 2", r"not valid JSON"),
        ("null", r"the document: expected an object, got null"),
        ("[1, 2, 3]", r"the document: expected an object, got a list of 3"),
        ('"network"', r"the document: expected an object, got a string"),
        ('{"format": "neuromem-network", "format": "x"}', r"duplicate key 'format'"),
        ('{"size": 1' + "0" * 5000 + "}", r"not valid JSON \(.*digits"),
        ("[" * 100_000 + "]" * 100_000, r"nested deeper than MAX_JSON_DEPTH = 100"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, r"nested deeper than MAX_JSON_DEPTH = 100"),
        ("[" * 150 + "]" * 150, r"nested deeper than MAX_JSON_DEPTH = 100"),
    ],
    ids=[
        "empty",
        "truncated",
        "null",
        "list",
        "string",
        "duplicate-key",
        "huge-int",
        "deep-lists",
        "deep-objects",
        "deeper-than-limit",
    ],
)
def test_load_refuses_malformed_json(saved, text, msg):
    """Deep nesting gives a SpecError naming the file, never a RecursionError."""
    (saved / "network.json").write_text(text)
    with pytest.raises(SpecError, match=r"^load: .*x/network\.json.*" + msg):
        load(saved)


def test_load_refuses_deep_nesting_inside_a_valid_document(tmp_path):
    path = save(stimulus_network(), tmp_path / "x")
    deep: list = []
    for _ in range(200):
        deep = [deep]
    _edit(path, _set("populations", 2, "name", deep))
    with pytest.raises(SpecError, match=r"network\.json is corrupt: nested deeper"):
        load(path)


def test_load_refuses_invalid_utf8(saved):
    (saved / "network.json").write_bytes(b'{"format": "\xff\xfe\xfa"}')
    with pytest.raises(SpecError, match=r"x/network\.json is corrupt: not valid JSON"):
        load(saved)


def test_load_refuses_a_network_json_over_the_size_limit_before_reading(saved, monkeypatch):
    """The limit is checked on the file size: a 65 MiB (sparse) file is refused unread."""
    with open(saved / "network.json", "r+b") as f:
        f.truncate(spec_io.MAX_JSON_BYTES + 1)
    assert spec_io.MAX_JSON_BYTES == 64 * 2**20

    def no_parse(*a, **k):
        raise AssertionError("network.json was parsed")

    monkeypatch.setattr(spec_io.json, "loads", no_parse)
    with pytest.raises(
        SpecError, match=r"x/network\.json is 67108865 bytes, more than the limit of 67108864"
    ):
        load(saved)


def test_size_limit_is_configurable_and_save_respects_it(tmp_path):
    path = save(ca3_network(), tmp_path / "x")
    size = (path / "network.json").stat().st_size
    with limits(max_json_bytes=size - 1):
        with pytest.raises(SpecError, match=rf"is {size} bytes, more than the limit of {size - 1}"):
            load(path)
        with pytest.raises(SpecError, match=r"save: network.json would be \d+ bytes"):
            save(ca3_network(), tmp_path / "y")
    assert sorted(os.listdir(tmp_path)) == ["x"]
    with limits(max_json_bytes=size):
        assert load(path).name == ca3_network().name


def test_load_refuses_special_files(saved):
    """A network.json that is a directory or a FIFO is refused (and never blocks)."""
    (saved / "network.json").unlink()
    os.mkfifo(saved / "network.json")
    with pytest.raises(SpecError, match=r"x/network\.json is not a regular file"):
        load(saved)
    (saved / "network.json").unlink()
    (saved / "network.json").mkdir()
    with pytest.raises(SpecError, match=r"x/network\.json is not a regular file"):
        load(saved)


def test_load_of_a_file_is_refused(tmp_path):
    (tmp_path / "plain").write_text("not a save")
    with pytest.raises(SpecError, match=r"load: .*plain is not a directory"):
        load(tmp_path / "plain")


@pytest.mark.parametrize(
    "exc",
    [
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
        ValueError,
        ZeroDivisionError,
        RecursionError,
    ],
)
def test_stray_exceptions_of_constructors_become_spec_errors(saved, monkeypatch, exc):
    """Whatever a constructor raises for a bad value reaches the caller as a SpecError that
    names the element (here: the first population of the CA3 network)."""
    first = json.loads((saved / "network.json").read_text())["populations"][0]["name"]

    def population(*args, **kwargs):
        raise exc("raised inside the constructor")

    monkeypatch.setattr(spec_io.document, "Population", population)
    with pytest.raises(SpecError) as info:
        load(saved)
    assert type(info.value) is SpecError
    msg = str(info.value)
    assert f"x/network.json: populations[0] ({first!r}): cannot be rebuilt ({exc.__name__}" in msg
    assert "raised inside the constructor" in msg


# ------------------------------------------------------------------ hand-edited arrays.npz
def _rewrite_arrays(path, change):
    with np.load(path / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(path / "arrays.npz", **arrays)


W = "proj.il_cueCue.weight"
WHERE = r"x/network\.json: projections\[\d+\] \('il_cueCue'\)"


@pytest.mark.parametrize(
    "value, msg",
    [
        (
            np.array(["a", "b"]),
            WHERE + r"\.weight: arrays\.npz: array '" + W + "': holds dtype <U1",
        ),
        (np.array([1 + 2j]), r"holds dtype complex128; expected booleans, integers or floats"),
        (np.zeros(2, dtype=[("a", "f8")]), r"holds dtype \[\('a', '<f8'\)\]"),
        (np.array(["2024-01-01"], dtype="M8[D]"), r"holds dtype datetime64\[D\]"),
        (np.zeros(3), WHERE + r": projection 'il_cueCue', weight: size mismatch"),
        (np.zeros((2, 2)), WHERE + r": projection 'il_cueCue', weight: size mismatch"),
    ],
    ids=["strings", "complex", "structured", "datetime", "wrong-length", "wrong-ndim"],
)
def test_load_refuses_arrays_of_wrong_dtype_or_shape(saved, value, msg):
    _rewrite_arrays(saved, lambda a: a.__setitem__(W, value))
    with pytest.raises(SpecError, match=msg):
        load(saved)


def test_load_refuses_non_integer_delays_naming_the_projection(saved):
    def change(a):
        a["proj.il_cueCue.delay"] = a["proj.il_cueCue.delay"] + 0.5

    _rewrite_arrays(saved, change)
    with pytest.raises(SpecError, match=WHERE + r": projection 'il_cueCue', delay: expected int"):
        load(saved)


def test_load_never_unpickles_object_arrays(saved, monkeypatch):
    import pickle

    _rewrite_arrays(saved, lambda a: a.__setitem__(W, np.array([1.0, None], dtype=object)))

    def no_unpickling(*a, **k):
        raise AssertionError("pickle.load was called")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    with pytest.raises(SpecError, match=r"array '" + W + r"': holds dtype object.*never unpickled"):
        load(saved)


def test_load_refuses_unreferenced_arrays(saved):
    _rewrite_arrays(saved, lambda a: a.__setitem__("junk", np.zeros(3)))
    with pytest.raises(
        SpecError, match=r"x/arrays\.npz: array 'junk' is not referenced by network\.json"
    ):
        load(saved)


def _zip_member(path, name, data):
    import zipfile

    with zipfile.ZipFile(path / "arrays.npz", "a") as zf:
        zf.writestr(name, data)


def test_load_refuses_npz_members_that_are_not_arrays(saved):
    _zip_member(saved, "readme.txt", b"hello")
    with pytest.raises(
        SpecError, match=r"x/arrays\.npz is corrupt: member 'readme.txt' is not an \.npy array"
    ):
        load(saved)


def test_load_refuses_a_header_that_claims_more_data_than_stored(saved):
    """A tiny member whose header declares 8 TB is refused before anything is allocated."""
    import io as _io

    _rewrite_arrays(saved, lambda a: a.pop(W))
    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    _zip_member(saved, W + ".npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(
        SpecError,
        match=r"array '" + W + r"': header declares shape \(1000000000000,\) of float64 "
        r"\(8000000000000 bytes\), but 64 bytes are stored",
    ):
        load(saved)


def test_load_refuses_an_npy_file_in_place_of_the_npz(saved):
    np.save(saved / "plain.npy", np.zeros(3))
    os.replace(saved / "plain.npy", saved / "arrays.npz")
    with pytest.raises(SpecError, match=r"x/arrays\.npz is corrupt: not an \.npz archive"):
        load(saved)


def _declare_sizes(data: bytes, sizes: dict[str, int]) -> bytes:
    """The zip archive ``data`` with the uncompressed sizes that the local and central
    headers of some members declare changed (``sizes``: member name -> size)."""
    out = bytearray(data)
    # signature, offsets of the 4-byte uncompressed size, the name length and the name
    for sig, size_at, name_len_at, name_at in ((b"PK\3\4", 22, 26, 30), (b"PK\1\2", 24, 28, 46)):
        i = out.find(sig)
        while i >= 0:
            n = int.from_bytes(out[i + name_len_at : i + name_len_at + 2], "little")
            name = out[i + name_at : i + name_at + n].decode()
            if name in sizes:
                out[i + size_at : i + size_at + 4] = sizes[name].to_bytes(4, "little")
            i = out.find(sig, i + 4)
    return bytes(out)


def _no_member_is_read(monkeypatch):
    import zipfile

    def no_reading(*a, **k):
        raise AssertionError("a member of arrays.npz was read")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_reading)


def test_load_refuses_an_npz_whose_headers_declare_more_than_the_budget(saved, monkeypatch):
    """Zip headers that declare 4 GiB for each of three arrays (12 GiB in all, more than the
    default budget of 8 GiB) are refused before any member is decompressed."""
    import zipfile

    path = saved / "arrays.npz"
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    crafted = {f"proj.il_cueCue.{k}.npy": 2**32 - 16 for k in ("weight", "pre", "post")}
    path.write_bytes(_declare_sizes(path.read_bytes(), crafted))
    assert path.stat().st_size < 2**20
    with zipfile.ZipFile(path) as zf:
        assert {i.filename: i.file_size for i in zf.infolist() if i.filename in crafted} == crafted
    _no_member_is_read(monkeypatch)
    with pytest.raises(
        SpecError,
        match=r"^load: .*x/arrays\.npz: decompressing the arrays up to member "
        r"'proj\.il_cueCue\.(weight|pre|post)\.npy' \(declared 4294967280 bytes\) would take "
        r"\d+\.\d GiB, more than the budget of 8\.0 GiB "
        r"\(neuromem\.spec\.limits\.set_limits\(max_state_bytes=\.\.\.\) raises it\)",
    ):
        load(saved)


def test_load_refuses_a_compressed_npz_over_the_budget(saved, monkeypatch):
    """A zip bomb: a projection's weights replaced by 32 MiB of zeros, stored by
    savez_compressed in a file of about 32 KiB, are refused under a 16 MiB budget before they
    are decompressed; the original arrays load under that budget."""
    with np.load(saved / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez_compressed(saved / "arrays.npz", **{**arrays, W: np.zeros(4 * 2**20)})
    assert (saved / "arrays.npz").stat().st_size < 2**20
    with limits(max_state_bytes=16 * 2**20):
        with monkeypatch.context() as m:
            _no_member_is_read(m)
            with pytest.raises(
                SpecError,
                match=r"x/arrays\.npz: decompressing the arrays up to member '"
                + W
                + r"\.npy' \(declared 33554560 bytes\) would take 3\d\.\d MiB, more than the "
                r"budget of 16\.0 MiB",
            ):
                load(saved)
        np.savez_compressed(saved / "arrays.npz", **arrays)
        assert load(saved).name == ca3_network().name


# ------------------------------------------------------------------ random edits
def spins_network() -> Network:
    from neuromem.spec import DenseCouplings, GlauberSpins, LowRankCouplings, OverlapProbe

    rng = np.random.default_rng(1)
    xi = np.where(rng.random((3, 12)) < 0.5, -1.0, 1.0)
    dense = xi.T @ xi / 12
    np.fill_diagonal(dense, 0.0)
    spins = (
        GlauberSpins("low", LowRankCouplings(xi, np.ones(3), 0.25), 2.0, xi[0], seed=3),
        GlauberSpins("dense", DenseCouplings(dense), math.inf, xi[1], "synchronous", "up"),
    )
    probes = (OverlapProbe("low", xi), OverlapProbe("dense", xi[:2]))
    return Network("spins", Discretization(dt=1.0), spins=spins, probes=probes)


def elm_network() -> Network:
    from neuromem.models.elm import ELMNode
    from neuromem.models.elm.core import init_parameters

    p = init_parameters(num_input=6, num_branch=2, num_synapse_per_branch=3, num_memory=2, seed=0)
    src = Population("inp", 6, spike_source())
    return Network("elm_net", Discretization(dt=1.0), (src,), operators=(ELMNode("elm", p, "inp"),))


def _paths(v, here=()):
    """Every (path, value) in a JSON document."""
    yield here, v
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, c in items:
        yield from _paths(c, (*here, k))


_WRONG = ["x", "", -1, 0, 2**70, 1.5, float("nan"), True, None, [], [1], {}, {"a": 1}]


@pytest.mark.parametrize("which", ["stimulus", "ca3", "spins", "elm"])
def test_random_edits_give_only_spec_errors(which):
    """Seeded random edits of every kind (replace a value by one of another JSON type, delete
    a key, add one) of every element: from_dict rebuilds the network or raises SpecError with
    the file and an element named, never another exception."""
    net = {**NETWORKS, "spins": spins_network, "elm": elm_network}[which]()
    doc, arrays = spec_io.to_dict(net)
    paths = [p for p, _ in _paths(doc) if p]
    rng = np.random.default_rng(42)
    refused = 0
    for _ in range(250):
        d = json.loads(json.dumps(doc))
        where = paths[rng.integers(len(paths))]
        parent = d
        for k in where[:-1]:
            parent = parent[k]
        r = rng.random()
        if r < 0.15 and isinstance(parent, dict):
            del parent[where[-1]]
        elif r < 0.25 and isinstance(parent, dict):
            parent["extra"] = 1
        else:
            parent[where[-1]] = _WRONG[rng.integers(len(_WRONG))]
        try:
            spec_io.from_dict(d, arrays, source="edited.json")
        except SpecError as exc:
            refused += 1
            assert str(exc).startswith("load: edited.json: "), (where, exc)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"edit at {where}: {type(exc).__name__}: {exc}") from exc
    assert refused > 150
