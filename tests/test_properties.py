"""Property-based tests (hypothesis) on random valid networks and on networks with one field
broken.

Valid networks come from :func:`network_strategies.net_descs` (one draw describes a whole
network; :func:`network_strategies.build` makes the spec), so every property sees the same
kind of network: IF_curr_exp / NIR LIF / NIR CubaLIF populations of 1..40 neurons, Poisson,
array and run-time spike sources, projections with every connectivity builder (and explicit
synapse lists with duplicates), scalar or per-synapse weights and delays 1..8, every plasticity
rule of the standard library, spec and run-time currents, raster, events and state probes,
both integrators and both reset modes, 20..200 steps.

Properties (each in the default suite with ``DEFAULT_EXAMPLES`` examples, and marked ``slow``
with ``SLOW_EXAMPLES``):

* numba, torch (float64) and Brian2 agree (exactly where the repository says they do: see
  :func:`check_backends_agree`);
* save -> load gives an identical network whose runs are bit-identical;
* a run split into several ``run`` calls equals one run, bit for bit;
* ``reset()`` restores the initial state: the replay is bit-identical.

Each property counts its *active* examples (computed populations spike in at least
``ACTIVE_STEPS`` steps) and asserts that they are at least ``MIN_ACTIVE_FRACTION`` of all; it
prints the fraction, how many examples are plastic and in how many a weight changed (run with
``-s`` to see it). The generator's drive makes ~90 % of the networks active.

The default suite is reproducible: one fixed seed (``@seed``), no example database, so every
default property sees the same networks (numba's compiled code is then shared between the
properties of one session, and cached on disk for the next run). The single-backend
properties (save/load, chunks, reset) run on numba or torch, one per example
(:func:`single_backends`), in the default suite and on all three backends in the slow one.

Invalid networks: one test per way of breaking a field (``network_strategies.CASES``); each
asserts that building the spec, or else compiling it, raises a neuromem error whose message
names the broken element. Invalid run-time inputs likewise (``network_strategies.RUN_CASES``).

Cost (2 cores): the default suite of this file takes ~40 s with a warm numba cache
(``NEUROMEM_CACHE``) and ~50 s more when numba compiles every network afresh (its JIT costs
~2 s per new network structure); Brian2 (numpy target) costs ~0.5-1 s per example.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, seed, settings
from network_strategies import (
    BACKENDS,
    CASES,
    RUN_CASES,
    NetDesc,
    broken_descs,
    broken_runs,
    build,
    net_descs,
    run_inputs,
)

import neuromem
import neuromem.errors
from neuromem.errors import CapabilityError
from neuromem.spec import load, save

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEFAULT_EXAMPLES = 25
SLOW_EXAMPLES = 200
#: the fixed seed of the default suite (every default property sees the same draws)
DEFAULT_SEED = 20240611
#: Brian2 runs with the numpy target: the Cython target compiles ~20 extensions per new
#: network (5-25 s each, docs/brian2_agreement.md), far too slow for hundreds of random
#: networks; both targets are documented to give the same bits.
BRIAN2_OPTIONS = {"target": "numpy"}
#: backends of the single-backend properties in the default suite (see single_backends)
DEFAULT_SINGLE_BACKENDS = ("numba", "torch")
#: smallest fraction of active examples (see ACTIVE_STEPS)
MIN_ACTIVE_FRACTION = 0.5

# No deadline: the property bodies compile and run simulations (a cold numba JIT takes
# seconds). No health check is suppressed (generation takes ~3-20 ms per description).
# No example database: the default suite replays exactly the draws of DEFAULT_SEED.
DEFAULT = settings(max_examples=DEFAULT_EXAMPLES, deadline=None, database=None, print_blob=True)
#: invalid networks in the default suite: no shrinking (a failing case is evident from its
#: message, and shrinking compiles many networks); the slow variant shrinks
DEFAULT_NO_SHRINK = settings(DEFAULT, phases=[Phase.explicit, Phase.generate])
#: the slow variant draws fresh examples on every run (no seed), reproducible from the blob
#: hypothesis prints with a failure
SLOW = settings(max_examples=SLOW_EXAMPLES, deadline=None, database=None, print_blob=True)

NEUROMEM_ERRORS = tuple(
    obj
    for obj in vars(neuromem.errors).values()
    if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == "neuromem.errors"
)


# ------------------------------------------------------------------------------ helpers
def compile_on(net, backend: str):
    if backend == "brian2":
        return neuromem.compile(net, backend="brian2", **BRIAN2_OPTIONS)
    if backend == "torch":
        return neuromem.compile(net, backend="torch", dtype=torch.float64)
    return neuromem.compile(net, backend=backend)


def outcome(sim) -> dict:
    """Everything a run leaves: accumulated probes, the final state and the step count."""
    return {
        "spikes": dict(sim.probes.spikes),
        "events": dict(sim.probes.events),
        "state_probes": dict(sim.probes.state),
        "state": sim.state,
        "t": sim.t,
        "n_steps": sim.probes.n_steps,
    }


def assert_bits_equal(a, b, where: str, zero_sign: bool = True) -> None:
    """Same keys, shapes, dtypes and bytes (so -0.0 != 0.0 and NaNs compare by bits); with
    ``zero_sign=False`` floats compare by value (-0.0 == 0.0), everything else by bytes."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_bits_equal(a[k], b[k], f"{where}[{k!r}]", zero_sign)
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_bits_equal(x, y, f"{where}[{i}]", zero_sign)
    elif isinstance(a, np.ndarray):
        b = np.asarray(b)
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        if a.dtype.kind == "f" and not zero_sign:
            same = np.array_equal(a, b, equal_nan=True)
        else:
            same = a.tobytes() == b.tobytes()
        if not same:
            diff = a != b if a.dtype == bool else ~((a == b) | (np.isnan(a) & np.isnan(b)))
            first = tuple(int(x[0]) for x in np.nonzero(diff)) if diff.any() else "(sign of 0)"
            raise AssertionError(
                f"{where}: {int(diff.sum())} of {a.size} entries differ, first at {first}"
                + (f": {a[first]!r} != {b[first]!r}" if diff.any() else "")
            )
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_close(a, b, where: str, atol: float) -> None:
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_close(a[k], b[k], f"{where}[{k!r}]", atol)
    else:
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=atol, err_msg=where)


def assert_spikes_equal(a: dict, b: dict, where: str) -> None:
    """Rasters and event lists exactly equal (np.array_equal, shapes included)."""
    assert_bits_equal(a["spikes"], b["spikes"], f"{where}: spikes")
    assert_bits_equal(a["events"], b["events"], f"{where}: events")


#: a network is *active* when its computed populations spike in at least this many steps
#: (more than the first-step spikes of neurons that start above threshold)
ACTIVE_STEPS = 3


def activity(desc: NetDesc, out: dict, initial_weights: dict | None = None) -> dict:
    """Counts for the generator statistics: is the network active, did a plastic projection
    change a weight (from ``initial_weights``)."""
    computed = {p.name for p in desc.pops if p.computed}
    steps = [r.any(axis=tuple(range(1, r.ndim))) for k, r in out["spikes"].items() if k in computed]
    n_steps = int(np.logical_or.reduce(steps).sum()) if steps else 0
    learnt = initial_weights is not None and any(
        q.rule is not None
        and not np.array_equal(out["state"]["weights"][q.name], initial_weights[q.name])
        for q in desc.projs
    )
    return {"active": n_steps >= ACTIVE_STEPS, "learnt": learnt}


def assert_events_match_rasters(out: dict, where: str) -> None:
    for pop, events in out["events"].items():
        if pop in out["spikes"]:
            assert_bits_equal(events, np.nonzero(out["spikes"][pop]), f"{where}: events of {pop}")


def run_whole(sim, desc: NetDesc) -> dict:
    sim.run(desc.steps, run_inputs(desc))
    return outcome(sim)


def run_chunked(sim, desc: NetDesc) -> dict:
    t0 = 0
    parts = []
    for n in desc.chunks:
        parts.append(sim.run(n, run_inputs(desc, t0, n)))
        t0 += n
    out = outcome(sim)
    # the probes of the calls, concatenated, are the accumulated probes
    for k, r in out["spikes"].items():
        assert_bits_equal(r, np.concatenate([p.spikes[k] for p in parts]), f"call spikes {k}")
    return out


def assert_networks_identical(a, b, where: str = "net") -> None:
    """Every field equal; arrays with the same dtype, shape and bytes; floats bit-equal."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_networks_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert_bits_equal(a, b, where)
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_networks_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_networks_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or a.hex() == b.hex(), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# ------------------------------------------------------------------------------ properties
def check_backends_agree(desc: NetDesc, backends: tuple[str, ...] = BACKENDS) -> dict:
    """numba is the reference. Spikes (rasters and events) must be identical on every backend.

    * Brian2: docs/brian2_agreement.md guarantees bitwise agreement of the membrane potentials,
      all state variables and the plastic weights, not only of the spikes, so everything is
      compared bit for bit. Brian2 does not run ``reset_mode='next_step'``: there it must
      refuse with a CapabilityError naming the feature.
    * torch (float64, CPU): without plasticity ``run`` uses the sparse loop, documented
      bit-identical to numba in rasters *and* states; compared by value, since
      docs/architecture.md says torch adds empty ring entries where numba skips them ("values
      agree, a zero may differ in sign"). With plasticity it uses the step schedule, whose
      exact mode is documented to give bit-identical *rasters* only
      (tests/test_torch_backend.py compares its states and weights to 1e-12): the guarantee is
      weaker there, and states and weights are compared with atol 1e-12.
    * Every backend: where a population has both probes, the events are the raster's nonzero
      entries.
    """
    net = build(desc)
    ref_sim = compile_on(net, "numba")
    initial_weights = ref_sim.state["weights"]
    ref = run_whole(ref_sim, desc)
    for backend in backends:
        if backend == "numba":
            continue
        if backend == "brian2" and desc.reset_mode == "next_step":
            with pytest.raises(CapabilityError, match="reset_mode:next_step"):
                compile_on(net, backend)
            continue
        got = run_whole(compile_on(net, backend), desc)
        assert_events_match_rasters(got, backend)
        assert_spikes_equal(ref, got, backend)
        if backend == "torch" and desc.plastic:
            assert_close(ref["state_probes"], got["state_probes"], "torch state probes", 1e-12)
            assert_close(ref["state"], got["state"], "torch final state", 1e-12)
        else:
            exact = backend != "torch"  # torch: by value (sign of zero, see above)
            for key in ("state_probes", "state"):
                assert_bits_equal(ref[key], got[key], f"{backend} {key}", zero_sign=exact)
    assert_events_match_rasters(ref, "numba")
    return activity(desc, ref, initial_weights)


def check_save_load(desc: NetDesc, backends: tuple[str, ...]) -> dict:
    """save -> load gives the identical network (dtypes, bytes), and its runs are
    bit-identical to the original's on each backend."""
    net = build(desc)
    with tempfile.TemporaryDirectory() as tmp:
        back = load(save(net, Path(tmp) / "saved"))
    assert_networks_identical(net, back)
    for backend in backends:
        sim = compile_on(net, backend)
        initial_weights = sim.state["weights"]
        a = run_whole(sim, desc)
        b = run_whole(compile_on(back, backend), desc)
        assert_bits_equal(a, b, f"{backend}: loaded vs original")
    return activity(desc, a, initial_weights)


def check_chunks(desc: NetDesc, backends: tuple[str, ...]) -> dict:
    """``run`` in the chunks of ``desc.chunks`` (zero-length ones included) equals one run."""
    net = build(desc)
    for backend in backends:
        sim = compile_on(net, backend)
        initial_weights = sim.state["weights"]
        whole = run_whole(sim, desc)
        parts = run_chunked(compile_on(net, backend), desc)
        assert_bits_equal(whole, parts, f"{backend}: chunks {desc.chunks} vs one run")
    return activity(desc, whole, initial_weights)


def check_reset(desc: NetDesc, backends: tuple[str, ...]) -> dict:
    """After a (chunked) run, ``reset()`` restores the initial state, weights, ``t`` and empty
    probes; the replay is bit-identical to the first run."""
    net = build(desc)
    for backend in backends:
        sim = compile_on(net, backend)
        initial = sim.state
        first = run_chunked(sim, desc)
        sim.reset()
        assert sim.t == 0, f"{backend}: t = {sim.t} after reset"
        assert not sim.probes.spikes and not sim.probes.events and not sim.probes.state
        assert sim.probes.n_steps == 0
        assert_bits_equal(initial, sim.state, f"{backend}: state after reset")
        again = run_chunked(sim, desc)
        assert_bits_equal(first, again, f"{backend}: replay after reset")
    return activity(desc, first, initial["weights"])


def single_backends(desc: NetDesc, slow: bool) -> tuple[str, ...]:
    """Where the single-backend properties run: every backend in the slow suite; in the default
    suite one of numba and torch, picked per example (:meth:`NetDesc.pick_backend`). Brian2
    costs ~0.5-1.5 s per compile and run even at this size (its code-object set-up and a
    ``gc.collect`` per run), so in the default suite it runs only in the agreement property
    (and in tests/test_brian2_backend.py's chunked-run and reset tests)."""
    if slow:
        return tuple(b for b in BACKENDS if b != "brian2" or desc.reset_mode != "next_step")
    return (desc.pick_backend(DEFAULT_SINGLE_BACKENDS),)


PROPERTIES = {
    "backends_agree": lambda desc, slow: check_backends_agree(desc),
    "save_load": lambda desc, slow: check_save_load(desc, single_backends(desc, slow)),
    "chunks": lambda desc, slow: check_chunks(desc, single_backends(desc, slow)),
    "reset": lambda desc, slow: check_reset(desc, single_backends(desc, slow)),
}


def run_property(name: str, slow: bool) -> None:
    stats: Counter = Counter()
    check = PROPERTIES[name]

    def body(desc: NetDesc) -> None:
        stats["examples"] += 1
        counts = check(desc, slow)
        stats["active"] += counts["active"]
        stats["plastic"] += desc.plastic
        stats["learnt"] += counts["learnt"]
        stats["next_step"] += desc.reset_mode == "next_step"
        for b in single_backends(desc, slow) if name != "backends_agree" else ():
            stats[f"on {b}"] += 1

    if slow:
        test = SLOW(given(net_descs())(body))
    else:
        test = seed(DEFAULT_SEED)(DEFAULT(given(net_descs())(body)))
    t0 = time.perf_counter()
    test()
    wall = time.perf_counter() - t0
    n = stats["examples"]
    frac = stats["active"] / max(n, 1)
    on = ", ".join(f"{k} {v}" for k, v in sorted(stats.items()) if k.startswith("on "))
    print(
        f"\nproperty {name} ({'slow' if slow else 'default'}): {n} examples, "
        f"{stats['active']} active ({frac:.0%}: spikes in >= {ACTIVE_STEPS} steps), "
        f"{stats['plastic']} plastic ({stats['learnt']} changed a weight), "
        f"{stats['next_step']} next_step{', ' + on if on else ''}; {wall:.1f} s"
    )
    assert n >= (SLOW_EXAMPLES if slow else DEFAULT_EXAMPLES), n
    assert frac >= MIN_ACTIVE_FRACTION, f"only {frac:.0%} of the examples are active"


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property(name):
    run_property(name, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property_slow(name):
    run_property(name, slow=True)


# ------------------------------------------------------------------------------ invalid networks
def _mentions(message: str, name: str) -> bool:
    if name == "":
        return "''" in message or '""' in message
    return name in message or repr(name) in message


def check_broken(case: str, draw_broken) -> None:
    broken = draw_broken
    try:
        net = build(broken.desc)
        compile_on(net, "numba")
    except NEUROMEM_ERRORS as exc:
        message = str(exc)
        missing = [n for n in broken.names if not _mentions(message, n)]
        assert not missing, (
            f"{broken.case}: {type(exc).__name__} does not name {missing}: {message!r}"
        )
        return
    except Exception as exc:  # reported as the failure
        raise AssertionError(
            f"{broken.case}: raised {type(exc).__name__} (not a neuromem error): {exc}"
        ) from exc
    raise AssertionError(f"{broken.case}: neither building nor compiling raised")


def _broken_test(case: str, settings_):
    @settings_
    @given(broken_descs(case=case))
    def test(broken):
        check_broken(case, broken)

    return test


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_network_is_refused(case):
    seed(DEFAULT_SEED)(_broken_test(case, DEFAULT_NO_SHRINK))()


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_network_is_refused_slow(case):
    _broken_test(case, SLOW)()


# ------------------------------------------------------------------------------ invalid run inputs
def check_broken_run(broken, backends: tuple[str, ...]) -> None:
    """The run is refused with a neuromem error naming the input, and leaves the simulation as
    it was (t, probes). The checks live in the shared base class: one backend per example
    (all three in turn over the examples of the slow suite, numba and torch in the default)."""
    sim = compile_on(build(broken.desc), broken.desc.pick_backend(backends))
    try:
        sim.run(broken.steps, broken.inputs)
    except NEUROMEM_ERRORS as exc:
        message = str(exc)
        missing = [n for n in broken.names if not _mentions(message, n)]
        assert not missing, (
            f"{broken.case}: {type(exc).__name__} does not name {missing}: {message!r}"
        )
    except Exception as exc:  # reported as the failure
        raise AssertionError(
            f"{broken.case}: raised {type(exc).__name__} (not a neuromem error): {exc}"
        ) from exc
    else:
        raise AssertionError(f"{broken.case}: run did not raise")
    assert sim.t == 0 and sim.probes.n_steps == 0 and not sim.probes.spikes, broken.case


def _broken_run_test(case: str, settings_, backends: tuple[str, ...]):
    @settings_
    @given(broken_runs(case=case))
    def test(broken):
        check_broken_run(broken, backends)

    return test


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_invalid_run_input_is_refused(case):
    seed(DEFAULT_SEED)(_broken_run_test(case, DEFAULT_NO_SHRINK, DEFAULT_SINGLE_BACKENDS))()


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_invalid_run_input_is_refused_slow(case):
    _broken_run_test(case, SLOW, BACKENDS)()
