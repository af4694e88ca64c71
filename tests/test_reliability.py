"""Refusals with one meaning: parameters range-checked where the lowering takes them, run
inputs checked rather than coerced, non-finite state reported, budgets enforced before
allocation, the numba code cache verified (issue 11, items 2, 4, 5, 6, 8 and 9)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import neuromem
from neuromem.errors import CapabilityError, SimulationError, SpecError
from neuromem.spec import (
    Discretization,
    Network,
    NeuronModel,
    PoissonSpikes,
    Population,
    Projection,
    SpikeProbe,
    StateProbe,
    if_curr_exp,
    spike_source,
    stdp_pair,
)
from neuromem.spec.limits import limits

DT = Discretization(dt=0.1)
BACKENDS = ("numba", "torch", "brian2")


def _net(exc_params=None, plasticity=None, plasticity_params=None, n_syn=20, delay=1, probes=None):
    src = Population("src", 10, spike_source())
    exc = Population("exc", 5, if_curr_exp(), params=exc_params or {})
    rng = np.random.default_rng(0)
    proj = Projection(
        "src_exc",
        "src",
        "exc",
        rng.integers(0, 10, n_syn),
        rng.integers(0, 5, n_syn),
        2.0,
        delay,
        plasticity=plasticity,
        plasticity_params=plasticity_params or {},
    )
    return Network("net", DT, (src, exc), (proj,), probes=probes or (SpikeProbe("exc"),))


def _raster(steps, seed=1):
    return np.random.default_rng(seed).random((steps, 10)) < 0.3


# ------------------------------------------------------------ item 4: parameter ranges
@pytest.mark.parametrize(
    "params, message",
    [
        ({"tau_refrac": -1.0}, r"refractory period 'tau_refrac' is -1.0 ms \(neuron 0\)"),
        ({"tau_refrac": 1e300}, r"refractory period 'tau_refrac' is 1e\+300 ms"),
        (
            {"tau_syn_E": 0.0},
            r"parameter 'tau_syn_E' is 0.0 \(element 0\); it must be > 0 \(a time constant",
        ),
        ({"tau_syn_I": -5.0}, r"parameter 'tau_syn_I' is -5.0 \(element 0\); it must be > 0"),
        ({"tau_m": [20.0, 20.0, 0.0, 20.0, 20.0]}, r"parameter 'tau_m' is 0.0 \(element 2\)"),
        ({"cm": 0.0}, r"parameter 'cm' is 0.0 \(element 0\); it must be non-zero \(it divides\)"),
    ],
)
def test_parameters_that_cannot_mean_anything_are_refused(params, message):
    with pytest.raises(SpecError, match=r"population 'exc' \(model 'IF_curr_exp'\): " + message):
        neuromem.compile(_net(params), backend="numba")


def test_refractory_zero_is_fine_and_no_counter_wraps():
    sim = neuromem.compile(_net({"tau_refrac": 0.0}), backend="numba")
    assert sim.run(50, {"src": _raster(50)}).spikes["exc"].shape == (50, 5)


def test_stdp_ranges():
    with pytest.raises(
        SpecError, match=r"projection 'src_exc': .*w_min = 2.0 is above w_max = 1.0"
    ):
        _net(plasticity=stdp_pair(), plasticity_params={"w_min": 2.0})
    with pytest.raises(SpecError, match=r"projection 'src_exc'.*'tau_plus' is 0.0; it must be > 0"):
        neuromem.compile(
            _net(plasticity=stdp_pair(), plasticity_params={"tau_plus": 0.0}), backend="numba"
        )
    with pytest.raises(SpecError, match=r"plasticity parameter 'A_plus' must be a number"):
        _net(plasticity=stdp_pair(), plasticity_params={"A_plus": "0.1"})


def test_poisson_probability_above_one_is_refused():
    src = Population("src", 3, spike_source(), stimulus=PoissonSpikes(20_000.0, seed=1))
    with pytest.raises(SpecError, match=r"population 'src': Poisson rate 20000.0 Hz is a spike "):
        Network("net", DT, (src,))


@pytest.mark.parametrize(
    "expression, where",
    [("1e999 * v", "column 1"), ("v * (1e308 * 10)", "column 6"), ("v + 10 ** 400", "column 5")],
)
def test_overflowing_literals_are_refused_with_their_location(expression, where):
    with pytest.raises(SpecError, match=rf"neuron model 'm', equation dv/dt: .*{where}.*finite"):
        NeuronModel("m", state={"v": ("mV", 0.0)}, odes={"v": expression})


# ------------------------------------------------------------ item 5: run inputs
@pytest.mark.parametrize("backend", BACKENDS)
def test_run_inputs_are_checked_not_coerced(backend):
    sim = neuromem.compile(_net(), backend=backend)
    with pytest.raises(SpecError, match=r"input for population 'src' has shape \(11, 10\)"):
        sim.run(10, {"src": _raster(11)})
    for bad, what in ((0.3, "float64"), (np.nan, "float64"), ("False", "<U5")):
        with pytest.raises(
            SpecError, match=rf"spikes must be bool or 0/1 integers, got dtype {what}"
        ):
            sim.run(10, {"src": np.full((10, 10), bad)})
    with pytest.raises(SpecError, match=r"spikes must be 0 or 1, got 2"):
        sim.run(10, {"src": np.full((10, 10), 2)})
    with pytest.raises(SpecError, match=r"steps must be a non-negative integer, got -1"):
        sim.run(-1)
    with pytest.raises(SpecError, match=r"steps must be a non-negative integer, got True"):
        sim.run(True)
    with pytest.raises(SpecError, match=r"input 'exc.i_ext' has shape \(11, 5\)"):
        sim.run(10, {"exc.i_ext": np.zeros((11, 5))})
    assert sim.t == 0  # nothing ran
    ints = sim.run(10, {"src": _raster(10).astype(np.int64)}).spikes["exc"]
    sim.reset()
    bools = sim.run(10, {"src": _raster(10)}).spikes["exc"]
    assert np.array_equal(ints, bools)


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_zero_returns_the_usual_keys_empty(backend):
    net = _net(probes=(SpikeProbe("exc"), StateProbe("exc", "v", (1, 3))))
    sim = neuromem.compile(net, backend=backend)
    out = sim.run(0)
    assert out.spikes["exc"].shape == (0, 5) and out.spikes["exc"].dtype == bool
    assert out.state["exc.v"].shape == (0, 2)
    assert sim.t == 0


def test_probe_indices_and_sizes_must_be_integers():
    with pytest.raises(SpecError, match=r"state probe on 'exc': index 1.5 is not an integer"):
        StateProbe("exc", "v", (1.5,))
    with pytest.raises(SpecError, match=r"population 'a': size must be a positive integer"):
        Population("a", True, spike_source())


# ------------------------------------------------------------ item 6: numerical faults
def _exploding_net():
    model = NeuronModel(
        "grow",
        state={"v": ("1", 1.0)},
        params={"k": ("1/ms", 50.0)},
        odes={"v": "k * v"},
        threshold=None,
    )
    pop = Population("blow", 3, model, params={"k": [0.0, 50.0, 0.0]})
    return Network(
        "net", Discretization(dt=1.0, integrator="euler"), (pop,), probes=(StateProbe("blow", "v"),)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_state_raises_simulation_error(backend):
    sim = neuromem.compile(_exploding_net(), backend=backend)
    with pytest.raises(
        SimulationError,
        match=r"population 'blow', variable 'v', neuron 1 is inf at step 299 .*steps 0\.\.299; "
        r"recorded first as non-finite in step 1\d\d\)",
    ):
        sim.run(300)
    quiet = neuromem.compile(_exploding_net(), backend=backend, check_finite=False)
    assert not np.isfinite(quiet.run(300).state["blow.v"][-1, 1])


def test_simulation_error_is_checked_per_progress_chunk():
    sim = neuromem.compile(_exploding_net(), backend="numba")
    with pytest.raises(SimulationError, match=r"at step 1\d\d "):
        sim.run(1000, progress=True)  # 50 chunks: stops in the chunk where it overflowed


# ------------------------------------------------------------ item 8: bounded resources
def test_budgets_refuse_before_allocation():
    with pytest.raises(
        SpecError, match=r"population 'big': 1000000000000 neurons would take .* TiB"
    ):
        Population("big", 10**12, if_curr_exp())
    with pytest.raises(
        SpecError, match=r"network 'net': the delay rings would need 2,500,000,005 slots"
    ):
        _net(delay=10**9 // 2)
    with limits(max_ring_slots=2**40, max_state_bytes=2**50):
        _net(delay=10**9 // 2)  # raised budgets admit it (nothing is allocated by the spec)
    with limits(max_state_bytes=100):
        with pytest.raises(
            SpecError, match=r"'src': 10 neurons would take 160 B, more than .* 100 B"
        ):
            _net()
    with pytest.raises(SpecError, match=r"unknown budget"):
        with limits(max_cats=1):
            pass


@pytest.mark.parametrize(
    "text", ["+".join(["v"] * 3000), "-" * 5000 + "v", "(" * 300 + "v" + ")" * 300]
)
def test_deep_or_long_expressions_are_spec_errors(text):
    with pytest.raises(SpecError, match=r"neuron model 'm', equation dv/dt: "):
        NeuronModel("m", state={"v": ("mV", 0.0)}, odes={"v": text})


@pytest.mark.parametrize("backend", BACKENDS)
def test_plastic_projection_without_synapses(backend):
    net = _net(plasticity=stdp_pair(), n_syn=0)
    sim = neuromem.compile(net, backend=backend)
    assert not sim.run(20, {"src": _raster(20)}).spikes["exc"].any()
    assert sim.state["weights"]["src_exc"].shape == (0,)


# ------------------------------------------------------------ item 9: neuromem errors only
@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Population("a", "10", spike_source()), r"population 'a': size"),
        (lambda: Population("a", 2, "lif"), r"population 'a': model must be a NeuronModel"),
        (lambda: Population("a", 2, if_curr_exp(), params={"tau_m": "x"}), r"'tau_m': expected"),
        (lambda: Population("a", 2, if_curr_exp(), params=[1]), r"params must be a mapping"),
        (
            lambda: Projection("p", "a", "b", [2**70], [0], 1.0),
            r"pre_index: value 1180591620717411303424 is out of range",
        ),
        (
            lambda: Projection("p", "a", "b", np.array([2**63], np.uint64), [0], 1.0),
            r"pre_index: value 9223372036854775808 is out of range",
        ),
        (lambda: Projection("p", "a", "b", [0.5], [0], 1.0), r"pre_index: expected integers"),
        (lambda: Projection("p", "a", "b", [0], [0], "w"), r"weight: expected numbers"),
        (lambda: Projection("p", "a", "b", [0], [0], 1.0, [[1]]), r"delay"),
        (lambda: NeuronModel("m", state={"v": "mV"}), r"state variable 'v' must be \(unit"),
        (lambda: NeuronModel("m", state=[("v", 0.0)]), r"state must be a mapping"),
        (lambda: NeuronModel("m", inputs="i_ext"), r"inputs must be a list of names"),
        (lambda: NeuronModel("m", state={"v": ("mV", 0.0)}, reset=3), r"expected a string"),
    ],
)
def test_bad_input_raises_a_neuromem_error_naming_the_element(build, message):
    with pytest.raises(SpecError, match=message):
        build()


def test_unknown_compile_option_is_a_capability_error():
    with pytest.raises(CapabilityError, match=r"backend 'numba': unknown option\(s\) dtyp"):
        neuromem.compile(_net(), backend="numba", dtyp="float32")


# ------------------------------------------------------------ item 2: the code cache
def test_edited_cache_file_is_discarded_and_never_executed(tmp_path):
    """A planted line in a cached generated module is detected in a new process, discarded
    with a warning and regenerated; the cache folder never reaches sys.path."""
    marker = tmp_path / "PWNED"
    script = textwrap.dedent(
        """
        import sys, warnings
        warnings.simplefilter("always")
        import numpy as np, neuromem
        from neuromem.spec import *
        src = Population("src", 10, spike_source())
        exc = Population("exc", 5, if_curr_exp())
        proj = Projection("p", "src", "exc", np.arange(10), np.arange(10) % 5, 2.0)
        net = Network("net", Discretization(dt=0.1), (src, exc), (proj,),
                      probes=(SpikeProbe("exc"),))
        r = np.random.default_rng(1).random((50, 10)) < 0.3
        print(int(neuromem.compile(net, "numba").run(50, {"src": r}).spikes["exc"].sum()))
        assert not any("neuromem" in p and "numba" in p for p in sys.path), sys.path
        """
    )
    env = {"NEUROMEM_CACHE": str(tmp_path / "cache"), "NEUROMEM_PROGRESS": "0", "PATH": ""}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    files = sorted((tmp_path / "cache" / "numba").glob("*/nmk_*.py"))
    assert files
    for f in files:
        f.write_text(f.read_text() + f"\nopen({str(marker)!r}, 'w').write('x')\n")
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert second.stderr.count("does not match its content hash") == len(files)
    assert not marker.exists()
    assert all("PWNED" not in f.read_text() for f in files)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_plastic_weight_raises_simulation_error(backend):
    from neuromem.spec import PlasticityRule

    grow = PlasticityRule("grow", params={"g": ("1", 1e200)}, on_pre="w = w * g")
    sim = neuromem.compile(_net(plasticity=grow, delay=5), backend=backend)  # not delivered yet
    with pytest.raises(
        SimulationError, match=r"projection 'src_exc': weight \d+ \(spec order\) is inf"
    ):
        sim.run(4, {"src": np.ones((4, 10), bool)})  # two pre spikes: 1e200 * 1e200
