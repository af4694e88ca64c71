"""The torch backend against the numba reference, plus what only torch has: batches, float32,
autograd and CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuromem
from neuromem.errors import SpecError
from neuromem.models.ca3_cam import CA3Memory
from neuromem.spec import (
    CurrentInput,
    Discretization,
    Network,
    PoissonSpikes,
    Population,
    Projection,
    SpikeProbe,
    StateProbe,
    fixed_probability,
    if_curr_exp,
    nir_lif,
    spike_source,
    stdp_pair,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ca3_protocol(mem: CA3Memory) -> tuple[np.ndarray, np.ndarray]:
    mem.learn(0, [0, 1, 8, 9])
    by_cue = mem.recall(cue=0)
    by_content = mem.recall(content=[0, 1])
    return by_cue, by_content


def test_ca3_rasters_identical_to_numba():
    results = {}
    for backend in ("numba", "torch"):
        mem = CA3Memory(4, 10, backend=backend)
        results[backend] = (_ca3_protocol(mem), mem.sim.probes.spikes, mem.sim.state)
    (cue_n, cont_n), spikes_n, state_n = results["numba"]
    (cue_t, cont_t), spikes_t, state_t = results["torch"]
    assert np.flatnonzero(cue_t).tolist() == [0, 1, 8, 9]
    assert np.flatnonzero(cont_t).tolist() == [0]
    assert np.array_equal(cue_n, cue_t) and np.array_equal(cont_n, cont_t)
    assert set(spikes_n) == set(spikes_t)
    for pop, raster in spikes_n.items():
        assert spikes_t[pop].shape == raster.shape
        assert np.array_equal(spikes_t[pop], raster), pop
    for name, w in state_n["weights"].items():
        np.testing.assert_array_equal(state_t["weights"][name], w, err_msg=name)
    for pop, variables in state_n.items():
        if pop != "weights":
            for var, x in variables.items():
                np.testing.assert_array_equal(state_t[pop][var], x, err_msg=f"{pop}.{var}")


def _random_network(n: int = 1000, n_in: int = 200, seed: int = 0) -> Network:
    """Recurrent IF_curr_exp network, STDP on the recurrent synapses (delays 1-5 steps)."""
    rng = np.random.default_rng(seed)
    pre_in, post_in = fixed_probability(n_in, n, 0.1, seed=seed + 1)
    pre_r, post_r = fixed_probability(n, n, 0.02, seed=seed + 2, allow_self=False)
    pops = (
        Population("inp", n_in, spike_source(), stimulus=PoissonSpikes(20.0, seed=seed + 3)),
        Population(
            "exc", n, if_curr_exp(), {"tau_refrac": 2.0}, {"v": rng.uniform(-65.0, -55.0, n)}
        ),
    )
    projs = (
        Projection(
            "in_exc",
            "inp",
            "exc",
            pre_in,
            post_in,
            rng.uniform(0.2, 0.6, pre_in.size),
            rng.integers(1, 4, pre_in.size),
        ),
        Projection(
            "rec",
            "exc",
            "exc",
            pre_r,
            post_r,
            rng.uniform(0.0, 0.2, pre_r.size),
            rng.integers(1, 6, pre_r.size),
            plasticity=stdp_pair(),
            plasticity_params=dict(A_plus=0.05, A_minus=0.06, w_max=0.6),
        ),
    )
    probes = (SpikeProbe("inp"), SpikeProbe("exc"), StateProbe("exc", "v", (0, 1, 2)))
    return Network("random_stdp", Discretization(dt=1.0), pops, projs, probes=probes)


def test_random_stdp_network_identical_to_numba():
    net = _random_network()
    steps = net.discretization.steps(1000.0)  # 1 s
    out = {}
    for backend in ("numba", "torch"):
        sim = neuromem.compile(net, backend=backend)
        out[backend] = (sim.run(steps), sim.state)
    (res_n, state_n), (res_t, state_t) = out["numba"], out["torch"]
    assert res_n.spikes["exc"].sum() > 1000  # the network is active
    for pop in ("inp", "exc"):
        assert np.array_equal(res_t.spikes[pop], res_n.spikes[pop]), pop
    np.testing.assert_allclose(res_t.state["exc.v"], res_n.state["exc.v"], rtol=0, atol=1e-12)
    w_n, w_t = state_n["weights"]["rec"], state_t["weights"]["rec"]
    assert not np.array_equal(w_n, net.projection("rec").weight)  # STDP changed the weights
    np.testing.assert_allclose(w_t, w_n, rtol=0, atol=1e-12)


def _feedforward(trainable_seed: int = 0) -> Network:
    rng = np.random.default_rng(trainable_seed)
    lif = if_curr_exp()
    params = {"tau_m": 10.0, "tau_refrac": 1.0}
    pre1, post1 = fixed_probability(20, 30, 0.5, seed=1)
    pre2, post2 = fixed_probability(30, 5, 0.8, seed=2)
    pops = (
        Population("inp", 20, spike_source()),
        Population("hid", 30, lif, params),
        Population("out", 5, lif, params),
    )
    projs = (
        Projection("w1", "inp", "hid", pre1, post1, rng.uniform(1.0, 4.0, pre1.size)),
        Projection("w2", "hid", "out", pre2, post2, rng.uniform(1.0, 4.0, pre2.size)),
    )
    return Network(
        "ff", Discretization(dt=1.0), pops, projs, probes=(SpikeProbe("hid"), SpikeProbe("out"))
    )


def test_surrogate_gradient_reaches_weights():
    sim = neuromem.compile(_feedforward(), backend="torch", trainable=True)
    assert isinstance(sim, torch.nn.Module)
    names = {n for n, _ in sim.named_parameters()}
    assert names == {"weights.w1", "weights.w2"}
    x = (torch.rand(100, 20, generator=torch.Generator().manual_seed(0)) < 0.2).double()
    out = sim({"inp": x})
    assert out["out"].shape == (100, 1, 5) and out["out"].requires_grad
    loss = out["out"].sum() + out["hid"].sum()
    assert loss.item() > 0
    loss.backward()
    for name in ("w1", "w2"):
        g = sim.weights[name].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    # the forward spikes are the simulation's spikes: run() gives the same raster
    sim.reset()
    res = sim.run(100, {"inp": x.numpy().astype(bool)})
    assert np.array_equal(res.spikes["out"], out["out"][:, 0].detach().numpy().astype(bool))


def test_gradient_through_inputs_and_float32():
    sim = neuromem.compile(_feedforward(), backend="torch", dtype=torch.float32)
    x = (torch.rand(60, 20, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    x.requires_grad_(True)
    out = sim({"inp": x})
    assert out["out"].dtype == torch.float32
    out["out"].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_float32_ca3_recalls():
    mem = CA3Memory(4, 10, backend="torch", dtype=torch.float32)
    by_cue, by_content = _ca3_protocol(mem)
    assert np.flatnonzero(by_cue).tolist() == [0, 1, 8, 9]
    assert np.flatnonzero(by_content).tolist() == [0]
    assert mem.sim.state["cueCue"]["v"].dtype == np.float64


def test_batch_elements_with_same_input_agree():
    net = _random_network(n=200, n_in=50, seed=5)
    single = neuromem.compile(net, backend="torch")
    batch = neuromem.compile(net, backend="torch", batch_size=3)
    r1, r3 = single.run(200), batch.run(200)
    assert r3.spikes["exc"].shape == (200, 3, 200)
    assert r3.state["exc.v"].shape == (200, 3, 3)
    for b in range(3):
        assert np.array_equal(r3.spikes["exc"][:, b], r1.spikes["exc"])
    assert batch.state["weights"]["rec"].shape == (3, net.projection("rec").weight.size)
    np.testing.assert_array_equal(batch.state["weights"]["rec"][2], single.state["weights"]["rec"])
    # forward: per-element inputs; elements 0 and 2 get the same spikes, element 1 none
    batch.reset()
    x = (torch.rand(100, 50, generator=torch.Generator().manual_seed(2)) < 0.1).double()
    inp = torch.stack([x, torch.zeros_like(x), x], dim=1)
    with torch.no_grad():
        out = batch({"inp": inp})["exc"]
    assert torch.equal(out[:, 0], out[:, 2])
    assert out[:, 0].sum() > out[:, 1].sum()


def test_run_in_chunks_and_reset_reproduce():
    net = _random_network(n=200, n_in=50, seed=7)
    sim = neuromem.compile(net, backend="torch")
    whole = sim.run(300).spikes["exc"]
    sim.reset()
    parts = np.concatenate([sim.run(100).spikes["exc"], sim.run(200).spikes["exc"]])
    assert np.array_equal(whole, parts)
    assert np.array_equal(sim.probes.spikes["exc"], whole)


def test_next_step_reset_identical_to_numba():
    base = _random_network(n=200, n_in=50, seed=9)
    net = Network(
        base.name,
        Discretization(dt=1.0, reset_mode="next_step"),
        base.populations,
        base.projections,
        probes=base.probes,
    )
    rasters = [neuromem.compile(net, backend=b).run(300).spikes["exc"] for b in ("numba", "torch")]
    assert rasters[0].sum() > 0 and np.array_equal(*rasters)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_cuda_matches_cpu():
    net = _random_network(n=200, n_in=50, seed=11)
    cpu = neuromem.compile(net, backend="torch").run(200).spikes["exc"]
    gpu = neuromem.compile(net, backend="torch", device="cuda").run(200).spikes["exc"]
    assert np.array_equal(cpu, gpu)


# ------------------------------------------------------------------ schedules and fast paths
def _layered_network(seed: int = 0) -> Network:
    """Feed-forward: source -> IF_curr_exp (refractory, delays 1-3, two projections into one
    port) -> NIR LIF; a state probe on the hidden layer."""
    rng = np.random.default_rng(seed)
    pre1, post1 = fixed_probability(40, 30, 0.5, seed=seed + 1)
    pre1b, post1b = fixed_probability(40, 30, 0.2, seed=seed + 2)
    pre2, post2 = fixed_probability(30, 6, 0.7, seed=seed + 3)
    pops = (
        Population("inp", 40, spike_source()),
        Population("hid", 30, if_curr_exp(), {"tau_m": 10.0, "tau_refrac": 2.0}),
        Population("out", 6, nir_lif(), {"tau": 8.0, "v_threshold": 0.5}),
    )
    projs = (
        Projection(
            "a",
            "inp",
            "hid",
            pre1,
            post1,
            rng.uniform(1, 5, pre1.size),
            rng.integers(1, 4, pre1.size),
        ),
        Projection("b", "inp", "hid", pre1b, post1b, rng.uniform(1, 5, pre1b.size), 2),
        Projection("c", "hid", "out", pre2, post2, rng.uniform(0.1, 0.4, pre2.size)),
    )
    probes = (SpikeProbe("hid"), SpikeProbe("out"), StateProbe("hid", "v", (0, 3)))
    return Network("layered", Discretization(dt=1.0), pops, projs, probes=probes)


def test_layered_schedule_equals_step_schedule_with_gradients():
    net = _layered_network()
    x = (torch.rand(120, 40, generator=torch.Generator().manual_seed(3)) < 0.15).double()
    res = {}
    for schedule in ("step", "layered"):
        sim = neuromem.compile(net, backend="torch", trainable=True, schedule=schedule)
        # two chunks without reset: the ring buffer carries events across forward calls
        outs = [sim({"inp": x[:70]}), sim({"inp": x[70:]})]
        spikes = {p: torch.cat([o[p] for o in outs]) for p in ("hid", "out")}
        (spikes["hid"].sum() + 3.0 * spikes["out"].sum()).backward()
        res[schedule] = (spikes, {k: w.grad.clone() for k, w in sim.weights.items()})
        if schedule == "layered":  # the fused backward was used for both populations
            assert set(sim._pop_bwd) == {"hid", "out"} and not sim.fused_obstacles
    (s_step, g_step), (s_lay, g_lay) = res["step"], res["layered"]
    assert s_step["out"].sum() > 10 and s_step["hid"].sum() > 100
    for p in ("hid", "out"):
        assert torch.equal(s_step[p], s_lay[p]), p
    for k in g_step:
        assert g_step[k].abs().sum() > 0, k
        torch.testing.assert_close(g_lay[k], g_step[k], rtol=1e-10, atol=1e-12)


def test_layered_run_matches_numba_and_chunks():
    net = _layered_network(seed=4)
    x = np.random.default_rng(5).random((200, 40)) < 0.15
    ref = neuromem.compile(net, backend="numba").run(200, {"inp": x})
    sim = neuromem.compile(net, backend="torch", schedule="layered")
    parts = [sim.run(80, {"inp": x[:80]}), sim.run(120, {"inp": x[80:]})]
    for p in ("hid", "out"):
        got = np.concatenate([r.spikes[p] for r in parts])
        assert got.sum() > 0 and np.array_equal(got, ref.spikes[p]), p
    v = np.concatenate([r.state["hid.v"] for r in parts])
    np.testing.assert_allclose(v, ref.state["hid.v"], rtol=0, atol=1e-10)


def test_layered_schedule_refuses_recurrent_and_plastic_networks():
    with pytest.raises(SpecError, match="cycle"):
        neuromem.compile(_recurrent_network(), backend="torch", schedule="layered")
    with pytest.raises(SpecError, match="plastic"):
        neuromem.compile(_random_network(n=50, n_in=10), backend="torch", schedule="layered")
    with pytest.raises(SpecError, match="schedule"):
        neuromem.compile(_layered_network(), backend="torch", schedule="fast")


def _recurrent_network(n: int = 300, seed: int = 0) -> Network:
    """Static recurrent IF_curr_exp network (excitatory and inhibitory ports, delays 1-4)."""
    rng = np.random.default_rng(seed)
    pre_in, post_in = fixed_probability(60, n, 0.1, seed=seed + 1)
    pre_e, post_e = fixed_probability(n, n, 0.05, seed=seed + 2, allow_self=False)
    pre_i, post_i = fixed_probability(n, n, 0.05, seed=seed + 3, allow_self=False)
    pops = (
        Population("inp", 60, spike_source(), stimulus=PoissonSpikes(30.0, seed=seed + 4)),
        Population(
            "exc", n, if_curr_exp(), {"tau_refrac": 2.0}, {"v": rng.uniform(-65.0, -52.0, n)}
        ),
    )
    projs = (
        Projection("inp_exc", "inp", "exc", pre_in, post_in, rng.uniform(0.5, 1.5, pre_in.size), 1),
        Projection(
            "e",
            "exc",
            "exc",
            pre_e,
            post_e,
            rng.uniform(0, 0.6, pre_e.size),
            rng.integers(1, 5, pre_e.size),
        ),
        Projection(
            "i", "exc", "exc", pre_i, post_i, rng.uniform(0, 0.4, pre_i.size), 2, port="inh"
        ),
    )
    probes = (SpikeProbe("exc"), StateProbe("exc", "v"), StateProbe("exc", "i_inh", (1, 2)))
    return Network("recurrent", Discretization(dt=0.5), pops, projs, probes=probes)


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_sparse_loop_bit_identical_to_numba_with_batches_and_chunks(engine):
    net = _recurrent_network()
    ref = neuromem.compile(net, backend="numba").run(400)
    sim = neuromem.compile(net, backend="torch", cpu_engine=engine)
    assert sim._sparse  # event-driven propagation, not the dense step path
    parts = [sim.run(150), sim.run(250)]
    spikes = np.concatenate([r.spikes["exc"] for r in parts])
    assert spikes.sum() > 500 and np.array_equal(spikes, ref.spikes["exc"])
    for key in ("exc.v", "exc.i_inh"):
        got = np.concatenate([r.state[key] for r in parts])
        np.testing.assert_array_equal(got, ref.state[key], err_msg=key)
    batch = neuromem.compile(net, backend="torch", batch_size=2, cpu_engine=engine).run(400)
    for b in range(2):
        assert np.array_equal(batch.spikes["exc"][:, b], ref.spikes["exc"])
        np.testing.assert_array_equal(batch.state["exc.v"][:, b], ref.state["exc.v"])


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_sparse_loop_float32_and_switching_to_autograd(engine):
    net = _recurrent_network(n=150, seed=2)
    sim = neuromem.compile(net, backend="torch", dtype=torch.float32, cpu_engine=engine)
    whole = sim.run(300).spikes["exc"]
    sim.reset()
    parts = np.concatenate([sim.run(100).spikes["exc"], sim.run(200).spikes["exc"]])
    assert whole.sum() > 0 and np.array_equal(whole, parts)
    ref = neuromem.compile(net, backend="numba").run(300).spikes["exc"]
    assert abs(int(whole.sum()) - int(ref.sum())) <= 0.05 * ref.sum()
    # run (sparse loop) then forward (autograd step path) then run: state carried through
    exact = neuromem.compile(net, backend="torch", trainable=True, cpu_engine=engine)
    first = exact.run(100).spikes["exc"]
    mid = exact(steps=100)["exc"]
    assert mid.requires_grad
    last = exact.run(100).spikes["exc"]
    got = np.concatenate([first, mid[:, 0].detach().numpy().astype(bool), last])
    ref_run = neuromem.compile(net, backend="numba").run(300).spikes["exc"]
    assert np.array_equal(got, ref_run)


def test_layered_next_step_reset_matches_numba_and_has_gradients():
    base = _layered_network(seed=6)
    net = Network(
        base.name,
        Discretization(dt=1.0, reset_mode="next_step"),
        base.populations,
        base.projections,
        probes=base.probes,
    )
    x = np.random.default_rng(7).random((150, 40)) < 0.2
    ref = neuromem.compile(net, backend="numba").run(150, {"inp": x})
    sim = neuromem.compile(net, backend="torch", schedule="layered", trainable=True)
    assert set(sim.fused_obstacles) == {"hid", "out"}  # next_step: per-step autograd graph
    got = sim.run(150, {"inp": x})
    assert ref.spikes["out"].sum() > 0
    for p in ("hid", "out"):
        assert np.array_equal(got.spikes[p], ref.spikes[p]), p
    sim.reset()
    out = sim({"inp": torch.as_tensor(x, dtype=torch.float64)})
    assert np.array_equal(out["out"][:, 0].detach().numpy().astype(bool), ref.spikes["out"])
    out["out"].sum().backward()
    assert sim.weights["c"].grad.abs().sum() > 0


def test_current_inputs_on_every_schedule_match_numba():
    base = _layered_network(seed=8)
    drive = np.random.default_rng(9).uniform(0.0, 2.0, (100, 30))
    net = Network(
        base.name,
        base.discretization,
        base.populations,
        base.projections,
        currents=(CurrentInput("hid", "i_ext", drive),),
        probes=base.probes,
    )
    x = np.random.default_rng(10).random((150, 40)) < 0.05
    extra = {"inp": x, "out.i_ext": np.full(6, 0.01)}
    ref = neuromem.compile(net, backend="numba").run(150, extra)
    assert ref.spikes["hid"][100:].sum() < ref.spikes["hid"][:100].sum()  # the drive acts
    for options in ({}, {"schedule": "layered"}, {"schedule": "step"}, {"cpu_engine": "torch"}):
        got = neuromem.compile(net, backend="torch", **options).run(150, extra)
        for p in ("hid", "out"):
            assert np.array_equal(got.spikes[p], ref.spikes[p]), (options, p)


# ------------------------------------------------------------------ events probes
@pytest.mark.parametrize(
    "which, options",
    [
        ("random", {}),
        ("random", {"batch_size": 3}),
        ("layered", {"schedule": "layered"}),
        ("layered", {"schedule": "step"}),
        ("layered", {"batch_size": 2, "schedule": "layered"}),
        ("recurrent", {}),
        ("recurrent", {"cpu_engine": "torch"}),
        ("recurrent", {"batch_size": 2}),
        ("recurrent_events_only", {}),
        ("recurrent_events_only", {"cpu_engine": "torch"}),
    ],
)
def test_events_probe_equals_raster_nonzero(which, options):
    """SpikeProbe(format="events") on torch: the nonzero entries of the raster (batches:
    (steps, batch, neuron) triples), over run calls and after a reset; with one batch element
    the same events as numba. "events_only": no raster probe on the population (the sparse
    numpy loop then records the spiking indices of each step, not a raster)."""
    base = {
        "random": lambda: _random_network(n=200, n_in=40),
        "layered": _layered_network,
        "recurrent": _recurrent_network,
        "recurrent_events_only": _recurrent_network,
    }[which]()
    pops = tuple(pb.population for pb in base.probes if isinstance(pb, SpikeProbe))
    events_only = which.endswith("events_only")
    kept = tuple(pb for pb in base.probes if not (events_only and isinstance(pb, SpikeProbe)))
    net = Network(
        base.name,
        base.discretization,
        base.populations,
        base.projections,
        probes=kept + tuple(SpikeProbe(p, format="events") for p in pops),
    )
    x = np.random.default_rng(4).random((400, 40)) < 0.05
    inputs = {"inp": x} if which == "layered" else {}
    ref = neuromem.compile(net, backend="numba")
    sim = neuromem.compile(net, backend="torch", **options)
    for s in (ref, sim):
        for lo, hi in ((0, 50), (50, 51), (51, 200)):
            res = s.run(hi - lo, {k: v[lo:hi] for k, v in inputs.items()})
            for p in pops if not events_only else ():
                nz = np.nonzero(res.spikes[p])
                assert all(np.array_equal(a, b) for a, b in zip(res.events[p], nz, strict=True))
    for p in pops:
        got = sim.probes.events[p]
        assert all(a.dtype == np.int64 for a in got)
        if not events_only:
            nz = np.nonzero(sim.probes.spikes[p])
            assert all(np.array_equal(a, b) for a, b in zip(got, nz, strict=True)), p
        else:
            assert sim.probes.spikes == {}
        if options.get("batch_size", 1) == 1:
            want = ref.probes.events[p]
            assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)), p
    assert sum(sim.probes.events[p][0].size for p in pops) > 20
    sim.reset()
    assert sim.probes.events == {} and sim.probes.n_steps == 0
