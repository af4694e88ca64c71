"""A Sparsey hierarchy as an operator kind: in a network its codes drive a LIF population,
numba and torch choose the same codes, any chunking gives the same run, and the network saves
and loads (the code output as a projection's pre included)."""

from __future__ import annotations

import numpy as np
import pytest

import neuromem
from neuromem.errors import SpecError
from neuromem.models.sparsey import Level, MacParams, SparseyNode, all_cells, grid_rf
from neuromem.spec import (
    Discretization,
    Network,
    Population,
    Projection,
    SpikeProbe,
    StateProbe,
    if_curr_exp,
    load,
    save,
    spike_source,
)

STEPS = 120


def _levels():
    p1 = MacParams(Q=6, K=4, pi_min=2)
    l2 = Level(MacParams(Q=5, K=5), all_cells(4 * p1.cells))
    rf = grid_rf((8, 8), (2, 2), (5, 5))
    l1 = Level(p1, rf, rf_h=all_cells(4 * p1.cells, 4), rf_d=all_cells(l2.cells, 4), shape=(2, 2))
    return l1, l2


def _net(**kw):
    levels = _levels()
    node = SparseyNode("memory", levels, 64, "pixels", seed=3, **kw)
    cells = levels[1].cells
    readout = Population("readout", cells, if_curr_exp(), params={"tau_refrac": 0.0})
    drive = Projection(
        "code_readout", "memory", "readout", np.arange(cells), np.arange(cells), 30.0, 1,
        pre_port="code1",
    )  # fmt: skip
    return Network(
        "sparsey_in_a_network",
        Discretization(dt=1.0),
        (Population("pixels", 64, spike_source()), readout),
        (drive,),
        probes=(
            SpikeProbe("readout"),
            StateProbe("memory", "code1"),
            StateProbe("memory", "familiarity0"),
        ),
        operators=(node,),
    )


def _in_chunks(sim, x, size):
    """The level-2 codes of a run of ``x`` cut into chunks of ``size`` steps."""
    parts = [
        sim.run(min(size, STEPS - t), {"pixels": x[t : t + size]}).state["memory.code1"]
        for t in range(0, STEPS, size)
    ]
    return np.concatenate(parts)


def _frames(seed=0):
    x = np.random.default_rng(seed).random((STEPS // 2, 64)) < 0.2
    return np.concatenate([x, x])  # the second half: familiar frames


def test_codes_drive_a_population_and_numba_equals_torch():
    net, x = _net(), _frames()
    runs = {
        b: neuromem.compile(net, backend=b).run(STEPS, {"pixels": x}) for b in ("numba", "torch")
    }
    a, b = runs["numba"], runs["torch"]
    assert np.array_equal(a.state["memory.code1"], b.state["memory.code1"])
    np.testing.assert_allclose(a.state["memory.familiarity0"], b.state["memory.familiarity0"])
    code = a.state["memory.code1"]
    assert code.shape == (STEPS, 25) and np.all(code.sum(axis=1) == 5)  # one cell per CM
    # a code spike of step t drives its read-out neuron in step t + 2 (the operator's output
    # enters the network one step later, then the projection's delay of 1 step)
    spikes = a.spikes["readout"]
    assert np.array_equal(spikes, b.spikes["readout"])
    assert np.all(spikes[2:] | ~code[:-2])
    assert not spikes[:, code.sum(axis=0) == 0].any()  # cells never in a code stay silent
    g = a.state["memory.familiarity0"]
    assert g[0].max() == 0.0 and 0.0 <= g.min() and g.max() <= 1.0  # nothing known at first


def test_a_run_does_not_depend_on_its_chunks():
    net, x = _net(), _frames()
    whole = neuromem.compile(net, backend="numba").run(STEPS, {"pixels": x})
    sim = neuromem.compile(net, backend="numba")
    assert np.array_equal(_in_chunks(sim, x, 7), whole.state["memory.code1"])
    sim.reset()  # back to no weights: the same run again
    again = sim.run(STEPS, {"pixels": x}).state["memory.code1"]
    assert np.array_equal(again, whole.state["memory.code1"])


def test_save_and_load_keep_the_hierarchy_and_the_code_projection(tmp_path):
    net, x = _net(sequence=False), _frames()
    save(net, tmp_path / "net")
    again = load(tmp_path / "net")
    node, back = net.operators[0], again.operators[0]
    assert back.to_fields()[0] == node.to_fields()[0]
    assert back.levels[0].params == node.levels[0].params
    for lv, lv_back in zip(node.levels, back.levels, strict=True):
        for k in ("rf_u", "rf_h", "rf_d"):
            assert np.array_equal(getattr(lv, k), getattr(lv_back, k))
    assert again.projections[0].pre_port == "code1"
    a = neuromem.compile(net, backend="numba").run(STEPS, {"pixels": x})
    b = neuromem.compile(again, backend="numba").run(STEPS, {"pixels": x})
    assert np.array_equal(a.state["memory.code1"], b.state["memory.code1"])


def test_the_learnt_model_is_reachable_and_recognition_only_learns_nothing():
    net, x = _net(), _frames()
    sim = neuromem.compile(net, backend="numba")
    sim.run(STEPS, {"pixels": x})
    assert sim.operator("memory").model.saturation(0).max() > 0
    with pytest.raises(SpecError, match="operators: memory"):
        sim.operator("nope")
    frozen = neuromem.compile(_net(learn=False), backend="numba")
    frozen.run(STEPS, {"pixels": x})
    assert not frozen.operator("memory").model.weights(0).any()


def test_bad_fields_are_refused_naming_the_node():
    l1, l2 = _levels()
    with pytest.raises(SpecError, match="operator 'memory'.*rf_u indexes"):
        SparseyNode("memory", (l1, l2), 10, "pixels")
    with pytest.raises(SpecError, match="operator 'memory'.*learn"):
        SparseyNode("memory", (l1, l2), 64, "pixels", learn=1)
    with pytest.raises(SpecError, match="levels must be"):
        SparseyNode("memory", ("level",), 64, "pixels")


def test_a_crafted_file_with_wrapping_indices_is_refused(tmp_path):
    """uint64 RF indices >= 2**63 would wrap to negative int64 indices (out-of-bounds reads in
    the kernels): load refuses them, naming the node."""
    net = _net()
    save(net, tmp_path / "net")
    npz = next(p for p in (tmp_path / "net").iterdir() if p.suffix == ".npz")
    with np.load(npz, allow_pickle=False) as z:
        arrays = dict(z)
    key = next(k for k in arrays if k.endswith("rf_u0"))
    arrays[key] = arrays[key].astype(np.uint64) + np.uint64(2**63)
    np.savez(npz, **arrays)
    with pytest.raises(SpecError, match="memory.*outside"):
        load(tmp_path / "net")


@pytest.mark.parametrize(
    "change, match",
    [
        ({"shape": 5}, "shape must be a list"),
        ({"shape": [-1, -1]}, "shape must be positive"),
        ({"params": {"Q": 2, "K": 3, "exponents": "abc"}}, "exponents"),
        ({"params": {"Q": 10**9, "K": 3}}, "budget|exceeds"),
        ({"params": {"Q": 2, "K": 3, "colour": 1}}, "colour"),
    ],
)
def test_bad_level_descriptions_are_refused_naming_the_node(change, match):
    node = _net().operators[0]
    scalars, arrays = node.to_fields()
    scalars["levels"][0] = scalars["levels"][0] | change
    with pytest.raises(SpecError, match=rf"operator 'memory'.*level 0.*({match})"):
        SparseyNode.from_fields("memory", node.inputs, scalars, arrays)


def test_chunks_on_the_batch_path_without_top_down_inputs():
    l1, l2 = _levels()
    l1 = Level(l1.params, l1.rf_u, rf_h=l1.rf_h, shape=l1.shape)  # no D: numba's batch path
    node = SparseyNode("memory", (l1, l2), 64, "pixels", seed=3)
    net = Network(
        "batch_path",
        Discretization(dt=1.0),
        (Population("pixels", 64, spike_source()),),
        (),
        probes=(StateProbe("memory", "code1"),),
        operators=(node,),
    )
    x = _frames()
    whole = neuromem.compile(net, backend="numba").run(STEPS, {"pixels": x})
    torch_run = neuromem.compile(net, backend="torch").run(STEPS, {"pixels": x})
    sim = neuromem.compile(net, backend="numba")
    assert np.array_equal(_in_chunks(sim, x, 13), whole.state["memory.code1"])
    assert np.array_equal(torch_run.state["memory.code1"], whole.state["memory.code1"])
