"""ELM operator node in a spec network: same outputs as the standalone ELM, across run chunks,
on numba and torch; validation; brian2 refuses it."""

from __future__ import annotations

import os

import numpy as np
import pytest

import neuromem
from neuromem.errors import CapabilityError, SpecError
from neuromem.models.elm import ELMNode
from neuromem.models.elm.core import (
    elm_forward_numba,
    init_parameters,
    load_authors_model,
    load_golden,
)
from neuromem.spec import (
    Discretization,
    Network,
    Population,
    SpikeArray,
    StateProbe,
    load,
    save,
    spike_source,
)


def _net(params, raster, name="elm"):
    src = Population(
        "inp", params.num_input, spike_source(), stimulus=SpikeArray.from_raster(raster)
    )
    node = ELMNode(name, params, "inp")
    return Network(
        "elm_net",
        Discretization(dt=1.0),
        (src,),
        operators=(node,),
        probes=(StateProbe(name, "y"),),
    )


def _small(seed=0):
    return init_parameters(
        num_input=40, num_branch=4, num_synapse_per_branch=10, num_memory=5, seed=seed
    )


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_node_equals_standalone_elm_across_chunks(backend):
    p = _small()
    raster = np.random.default_rng(1).random((120, p.num_input)) < 0.1
    expected = elm_forward_numba(p, raster.astype(float))
    sim = neuromem.compile(_net(p, raster), backend=backend)
    y = np.concatenate([sim.run(50).state["elm.y"], sim.run(70).state["elm.y"]])
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    sim.reset()
    np.testing.assert_allclose(sim.run(120).state["elm.y"], y, rtol=0, atol=1e-12)


@pytest.mark.skipif(not os.environ.get("NEUROMEM_DATA"), reason="NEUROMEM_DATA is not set")
def test_node_reproduces_the_authors_golden_output():
    p = load_authors_model("num_memory_20")
    x, y_golden = load_golden("num_memory_20")
    sim = neuromem.compile(_net(p, x[0] > 0), backend="numba")
    y = sim.run(x.shape[1]).state["elm.y"]
    assert np.abs(y - y_golden[0]).max() <= 1e-4 * np.abs(y_golden[0]).max()


def test_node_validation_and_capabilities():
    p = _small()
    raster = np.zeros((5, p.num_input), bool)
    with pytest.raises(
        SpecError,
        match="operator 'elm' \\(kind 'elm'\\): size mismatch: input port 'spikes' has 40 values, "
        "population 'inp' has 39",
    ):
        src = Population("inp", 39, spike_source())
        Network("x", Discretization(1.0), (src,), operators=(ELMNode("elm", p, "inp"),))
    with pytest.raises(
        SpecError, match="input port 'spikes' reads 'nope', which is not a population"
    ):
        Network("x", Discretization(1.0), operators=(ELMNode("elm", p, "nope"),))
    with pytest.raises(SpecError, match="params must be neuromem.models.elm.ELMParameters"):
        ELMNode("elm", {"d_m": 3}, "inp")
    net = _net(p, raster)
    with pytest.raises(CapabilityError, match="'operator:elm' \\(supported by: numba, torch\\)"):
        neuromem.compile(net, backend="brian2")


def test_network_with_elm_node_saves_and_loads_bit_exactly(tmp_path):
    p = _small(seed=3)
    raster = np.random.default_rng(2).random((60, p.num_input)) < 0.1
    net = _net(p, raster)
    loaded = load(save(net, tmp_path / "x"))
    q = loaded.operators[0].params
    for name in ("routing_index", "routing_mask", "w_s", "tau_s", "tau_m", "mlp_w0", "w_y"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))
    assert (q.activation, q.lambda_value, q.dt) == (p.activation, p.lambda_value, p.dt)
    a = neuromem.compile(net, backend="numba").run(60).state["elm.y"]
    b = neuromem.compile(loaded, backend="numba").run(60).state["elm.y"]
    np.testing.assert_array_equal(a, b)
