"""The numba backend against closed forms, and the CA3 memory as an acceptance test."""

from __future__ import annotations

import math

import numpy as np
import pytest

import neuromem
from neuromem.spec import (
    CurrentInput,
    Discretization,
    Network,
    Population,
    Projection,
    SpikeArray,
    SpikeProbe,
    StateProbe,
    if_curr_exp,
    spike_source,
    stdp_pair,
)

LIF = dict(
    cm=0.25,
    tau_m=10.0,
    v_rest=-65.0,
    v_reset=-70.0,
    v_thresh=-50.0,
    tau_refrac=2.0,
    tau_syn_E=2.0,
    tau_syn_I=5.0,
    i_offset=0.0,
)


# ------------------------------------------------------------------ IF_curr_exp closed form
@pytest.mark.parametrize("dt, tau_syn", [(1.0, 2.0), (0.1, 0.5), (1.0, 0.3)])
def test_if_curr_exp_matches_closed_form(dt, tau_syn):
    w, v0, steps = 1.5, -68.0, 60
    params = dict(LIF, tau_syn_E=tau_syn, v_thresh=1e3)  # never fires
    net = Network(
        "one",
        Discretization(dt=dt),
        (
            Population("src", 1, spike_source(), stimulus=SpikeArray([0], [0])),
            Population("n", 1, if_curr_exp(), params, {"v": v0}),
        ),
        (Projection("p", "src", "n", [0], [0], w, 1),),
        probes=(StateProbe("n", "v"), StateProbe("n", "i_exc")),
    )
    res = neuromem.compile(net, backend="numba").run(steps)
    v_rec, i_rec = res.state["n.v"][:, 0], res.state["n.i_exc"][:, 0]

    # spike in step 0 through delay 1: the step-averaged current is added at the start of step 1
    e_m, e_s = math.exp(-dt / params["tau_m"]), math.exp(-dt / tau_syn)
    R = params["tau_m"] / params["cm"]  # MOhm
    current = w * tau_syn / dt * (1.0 - e_s)  # nA, held over step 1
    v, v_exp, i_exp = v0, [], []
    for t in range(steps):
        I = current * e_s ** (t - 1) if t >= 1 else 0.0
        v = params["v_rest"] + (v - params["v_rest"]) * e_m + R * I * (1.0 - e_m)
        v_exp.append(v)
        i_exp.append(I * e_s)  # recorded after decay
    np.testing.assert_allclose(v_rec, v_exp, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(i_rec, i_exp, rtol=1e-13, atol=1e-300)
    assert i_rec[0] == 0.0 and v_rec[0] != v0  # leak only in step 0


# ------------------------------------------------------------------ refractoriness
@pytest.mark.parametrize(
    "dt, tau_refrac", [(1.0, 0.1), (1.0, 1.0), (1.0, 2.5), (1.0, 3.0), (0.5, 1.2), (0.1, 0.0)]
)
def test_refractory_period(dt, tau_refrac):
    """Driven hard enough to cross threshold in one step: a spike every ceil(tau_refrac/dt) + 1
    steps, with the membrane held at v_reset during the ceil(tau_refrac/dt) refractory steps."""
    params = dict(LIF, tau_refrac=tau_refrac, tau_m=1.0)
    refr = math.ceil(tau_refrac / dt - 1e-9)
    steps = 12 * (refr + 1)
    net = Network(
        "refr",
        Discretization(dt=dt),
        (Population("n", 1, if_curr_exp(), params),),
        currents=(CurrentInput("n", "i_ext", [200.0]),),
        probes=(SpikeProbe("n"), StateProbe("n", "v")),
    )
    res = neuromem.compile(net, backend="numba").run(steps)
    spikes = np.nonzero(res.spikes["n"][:, 0])[0]
    assert spikes[0] == 0
    assert np.all(np.diff(spikes) == refr + 1), spikes
    v = res.state["n.v"][:, 0]
    for s in spikes:
        held = v[s : s + refr + 1]  # spike step + refractory steps
        assert np.all(held == params["v_reset"]), held


# ------------------------------------------------------------------ delays
def test_delays_deliver_at_t_plus_d():
    delays = [1, 2, 3, 7]
    t_spike = [0, 4, 9]
    n = len(delays)
    net = Network(
        "delays",
        Discretization(dt=1.0),
        (
            Population("src", 1, spike_source(), stimulus=SpikeArray(t_spike, [0] * len(t_spike))),
            Population("n", n, if_curr_exp(), dict(LIF, v_thresh=1e3), {"v": -65.0}),
        ),
        (Projection("p", "src", "n", [0] * n, list(range(n)), 1.0, delays),),
        probes=(StateProbe("n", "i_exc"), StateProbe("n", "v")),
    )
    res = neuromem.compile(net, backend="numba").run(30)
    i_exc = res.state["n.i_exc"]
    decay = math.exp(-1.0 / LIF["tau_syn_E"])
    jump = LIF["tau_syn_E"] * (1.0 - decay) * decay  # one arrival, as recorded
    for k, d in enumerate(delays):
        arrivals = np.zeros(30, bool)
        arrivals[[t + d for t in t_spike if t + d < 30]] = True
        # the current jumps exactly in the steps t + d (relative to its decayed previous value)
        expected_jumps = np.diff(np.concatenate([[0.0], i_exc[:, k]])) > 0
        assert np.array_equal(expected_jumps, arrivals), (d, np.nonzero(expected_jumps)[0])
        first = t_spike[0] + d
        assert i_exc[first, k] == pytest.approx(jump, rel=1e-13)
        v = res.state["n.v"][:, k]
        assert np.all(v[:first] == -65.0) and v[first] > -65.0  # acts in the arrival step


def test_runtime_spikes_and_delay_across_run_calls():
    """A spike given to run() in the last step of one call arrives d steps later in the next."""
    net = Network(
        "rt",
        Discretization(dt=1.0),
        (
            Population("src", 1, spike_source()),
            Population("n", 1, if_curr_exp(), dict(LIF, v_thresh=1e3), {"v": -65.0}),
        ),
        (Projection("p", "src", "n", [0], [0], 1.0, 3),),
        probes=(StateProbe("n", "i_exc"),),
    )
    sim = neuromem.compile(net, backend="numba")
    given = np.zeros((5, 1), bool)
    given[4] = True
    sim.run(5, {"src": given})
    sim.run(5)
    i_exc = sim.probes.state["n.i_exc"][:, 0]
    assert np.nonzero(i_exc)[0][0] == 4 + 3


# ------------------------------------------------------------------ STDP pair rule
#: fast post cell: one drive spike of 40 nA makes exactly one spike, in its arrival step
POST = dict(LIF, tau_m=1.0, tau_syn_E=0.3, tau_refrac=1.0)


def _stdp_net(t_pre, t_post, w0, rule, params):
    """Pre spike source -> post LIF through a plastic synapse on the *inhibitory* port (so it
    never makes the post neuron fire); the post neuron fires when a strong drive spike arrives
    (delay 1), i.e. in step t_post."""
    drive_steps = [t - 1 for t in t_post]
    pops = (
        Population("pre", 1, spike_source(), stimulus=SpikeArray(t_pre, [0] * len(t_pre))),
        Population(
            "drive", 1, spike_source(), stimulus=SpikeArray(drive_steps, [0] * len(drive_steps))
        ),
        Population("post", 1, if_curr_exp(), POST, {"v": -65.0}),
    )
    projs = (
        Projection("drive_post", "drive", "post", [0], [0], 40.0, 1),
        Projection(
            "syn", "pre", "post", [0], [0], w0, 1, "inh", plasticity=rule, plasticity_params=params
        ),
    )
    return Network(
        "stdp", Discretization(dt=1.0), pops, projs, probes=(SpikeProbe("pre"), SpikeProbe("post"))
    )


def _final_weight(net, steps=20):
    sim = neuromem.compile(net, backend="numba")
    res = sim.run(steps)
    return sim.state["weights"]["syn"][0], res


STDP = dict(tau_plus=5.0, tau_minus=4.0, A_plus=0.1, A_minus=0.15, w_min=0.0, w_max=1.0)


@pytest.mark.parametrize("w0", [0.5, 0.95])
def test_stdp_pre_then_post_potentiates(w0):
    net = _stdp_net([3], [5], w0, stdp_pair("additive"), STDP)
    w, res = _final_weight(net)
    assert np.nonzero(res.spikes["post"][:, 0])[0].tolist() == [5]
    expected = min(w0 + STDP["A_plus"] * math.exp(-2.0 / STDP["tau_plus"]), STDP["w_max"])
    assert w == pytest.approx(expected, rel=1e-13)
    if w0 == 0.95:
        assert w == STDP["w_max"]  # clipped


@pytest.mark.parametrize("w0", [0.5, 0.05])
def test_stdp_post_then_pre_depresses(w0):
    net = _stdp_net([5], [3], w0, stdp_pair("additive"), STDP)
    w, res = _final_weight(net)
    assert np.nonzero(res.spikes["post"][:, 0])[0].tolist() == [3]
    expected = max(w0 - STDP["A_minus"] * math.exp(-2.0 / STDP["tau_minus"]), STDP["w_min"])
    assert w == pytest.approx(expected, rel=1e-13)
    if w0 == 0.05:
        assert w == STDP["w_min"]  # clipped


def test_stdp_scaled_by_w_max_and_multiplicative():
    params = dict(STDP, w_max=6.0, A_plus=0.2)
    w, _ = _final_weight(
        _stdp_net([3], [5], 1.0, stdp_pair("additive", scale_by_w_max=True), params)
    )
    assert w == pytest.approx(1.0 + 0.2 * 6.0 * math.exp(-2.0 / 5.0), rel=1e-13)
    w, _ = _final_weight(_stdp_net([3], [5], 1.0, stdp_pair("multiplicative"), params))
    assert w == pytest.approx(1.0 + 0.2 * (6.0 - 1.0) * math.exp(-2.0 / 5.0), rel=1e-13)


@pytest.mark.parametrize("coincidence", ["ignore", "spinnaker", "potentiate"])
def test_stdp_coincident_pre_and_post(coincidence):
    """Post at 2, then pre and post together at 5: with "ignore" the coincident pair counts for
    nothing and the pre spike is depressed by the post spike of step 2; sPyNNaker's rule skips
    that depression; "potentiate" counts the pair at distance 0 (one full A_plus step)."""
    net = _stdp_net([5], [2, 5], 0.5, stdp_pair("additive", coincidence=coincidence), STDP)
    w, res = _final_weight(net)
    assert np.nonzero(res.spikes["post"][:, 0])[0].tolist() == [2, 5]
    depression = STDP["A_minus"] * math.exp(-3.0 / STDP["tau_minus"])
    expected = {
        "ignore": 0.5 - depression,
        "spinnaker": 0.5,
        "potentiate": min(0.5 + STDP["A_plus"], STDP["w_max"]) - depression,
    }[coincidence]
    assert w == pytest.approx(expected, rel=1e-13)


def test_stdp_all_to_all_pairing_sums_traces():
    """Two pre spikes before one post spike: both pairs count (traces add)."""
    net = _stdp_net([1, 3], [6], 0.2, stdp_pair("additive"), STDP)
    w, _ = _final_weight(net)
    dw = STDP["A_plus"] * (math.exp(-5.0 / 5.0) + math.exp(-3.0 / 5.0))
    # the second pre spike also sees no earlier post spike: no depression
    assert w == pytest.approx(0.2 + dw, rel=1e-13)


# ------------------------------------------------------------------ reset
def test_reset_restores_initial_state_and_weights():
    net = _stdp_net([3, 8, 12], [5, 10], 0.5, stdp_pair("additive"), STDP)
    net = Network(
        net.name,
        net.discretization,
        net.populations,
        net.projections,
        probes=net.probes + (StateProbe("post", "v"),),
    )
    sim = neuromem.compile(net, backend="numba")
    initial = sim.state
    first = sim.run(25)
    assert sim.t == 25
    assert sim.state["weights"]["syn"][0] != 0.5
    sim.reset()
    assert sim.t == 0 and sim.probes.spikes == {} and sim.probes.state == {}
    for pop, values in initial.items():
        for k, x in values.items():
            assert np.array_equal(sim.state[pop][k], x), (pop, k)
    again = sim.run(25)
    for k in first.spikes:
        assert np.array_equal(first.spikes[k], again.spikes[k]), k
    assert np.array_equal(first.state["post.v"], again.state["post.v"])
    assert sim.state["weights"]["syn"][0] == pytest.approx(
        0.5
        + 0.1 * math.exp(-2 / 5.0)  # pre 3, post 5
        - 0.15 * math.exp(-3 / 4.0)  # post 5, pre 8
        + 0.1 * (math.exp(-7 / 5.0) + math.exp(-2 / 5.0))  # pre 3 and 8, post 10
        - 0.15 * (math.exp(-7 / 4.0) + math.exp(-2 / 4.0)),
        rel=1e-12,
    )  # post 5 and 10, pre 12


def test_chunked_runs_equal_one_run():
    net = _stdp_net([3, 8, 12], [5, 10], 0.5, stdp_pair("additive"), STDP)
    a = neuromem.compile(net, backend="numba")
    a.run(25)
    b = neuromem.compile(net, backend="numba")
    for n in (7, 1, 10, 7):
        b.run(n)
    for k in a.probes.spikes:
        assert np.array_equal(a.probes.spikes[k], b.probes.spikes[k])
    assert a.state["weights"]["syn"][0] == b.state["weights"]["syn"][0]


# ------------------------------------------------------------------ NIR models
@pytest.mark.parametrize("integrator", ["exponential_euler", "euler"])
def test_nir_lif_under_constant_drive_matches_its_discretisation(integrator):
    """tau dv/dt = (v_leak - v) + r i: exact per-step decay (exponential_euler) or forward Euler,
    spike at v >= v_threshold, reset to v_reset, same step."""
    from neuromem.spec import nir_lif

    dt, tau, r, i = 0.5, 4.0, 2.0, 0.6
    pop = Population("n", 1, nir_lif(), {"tau": tau, "r": r, "v_threshold": 1.0})
    net = Network(
        "nir",
        Discretization(dt=dt, integrator=integrator),
        (pop,),
        currents=(CurrentInput("n", "i_ext", np.array([i])),),
        probes=(SpikeProbe("n"), StateProbe("n", "v")),
    )
    res = neuromem.compile(net, backend="numba").run(40)
    v, expected = 0.0, []
    for _ in range(40):
        if integrator == "euler":
            v = v + dt * ((0.0 - v) + r * i) / tau
        else:
            v = r * i + (v - r * i) * math.exp(-dt / tau)
        v = 0.0 if v >= 1.0 else v
        expected.append(v)
    np.testing.assert_allclose(res.state["n.v"][:, 0], expected, rtol=0, atol=1e-12)
    assert res.spikes["n"].sum() >= 2


def test_nir_cuba_lif_event_adds_w_in_times_weight_to_the_current():
    from neuromem.spec import nir_cuba_lif

    src = Population("s", 1, spike_source(), stimulus=SpikeArray([0], [0]))
    pop = Population("n", 1, nir_cuba_lif(), {"w_in": 0.25, "v_threshold": 10.0})
    proj = Projection("p", "s", "n", [0], [0], 2.0, 1)
    net = Network(
        "cuba", Discretization(dt=1.0), (src, pop), (proj,), probes=(StateProbe("n", "i_syn"),)
    )
    i_syn = neuromem.compile(net, backend="numba").run(3).state["n.i_syn"][:, 0]
    # delivered at step 1 (0.25 * 2.0), then decays by exp(-dt / tau_syn) within that step
    assert i_syn[0] == 0.0
    assert i_syn[1] == pytest.approx(0.5 * math.exp(-1.0 / 5.0), rel=1e-12)


# ------------------------------------------------------------------ performance paths
def _mixed_net(seed: int = 3, n: int = 300, per_neuron: bool = False) -> Network:
    """Two neuron models (two kernel groups), a Poisson source, excitation and inhibition with
    several delays, recurrent and feed-forward: every path of the numba driver."""
    from neuromem.spec import PoissonSpikes, fixed_probability, nir_cuba_lif

    rng = np.random.default_rng(seed)
    params = dict(LIF, tau_m=10.0, v_thresh=-55.0, tau_refrac=2.0)
    if per_neuron:  # the same values as arrays, except a few neurons
        params["tau_m"] = np.full(n, 10.0)
        params["tau_m"][::7] = 12.0
    pops = (
        Population("src", 50, spike_source(), stimulus=PoissonSpikes(80.0, seed=seed)),
        Population("a", n, if_curr_exp(), params, {"v": rng.uniform(-65.0, -55.0, n)}),
        Population("b", 40, nir_cuba_lif(), {"v_threshold": 0.5, "tau_mem": 5.0}),
    )
    projs = []
    for k, (pre, post, n_pre, n_post, p, w, port) in enumerate(
        [
            ("src", "a", 50, n, 0.2, 1.2, "exc"),
            ("a", "a", n, n, 0.05, 0.6, "exc"),
            ("a", "a", n, n, 0.05, 1.5, "inh"),
            ("a", "b", n, 40, 0.1, 0.3, "exc"),
        ]
    ):
        i, j = fixed_probability(n_pre, n_post, p, seed=seed + k)
        delay = rng.integers(1, 4, i.size) if k != 1 else 1
        projs.append(Projection(f"p{k}", pre, post, i, j, w, delay, port))
    return Network(
        "mixed",
        Discretization(dt=0.5),
        pops,
        tuple(projs),
        probes=(SpikeProbe("a"), SpikeProbe("b"), StateProbe("a", "i_exc"), StateProbe("a", "v")),
    )


def _run_all(net, steps=200, inputs=None):
    sim = neuromem.compile(net, backend="numba")
    res = sim.run(steps, inputs)
    return res, sim.state


def _assert_same(r1, r2):
    (a, sa), (b, sb) = r1, r2
    assert a.spikes.keys() == b.spikes.keys() and a.state.keys() == b.state.keys()
    for k in a.spikes:
        assert np.array_equal(a.spikes[k], b.spikes[k]), k
    for k in a.state:  # bit for bit (0.0 and -0.0 included)
        assert np.array_equal(a.state[k].view(np.int64), b.state[k].view(np.int64)), k
    for k in sa["weights"]:
        assert np.array_equal(sa["weights"][k], sb["weights"][k]), k


def test_scattered_and_dense_delivery_agree(monkeypatch):
    """Events delivered one by one from the touch lists, or by a dense pass over the slot (the
    path taken when a slot overflows its list), give the same bits."""
    import neuromem.backends.numba as nb

    net = _mixed_net()
    default = _run_all(net)
    assert default[0].spikes["a"].sum() > 100 and default[0].spikes["b"].sum() > 0
    monkeypatch.setattr(nb, "_touch_capacity", lambda size: 10**6)  # never overflows
    _assert_same(default, _run_all(net))
    monkeypatch.setattr(nb, "_touch_capacity", lambda size: 1)  # overflows whenever >= 2
    _assert_same(default, _run_all(net))


def test_counted_rings_equal_weight_rings(monkeypatch):
    """A port fed by one fixed-weight projection gets an integer ring that counts events and
    delivers ``table[count]``: the same bits as summing the weights, with the scattered and
    the dense delivery; a port fed by two projections keeps its float ring."""
    import neuromem.backends.numba as nb

    monkeypatch.setattr(nb, "_COUNT_MIN_BYTES", 0)  # the groups here are small
    net = _mixed_net()
    sim = neuromem.compile(net, backend="numba")
    counted = {k: v[0] for k, v in nb._counted_ports(sim.program, sim._groups, 1).items()}
    group = {p.name: g.name for g in sim._groups for p in g.populations}
    # a.exc has two projections (in -> a, a -> a); a.inh and b.exc one each
    assert counted == {(group["a"], "inh"): np.uint8, (group["b"], "exc"): np.uint8}
    assert sim._arrays[f"{group['a']}__ring_exc"].dtype == np.float64
    most = 0  # events pending per neuron and slot between run calls: table entries past 1
    for _ in range(20):
        sim.run(10)
        most = max(most, *(int(sim._arrays[f"{g}__ring_{port}"].max()) for g, port in counted))
    assert most > 1
    counts = _run_all(net)
    for capacity in (lambda size: 10**6, lambda size: 1):  # scattered only, dense at >= 2
        with monkeypatch.context() as m:
            m.setattr(nb, "_touch_capacity", capacity)
            _assert_same(counts, _run_all(net))
            m.setattr(nb, "_counted_ports", lambda prog, groups, slots: {})
            _assert_same(counts, _run_all(net))


def test_uniform_constants_as_scalars_change_no_bit(monkeypatch):
    """Constants uniform over a group are scalar arguments; as per-neuron arrays (forced) every
    bit of the run is the same, also for a group with per-neuron values."""
    import neuromem.backends.numba as nb

    for per_neuron in (False, True):
        net = _mixed_net(per_neuron=per_neuron)
        scalars = _run_all(net)
        with monkeypatch.context() as m:
            m.setattr(nb, "uniform_value", lambda values: None)
            _assert_same(scalars, _run_all(net))


def test_undriven_input_literal_equals_zero_current():
    """An undriven input variable is the literal 0.0 in the kernel: identical to driving it
    with zeros (the array variant), and run calls switch between the variants freely."""
    net = _mixed_net()
    zeros = {"a.i_ext": np.zeros(300)}
    _assert_same(_run_all(net), _run_all(net, inputs=zeros))
    a = neuromem.compile(net, backend="numba")
    b = neuromem.compile(net, backend="numba")
    drive = np.linspace(0.0, 0.3, 300)
    a.run(50), a.run(50, {"a.i_ext": drive}), a.run(50)
    b.run(50, zeros), b.run(50, {"a.i_ext": drive}), b.run(50, zeros)
    for k in a.probes.spikes:
        assert np.array_equal(a.probes.spikes[k], b.probes.spikes[k])
    assert np.array_equal(a.probes.state["a.v"], b.probes.state["a.v"])


def test_spike_probe_only_where_asked():
    """Only probed populations are recorded (no raster for the rest)."""
    net = _mixed_net()
    net = Network(
        net.name, net.discretization, net.populations, net.projections, probes=(SpikeProbe("b"),)
    )
    res = neuromem.compile(net, backend="numba").run(100)
    assert set(res.spikes) == {"b"} and res.spikes["b"].shape == (100, 40)
    assert res.spikes["b"].sum() == _run_all(_mixed_net(), 100)[0].spikes["b"].sum()


# ------------------------------------------------------------------ fixed_probability
def test_fixed_probability_per_row_statistics_and_order():
    from neuromem.spec import fixed_probability

    n_pre, n_post, p = 400, 900, 0.03
    pre, post = fixed_probability(n_pre, n_post, p, seed=11)
    assert pre.dtype == np.int64 and post.dtype == np.int64
    assert np.all((np.diff(pre) > 0) | ((np.diff(pre) == 0) & (np.diff(post) > 0)))  # sorted
    assert post.min() >= 0 and post.max() < n_post and pre.max() < n_pre
    mean, sd = n_pre * n_post * p, math.sqrt(n_pre * n_post * p * (1 - p))
    assert abs(pre.size - mean) < 5 * sd
    # post indices uniform: chi-square over 9 bins of 100
    counts = np.bincount(post // 100, minlength=9)
    chi2 = ((counts - pre.size / 9) ** 2 / (pre.size / 9)).sum()
    assert chi2 < 30  # 8 degrees of freedom: P(chi2 > 30) ~ 2e-4
    again = fixed_probability(n_pre, n_post, p, seed=11)
    assert np.array_equal(pre, again[0]) and np.array_equal(post, again[1])
    other = fixed_probability(n_pre, n_post, p, seed=12)
    assert not np.array_equal(post[:50], other[1][:50])


def test_fixed_probability_continuation_rows(monkeypatch):
    """Rows that outgrow their block's gap draws continue from the same stream: still sorted,
    without duplicates, with the right count."""
    import neuromem.spec.connectivity as conn

    monkeypatch.setattr(conn, "_WIDTH_SD", 0.0)
    monkeypatch.setattr(conn, "_GAP_BLOCK", 64)
    n_pre, n_post, p = 300, 500, 0.2
    pre, post = conn.fixed_probability(n_pre, n_post, p, seed=5)
    assert np.all((np.diff(pre) > 0) | ((np.diff(pre) == 0) & (np.diff(post) > 0)))
    row = np.bincount(pre, minlength=n_pre)
    assert (row > n_post * p + 10).any()  # some rows needed a continuation
    assert abs(pre.size - n_pre * n_post * p) < 5 * math.sqrt(n_pre * n_post * p * (1 - p))


def test_fixed_probability_memory_is_per_synapse_and_edges():
    from neuromem.errors import SpecError
    from neuromem.spec import fixed_probability

    # 200 x 10**8 pairs: a dense draw would need 160 GB; ~2,000 synapses here
    pre, post = fixed_probability(200, 10**8, 1e-7, seed=1)
    assert 1_700 < pre.size < 2_300 and post.max() < 10**8
    assert fixed_probability(3, 4, 0.0, seed=0)[0].size == 0
    assert fixed_probability(0, 4, 0.5, seed=0)[0].size == 0
    pre, post = fixed_probability(5, 5, 1.0, seed=0)
    assert pre.size == 25
    pre, post = fixed_probability(5, 5, 1.0, seed=0, allow_self=False)
    assert pre.size == 20 and not np.any(pre == post)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(SpecError, match="fixed_probability: p"):
            fixed_probability(3, 3, bad, seed=0)
    with pytest.raises(SpecError, match="n_post"):
        fixed_probability(3, -1, 0.5, seed=0)


# ------------------------------------------------------------------ events probes
def _with_events(net: Network, pops: tuple[str, ...]) -> Network:
    probes = net.probes + tuple(SpikeProbe(p, format="events") for p in pops)
    return Network(net.name, net.discretization, net.populations, net.projections, probes=probes)


def _assert_events_equal_raster(probes, pops):
    for p in pops:
        steps, neurons = probes.events[p]
        assert steps.dtype == np.int64 and neurons.dtype == np.int64
        r_steps, r_neurons = np.nonzero(probes.spikes[p])
        assert np.array_equal(steps, r_steps) and np.array_equal(neurons, r_neurons), p
        assert all(
            np.array_equal(a, b)
            for a, b in zip(probes.spike_times(p), (steps, neurons), strict=True)
        )


@pytest.mark.parametrize("room", [None, 0])
def test_events_probe_equals_raster_over_run_calls(monkeypatch, room):
    """An events probe records exactly the raster's nonzero entries, in time order, over
    several run calls (steps counted from the last reset) and after a reset; with no spare
    room (room = 0) the buffers grow at almost every step without losing an event."""
    import neuromem.backends.numba as nb

    if room is not None:
        monkeypatch.setattr(nb, "_EVENTS_MIN", room)
    pops = ("src", "a", "b")
    net = _with_events(_mixed_net(), pops)
    sim = neuromem.compile(net, backend="numba")
    first = None
    for _ in range(2):
        for steps in (30, 0, 170, 1, 99):
            res = sim.run(steps)
            if steps:
                _assert_events_equal_raster(res, ("a", "b"))
        _assert_events_equal_raster(sim.probes, ("a", "b"))
        assert sim.probes.events["a"][0].size > 100 and sim.probes.n_steps == 300
        first = first or {p: sim.probes.events[p] for p in pops}
        assert all(
            np.array_equal(x, y)
            for p in pops
            for x, y in zip(first[p], sim.probes.events[p], strict=True)
        )
        sim.reset()
        assert sim.probes.events == {} and sim.probes.n_steps == 0


def test_events_only_probe_records_no_raster():
    net = _mixed_net()
    events = Network(
        net.name,
        net.discretization,
        net.populations,
        net.projections,
        probes=(SpikeProbe("a", "events"),),
    )
    res = neuromem.compile(events, backend="numba").run(200)
    assert res.spikes == {} and set(res.events) == {"a"}
    raster = _run_all(net)[0].spikes["a"]
    assert all(
        np.array_equal(x, y) for x, y in zip(res.spike_times("a"), np.nonzero(raster), strict=True)
    )


def test_bad_spike_probe_format_is_refused():
    from neuromem.errors import SpecError

    with pytest.raises(SpecError, match=r"spike probe on 'a'.*'dense'.*'raster', 'events'"):
        SpikeProbe("a", format="dense")


def test_gather_spikes_lists_set_flags_in_order():
    """The word-wise spike gathering equals a plain scan for any range and density."""
    from neuromem.backends._numba_kernels import gather_spikes

    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 1500))
        spk = np.zeros(-(-n // 8) * 8, np.bool_)
        spk[:n] = rng.random(n) < rng.choice([0.001, 0.05, 0.5, 1.0])
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo, n + 1))
        out = np.zeros(spk.size + 3, np.int64)
        out[:3] = -1  # entries already in the list stay
        m = gather_spikes(spk, spk.view(np.uint64), lo, hi, out, 3)
        assert np.array_equal(out[3:m], np.flatnonzero(spk[lo:hi]) + lo)
        assert np.all(out[:3] == -1)
