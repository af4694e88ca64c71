"""The Brian2 backend reproduces the numba backend spike for spike.

The default tests use ``target="numpy"`` (no C compilation: a cold Cython build of the CA3
network compiles ~80 extensions and takes minutes on two cores); the Cython target is checked by
the tests marked ``slow``. Run ``python tests/test_brian2_backend.py [numpy|cython]`` to print
the agreement table of docs/brian2_agreement.md.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

pytest.importorskip("brian2")

import neuromem  # noqa: E402
from neuromem.errors import CapabilityError  # noqa: E402
from neuromem.spec import (  # noqa: E402
    Discretization,
    Network,
    PoissonSpikes,
    Population,
    Projection,
    SpikeProbe,
    StateProbe,
    fixed_probability,
    if_curr_exp,
    spike_source,
    stdp_pair,
)


# ------------------------------------------------------------------------------- networks
def random_network(
    n: int = 1000, n_in: int = 200, seed: int = 1, state_probe: bool = False
) -> Network:
    """Random recurrent IF_curr_exp network (80 % exc, 20 % inh) driven by 20 Hz Poisson
    inputs, with pair STDP on exc -> exc and heterogeneous delays (1-5 steps), dt = 1 ms."""
    n_exc = n * 4 // 5
    n_inh = n - n_exc
    lif = if_curr_exp()
    pops = (
        Population("inp", n_in, spike_source(), stimulus=PoissonSpikes(20.0, seed)),
        Population("exc", n_exc, lif, {"tau_refrac": 2.0}),
        Population("inh", n_inh, lif, {"tau_refrac": 1.0}),
    )
    rng = np.random.default_rng(seed)

    def proj(name, pre, post, npre, npost, p, w, port="exc", dmax=1, **kw):
        i, j = fixed_probability(npre, npost, p, seed + len(name))
        d = rng.integers(1, dmax + 1, i.size)
        return Projection(name, pre, post, i, j, w * rng.uniform(0.5, 1.5, i.size), d, port, **kw)

    projs = (
        proj("in_exc", "inp", "exc", n_in, n_exc, 0.1, 0.5),
        proj("in_inh", "inp", "inh", n_in, n_inh, 0.1, 0.5),
        proj(
            "exc_exc",
            "exc",
            "exc",
            n_exc,
            n_exc,
            0.05,
            0.1,
            dmax=5,
            plasticity=stdp_pair("additive"),
            plasticity_params=dict(A_plus=0.01, A_minus=0.012, w_max=0.3),
        ),
        proj("exc_inh", "exc", "inh", n_exc, n_inh, 0.1, 0.1, dmax=3),
        proj("inh_exc", "inh", "exc", n_inh, n_exc, 0.1, 0.4, "inh", dmax=2),
        proj("inh_inh", "inh", "inh", n_inh, n_inh, 0.1, 0.4, "inh"),
    )
    probes: tuple = tuple(SpikeProbe(p.name) for p in pops)
    if state_probe:
        probes += (StateProbe("exc", "v", (3, 0, 3, 7)),)
    return Network("random_stdp", Discretization(dt=1.0), pops, projs, probes=probes)


def compare_random(
    n: int, steps: int, target: str, chunks: int = 1, state_probe: bool = False
) -> dict:
    """Run numba and brian2 on :func:`random_network`; spike counts and differences."""
    net = random_network(n, state_probe=state_probe)
    out: dict = {}
    for backend, opts in (("numba", {}), ("brian2", {"target": target})):
        t0 = time.perf_counter()
        sim = neuromem.compile(net, backend=backend, **opts)
        t1 = time.perf_counter()
        for k in range(chunks):
            sim.run(steps // chunks + (steps % chunks if k == chunks - 1 else 0))
        out[backend] = {"sim": sim, "build_s": t1 - t0, "run_s": time.perf_counter() - t1}
    a, b = out["numba"]["sim"], out["brian2"]["sim"]
    out["counts"] = {
        p: (int(a.probes.spikes[p].sum()), int(b.probes.spikes[p].sum())) for p in a.probes.spikes
    }
    out["raster_diff"] = {
        p: int((a.probes.spikes[p] != b.probes.spikes[p]).sum()) for p in a.probes.spikes
    }
    wa, wb = a.state["weights"]["exc_exc"], b.state["weights"]["exc_exc"]
    out["w_max_abs_diff"] = float(np.abs(wa - wb).max())
    out["v_max_abs_diff"] = float(np.abs(a.state["exc"]["v"] - b.state["exc"]["v"]).max())
    return out


def ca3_pair(target: str):
    from neuromem.models.ca3_cam import CA3Memory

    mems = {}
    for backend, opts in (("numba", {}), ("brian2", {"target": target})):
        mem = CA3Memory(10, 10, backend=backend, **opts)
        mem.learn(0, [0, 1, 8, 9])
        by_cue = mem.recall(cue=0)
        by_content = mem.recall(content=[1])
        mems[backend] = (mem, by_cue, by_content)
    return mems


# ------------------------------------------------------------------------------- tests
def _check_ca3(target: str) -> None:
    mems = ca3_pair(target)
    (ref, ref_cue, ref_content), (mem, cue, content) = mems["numba"], mems["brian2"]
    assert np.nonzero(ref_cue)[0].tolist() == [0, 1, 8, 9]
    assert np.nonzero(ref_content)[0].tolist() == [0]
    np.testing.assert_array_equal(cue, ref_cue)
    np.testing.assert_array_equal(content, ref_content)
    assert set(mem.sim.probes.spikes) == set(ref.sim.probes.spikes)
    for pop, raster in ref.sim.probes.spikes.items():
        np.testing.assert_array_equal(mem.sim.probes.spikes[pop], raster, err_msg=pop)
    for q, w in ref.sim.state["weights"].items():
        np.testing.assert_array_equal(mem.sim.state["weights"][q], w, err_msg=q)


def test_ca3_rasters_equal_numba():
    _check_ca3("numpy")


@pytest.mark.slow
def test_ca3_rasters_equal_numba_cython():
    _check_ca3("cython")


def test_random_stdp_network_matches_numba():
    # 250 neurons, 400 steps in two run() calls (continuation across calls), with a state probe
    r = compare_random(250, 400, "numpy", chunks=2, state_probe=True)
    assert all(d == 0 for d in r["raster_diff"].values()), (r["counts"], r["raster_diff"])
    assert r["counts"]["exc"][0] > 100  # the network is active
    assert r["w_max_abs_diff"] == 0.0 and r["v_max_abs_diff"] == 0.0
    a, b = r["numba"]["sim"], r["brian2"]["sim"]
    np.testing.assert_array_equal(b.probes.state["exc.v"], a.probes.state["exc.v"])
    assert b.probes.state["exc.v"].shape == (400, 4)


def test_currents_and_plastic_spike_source_match_numba():
    # CurrentInput (steps, size) + run-time current, nir_cuba_lif, Hebbian rule from a spike
    # source (traces on the source group, pre_event/post_event flags), delays 1-3
    from neuromem.spec import CurrentInput, hebbian, nir_cuba_lif

    rng = np.random.default_rng(5)
    pops = (
        Population("src", 30, spike_source(), stimulus=PoissonSpikes(50.0, 3)),
        Population("out", 20, nir_cuba_lif(), {"tau_mem": 5.0, "w_in": 0.5}),
    )
    i, j = fixed_probability(30, 20, 0.3, 4)
    proj = Projection(
        "src_out",
        "src",
        "out",
        i,
        j,
        rng.uniform(0.1, 0.4, i.size),
        rng.integers(1, 4, i.size),
        plasticity=hebbian(),
        plasticity_params={"eta": 0.02, "w_max": 0.6},
    )
    net = Network(
        "cur",
        Discretization(dt=0.5, integrator="euler"),
        pops,
        (proj,),
        currents=(CurrentInput("out", "i_ext", rng.uniform(0.3, 0.9, (80, 20))),),
        probes=(SpikeProbe("out"), StateProbe("out", "v")),
    )
    drive = rng.uniform(0, 0.6, (100, 20))
    res = {}
    for backend, opts in (("numba", {}), ("brian2", {"target": "numpy"})):
        sim = neuromem.compile(net, backend=backend, **opts)
        sim.run(100, {"out.i_ext": drive})
        sim.run(50, {"out.i_ext": drive[0]})
        res[backend] = sim
    a, b = res["numba"], res["brian2"]
    assert a.probes.spikes["out"].sum() > 20
    np.testing.assert_array_equal(b.probes.spikes["out"], a.probes.spikes["out"])
    np.testing.assert_array_equal(b.probes.state["out.v"], a.probes.state["out.v"])
    np.testing.assert_array_equal(b.state["weights"]["src_out"], a.state["weights"]["src_out"])


def test_reset_replays_identically():
    sim = neuromem.compile(random_network(100), backend="brian2", target="numpy")
    first = sim.run(60).spikes["exc"].copy()
    w = sim.state["weights"]["exc_exc"].copy()
    sim.reset()
    assert sim.t == 0 and not sim.probes.spikes
    np.testing.assert_array_equal(sim.run(60).spikes["exc"], first)
    np.testing.assert_array_equal(sim.state["weights"]["exc_exc"], w)


def test_next_step_reset_is_a_capability_error():
    lif = if_curr_exp()
    net = Network(
        "ns",
        Discretization(dt=1.0, reset_mode="next_step"),
        (Population("a", 2, lif),),
        probes=(SpikeProbe("a"),),
    )
    with pytest.raises(CapabilityError) as exc:
        neuromem.compile(net, backend="brian2")
    msg = str(exc.value)
    assert "reset_mode:next_step" in msg and "brian2" in msg
    assert "supported by: numba, torch" in msg


def test_unknown_target_is_refused():
    with pytest.raises(neuromem.SpecError, match="target"):
        neuromem.compile(random_network(10, n_in=5), backend="brian2", target="cpp")


@pytest.mark.slow
def test_random_1000_neurons_one_second():
    r = compare_random(1000, 1000, "cython")
    assert all(d == 0 for d in r["raster_diff"].values()), (r["counts"], r["raster_diff"])


# ------------------------------------------------------------------------------- report
def main(target: str = "cython") -> None:
    mems = ca3_pair(target)
    print(f"target={target}")
    print("CA3 (learn cue 0 -> [0,1,8,9], recall by cue 0, recall by content [1])")
    print(f"{'population':<12} {'numba':>6} {'brian2':>6} identical")
    for pop, raster in mems["numba"][0].sim.probes.spikes.items():
        other = mems["brian2"][0].sim.probes.spikes[pop]
        print(
            f"{pop:<12} {int(raster.sum()):>6} {int(other.sum()):>6} "
            f"{np.array_equal(raster, other)}"
        )
    r = compare_random(1000, 1000, target)
    print("random LIF + STDP, 1000 neurons + 200 Poisson inputs, 1000 steps of 1 ms")
    print(f"{'population':<12} {'numba':>6} {'brian2':>6} differing raster entries")
    for pop, (a, b) in r["counts"].items():
        print(f"{pop:<12} {a:>6} {b:>6} {r['raster_diff'][pop]}")
    print(
        f"max |w_numba - w_brian2| = {r['w_max_abs_diff']}, "
        f"max |v_numba - v_brian2| = {r['v_max_abs_diff']}"
    )
    for b in ("numba", "brian2"):
        print(f"{b}: build {r[b]['build_s']:.1f} s, run {r[b]['run_s']:.1f} s")


if __name__ == "__main__":
    main(*sys.argv[1:2])


def test_events_probes_equal_rasters_on_every_backend():
    """SpikeProbe(format="events") gives the nonzero entries of the raster (time order,
    ascending neuron within a step) on numba, torch and brian2, over run calls and a reset."""
    import dataclasses

    net = random_network(300, 60, seed=3)
    pops = tuple(pb.population for pb in net.probes)
    net = dataclasses.replace(
        net, probes=net.probes + tuple(SpikeProbe(p, format="events") for p in pops)
    )
    backends = [("numba", {}), ("brian2", {"target": "numpy"})]
    try:
        import torch  # noqa: F401

        backends.append(("torch", {}))
    except ImportError:
        pass
    reference = None
    for backend, opts in backends:
        sim = neuromem.compile(net, backend=backend, **opts)
        for _ in range(2):
            for steps in (37, 0, 150, 1):
                res = sim.run(steps)
                for p in pops if steps else ():
                    nz = np.nonzero(res.spikes[p])
                    assert all(
                        np.array_equal(a, b) for a, b in zip(res.events[p], nz, strict=True)
                    ), p
            for p in pops:
                nz = np.nonzero(sim.probes.spikes[p])
                assert all(
                    np.array_equal(a, b) for a, b in zip(sim.probes.events[p], nz, strict=True)
                ), p
            got = {p: sim.probes.events[p] for p in pops}
            reference = reference or got
            for p in pops:
                assert all(
                    np.array_equal(a, b) for a, b in zip(got[p], reference[p], strict=True)
                ), backend
            sim.reset()
    assert reference["exc"][0].size > 10
