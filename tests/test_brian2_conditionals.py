"""Conditionals mean one thing on every backend, whatever the branch that is not taken holds.

numba evaluates ``a if c else b`` (and guarded statements: resets, trace statements, the
refractory clamp) as real conditionals, torch selects with ``where``; the Brian2 backend must
not blend the branches arithmetically (``c * a + (1 - c) * b`` turns an infinite or NaN value of
the branch not taken into NaN). Each network below holds a non-finite value in a branch that is
never taken; numba, torch (float64) and Brian2 must give identical spikes and identical, finite
state and weights.

The default tests use Brian2's ``target="numpy"`` (no compilation); the Cython target runs in
the test marked ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("brian2")

import neuromem  # noqa: E402
from neuromem.spec import (  # noqa: E402
    CurrentInput,
    Discretization,
    Network,
    NeuronModel,
    PlasticityRule,
    PoissonSpikes,
    Population,
    Projection,
    SpikeProbe,
    StateProbe,
    all_to_all,
    nir_lif,
    spike_source,
)

STEPS = 80

# the torch backend's numpy engine warns about the non-finite values these networks compute
pytestmark = pytest.mark.filterwarnings(
    "ignore:divide by zero encountered", "ignore:invalid value encountered"
)


# ------------------------------------------------------------------------------- networks
def _neuron_model(
    *,
    threshold: str = "v >= v_th",
    reset: str = "v = v_reset; u = u + b",
    dv: str = "(i_ext - v - u) / tau",
    refractory_reset: str = "",
) -> NeuronModel:
    """A dimensionless adaptive LIF (``v``, adaptation ``u``, recovery ``r``) in which one
    construct at a time can be given a non-finite branch that is never taken."""
    return NeuronModel(
        name="guarded_lif",
        state={"v": ("1", 0.0), "u": ("1", 0.0), "r": ("1", 1.0)},
        params={
            "tau": ("ms", 8.0),
            "tau_u": ("ms", 40.0),
            "tau_r": ("ms", 4.0),
            "v_th": ("1", 1.0),
            "v_reset": ("1", 0.0),
            "b": ("1", 0.2),
            "k": ("1", 0.05),
            "tau_refrac": ("ms", 2.0),
        },
        odes={"v": dv, "u": "-u / tau_u", "r": "(1 - r) / tau_r"},
        threshold=threshold,
        reset=reset + refractory_reset,
        refractory="tau_refrac",
        clamped=("v",),
        inputs=("i_ext",),
    )


def _neuron_network(model: NeuronModel, integrator: str = "exponential_euler") -> Network:
    # drives from negative (never spikes, v < 0) to strong (spikes every few steps)
    drive = np.linspace(-1.0, 3.0, 16)
    return Network(
        "guarded_neurons",
        Discretization(dt=1.0, integrator=integrator),
        (Population("n", drive.size, model),),
        currents=(CurrentInput("n", "i_ext", drive),),
        probes=(SpikeProbe("n"), StateProbe("n", "v"), StateProbe("n", "u")),
    )


def guarded_stdp() -> PlasticityRule:
    """Pair STDP whose synaptic and trace statements carry a 0/0 in the branch not taken:
    ``apost / maximum(apost, apre)`` is read only when ``apost > 0`` (0/0 before the first post
    spike), and the traces' ``+= 1`` is written ``(1 + a / a * a) if a > 0 else 1.0``."""
    return PlasticityRule(
        name="guarded_stdp",
        params={
            "tau_plus": ("ms", 10.0),
            "tau_minus": ("ms", 12.0),
            "A_plus": ("1", 0.05),
            "A_minus": ("1", 0.04),
            "A_c": ("1", 0.01),
            "w_min": ("1", 0.0),
            "w_max": ("1", 0.6),
        },
        pre_traces={"apre": "-apre / tau_plus"},
        post_traces={"apost": "-apost / tau_minus"},
        on_pre=(
            "w = clip((w - A_minus * apost / maximum(apost, apre)) if apost > 0 "
            "else w + A_c * post_event, w_min, w_max); "
            "apre = (1 + apre / apre * apre) if apre > 0 else 1.0"
        ),
        on_post=(
            "w = clip((w + A_plus * apre / maximum(apre, apost)) if apre > 0 else w, "
            "w_min, w_max); "
            "apost = (1 + apost / apost * apost) if apost > 0 else 1.0"
        ),
    )


def _stdp_network() -> Network:
    rng = np.random.default_rng(7)
    n_src, n_out = 10, 6
    i, j = all_to_all(n_src, n_out)
    proj = Projection(
        "src_out",
        "src",
        "out",
        i,
        j,
        rng.uniform(0.1, 0.4, i.size),
        rng.integers(1, 4, i.size),  # delays 1-3: the weight ring of Brian2's transmission too
        plasticity=guarded_stdp(),
    )
    return Network(
        "guarded_stdp",
        Discretization(dt=1.0),
        (
            Population("src", n_src, spike_source(), stimulus=PoissonSpikes(60.0, 11, start=3)),
            Population("out", n_out, nir_lif(), {"tau": 5.0}),
        ),
        (proj,),
        probes=(SpikeProbe("src"), SpikeProbe("out"), StateProbe("out", "v")),
    )


# ------------------------------------------------------------------------------- checks
def _backends(brian2_target: str = "numpy") -> list[tuple[str, dict]]:
    out = [("numba", {})]
    try:
        import torch  # noqa: F401

        out.append(("torch", {"dtype": "float64"}))
    except ImportError:
        pass
    out.append(("brian2", {"target": brian2_target}))
    return out


def _run_all(net: Network, brian2_target: str = "numpy") -> dict:
    sims = {}
    for backend, opts in _backends(brian2_target):
        sim = neuromem.compile(net, backend=backend, **opts)
        sim.run(STEPS // 2)
        sim.run(STEPS - STEPS // 2)
        sims[backend] = sim
    return sims


def _assert_identical(sims: dict, min_spikes: int = 5) -> None:
    ref = sims["numba"]
    for name, raster in ref.probes.spikes.items():
        assert raster.sum() >= min_spikes, name  # the network is active
    for backend, sim in sims.items():
        for name, raster in ref.probes.spikes.items():
            np.testing.assert_array_equal(
                sim.probes.spikes[name], raster, err_msg=f"{backend}: spikes of {name}"
            )
        for key, values in ref.probes.state.items():
            got = sim.probes.state[key]
            assert np.isfinite(got).all(), f"{backend}: {key} not finite"
            np.testing.assert_array_equal(got, values, err_msg=f"{backend}: {key}")
        for pop, variables in ref.state.items():
            for var, values in variables.items():
                got = sim.state[pop][var]
                assert np.isfinite(got).all(), f"{backend}: {pop}.{var} not finite"
                np.testing.assert_array_equal(got, values, err_msg=f"{backend}: {pop}.{var}")


def _check_neurons(model: NeuronModel, integrator: str = "exponential_euler") -> None:
    _assert_identical(_run_all(_neuron_network(model, integrator)))


# ------------------------------------------------------------------------------- tests
def test_threshold_minimum_with_infinite_argument():
    # minimum(v_th, +inf) is v_th: selecting must not compute inf * 0
    _check_neurons(_neuron_model(threshold="v >= minimum(v_th, 1 / (v - v))"))


@pytest.mark.parametrize(
    "threshold",
    [
        "v >= (v_th if v < 1e9 else (v - v) / (v - v))",  # a number selected
        "(v >= v_th) if v < 1e9 else (v >= (v - v) / (v - v))",  # a boolean selected
    ],
)
def test_threshold_conditional_with_nan_branch_not_taken(threshold):
    _check_neurons(_neuron_model(threshold=threshold))


@pytest.mark.parametrize(
    "condition",
    [
        "v < -1e6",
        "v - v_reset",  # a number as the condition: true where not 0 (here: never)
    ],
)
def test_reset_conditional_with_infinite_branch_not_taken(condition):
    # after v = v_reset, b / (v - v) is b / 0 = inf, in the branch not taken
    _check_neurons(
        _neuron_model(reset=f"v = v_reset; u = (u + b / (v - v)) if {condition} else u + b")
    )


def test_reset_value_not_finite_for_neurons_that_do_not_spike():
    # log(v - v_th + 1) >= 0 where v >= v_th (a spike); -inf or NaN at every other neuron, whose
    # reset is not applied
    _check_neurons(_neuron_model(reset="u = u + b * (1 + log(v - v_th + 1)); v = v_reset"))


@pytest.mark.parametrize("integrator", ["exponential_euler", "euler"])
def test_refractory_clamp_with_infinite_candidate(integrator):
    # the reset sets r = 0, so the candidate of v in the first refractory step reads
    # log(0) = -inf; v is clamped then and keeps its value
    _check_neurons(
        _neuron_model(dv="(i_ext - v - u) / tau + k * log(r)", refractory_reset="; r = 0"),
        integrator,
    )


def test_stdp_with_nan_branches_not_taken():
    sims = _run_all(_stdp_network())
    _assert_identical(sims)
    ref = sims["numba"].state["weights"]["src_out"]
    assert np.isfinite(ref).all()
    assert not np.array_equal(ref, _stdp_network().projections[0].weight)  # plasticity acted
    for backend, sim in sims.items():
        w = sim.state["weights"]["src_out"]
        assert np.isfinite(w).all(), backend
        np.testing.assert_array_equal(w, ref, err_msg=backend)


def test_brian2_code_selects_without_arithmetic_blends():
    """No emitted Brian2 code casts a condition to a number (``int(c) * a + ...``): every
    conditional, guarded statement, clamp and weight-ring slot is a selection."""
    nets = [
        _neuron_network(
            _neuron_model(
                threshold="v >= minimum(v_th, 1 / (v - v))",
                reset="u = (u + b / (v - v)) if v < -1e6 else u + b; v = v_reset",
            )
        ),
        _stdp_network(),
    ]
    for net in nets:
        sim = neuromem.compile(net, backend="brian2", target="numpy")
        codes = [
            o.abstract_code
            for obj in sim._net.objects
            for o in (obj, *obj.contained_objects)
            if isinstance(getattr(o, "abstract_code", None), str)
        ]
        assert len(codes) > 3
        for code in codes:
            assert "int(" not in code, code


@pytest.mark.slow
def test_cython_target_agrees():
    for net in (
        _neuron_network(
            _neuron_model(
                threshold="v >= (minimum(v_th, 1 / (v - v)) if v < 1e9 else (v - v) / (v - v))",
                reset="u = (u + b / (v - v)) if v < -1e6 else u + b * (1 + log(v - v_th + 1)); "
                "v = v_reset; r = 0",
                dv="(i_ext - v - u) / tau + k * log(r)",
            )
        ),
        _stdp_network(),
    ):
        _assert_identical(_run_all(net, "cython"))
