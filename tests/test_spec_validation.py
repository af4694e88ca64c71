"""Bad inputs are refused with SpecError / CapabilityError whose message names the element."""

from __future__ import annotations

import numpy as np
import pytest

import neuromem
from neuromem.errors import CapabilityError, SpecError
from neuromem.spec import (
    CurrentInput,
    Discretization,
    Network,
    NeuronModel,
    PoissonSpikes,
    Population,
    Projection,
    SpikeArray,
    SpikeProbe,
    StateProbe,
    if_curr_exp,
    nir_lif,
    spike_source,
    stdp_pair,
)

DT = Discretization(dt=1.0)


def _pops():
    return (Population("src", 2, spike_source()), Population("a", 3, if_curr_exp()))


def _net(**kw) -> Network:
    args = dict(name="net", discretization=DT, populations=_pops())
    args.update(kw)
    return Network(**args)


def _proj(**kw) -> Projection:
    args = dict(
        name="p", pre="src", post="a", pre_index=[0, 1], post_index=[0, 2], weight=1.0, delay=1
    )
    args.update(kw)
    return Projection(**args)


# ------------------------------------------------------------------ populations and models
def test_parameter_array_size_mismatch():
    with pytest.raises(SpecError, match=r"population 'a', parameter 'cm': size mismatch.*3"):
        Population("a", 3, if_curr_exp(), {"cm": [1.0, 2.0]})


def test_initial_state_size_mismatch():
    with pytest.raises(SpecError, match=r"population 'a', initial 'v': size mismatch"):
        Population("a", 3, if_curr_exp(), initial={"v": np.zeros(4)})


def test_unknown_parameter():
    with pytest.raises(SpecError, match=r"population 'a': unknown parameter 'tau_x'.*IF_curr_exp"):
        Population("a", 3, if_curr_exp(), {"tau_x": 1.0})


def test_unknown_initial_state_variable():
    with pytest.raises(SpecError, match=r"population 'a': unknown state variable 'u'"):
        Population("a", 3, if_curr_exp(), initial={"u": 0.0})


def test_nan_parameter():
    with pytest.raises(SpecError, match=r"population 'a', parameter 'tau_m': non-finite .*nan"):
        Population("a", 2, if_curr_exp(), {"tau_m": [1.0, np.nan]})


def test_bad_population_size():
    with pytest.raises(SpecError, match=r"population 'a': size must be a positive integer"):
        Population("a", 0, if_curr_exp())


def test_stimulus_on_non_source_model():
    with pytest.raises(SpecError, match=r"population 'a': a spike stimulus needs a spike-source"):
        Population("a", 2, if_curr_exp(), stimulus=PoissonSpikes(10.0, seed=1))


def test_spike_array_neuron_out_of_range():
    with pytest.raises(
        SpecError, match=r"'src': spike array names neuron 5, out of range for size 2"
    ):
        Population("src", 2, spike_source(), stimulus=SpikeArray([0], [5]))


def test_unknown_variable_in_equation():
    with pytest.raises(
        SpecError,
        match=r"neuron model 'm', equation dv/dt: unknown variable\(s\) "
        r"tau_x",
    ):
        NeuronModel(
            "m", state={"v": ("mV", 0.0)}, params={"tau": ("ms", 1.0)}, odes={"v": "-v / tau_x"}
        )


def test_unknown_variable_in_threshold():
    with pytest.raises(SpecError, match=r"neuron model 'm', threshold: unknown variable.*theta"):
        NeuronModel("m", state={"v": ("mV", 0.0)}, odes={"v": "-v"}, threshold="v > theta")


@pytest.mark.parametrize(
    "rhs, what",
    [
        ("v.real", "Attribute"),
        ("__import__('os')", "call of '__import__'"),
        ("os.getcwd()", r"call of .* in expression 'os\.getcwd\(\)'"),
        ("eval('1')", "call of 'eval'"),
        ("[v]", "List"),
        ("v[0]", "Subscript"),
        ("'text'", "constant 'text'"),
        ("0 < v < 1", "chained comparison"),
    ],
)
def test_expression_outside_grammar(rhs, what):
    with pytest.raises(SpecError, match=rf"neuron model 'm', equation dv/dt: .*{what}"):
        NeuronModel("m", state={"v": ("mV", 0.0)}, odes={"v": rhs})


def test_import_statement_in_reset_is_refused():
    with pytest.raises(SpecError, match=r"neuron model 'm', reset: only 'x = expr'.*import os"):
        NeuronModel("m", state={"v": ("mV", 0.0)}, threshold="v > 1", reset="import os")


def test_reset_assigning_a_parameter_is_refused():
    with pytest.raises(SpecError, match=r"neuron model 'm', reset: cannot assign to 'tau'"):
        NeuronModel(
            "m",
            state={"v": ("mV", 0.0)},
            params={"tau": ("ms", 1.0)},
            threshold="v > 1",
            reset="tau = 0",
        )


def test_plasticity_trace_may_not_read_the_weight():
    from neuromem.spec import PlasticityRule

    with pytest.raises(SpecError, match=r"plasticity rule 'r', on_pre: trace 'x' cannot depend"):
        PlasticityRule("r", pre_traces={"x": "-x"}, on_pre="x += w")


# ------------------------------------------------------------------ projections
@pytest.mark.parametrize("delay", [0, -2, [1, 0]])
def test_non_positive_delay(delay):
    with pytest.raises(SpecError, match=r"projection 'p': delay -?\d+ steps; delays must be >= 1"):
        _proj(delay=delay)


def test_fractional_delay():
    with pytest.raises(SpecError, match=r"projection 'p', delay: expected integers"):
        _proj(delay=1.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weight(bad):
    with pytest.raises(SpecError, match=r"projection 'p', weight: non-finite value .* at index 1"):
        _proj(weight=[1.0, bad])


def test_weight_size_mismatch():
    with pytest.raises(SpecError, match=r"projection 'p', weight: size mismatch, expected 2"):
        _proj(weight=[1.0, 2.0, 3.0])


def test_index_arrays_of_different_length():
    with pytest.raises(SpecError, match=r"projection 'p': size mismatch, 2 pre indices but 1 post"):
        _proj(post_index=[0])


@pytest.mark.parametrize("side, kw", [("pre", {"pre": "nope"}), ("post", {"post": "nope"})])
def test_undefined_population(side, kw):
    with pytest.raises(SpecError, match=rf"projection 'p': undefined {side} population 'nope'"):
        _net(projections=(_proj(**kw),))


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"post_index": [0, 3]}, r"post index 3 out of range for population 'a' of size 3"),
        ({"pre_index": [0, 2]}, r"pre index 2 out of range for population 'src' of size 2"),
        ({"pre_index": [-1, 0]}, r"pre index -1 out of range for population 'src'"),
    ],
)
def test_index_out_of_range(kw, msg):
    with pytest.raises(SpecError, match=rf"projection 'p': {msg}"):
        _net(projections=(_proj(**kw),))


def test_unknown_port():
    with pytest.raises(
        SpecError,
        match=r"projection 'p': population 'a' \(model 'IF_curr_exp'\) "
        r"has no port 'dend'; ports: exc, inh",
    ):
        _net(projections=(_proj(port="dend"),))


def test_unknown_plasticity_parameter():
    with pytest.raises(
        SpecError,
        match=r"projection 'p': unknown parameter 'A' of plasticity rule"
        r" 'stdp_pair_additive'",
    ):
        _proj(plasticity=stdp_pair(), plasticity_params={"A": 1.0})


def test_plasticity_params_without_rule():
    with pytest.raises(SpecError, match=r"projection 'p': plasticity_params given without"):
        _proj(plasticity_params={"A_plus": 1.0})


# ------------------------------------------------------------------ network
@pytest.mark.parametrize("disc", [None, 1.0, {"dt": 1.0}])
def test_missing_discretization(disc):
    with pytest.raises(SpecError, match=r"network 'net': a Discretization is required"):
        _net(discretization=disc)


@pytest.mark.parametrize("dt", [0, -1.0, float("nan"), float("inf"), "1"])
def test_bad_dt(dt):
    with pytest.raises(SpecError, match=r"discretization: dt must be a positive number of ms"):
        Discretization(dt=dt)


def test_bad_reset_mode():
    with pytest.raises(SpecError, match=r"discretization: reset_mode 'later' is not one of"):
        Discretization(dt=1.0, reset_mode="later")


def test_duplicate_population_names():
    with pytest.raises(SpecError, match=r"network 'net': two populations named 'a'"):
        _net(populations=(Population("a", 1, if_curr_exp()), Population("a", 2, nir_lif())))


def test_projection_named_like_a_population():
    with pytest.raises(SpecError, match=r"network 'net': name 'a' used twice"):
        _net(projections=(_proj(name="a"),))


def test_state_probe_of_unknown_variable():
    with pytest.raises(
        SpecError,
        match=r"state probe on 'a': 'u' is not a state variable of "
        r"'IF_curr_exp'",
    ):
        _net(probes=(StateProbe("a", "u"),))


def test_state_probe_index_out_of_range():
    with pytest.raises(
        SpecError, match=r"state probe on 'a', variable 'v': index 3 out of range for size 3"
    ):
        _net(probes=(StateProbe("a", "v", (0, 3)),))


def test_probe_of_undefined_population():
    with pytest.raises(SpecError, match=r"probe: undefined population 'zz'"):
        _net(probes=(SpikeProbe("zz"),))


@pytest.mark.parametrize("fmt", ["dense", "Events", None])
def test_spike_probe_format_must_be_raster_or_events(fmt):
    with pytest.raises(SpecError, match=r"spike probe on 'a': format .* not one of 'raster'"):
        _net(probes=(SpikeProbe("a", format=fmt),))


def test_spike_probe_formats_accepted():
    net = _net(probes=(SpikeProbe("a"), SpikeProbe("a", format="events")))
    assert [pb.format for pb in net.probes] == ["raster", "events"]


def test_current_input_to_non_input_variable():
    with pytest.raises(
        SpecError,
        match=r"current input to 'a': 'v' is not an input variable of "
        r"model 'IF_curr_exp'",
    ):
        _net(currents=(CurrentInput("a", "v", np.zeros(3)),))


def test_current_input_size_mismatch():
    with pytest.raises(SpecError, match=r"current input to 'a': size mismatch, 2 columns for 3"):
        _net(currents=(CurrentInput("a", "i_ext", np.zeros((5, 2))),))


def test_current_input_to_undefined_population():
    with pytest.raises(SpecError, match=r"current input: undefined population 'zz'"):
        _net(currents=(CurrentInput("zz", "i_ext", np.zeros(3)),))


# ------------------------------------------------------------------ compile and run
def test_run_input_with_wrong_shape():
    sim = neuromem.compile(_net(), backend="numba")
    with pytest.raises(
        SpecError,
        match=r"run: input for population 'src' has shape \(4, 3\), "
        r"expected \(steps, size\) = \(4, 2\)",
    ):
        sim.run(4, {"src": np.zeros((4, 3), bool)})


def test_run_spikes_for_non_source_population():
    sim = neuromem.compile(_net(), backend="numba")
    with pytest.raises(SpecError, match=r"run: population 'a' is not a spike source"):
        sim.run(4, {"a": np.zeros((4, 3), bool)})


def test_run_input_for_undefined_population_and_variable():
    sim = neuromem.compile(_net(), backend="numba")
    with pytest.raises(SpecError, match=r"run: input for undefined population 'zz'"):
        sim.run(2, {"zz": np.zeros((2, 1), bool)})
    with pytest.raises(SpecError, match=r"run: 'v' is not an input variable of population 'a'"):
        sim.run(2, {"a.v": np.zeros(3)})
    with pytest.raises(SpecError, match=r"run: input 'a.i_ext' has shape \(2, 2\)"):
        sim.run(2, {"a.i_ext": np.zeros((2, 2))})
    with pytest.raises(SpecError, match=r"run: steps must be a non-negative integer"):
        sim.run(-1)


def test_compile_with_a_different_dt():
    with pytest.raises(
        SpecError,
        match=r"compile: dt=0.5 ms differs from the network's "
        r"discretization dt=1.0 ms",
    ):
        neuromem.compile(_net(), backend="numba", dt=0.5)


def test_compile_with_the_same_dt_is_accepted():
    neuromem.compile(_net(), backend="numba", dt=1.0)


def test_unknown_backend():
    with pytest.raises(
        CapabilityError,
        match=r"unknown backend 'nest'; available: numba, torch,"
        r" brian2",
    ):
        neuromem.compile(_net(), backend="nest")


def test_backend_lacking_a_feature():
    net = _net(discretization=Discretization(dt=1.0, reset_mode="next_step"))
    with pytest.raises(
        CapabilityError,
        match=r"backend 'brian2' cannot run this network: it "
        r"lacks 'reset_mode:next_step' \(supported by: "
        r"numba, torch\)",
    ):
        neuromem.compile(net, backend="brian2")


def test_unknown_backend_option():
    with pytest.raises(CapabilityError, match=r"backend 'numba': unknown option\(s\) batch_size"):
        neuromem.compile(_net(), backend="numba", batch_size=1)


def test_nonlinear_ode_with_exponential_euler():
    quad = NeuronModel(
        "quad", state={"v": ("mV", 0.0)}, odes={"v": "v * v - v"}, threshold="v > 1", reset="v = 0"
    )
    net = Network("net", DT, (Population("q", 2, quad),))
    with pytest.raises(
        SpecError,
        match=r"population 'q' \(model 'quad'\), equation dv/dt: not "
        r"linear in v.*use 'euler'",
    ):
        neuromem.compile(net, backend="numba")
    # the same model is accepted with forward Euler
    euler = Network("net", Discretization(dt=1.0, integrator="euler"), (Population("q", 2, quad),))
    neuromem.compile(euler, backend="numba")


def test_conditional_in_ode_is_refused_at_lowering():
    m = NeuronModel("cond", state={"v": ("mV", 0.0)}, odes={"v": "1 if v > 0 else -1"})
    with pytest.raises(
        SpecError,
        match=r"population 'c' \(model 'cond'\), equation dv/dt: cannot "
        r"integrate",
    ):
        neuromem.compile(Network("net", DT, (Population("c", 1, m),)), backend="numba")


def test_zero_time_constant_is_refused_before_it_divides():
    pop = Population("a", 2, if_curr_exp(), {"tau_m": [20.0, 0.0]})
    with pytest.raises(
        SpecError,
        match=r"population 'a' \(model 'IF_curr_exp'\): parameter 'tau_m' is 0.0 \(element 1\); "
        r"it must be > 0",
    ):
        neuromem.compile(Network("net", DT, (pop,)), backend="numba")


def test_non_finite_derived_constant():
    model = NeuronModel(
        "grow", state={"v": ("mV", 0.0)}, params={"k": ("1", 1.0)}, odes={"v": "-v * exp(k)"}
    )
    pop = Population("a", 2, model, {"k": [1.0, 800.0]})
    with pytest.raises(SpecError, match=r"population 'a' \(model 'grow'\): .* is not finite"):
        neuromem.compile(Network("net", DT, (pop,)), backend="numba")


def test_two_current_inputs_for_one_variable():
    net = _net(
        currents=(CurrentInput("a", "i_ext", np.zeros(3)), CurrentInput("a", "i_ext", np.ones(3)))
    )
    with pytest.raises(SpecError, match=r"current input: two inputs drive a.i_ext"):
        neuromem.compile(net, backend="numba")
