"""The Hopfield memory as an operator kind: a spiking population's activity is cleaned up by
a Hopfield memory inside one network, on numba and torch, in any chunking, saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest

import neuromem
from neuromem.models.hopfield import HopfieldMemory, HopfieldNode
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

N, P, STEPS = 64, 5, 300


def _patterns(seed=0):
    return np.sign(np.random.default_rng(seed).standard_normal((P, N)))


def _cue(patterns, k=2, flip=0.25, rate=0.4, seed=1):
    """Spikes of N cue neurons for STEPS steps: units of pattern k that are +1 fire at ``rate``
    per step, with a fraction ``flip`` of the units flipped (a corrupted cue)."""
    rng = np.random.default_rng(seed)
    x = patterns[k].copy()
    x[rng.random(N) < flip] *= -1
    return (rng.random((STEPS, N)) < rate) & (x > 0)


def _net(patterns, mode="modern", **kw):
    """A spike source relays the cue to N LIF neurons one-to-one; the memory reads the LIF
    neurons' spikes."""
    src = Population("cue", N, spike_source())
    lif = Population("relay", N, if_curr_exp(), params={"tau_refrac": 0.0})
    proj = Projection("cue_relay", "cue", "relay", np.arange(N), np.arange(N), 30.0, 1)
    mem = HopfieldNode("memory", {"probe": "relay"}, patterns=patterns, mode=mode, tau=20.0, **kw)
    return Network(
        "cleanup",
        Discretization(dt=1.0),
        (src, lif),
        (proj,),
        probes=(SpikeProbe("relay"), StateProbe("memory", "retrieved")),
        operators=(mem,),
    )


@pytest.mark.parametrize("mode, kw", [("modern", {"beta": 0.5}), ("classical", {})])
def test_memory_cleans_up_a_population_in_one_network(mode, kw):
    X = _patterns()
    net = _net(X, mode, **kw)
    cue = _cue(X)
    runs = {
        b: neuromem.compile(net, backend=b).run(STEPS, {"cue": cue}) for b in ("numba", "torch")
    }
    got = runs["numba"].state["memory.retrieved"]
    assert runs["numba"].spikes["relay"].sum() > 1000
    # after the rate estimate settles, the corrupted cue is cleaned up to pattern 2
    final = np.sign(got[-1])
    assert np.mean(final == X[2]) == 1.0
    assert np.mean(np.sign(runs["numba"].spikes["relay"][-50:].mean(0) - 0.1) == X[2]) < 0.9
    np.testing.assert_allclose(runs["torch"].state["memory.retrieved"], got, rtol=0, atol=1e-9)
    # the definition: HopfieldMemory on the centred rate estimate of the relay's spikes
    a = np.exp(-1.0 / 20.0)
    r, rates = np.zeros(N), []
    for s in runs["numba"].spikes["relay"]:
        r = a * r + (1 - a) * s
        rates.append(r)
    q = np.array(rates) - np.array(rates).mean(axis=1, keepdims=True)
    mem = HopfieldMemory(X, backend="numpy", dtype="float64")
    ref = mem.modern(q, kw["beta"]) if mode == "modern" else mem.classical(q)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_chunks_equal_one_run_and_reset_restores(backend):
    X = _patterns()
    net, cue = _net(X, beta=0.5), _cue(X)
    sim = neuromem.compile(net, backend=backend)
    whole = sim.run(STEPS, {"cue": cue}).state["memory.retrieved"]
    sim.reset()
    for t in range(0, STEPS, 37):
        sim.run(min(37, STEPS - t), {"cue": cue[t : t + 37]})
    np.testing.assert_array_equal(sim.probes.state["memory.retrieved"], whole)
    sim.reset()
    for t in range(40):  # chunk size 1
        sim.run(1, {"cue": cue[t : t + 1]})
    np.testing.assert_array_equal(sim.probes.state["memory.retrieved"], whole[:40])


def test_save_load_bit_exact(tmp_path):
    X = _patterns()
    net, cue = _net(X, "classical", steps=2), _cue(X)
    again = load(save(net, tmp_path / "net"))
    assert again.operators[0].patterns.tobytes() == X.tobytes()
    a = neuromem.compile(net, backend="numba").run(50, {"cue": cue[:50]})
    b = neuromem.compile(again, backend="numba").run(50, {"cue": cue[:50]})
    assert a.state["memory.retrieved"].tobytes() == b.state["memory.retrieved"].tobytes()


def test_patterns_are_torch_parameters_of_the_simulation():
    sim = neuromem.compile(_net(_patterns(), beta=0.5), backend="torch")
    assert any(n.endswith("patterns") for n, _ in sim.named_parameters())


def test_forward_trains_spiking_weights_and_memory_end_to_end():
    """One loss on the memory's output reaches both the stored patterns and, through the
    relay's surrogate gradients, the weights of the spiking projection."""
    import torch

    X = _patterns()
    sim = neuromem.compile(_net(X, beta=0.5), backend="torch", trainable=True)
    cue = torch.as_tensor(_cue(X)[:60], dtype=torch.float64)
    out = sim.forward({"cue": cue})
    assert out["memory.retrieved"].shape == (60, 1, N)
    ref = neuromem.compile(_net(X, beta=0.5), backend="torch").run(60, {"cue": _cue(X)[:60]})
    np.testing.assert_allclose(
        out["memory.retrieved"][:, 0].detach().numpy(), ref.state["memory.retrieved"], atol=1e-9
    )
    (out["memory.retrieved"] * torch.as_tensor(X[0])).sum().backward()
    grads = {n: p.grad for n, p in sim.named_parameters()}
    assert any(
        n.endswith("patterns") and g is not None and g.abs().sum() > 0 for n, g in grads.items()
    )
    weight_grads = [g for n, g in grads.items() if not n.endswith("patterns") and g is not None]
    assert weight_grads and any(g.abs().sum() > 0 for g in weight_grads), list(grads)
