"""PyNN / SpiNNaker export: emitted script, live PyNN build on Brian2, refusals, sPyNNaker mapping.

Reference is neuromem's numba backend; with the settings of neuromem.hardware.pynn the
PyNN-Brian2 rasters are identical to it for these networks.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import neuromem
from neuromem.errors import SpecError
from neuromem.spec import (
    Discretization,
    GlauberSpins,
    LowRankCouplings,
    Network,
    Population,
    Projection,
    SpikeArray,
    SpikeProbe,
    StateProbe,
    all_to_all,
    hebbian,
    if_curr_exp,
    nir_lif,
    one_to_one,
    spike_source,
    stdp_pair,
)

pytest.importorskip("pyNN", reason="PyNN is not installed")
pytest.importorskip("brian2", reason="Brian2 is not installed")

from neuromem.hardware import pynn as hp  # noqa: E402

STEPS = 60


def _raster() -> np.ndarray:
    """Spikes of the 4 sources of the small test networks (bool (STEPS, 4))."""
    return np.random.default_rng(3).random((STEPS, 4)) < 0.25


def _populations(raster: np.ndarray) -> tuple[Population, Population, Population]:
    """The small test networks' populations: sources ``src`` playing ``raster``, and LIF
    ``a`` (3 neurons, per-neuron i_offset and v) and ``b`` (2 neurons)."""
    lif = if_curr_exp()
    base = dict(v_rest=-60.0, v_reset=-62.0, v_thresh=-57.0, tau_syn_E=0.3, tau_syn_I=2.0)
    a = Population(
        "a",
        3,
        lif,
        dict(base, cm=0.27, tau_m=3.0, tau_refrac=1.5, i_offset=np.array([0.0, 0.1, 0.3])),
        {"v": np.array([-60.0, -59.0, -61.0])},
    )
    b = Population("b", 2, lif, dict(base, cm=0.14, tau_m=0.5, tau_refrac=1.0), {"v": -60.0})
    src = Population("src", 4, spike_source(), stimulus=SpikeArray.from_raster(raster))
    return src, a, b


def _small_net() -> Network:
    """Sources -> two LIF populations: exc/inh, delays 1-3, refractory 2 steps, per-neuron
    parameters, and one additive STDP projection (same-step pairs potentiate)."""
    src, a, b = _populations(_raster())
    rule = stdp_pair("additive", scale_by_w_max=True, coincidence="potentiate")
    projs = [
        Projection("s_a", "src", "a", [0, 1, 2, 3, 3], [0, 1, 2, 0, 2], 6.0, [1, 2, 1, 3, 1]),
        Projection("s_b_inh", "src", "b", [2, 3], [0, 1], [3.0, 1.5], 2, "inh"),
        Projection(
            "a_b",
            "a",
            "b",
            *all_to_all(3, 2),
            0.0,
            1,
            plasticity=rule,
            plasticity_params=dict(
                tau_plus=0.2, tau_minus=0.55, A_plus=6.0, A_minus=6.0, w_min=0.0, w_max=6.0
            ),
        ),
        Projection("s_b", "src", "b", *one_to_one(2), 9.0, 1),
    ]
    pops = (src, a, b)
    return Network(
        "small",
        Discretization(dt=1.0),
        pops,
        tuple(projs),
        probes=tuple(SpikeProbe(p.name) for p in pops),
    )


def _numba(net: Network, steps: int, inputs=None) -> dict[str, np.ndarray]:
    return neuromem.compile(net, backend="numba").run(steps, inputs).spikes


def test_build_run_on_brian2_matches_numba():
    net = _small_net()
    ref = _numba(net, STEPS)
    ours = hp.run(net, STEPS, simulator="brian2")
    assert set(ours) == {"src", "a", "b"}
    assert ref["a"].sum() > 5 and ref["b"].sum() > 3  # the comparison has spikes to compare
    for k in ours:
        np.testing.assert_array_equal(ours[k], ref[k], err_msg=k)


def test_settings_are_needed_on_brian2(monkeypatch):
    """Without the delay offset the Brian2 rasters differ: the setting is not cosmetic."""
    net = _small_net()
    ref = _numba(net, STEPS)
    monkeypatch.setitem(hp.SETTINGS, "brian2", dict(hp.SETTINGS["brian2"], delay_offset_steps=0))
    ours = hp.run(net, STEPS, simulator="brian2")
    assert not np.array_equal(ours["a"], ref["a"])


def test_emitted_script_is_python_and_runs_on_brian2(tmp_path):
    net = _small_net()
    script = tmp_path / "small.py"
    text = hp.emit_script(net, script, STEPS, simulator="spiNNaker")
    compile(text, str(script), "exec")
    assert 'SIMULATOR = "spiNNaker"' in text.replace("'", '"')
    for needle in (
        "IF_curr_exp",
        "SpikeSourceArray",
        "FromListConnector",
        "STDPMechanism",
        "SpikePairRule",
        "AdditiveWeightDependence",
        "backprop_delay",
    ):
        assert needle in text, needle
    assert (tmp_path / "small.npz").is_file()
    # the same file runs on Brian2 (numpy code generation keeps the test fast)
    (tmp_path / "brian_preferences").write_text("codegen.target = 'numpy'\n")
    ours = hp.run_script(script, "brian2", timeout=300)
    ref = _numba(net, STEPS)
    for k in ("src", "a", "b"):
        np.testing.assert_array_equal(ours[k], ref[k], err_msg=k)


def test_spec_carries_pynn_meaning():
    net = _small_net()
    spec, arrays = hp.to_pynn_spec(net, STEPS)
    proj = {q["name"]: q for q in spec["projections"]}
    assert proj["s_b_inh"]["receptor"] == "inhibitory"
    conn = arrays["conn_s_a"]
    np.testing.assert_array_equal(conn[:, 3], [1, 2, 1, 3, 1])  # delays in steps
    stdp = proj["a_b"]["stdp"]
    # scale_by_w_max=True is PyNN's additive meaning: A passes unchanged
    assert (stdp["A_plus"], stdp["A_minus"], stdp["w_max"]) == (6.0, 6.0, 6.0)
    pops = {p["name"]: p for p in spec["populations"]}
    assert pops["a"]["refractory_steps"] == 2
    assert pops["a"]["params"]["i_offset"].startswith("@")  # per-neuron array in the .npz


def test_weight_factor_is_one_for_spinnaker_and_exact_for_brian2():
    s_sp, s_b2 = hp.SETTINGS["spiNNaker"], hp.SETTINGS["brian2"]
    assert hp._weight_factor(s_sp, 1.0, 0.27, 3.0, 0.3) == pytest.approx(1.0)
    # Brian2: v after one step from a jump k*w decaying with tau_syn == neuromem's held current
    dt, cm, tm, ts, w = 1.0, 0.27, 3.0, 0.3, 6.0
    k = float(hp._weight_factor(s_b2, dt, cm, tm, ts))
    held = w * ts / dt * (1 - np.exp(-dt / ts)) * tm / cm * (1 - np.exp(-dt / tm))
    t = np.linspace(0.0, dt, 200001)
    dv = np.trapezoid(k * w * np.exp(-t / ts) / cm * np.exp(-(dt - t) / tm), t)
    assert dv == pytest.approx(held, rel=1e-6)


def test_ca3_small_learn_recall_through_pynn():
    from neuromem.models.ca3_cam import build_network

    n, m, spacing = 4, 8, 14
    contents = [[0, 3], [1, 5, 6], [2, 7], [4]]
    ops = [("learn", c) for c in range(n)] + [("cue", c) for c in range(n)]
    ops += [("content", [3]), ("content", [5])]
    il = np.zeros((spacing * len(ops), n + m), dtype=bool)
    for k, (kind, x) in enumerate(ops):
        t0 = k * spacing
        if kind == "learn":
            il[t0 : t0 + 3, x] = True
            il[t0 : t0 + 3, [n + b for b in contents[x]]] = True
        elif kind == "cue":
            il[t0, x] = True
        else:
            il[t0, [n + b for b in x]] = True
    net = build_network(n, m)
    steps = il.shape[0]
    ref = _numba(net, steps, {"IL": il})
    ours = hp.run(net, steps, {"IL": il}, simulator="brian2")
    for k in ref:
        np.testing.assert_array_equal(ours[k], ref[k], err_msg=k)
    out = ours["OL"]
    for k, (kind, x) in enumerate(ops):
        w = out[k * spacing : (k + 1) * spacing]
        if kind == "cue":
            assert sorted(np.nonzero(w[:, n:].any(0))[0]) == sorted(contents[x])
        if kind == "content":
            cues = [c for c in range(n) if set(contents[c]) & set(x)]
            assert sorted(np.nonzero(w[:, :n].any(0))[0]) == cues


def _refusal_net() -> Network:
    lif = if_curr_exp()
    pops = (
        Population("src", 2, spike_source()),
        Population("lif", 2, lif),
        Population("nir", 2, nir_lif()),
    )
    projs = (
        Projection("far", "src", "lif", [0], [0], 1.0, 200),
        Projection("heb", "src", "lif", [1], [1], 1.0, 2, plasticity=hebbian()),
        Projection("to_nir", "src", "nir", [0], [0], 1.0, 1),
    )
    spins = (
        GlauberSpins("spins", LowRankCouplings(np.ones((1, 4), dtype=np.int64)), 1.0, np.ones(4)),
    )
    return Network(
        "bad",
        Discretization(dt=1.0, reset_mode="next_step"),
        pops,
        projs,
        probes=(SpikeProbe("lif"), StateProbe("lif", "v")),
        spins=spins,
    )


def test_unsupported_names_element_target_limit():
    probs = hp.unsupported(_refusal_net(), "spiNNaker")
    by = {p["element"]: p for p in probs}
    assert set(by) >= {
        "network 'bad'",
        "spin node 'spins'",
        "population 'nir'",
        "projection 'far'",
        "projection 'heb'",
        "probe on 'lif'",
    }
    for p in probs:
        assert set(p) == {"element", "target", "limit", "message"}
        assert p["target"] == "pyNN.spiNNaker"
        assert p["element"] in p["message"] and p["limit"] in p["message"]
    assert "144" in by["projection 'far'"]["limit"]
    assert "next_step" in by["network 'bad'"]["message"]
    with pytest.raises(SpecError, match="projection 'heb'.*pyNN.spiNNaker"):
        hp.emit_script(_refusal_net(), "/nonexistent/never_written.py", 10)


def test_target_specific_limits():
    from neuromem.models.ca3_cam import build_network

    net = build_network(2, 3)
    assert hp.unsupported(net, "spiNNaker") == []
    assert hp.unsupported(net, "brian2") == []
    nest = hp.unsupported(net, "nest")
    assert nest and all("delays >= 2 steps" in p["limit"] for p in nest)
    mult = Network(
        "m",
        Discretization(dt=1.0),
        (Population("s", 1, spike_source()), Population("x", 1, if_curr_exp())),
        (Projection("p", "s", "x", [0], [0], 0.5, 1, plasticity=stdp_pair("multiplicative")),),
    )
    assert [p["element"] for p in hp.unsupported(mult, "brian2")] == ["projection 'p'"]
    assert hp.unsupported(mult, "spiNNaker") == []


def test_differences_name_the_semantic_gaps():
    from neuromem.models.ca3_cam import build_network

    net = build_network(2, 3)
    d = hp.differences(net, "brian2")
    text = " ".join(x["difference"] for x in d)
    assert "v > v_thresh" in text and "pre pathway before" in text
    assert all(set(x) == {"element", "difference"} for x in d)
    sp = " ".join(x["difference"] for x in hp.differences(net, "spiNNaker"))
    assert "fixed point" in sp and "'potentiate'" in sp


@pytest.mark.slow
def test_ca3_exp2_replay_on_pynn_brian2():
    data = os.environ.get("NEUROMEM_DATA")
    if not data or not os.path.isdir(os.path.join(data, "ca3")):
        pytest.skip("NEUROMEM_DATA with the CA3 recordings is not available")
    from neuromem.models.ca3_hardware import replay_on_pynn

    r = replay_on_pynn("exp2_stress_testbench", "brian2", data)
    assert r["recall_operations"] == 45
    assert r["recall_operations_matching"] == 45
    assert r["recall_operations_matching_numba"] == 45
    assert all(r["population_raster_identical_to_numba"].values())


def test_spynnaker_virtual_board_mapping(tmp_path):
    pytest.importorskip("spynnaker", reason="sPyNNaker is not installed")
    from neuromem.hardware.spynnaker_reports import map_on_virtual_board
    from neuromem.models.ca3_cam import INTERNAL, build_network

    n, m = 4, 8
    net = build_network(n, m)
    il = np.zeros((40, n + m), dtype=bool)
    il[0:3, [0, n + 1, n + 5]] = True  # learn; sPyNNaker refuses an all-empty source
    il[20, 0] = True
    home = os.environ.get("HOME")
    r = map_on_virtual_board(net, 40, {"IL": il}, workdir=tmp_path)
    assert os.environ.get("HOME") == home  # the temporary HOME was the subprocess's only
    assert (tmp_path / "home" / ".spynnaker.cfg").is_file()
    assert set(r["populations"]) >= {"IL", "OL", *INTERNAL}
    for name in ("IL", "OL", *INTERNAL):
        assert r["populations"][name]["n_cores"] >= 1
        assert r["populations"][name]["n_chips"] >= 1
    assert r["cores_used"] >= 10
    # every population but OL sends spikes, so the routers hold entries for them
    assert r["routing"]["uncompressed"]["total"] >= 9


def _static_net_delays_ge_2() -> Network:
    raster = _raster()
    raster[0] = False  # pyNN.nest cannot send a source spike in step 0 (parrot neurons)
    src, a, b = _populations(raster)
    projs = (
        Projection("s_a", "src", "a", [0, 1, 2, 3, 3], [0, 1, 2, 0, 2], 6.0, [2, 2, 3, 3, 2]),
        Projection("s_b_inh", "src", "b", [2, 3], [0, 1], [3.0, 1.5], 2, "inh"),
        Projection("a_b", "a", "b", *all_to_all(3, 2), 4.0, 2),
        Projection("s_b", "src", "b", *one_to_one(2), 9.0, 2),
    )
    pops = (src, a, b)
    return Network(
        "static",
        Discretization(dt=1.0),
        pops,
        projs,
        probes=tuple(SpikeProbe(p.name) for p in pops),
    )


def test_nest_static_network_matches_numba():
    pytest.importorskip("nest", reason="NEST (nest-simulator) is not installed")
    net = _static_net_delays_ge_2()
    assert hp.unsupported(net, "nest") == []
    ref = _numba(net, STEPS)
    ours = hp.run(net, STEPS, simulator="nest")
    assert ref["a"].sum() > 5 and ref["b"].sum() > 3
    for k in ours:
        np.testing.assert_array_equal(ours[k], ref[k], err_msg=k)


def test_nest_refuses_step0_source_spike():
    net = _static_net_delays_ge_2()
    il = np.zeros((STEPS, 4), dtype=bool)
    il[0, 1] = True
    with pytest.raises(SpecError, match=r"population 'src': spike in step 0 \(target pyNN.nest"):
        hp.to_pynn_spec(net, STEPS, {"src": il}, target="nest")


def test_input_raster_of_wrong_shape_is_refused():
    """Run-time inputs follow Simulation.run: exactly (steps, size), else a named error."""
    net = _static_net_delays_ge_2()
    short = np.zeros((STEPS - 1, 4), dtype=bool)
    with pytest.raises(SpecError, match=r"input for population 'src' has shape \(\d+, 4\)"):
        hp.to_pynn_spec(net, STEPS, {"src": short}, target="nest")
