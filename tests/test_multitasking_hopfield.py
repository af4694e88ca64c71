"""The multitasking Hebbian network (models/multitasking_hopfield.py): small-N checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import neuromem
from neuromem.errors import SpecError
from neuromem.models.multitasking_hopfield import (
    MultitaskingHopfield,
    hierarchical_prediction,
    hierarchical_state,
    mean_field,
    stability_bound,
)
from neuromem.spec import diluted_patterns, noisy_examples

N = 4000


def _hopfield(k: int, d: float, seed: int, n: int = N) -> tuple[MultitaskingHopfield, np.ndarray]:
    xi = diluted_patterns(k, n, d, seed=seed)
    net = MultitaskingHopfield(n)
    net.store_patterns(xi)
    return net, xi


def test_closed_forms():
    np.testing.assert_allclose(hierarchical_prediction(0.5, 3), [0.5, 0.25, 0.125])
    assert stability_bound(3) == pytest.approx((math.sqrt(5) - 1) / 2, abs=1e-9)
    assert math.isnan(stability_bound(2))
    np.testing.assert_allclose(mean_field(0.6, 3), [0.4, 0.24, 0.144], atol=1e-12)
    np.testing.assert_allclose(mean_field(0.65, 3), [0.3286, 0.2489, 0.1693], atol=1e-4)


def test_hierarchical_state_is_the_cascade():
    xi = np.array([[1, 0, 0, -1], [-1, 1, 0, 1], [1, -1, 0, 0]], dtype=float)
    s = hierarchical_state(xi, seed=3)
    assert s[:2].tolist() == [1.0, 1.0] and s[3] == -1.0 and abs(s[2]) == 1
    assert hierarchical_state(xi, seed=3).tolist() == s.tolist()  # seeded


@pytest.mark.parametrize("d", [0.2, 0.5])
def test_hierarchical_state_is_retrieved(d):
    ms = []
    for seed in range(3):
        net, xi = _hopfield(3, d, seed)
        out = net.run(hierarchical_state(xi, seed=seed), math.inf, 100, seed=seed)
        assert out.stable
        ms.append(out.sorted_abs)
    # finite-N spread ~ (1 - d) / sqrt(N) ~ 0.013 per run at N = 4000
    np.testing.assert_allclose(np.mean(ms, axis=0), hierarchical_prediction(d, 3), atol=0.02)


def test_hierarchy_departs_beyond_the_stability_bound():
    net, xi = _hopfield(3, 0.65, 1)
    out = net.run(hierarchical_state(xi, seed=1), math.inf, 100, seed=1)
    assert out.sorted_abs[0] < 0.35 - 0.01  # the mean field says 0.329
    np.testing.assert_allclose(out.sorted_abs, mean_field(0.65, 3), atol=0.025)


def test_supervised_and_unsupervised_agree():
    r, m_ex, d = 0.6, 30, 0.4
    diffs = []
    for seed in range(2):
        xi = diluted_patterns(3, N, d, seed=seed)
        eta = noisy_examples(xi, m_ex, r, seed=100 + seed)
        res = []
        for protocol in ("supervised", "unsupervised"):
            net = MultitaskingHopfield(N)
            net.store_examples(eta, r, protocol, archetypes=xi)
            res.append(net.run(hierarchical_state(xi, seed=seed), math.inf, 100, seed=seed))
        diffs.append(res[0].sorted_abs - res[1].sorted_abs)
    assert np.max(np.abs(np.mean(diffs, axis=0))) < 0.01


@pytest.mark.parametrize("beta", [math.inf, 2.5])
def test_numba_and_torch_synchronous_trajectories_are_identical(beta):
    n = 300
    net, xi = _hopfield(3, 0.4, 7, n=n)
    init = hierarchical_state(xi, seed=7)
    init = np.where(np.random.default_rng(0).random(n) < 0.3, -init, init)
    spec = net.network(init, beta, "synchronous", "random", seed=5, rng="host", record_sigma=True)
    a = neuromem.compile(spec, backend="numba").run(15).state
    b = neuromem.compile(spec, backend="torch").run(15).state
    assert np.any(a["s.sigma"][-1] != init)
    np.testing.assert_array_equal(a["s.sigma"], b["s.sigma"])
    np.testing.assert_array_equal(a["s.m"], b["s.m"])


def test_torch_batch_runs_until_stable():
    net = MultitaskingHopfield(500, backend="torch", batch_size=2)
    xi = diluted_patterns(3, 500, 0.3, seed=2)
    net.store_patterns(xi)
    out = net.run(xi[0] + (xi[0] == 0), math.inf, 20, update="synchronous", seed=1)
    assert out.m.shape == (2, 3) and out.trajectory.shape[1:] == (2, 3)


def test_bad_inputs_are_refused():
    net, xi = _hopfield(3, 0.4, 0, n=200)
    eta = noisy_examples(xi, 5, 0.5, seed=1)
    with pytest.raises(SpecError, match="dataset quality r"):
        net.store_examples(eta, 1.5)
    with pytest.raises(SpecError, match="dataset quality r"):
        net.store_examples(eta, -0.1, "unsupervised")
    with pytest.raises(SpecError, match="examples must have shape"):
        net.store_examples(eta[0], 0.5)
    with pytest.raises(SpecError, match="examples must have shape"):
        net.store_examples(eta[:, :, :100], 0.5)
    with pytest.raises(SpecError, match="protocol"):
        net.store_examples(eta, 0.5, "teacher")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="patterns"):
        net.store_patterns(xi[:, :100])
    with pytest.raises(SpecError, match="patterns"):
        net.store_patterns(2 * xi)
    with pytest.raises(SpecError, match="initial state"):
        net.run(np.ones(199), math.inf, 5)
    with pytest.raises(SpecError, match="beta must be > 0"):
        net.run(np.ones(200), 0.0, 5)
    with pytest.raises(SpecError, match="beta must be > 0"):
        net.run(np.ones(200), -1.0, 5)
    with pytest.raises(SpecError, match="initial spins"):
        net.run(np.zeros(200), math.inf, 5)
    with pytest.raises(SpecError, match="sweeps"):
        net.run(np.ones(200), math.inf, 0)
    with pytest.raises(SpecError, match="dilution d"):
        hierarchical_prediction(1.5, 3)
    with pytest.raises(SpecError, match="number of neurons"):
        MultitaskingHopfield(1)
    with pytest.raises(SpecError, match="store patterns or examples"):
        MultitaskingHopfield(10).run(np.ones(10), math.inf, 5)
