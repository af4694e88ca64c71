"""Glauber spin nodes: validation, lowering choices, numba/torch agreement, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest

import neuromem
from neuromem.errors import CapabilityError, SpecError
from neuromem.lower import lower
from neuromem.spec import (
    DenseCouplings,
    Discretization,
    GlauberSpins,
    LowRankCouplings,
    Network,
    OverlapProbe,
    StateProbe,
    diluted_patterns,
    hebbian_couplings,
    load,
    noisy_examples,
    save,
    supervised_couplings,
    unsupervised_couplings,
)

N = 300


def _node(couplings=None, beta=math.inf, update="sequential", rng="host", tie="random", n=N):
    xi = diluted_patterns(3, n, 0.4, seed=1)
    init = np.where(np.random.default_rng(2).random(n) < 0.5, 1.0, -1.0)
    return GlauberSpins(
        "s", couplings or hebbian_couplings(xi), beta, init, update, tie, seed=5, rng=rng
    ), xi


def _net(node, xi, sigma=False):
    probes = (OverlapProbe("s", xi),) + ((StateProbe("s", "sigma"),) if sigma else ())
    return Network("spins", Discretization(dt=1.0), spins=(node,), probes=probes)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda xi, s: GlauberSpins("s", hebbian_couplings(xi), 0.0, s), "beta must be > 0"),
        (lambda xi, s: GlauberSpins("s", hebbian_couplings(xi), 1.0, s[:-1]), "size mismatch"),
        (lambda xi, s: GlauberSpins("s", hebbian_couplings(xi), 1.0, s * 0.5), r"\+1 or -1"),
        (lambda xi, s: GlauberSpins("s", hebbian_couplings(xi), 1.0, s, "parallel"), "update"),
        (lambda xi, s: DenseCouplings(np.eye(3)), "diagonal"),
        (lambda xi, s: LowRankCouplings(xi, np.ones(5)), "5 weights for 3 vectors"),
        (lambda xi, s: supervised_couplings(noisy_examples(xi, 4, 0.5, 0), 1.5), "quality r"),
        (lambda xi, s: unsupervised_couplings(xi, 0.5), "shape \\(K, M, N\\)"),
    ],
)
def test_bad_spin_inputs_are_refused(make, match):
    xi = diluted_patterns(3, N, 0.4, seed=1)
    with pytest.raises(SpecError, match=match):
        make(xi, np.ones(N))


def test_overlap_probe_size_and_brian2_capability():
    node, xi = _node()
    with pytest.raises(SpecError, match="overlap probe on 's': size mismatch"):
        Network("x", Discretization(1.0), spins=(node,), probes=(OverlapProbe("s", xi[:, :10]),))
    with pytest.raises(CapabilityError, match="'spins' \\(supported by: numba, torch\\)"):
        neuromem.compile(_net(node, xi), backend="brian2")


def test_lowering_picks_the_field():
    node, xi = _node()
    assert lower(_net(node, xi)).spins["s"].field == "low_rank_int"
    ex = noisy_examples(xi, 5, 0.6, seed=3)
    sup = GlauberSpins("s", supervised_couplings(ex, 0.6), 1.0, node.initial)
    assert lower(_net(sup, xi)).spins["s"].field == "low_rank_int"
    odd = GlauberSpins("s", LowRankCouplings(xi * 0.3), 1.0, node.initial)
    assert lower(_net(odd, xi)).spins["s"].field == "low_rank"  # not integer-valued
    wide = GlauberSpins("s", hebbian_couplings(diluted_patterns(100, N, 0.4, 1)), 1.0, node.initial)
    assert lower(_net(wide, xi)).spins["s"].field == "dense"  # rank > N / 4


@pytest.mark.parametrize("update", ["sequential", "synchronous"])
@pytest.mark.parametrize("beta", [math.inf, 3.0])
def test_numba_and_torch_trajectories_agree_with_host_rng(update, beta):
    node, xi = _node(beta=beta, update=update)
    net = _net(node, xi, sigma=True)
    a = neuromem.compile(net, backend="numba").run(6).state
    b = neuromem.compile(net, backend="torch").run(6).state
    np.testing.assert_array_equal(a["s.sigma"], b["s.sigma"])
    np.testing.assert_array_equal(a["s.m"], b["s.m"])


@pytest.mark.parametrize("field", ["low_rank", "dense"])
def test_float_and_dense_fields_agree_between_backends(field):
    xi = diluted_patterns(3, N, 0.4, seed=1)
    c = (
        LowRankCouplings(xi * 0.5)
        if field == "low_rank"
        else DenseCouplings(hebbian_couplings(xi).dense())
    )
    node, _ = _node(couplings=c, beta=4.0, update="synchronous")
    net = _net(node, xi, sigma=True)
    assert lower(net).spins["s"].field == field
    a = neuromem.compile(net, backend="numba").run(5).state["s.sigma"]
    b = neuromem.compile(net, backend="torch").run(5).state["s.sigma"]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rng", ["host", "backend"])
def test_chunked_runs_equal_one_run_and_reset(rng):
    node, xi = _node(beta=2.0, rng=rng)
    net = _net(node, xi)
    sim = neuromem.compile(net, backend="numba")
    whole = sim.run(8).state["s.m"]
    sim.reset()
    parts = np.concatenate([sim.run(3).state["s.m"], sim.run(5).state["s.m"]])
    np.testing.assert_array_equal(whole, parts)


def test_zero_noise_from_a_pattern_is_a_fixed_point_at_low_load():
    n = 2000
    xi = diluted_patterns(2, n, 0.0, seed=3)  # undiluted: the Hopfield model
    node = GlauberSpins("s", hebbian_couplings(xi), math.inf, xi[0], seed=1, rng="backend")
    m = neuromem.compile(_net(node, xi), backend="numba").run(3).state["s.m"]
    assert m[-1, 0] == 1.0 and abs(m[-1, 1]) < 0.1


def test_save_load_round_trip_with_spins(tmp_path):
    node, xi = _node(beta=math.inf)
    net = _net(node, xi, sigma=True)
    loaded = load(save(net, tmp_path / "net"))
    sp = loaded.spins[0]
    assert sp.beta == math.inf and sp.tie == node.tie and sp.seed == node.seed
    np.testing.assert_array_equal(sp.couplings.vectors, node.couplings.vectors)
    a = neuromem.compile(net, backend="numba").run(4).state
    b = neuromem.compile(loaded, backend="numba").run(4).state
    np.testing.assert_array_equal(a["s.sigma"], b["s.sigma"])
