"""Sparsey's Code Selection Algorithm: familiarity-contingent noise really there, the stored
code reinstated, uniform codes for novel inputs, similar inputs -> similar codes, critical
periods, and numpy = numba = torch codes on a two-level hierarchy with H and D inputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats

from neuromem.errors import SpecError
from neuromem.models.sparsey import (
    Level,
    MacParams,
    Sparsey,
    all_cells,
    expansivity,
    grid_rf,
    selection_probabilities,
)
from neuromem.models.sparsey.csa import draw_winners, selection_weights

V_ROW = np.array([0.9, 0.5, 0.3, 0.1, 0.05])  # the facts file's demonstration CM


def _one_mac(n_inputs=200, **kw) -> Level:
    return Level(MacParams(**({"Q": 10, "K": 5} | kw)), all_cells(n_inputs))


def _random_items(n, n_inputs=200, active=20, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, n_inputs), np.uint8)
    for row in x:
        row[rng.choice(n_inputs, active, replace=False)] = 1
    return x


def test_rho_depends_on_familiarity_continuously_between_g_minus_and_1():
    p = MacParams(Q=1, K=5, g_minus=0.2, gamma=2.0, chi=100.0, gain=28.0, inflection=0.5)
    G = np.linspace(0.0, 1.0, 2001)
    rho = np.array([selection_probabilities(V_ROW[None], g, p)[0, 0] for g in G])
    below, above = rho[G <= p.g_minus], rho[G > p.g_minus]
    assert np.all(below == pytest.approx(1 / 5, abs=1e-15))  # uniform up to G-
    assert np.all(np.diff(above) > 0)  # sharper with every step of familiarity
    assert np.abs(np.diff(rho)).max() < 5e-3  # continuous: no jump anywhere on a 5e-4 grid
    assert rho[-1] > 0.3 and rho[-1] - rho[G > p.g_minus][0] > 0.1  # a real range, not flat
    # the sparseypy form (eta * sigma, eta cancelling in the normalisation) fails this test:
    # it jumps from uniform straight to its G = 1 value just above G-
    sigma = 1 / (1 + np.exp(-28.0 * (V_ROW - 0.5)))
    bug = [(sigma / sigma.sum())[0] if g > p.g_minus else 0.2 for g in G]
    assert np.abs(np.diff(bug)).max() > 0.1


def test_expansivity_is_one_at_and_below_g_minus_and_grows_to_1_plus_chi_k():
    p = MacParams(Q=4, K=8, g_minus=0.1, gamma=2.0, chi=100.0)
    assert expansivity(0.05, p.g_minus, p.gamma, p.chi, p.K) == 1.0
    assert expansivity(0.1, p.g_minus, p.gamma, p.chi, p.K) == 1.0
    assert expansivity(1.0, p.g_minus, p.gamma, p.chi, p.K) == pytest.approx(801.0)
    psi = selection_weights(np.array([0.0, 1.0]), 1.0, p.gain, p.inflection)
    assert np.all(psi == 1.0)  # eta = 1: every cell the same weight


def test_a_novel_input_gets_a_uniformly_drawn_code():
    """A mac that has learnt nothing has V = 0, G = 0 <= G-: each CM's winner is uniform."""
    level = _one_mac(Q=50, K=5)
    winners = []
    for seed in range(40):
        model = Sparsey((level,), 200, seed=seed, backend="numpy")
        codes = model.learn(_random_items(1, seed=seed))
        assert codes.familiarity[0][0, 0] == 0.0
        winners.append(codes.winners[0][0, 0])
    counts = np.bincount(np.concatenate(winners), minlength=5)
    assert stats.chisquare(counts).pvalue > 1e-3
    # the draw itself: equal weights give exactly 1/K per cell
    r = np.random.default_rng(0).random(100_000)
    drawn = draw_winners(np.ones((r.size, 5)), r)
    assert np.abs(np.bincount(drawn) / r.size - 0.2).max() < 0.01


def test_a_familiar_input_reinstates_its_stored_code():
    """At G = 1 the stored cells have V = 1. Recognition (max V) gives the stored code exactly;
    the CSA's draw gives it with probability rho(stored cell) per CM: 1 when eta is large and
    the partial matches (other cells' V < 1) lie below the sigmoid's inflection, less when
    they do not (the measured rate is the predicted rho)."""
    items = _random_items(10, seed=1)  # few enough that no other cell matches all inputs
    sharp = {"chi": 1e7, "inflection": 0.9, "gain": 100.0}
    for kw, backend in ((sharp, "numba"), ({}, "numpy")):
        level = _one_mac(Q=40, K=5, freeze_at=1.0, **kw)
        model = Sparsey((level,), 200, seed=2, backend=backend)
        stored = model.learn(items)
        seen = model.recognise(items)  # best match: max-V cells
        assert np.all(seen.familiarity[0] == 1.0)
        assert np.array_equal(seen.winners[0], stored.winners[0])
        V = items @ model.weights(0)[0] / items.sum(axis=1, keepdims=True)
        rho = np.array([selection_probabilities(v.reshape(40, 5), 1.0, level.params) for v in V])
        predicted = np.take_along_axis(rho, stored.winners[0][:, 0, :, None], -1).mean()
        again = model.learn(items)  # learning frames: the CSA draws again, at G = 1
        assert np.all(again.familiarity[0] == 1.0)
        measured = np.mean(again.winners[0] == stored.winners[0])
        if backend == "numba":
            assert predicted > 1 - 1e-6
            assert np.array_equal(again.winners[0], stored.winners[0])
        else:  # default sigmoid: a cell matching half the inputs keeps half the weight
            assert 0.5 < predicted < 0.99
            spread = np.sqrt(predicted * (1 - predicted) / again.winners[0].size)
            assert abs(measured - predicted) < 4 * spread


def test_code_overlap_grows_with_input_similarity():
    """Store items, then present variants that keep a fraction of each item's active inputs:
    the more they share, the more of the stored code they get (averaged over items)."""
    n_inputs, active = 400, 40
    items = _random_items(10, n_inputs, active, seed=3)
    model = Sparsey((_one_mac(n_inputs, Q=20, K=6),), n_inputs, seed=4, backend="numba")
    stored = model.learn(items)
    rng = np.random.default_rng(5)
    means = []
    for keep in (0.0, 0.25, 0.5, 0.75, 1.0):
        variants = items.copy()
        for row in variants:
            on, off = np.flatnonzero(row), np.flatnonzero(row == 0)
            drop = rng.choice(on, int(round((1 - keep) * active)), replace=False)
            row[drop] = 0
            row[rng.choice(off, drop.size, replace=False)] = 1
        trial = copy.deepcopy(model)  # each similarity level meets the same stored items
        means.append(stored.overlap(trial.learn(variants)).mean())
    assert np.all(np.diff(means) > 0), means
    assert means[-1] - means[0] > 0.3, means


def _two_levels(top_down: bool = True) -> tuple[Level, Level]:
    p1 = MacParams(Q=6, K=4, pi_min=3, freeze_at=0.3)
    rf = grid_rf((12, 10), (2, 3), (7, 6))
    l2 = Level(MacParams(Q=5, K=6), all_cells(6 * p1.cells), rf_h=all_cells(30))
    rf_d = all_cells(l2.cells, 6) if top_down else None
    l1 = Level(p1, rf, rf_h=all_cells(6 * p1.cells, 6), rf_d=rf_d, shape=(2, 3))
    return l1, l2


@pytest.mark.parametrize("top_down", [True, False])  # False: numba's batch path
@pytest.mark.parametrize("sequence", [True, False])
def test_numpy_numba_and_torch_choose_identical_codes_on_two_levels(sequence, top_down):
    levels = _two_levels(top_down)
    x = _random_items(160, 120, 14, seed=7)
    x = np.concatenate([x, x[:40]])  # some items again: familiar frames too
    out = {}
    for backend in ("numpy", "numba", "torch"):
        model = Sparsey(levels, 120, seed=8, backend=backend)
        learnt = model.learn(x, sequence=sequence)
        seen = model.recognise(x, sequence=sequence)
        out[backend] = (learnt, seen, model)
    ref_l, ref_s, ref_m = out["numpy"]
    assert ref_m.frozen(0).any()  # the critical period ended for some macs on the way
    for backend in ("numba", "torch"):
        learnt, seen, model = out[backend]
        for i in range(2):
            assert np.array_equal(learnt.winners[i], ref_l.winners[i]), (backend, i)
            assert np.array_equal(seen.winners[i], ref_s.winners[i]), (backend, i)
            np.testing.assert_allclose(learnt.familiarity[i], ref_l.familiarity[i], rtol=1e-14)
            for kind in "UHD":
                assert np.array_equal(model.weights(i, kind), ref_m.weights(i, kind))
        assert np.array_equal(model.frozen(0), ref_m.frozen(0))


def test_learning_sets_weights_from_active_inputs_to_winners_only():
    level = _one_mac(Q=4, K=5)
    model = Sparsey((level,), 200, seed=0, backend="numba")
    x = _random_items(1, seed=9)
    codes = model.learn(x)
    w = model.weights(0)[0]  # (R, Q * K)
    winners = codes.cells(0)[0]
    expected = np.outer(x[0], winners).astype(np.uint8)
    assert np.array_equal(w, expected)


def test_critical_period_freezes_a_saturated_mac():
    level = _one_mac(Q=5, K=4, freeze_at=0.2)
    model = Sparsey((level,), 200, seed=0, backend="numba")
    items = _random_items(400, seed=10)
    model.learn(items[:200])
    assert model.frozen(0)[0] and model.saturation(0)[0] >= 0.2
    before = model.weights(0).copy()
    learnt = model.learn(items[200:])
    assert np.array_equal(model.weights(0), before)  # no more learning
    assert np.array_equal(learnt.winners[0], model.recognise(items[200:]).winners[0])


def test_a_mac_outside_its_input_band_is_silent_and_does_not_learn():
    level = _one_mac(Q=4, K=5, pi_min=10, pi_max=30)
    model = Sparsey((level,), 200, seed=0, backend="numba")
    few, many = _random_items(1, active=5), _random_items(1, active=40)
    for x in (few, many):
        codes = model.learn(x)
        assert np.all(codes.winners[0] == -1) and np.isnan(codes.familiarity[0]).all()
    assert not model.weights(0).any()


def test_invalid_parameters_and_frames_are_refused_with_the_field_named():
    with pytest.raises(SpecError, match="g_minus"):
        MacParams(Q=2, K=3, g_minus=1.0)
    with pytest.raises(SpecError, match="pi_min"):
        MacParams(Q=2, K=3, pi_min=5, pi_max=2)
    with pytest.raises(SpecError, match="K >= 2"):
        MacParams(Q=2, K=1)
    with pytest.raises(SpecError, match="rf_u indexes cell 199"):
        Sparsey((_one_mac(),), 100)
    model = Sparsey((_one_mac(),), 200, backend="numpy")
    with pytest.raises(SpecError, match=r"frames must be \(n, 200\)"):
        model.learn(np.zeros((3, 10)))
    with pytest.raises(SpecError, match="0/1"):
        model.learn(np.full((1, 200), 2))
    with pytest.raises(SpecError, match="backend"):
        Sparsey((_one_mac(),), 200, backend="cuda")


def test_the_mnist_architecture_is_the_one_chosen_on_validation():
    """``LEVEL1`` is what experiments/sparsey_architecture.py chose (its committed result)."""
    import json
    from pathlib import Path

    from neuromem.models.sparsey.mnist import LEVEL1, SVM_C

    path = Path(__file__).resolve().parent.parent / "experiments/results/sparsey_architecture.json"
    chosen = json.loads(path.read_text())
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in LEVEL1.items()} == (
        chosen["best"]["config"]
    )
    assert SVM_C == chosen["svm_C_chosen"]


def test_every_engine_ends_the_critical_period_at_the_same_count():
    """freeze_at * R * Q * K rounded once (Level.freeze_count): a product order that differs
    between engines would freeze one a weight later (here 7 vs 8 set weights)."""
    level = Level(MacParams(Q=1, K=100, freeze_at=0.01), all_cells(7))
    assert level.freeze_count == 7
    items = _random_items(30, 7, 1, seed=11)
    runs = {}
    for backend in ("numpy", "numba", "torch"):
        model = Sparsey((level,), 7, seed=12, backend=backend)
        runs[backend] = (model.learn(items).winners[0], model.frozen(0))
    for backend in ("numba", "torch"):
        assert np.array_equal(runs[backend][0], runs["numpy"][0]), backend
        assert np.array_equal(runs[backend][1], runs["numpy"][1]), backend


def test_a_learnt_sequence_is_recalled_from_its_start():
    """Each call starts from no context (unless carry=True), so recognising a learnt sequence
    does not begin with the last learning frame as its H input."""
    level = _one_mac(Q=20, K=6)
    level = Level(level.params, level.rf_u, rf_h=all_cells(level.cells))
    x = _random_items(12, seed=13)
    model = Sparsey((level,), 200, seed=14, backend="numba")
    learnt = model.learn(x, sequence=True)
    seen = model.recognise(x, sequence=True)
    assert np.all(seen.familiarity[0] == 1.0)
    assert np.array_equal(seen.winners[0], learnt.winners[0])
    model.recognise(x[:6], sequence=True)
    rest = model.recognise(x[6:], sequence=True, carry=True)  # the same sequence in two parts
    assert np.array_equal(rest.winners[0], seen.winners[0][6:])


def test_indices_that_would_wrap_are_refused():
    rf = np.array([[2**63, 1]], dtype=np.uint64)
    with pytest.raises(SpecError, match="outside"):
        Level(MacParams(Q=2, K=3), rf)
