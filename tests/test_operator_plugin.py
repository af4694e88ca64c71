"""The operator protocol is open: a kind defined entirely in this file (a leaky integrator of
its input's spikes that fires when its trace crosses a threshold, driving a projection onto a
LIF population) runs on numba and torch with identical spikes, saves and loads, and is refused
by a backend without an implementation -- with no edit of any library file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

import neuromem
from neuromem.backends.operators import register_implementation
from neuromem.errors import CapabilityError, SpecError
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
from neuromem.spec.operators import OperatorNode, Port, register_operator


@register_operator
@dataclass(frozen=True)
class LeakyTrigger(OperatorNode):
    """Per unit: ``x_t = exp(-dt / tau) x_{t-1} + w * s_t``; ``fire_t = x_t >= theta``, and a
    unit that fires is reset, ``x_t = 0``. Inputs ``spikes`` (spikes of ``n`` units); outputs
    ``fire`` (spikes) and ``trace`` (real, ``x_t`` before the reset)."""

    kind = "test_leaky_trigger"
    trainable = frozenset({"w"})

    w: np.ndarray = None  # type: ignore[assignment]
    tau: float = 5.0
    theta: float = 1.0

    def validate(self) -> None:
        if not isinstance(self.w, np.ndarray) or self.w.ndim != 1:
            raise SpecError(f"{self.where}: w must be a 1-d array")
        if not self.tau > 0:
            raise SpecError(f"{self.where}: tau must be > 0 ms")

    def input_ports(self) -> dict[str, Port]:
        return {"spikes": Port(self.w.size, "spikes")}

    def output_ports(self) -> dict[str, Port]:
        return {"fire": Port(self.w.size, "spikes"), "trace": Port(self.w.size)}


@register_implementation("test_leaky_trigger", "numba")
class LeakyNumpy:
    def __init__(self, node, sim):
        self.node, self.a = node, math.exp(-sim.program.dt / node.tau)
        self.reset()

    def reset(self):
        self.x = np.zeros(self.node.w.size)

    def run(self, inputs):
        s = np.asarray(inputs["spikes"], dtype=np.float64)
        fire, trace = np.zeros(s.shape, bool), np.zeros(s.shape)
        for t in range(s.shape[0]):
            self.x = self.a * self.x + self.node.w * s[t]
            trace[t] = self.x
            fire[t] = self.x >= self.node.theta
            self.x = np.where(fire[t], 0.0, self.x)
        return {"fire": fire, "trace": trace}


@register_implementation("test_leaky_trigger", "torch")
def leaky_torch(node, sim):
    import torch

    class LeakyTorch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.as_tensor(node.w, dtype=sim.dtype))
            self.a = math.exp(-sim.program.dt / node.tau)
            self.reset()

        def reset(self):
            self.x = None

        def run(self, inputs):
            s = torch.as_tensor(inputs["spikes"]).to(self.w)
            x = torch.zeros_like(s[0]) if self.x is None else self.x
            fire, trace = [], []
            for t in range(s.shape[0]):
                x = self.a * x + self.w * s[t]
                trace.append(x)
                f = x >= node.theta
                fire.append(f)
                x = torch.where(f, torch.zeros_like(x), x)
            self.x = x.detach()
            empty = torch.zeros_like(s)
            return {
                "fire": torch.stack(fire) if fire else empty.bool(),
                "trace": torch.stack(trace) if trace else empty,
            }

    return LeakyTorch()


def _net(steps=200, seed=0):
    rng = np.random.default_rng(seed)
    src = Population("src", 8, spike_source())
    lif = Population("lif", 4, if_curr_exp(), params={"tau_refrac": 0.0})
    trig = LeakyTrigger("trig", {"spikes": "src"}, w=rng.uniform(0.2, 0.6, 8), tau=4.0)
    pre, post = np.repeat(np.arange(8), 4), np.tile(np.arange(4), 8)
    proj = Projection("trig_lif", "trig", "lif", pre, post, rng.uniform(1.0, 3.0, 32), 2)
    net = Network(
        "toy",
        Discretization(dt=0.5),
        (src, lif),
        (proj,),
        probes=(SpikeProbe("lif"), StateProbe("trig", "trace"), StateProbe("trig", "fire")),
        operators=(trig,),
    )
    raster = rng.random((steps, 8)) < 0.3
    return net, raster


def _reference_fire(net, raster):
    """The operator's spikes straight from its definition."""
    eng = LeakyNumpy(net.operators[0], neuromem.compile(net, backend="numba"))
    return eng.run({"spikes": raster})["fire"]


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_toy_operator_drives_a_lif_population(backend):
    net, raster = _net()
    out = neuromem.compile(net, backend=backend).run(200, {"src": raster})
    fire = _reference_fire(net, raster)
    assert fire.sum() > 20 and out.spikes["lif"].sum() > 5
    assert np.array_equal(out.state["trig.fire"], fire)
    # the operator's spikes of step t enter the network in step t + 1, then travel 2 steps
    src_lif = neuromem.compile(_direct(net), backend="numba")
    direct = src_lif.run(200, {"trig_src": np.r_[np.zeros((1, 8), bool), fire[:-1]]})
    assert np.array_equal(out.spikes["lif"], direct.spikes["lif"])


def _direct(net):
    """The same network with the operator's spikes given as a spike source."""
    proj = net.projections[0]
    src = Population("trig_src", 8, spike_source())
    direct = Projection(
        "p", "trig_src", "lif", proj.pre_index, proj.post_index, proj.weight, proj.delay
    )
    return Network(
        "direct",
        net.discretization,
        (src, net.populations[1]),
        (direct,),
        probes=(SpikeProbe("lif"),),
    )


def test_numba_and_torch_agree_and_chunks_equal_one_run():
    net, raster = _net()
    runs = {}
    for backend in ("numba", "torch"):
        whole = neuromem.compile(net, backend=backend).run(200, {"src": raster})
        sim = neuromem.compile(net, backend=backend)
        for t in range(200):  # chunk size 1
            sim.run(1, {"src": raster[t : t + 1]})
        assert np.array_equal(sim.probes.spikes["lif"], whole.spikes["lif"])
        np.testing.assert_array_equal(sim.probes.state["trig.trace"], whole.state["trig.trace"])
        runs[backend] = whole
    assert np.array_equal(runs["numba"].spikes["lif"], runs["torch"].spikes["lif"])
    np.testing.assert_allclose(
        runs["numba"].state["trig.trace"], runs["torch"].state["trig.trace"], rtol=0, atol=1e-12
    )


def test_reset_restores_the_operator_state():
    net, raster = _net()
    sim = neuromem.compile(net, backend="numba")
    a = sim.run(200, {"src": raster})
    sim.reset()
    b = sim.run(200, {"src": raster})
    assert np.array_equal(a.spikes["lif"], b.spikes["lif"])


def test_save_load_is_generic_and_bit_exact(tmp_path):
    net, raster = _net()
    loaded = load(save(net, tmp_path / "toy"))
    op, again = net.operators[0], loaded.operators[0]
    assert type(again) is LeakyTrigger and (again.tau, again.inputs) == (op.tau, op.inputs)
    assert again.w.tobytes() == op.w.tobytes()
    a = neuromem.compile(net, backend="numba").run(200, {"src": raster})
    b = neuromem.compile(loaded, backend="numba").run(200, {"src": raster})
    assert np.array_equal(a.spikes["lif"], b.spikes["lif"])
    doc = json.loads((tmp_path / "toy" / "network.json").read_text())
    doc["operators"][0]["kind"] = "never_registered"
    (tmp_path / "toy" / "network.json").write_text(json.dumps(doc))
    with pytest.raises(
        SpecError,
        match=r"operator kind 'never_registered' is not registered.*"
        r"registered by module 'tests.test_operator_plugin|test_operator_plugin'",
    ):
        load(tmp_path / "toy")


def test_backend_without_an_implementation_is_refused_naming_the_kind():
    net, _ = _net()
    with pytest.raises(
        CapabilityError,
        match=r"'operator:test_leaky_trigger' \(supported by: numba, torch\)",
    ):
        neuromem.compile(net, backend="brian2")


def test_torch_parameters_include_the_operators():
    net, raster = _net()
    sim = neuromem.compile(net, backend="torch", trainable=True)
    names = [n for n, _ in sim.named_parameters()]
    assert any(n.endswith("w") and "trig" in n for n in names), names


def test_wiring_errors_name_the_operator():
    net, _ = _net()
    trig = net.operators[0]
    with pytest.raises(
        SpecError,
        match=r"operator 'trig' \(kind 'test_leaky_trigger'\): input "
        r"port 'spikes' reads 'nowhere', which is not a population or operator",
    ):
        Network(
            "x",
            net.discretization,
            net.populations,
            (),
            operators=(LeakyTrigger("trig", {"spikes": "nowhere"}, w=trig.w),),
        )
    with pytest.raises(
        SpecError,
        match=r"size mismatch: input port 'spikes' has 8 values, "
        r"population 'lif' has 4",
    ):
        Network(
            "x",
            net.discretization,
            net.populations,
            (),
            operators=(LeakyTrigger("trig", {"spikes": "lif"}, w=trig.w),),
        )
    with pytest.raises(
        SpecError,
        match=r"projection 'p': pre operator 'trig' has no spike output"
        r" port 'trace'|pre 'trig.trace' is not a spike output",
    ):
        Network(
            "x",
            net.discretization,
            net.populations,
            (Projection("p", "trig", "lif", [0], [0], 1.0, pre_port="trace"),),
            operators=(trig,),
        )


def test_load_imports_only_neuromem_model_modules(tmp_path, monkeypatch):
    """The module named in a file is imported only when it is one of neuromem's models."""
    import importlib

    net, _ = _net()
    save(net, tmp_path / "toy")
    doc = json.loads((tmp_path / "toy" / "network.json").read_text())
    imported = []
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda m, *a: imported.append(m) or real(m))
    for module in ("os", "antigravity", "neuromem.models..x", "neuromem.models.x; import os"):
        doc["operators"][0].update(kind="never_registered", module=module)
        (tmp_path / "toy" / "network.json").write_text(json.dumps(doc))
        with pytest.raises(SpecError, match=r"operator kind 'never_registered' is not registered"):
            load(tmp_path / "toy")
    assert imported == []


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_real_output_drives_a_population_input_one_step_later(backend):
    """``drives={"trace": "lif.i_ext"}``: the operator's trace of step t is the LIF neurons'
    external current in step t + 1, the same as giving that current as a run input."""
    net, raster = _net()
    rng = np.random.default_rng(3)
    trig = LeakyTrigger(
        "trig", {"spikes": "src"}, {"trace": "lif2.i_ext"}, w=rng.uniform(2.0, 4.0, 4), theta=1e9
    )
    src = Population("src", 4, spike_source())
    lif = Population("lif2", 4, if_curr_exp(), params={"tau_refrac": 0.0})
    driven = Network(
        "drv",
        Discretization(dt=0.5),
        (src, lif),
        probes=(SpikeProbe("lif2"), StateProbe("trig", "trace")),
        operators=(trig,),
    )
    r = raster[:, :4]
    out = neuromem.compile(driven, backend=backend).run(200, {"src": r})
    trace = out.state["trig.trace"]
    given = Network("given", driven.discretization, (src, lif), probes=(SpikeProbe("lif2"),))
    ref = neuromem.compile(given, backend="numba").run(
        200, {"src": r, "lif2.i_ext": np.r_[np.zeros((1, 4)), trace[:-1]] * 1.0}
    )
    assert ref.spikes["lif2"].sum() > 5
    assert np.array_equal(out.spikes["lif2"], ref.spikes["lif2"])
    sim = neuromem.compile(driven, backend=backend)
    for t in range(0, 200, 7):  # chunks carry the last output across
        sim.run(min(7, 200 - t), {"src": r[t : t + 7]})
    assert np.array_equal(sim.probes.spikes["lif2"], out.spikes["lif2"])


def test_torch_forward_feeds_operator_spikes_and_currents_like_run():
    import torch

    net, raster = _net()
    run = neuromem.compile(net, backend="torch").run(200, {"src": raster})
    fwd = neuromem.compile(net, backend="torch").forward({"src": torch.as_tensor(raster)})
    assert np.array_equal(fwd["lif"][:, 0].numpy() > 0, run.spikes["lif"])
    np.testing.assert_array_equal(fwd["trig.trace"][:, 0].detach().numpy(), run.state["trig.trace"])
