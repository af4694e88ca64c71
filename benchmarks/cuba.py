"""Brian2's CUBA network: neuromem (numba, torch CPU) against Brian2 (cython, cpp_standalone).

N current-based LIF neurons (80% excitatory, 20% inhibitory) with exponential synaptic currents,
each pair connected with probability 80/N (about 80 synapses per neuron), dt = 0.1 ms, 1 s of
biological time (10,000 steps), exact (exponential) integration, Brian2's CUBA parameters.
Every simulator runs the *same* network: connectivity and initial voltages are generated once
per N and given to Brian2 as explicit arrays. Sizes N = 4,000, 16,000, 64,000 (``--quick``:
4,000 only, fewer repeats). One thread everywhere (this machine has 2 shared cores).

Measured per N: simulation time of ``sim.run(10000)`` (after a warm-up compile) for neuromem numba
and torch (float64, float32), whole-process first-run time of neuromem numba with cold caches
(subprocess: import + build + compile + run), Brian2 cython runtime (main loop time after a
warm-up) and Brian2 cpp_standalone (binary's run time, re-run for repeats, and the whole
code-generation + build + first run). Mean firing rates must agree with Brian2's within 5%.
Writes ``benchmarks/results/cuba.json`` and ``.png`` (``cuba_quick.*`` with ``--quick``).

    .venv/bin/python benchmarks/cuba.py [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PY = sys.executable
HERE = Path(__file__).resolve()

# ------------------------------------------------------------------ the network (Brian2's CUBA)
DT = 0.1  # ms
STEPS = 10_000  # 1 s
TAU_M, TAU_E, TAU_I = 20.0, 5.0, 10.0  # ms
V_T, V_R, E_L = -50.0, -60.0, -49.0  # mV
W_E_MV = 60 * 0.27 / 10  # mV, Brian2's we (jump of ge)
W_I_MV = -20 * 4.5 / 10  # mV, Brian2's wi (jump of gi, negative)
REFRACTORY_MS = 5.0  # Brian2's refractory
K_IN = 80.0  # expected synapses per neuron: p = K_IN / N
SEED = 2024

# Mapping onto neuromem's if_curr_exp (units mV, nA, nF, ms, MOhm):
#   Brian2: dv/dt = (ge + gi - (v - El)) / taum, events add we / wi (mV) to ge / gi.
#   ours:   dv/dt = (v_rest - v) / tau_m + (i_exc - i_inh) / cm; an event of weight w adds
#           w * tau_syn/dt * (1 - exp(-dt/tau_syn)) (the step average of a current jump w).
#   With cm = tau_m (nF), R = tau_m / cm = 1 MOhm, so ge (mV) <-> i_exc (nA) one to one and a
#   weight of we (nA) gives the same current jump, the same charge (w * tau_syn / cm) and so the
#   same PSP as Brian2's we (mV). Inhibition enters through the "inh" port (subtracted): +|wi|.
#   Refractoriness: Brian2 (>= 2.2 timing) integrates again in step s + 50 after a spike in step
#   s (not_refractory = timestep(t - lastspike) >= 50), i.e. 49 clamped steps; neuromem clamps
#   ceil(tau_refrac / dt) steps, so tau_refrac = 4.9 ms gives the same 49.
OURS = {
    "cm": TAU_M,
    "tau_m": TAU_M,
    "v_rest": E_L,
    "v_reset": V_R,
    "v_thresh": V_T,
    "tau_refrac": REFRACTORY_MS - DT,
    "tau_syn_E": TAU_E,
    "tau_syn_I": TAU_I,
    "i_offset": 0.0,
}
W_EXC = W_E_MV * OURS["cm"] / TAU_M  # nA
W_INH = -W_I_MV * OURS["cm"] / TAU_M  # nA, positive into the subtracted "inh" port
MAPPING = {
    "brian2": {
        "taum_ms": TAU_M,
        "taue_ms": TAU_E,
        "taui_ms": TAU_I,
        "Vt_mV": V_T,
        "Vr_mV": V_R,
        "El_mV": E_L,
        "we_mV": W_E_MV,
        "wi_mV": W_I_MV,
        "refractory_ms": REFRACTORY_MS,
        "method": "exact",
        "threshold": "v > Vt",
        "initial_v": "Vr + U(0,1) * (Vt - Vr), the same array for every simulator",
    },
    "neuromem_if_curr_exp": {**OURS, "w_exc_nA": W_EXC, "w_inh_nA (port 'inh')": W_INH},
    "explanation": (
        "cm = tau_m (nF) makes R = 1 MOhm, so i_exc (nA) plays ge (mV): a port weight w adds "
        "w * tau/dt * (1 - exp(-dt/tau)) to the current, the step average of a jump w, so "
        "w = we * cm / taum = we gives the same current jump, charge and PSP as Brian2. "
        "Inhibition: +|wi| into the subtracted 'inh' port, tau_syn_I = taui. Delay 1 step = "
        "Brian2's zero-delay on_pre (applied after the spike's step, seen by the next "
        "integration). tau_refrac = 4.9 ms: 49 clamped steps, as Brian2's 5 ms (it integrates "
        "again 50 steps after the spike). Integration: exponential_euler (exact for v with the "
        "current held at its step average) vs Brian2 'exact' (joint linear system); threshold "
        "v >= Vt vs v > Vt."
    ),
}


def connectivity(n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Synapses (pre, post) of the excitatory and inhibitory projections and the initial v
    (``fixed_probability`` draws per pre neuron in O(synapses) memory, so any N works)."""
    from neuromem.spec import fixed_probability

    ne = n * 4 // 5
    ni = n - ne
    p = K_IN / n
    pre_e, post_e = fixed_probability(ne, n, p, seed=seed)
    pre_i, post_i = fixed_probability(ni, n, p, seed=seed + 1)
    v0 = V_R + np.random.default_rng([seed, 2]).random(n) * (V_T - V_R)
    return {
        "pre_e": pre_e.astype(np.int64),
        "post_e": post_e.astype(np.int64),
        "pre_i": (pre_i + ne).astype(np.int64),
        "post_i": post_i.astype(np.int64),
        "v0": v0,
    }


def network(n: int, c: dict[str, np.ndarray]):
    from neuromem.spec import (
        Discretization,
        Network,
        Population,
        Projection,
        SpikeProbe,
        if_curr_exp,
    )

    pop = Population("P", n, if_curr_exp(), params=OURS, initial={"v": c["v0"]})
    exc = Projection("E", "P", "P", c["pre_e"], c["post_e"], W_EXC, 1, "exc")
    inh = Projection("I", "P", "P", c["pre_i"], c["post_i"], W_INH, 1, "inh")
    return Network(
        "cuba",
        Discretization(dt=DT, integrator="exponential_euler"),
        (pop,),
        (exc, inh),
        # an event list (as Brian2's SpikeMonitor), O(spikes) memory, not a steps x N raster
        probes=(SpikeProbe("P", format="events"),),
    )


def fan_out(n: int, c: dict[str, np.ndarray]) -> np.ndarray:
    return np.bincount(c["pre_e"], minlength=n) + np.bincount(c["pre_i"], minlength=n)


# ------------------------------------------------------------------ workers (subprocesses)
def _worker_numba_first_run(n: int) -> dict:
    """Whole first run in a fresh process: import + build + compile + run (caches per env)."""
    t0 = time.perf_counter()
    import neuromem

    t1 = time.perf_counter()
    c = connectivity(n)
    net = network(n, c)
    t2 = time.perf_counter()
    sim = neuromem.compile(net, backend="numba")
    t3 = time.perf_counter()
    steps, _ = sim.run(STEPS).events["P"]
    t4 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "build_s": t2 - t1,
        "compile_s": t3 - t2,
        "run_s": t4 - t3,
        "in_process_total_s": t4 - t0,
        "spikes": int(steps.size),
    }


_BRIAN2_EQS = """
dv/dt  = (ge + gi - (v - El)) / taum : volt (unless refractory)
dge/dt = -ge / taue : volt
dgi/dt = -gi / taui : volt
"""


def _brian2_network(b2, n: int, data: str):
    c = np.load(data)
    ns = {
        "taum": TAU_M * b2.ms,
        "taue": TAU_E * b2.ms,
        "taui": TAU_I * b2.ms,
        "Vt": V_T * b2.mV,
        "Vr": V_R * b2.mV,
        "El": E_L * b2.mV,
        "we": W_E_MV * b2.mV,
        "wi": W_I_MV * b2.mV,
    }
    P = b2.NeuronGroup(
        n,
        _BRIAN2_EQS,
        threshold="v > Vt",
        reset="v = Vr",
        refractory=REFRACTORY_MS * b2.ms,
        method="exact",
        namespace=ns,
    )
    P.v = c["v0"] * b2.mV
    Ce = b2.Synapses(P, P, on_pre="ge += we", namespace=ns)
    Ce.connect(i=c["pre_e"], j=c["post_e"])
    Ci = b2.Synapses(P, P, on_pre="gi += wi", namespace=ns)
    Ci.connect(i=c["pre_i"], j=c["post_i"])
    sm = b2.SpikeMonitor(P)
    return b2.Network(P, Ce, Ci, sm), sm


def _worker_brian2_cython(n: int, data: str, repeats: int, budget_s: float) -> dict:
    import brian2 as b2

    b2.prefs.codegen.target = "cython"
    b2.defaultclock.dt = DT * b2.ms
    net, sm = _brian2_network(b2, n, data)
    net.store("init")
    t = time.perf_counter()
    net.run(1 * b2.ms)  # compiles (or loads) the cython extensions
    warmup = time.perf_counter() - t
    loop, wall, counts = [], [], None
    while len(loop) < repeats:
        net.restore("init")
        t = time.perf_counter()
        net.run(STEPS * DT * b2.ms)
        wall.append(time.perf_counter() - t)
        loop.append(b2.device._last_run_time)
        counts = np.asarray(sm.count[:])
        repeats = _budgeted(repeats, wall[0], budget_s)
    return {
        "sim_s": loop,
        "run_call_s": wall,
        "warmup_run_1ms_s": warmup,
        "counts": counts.tolist(),
    }


def _worker_brian2_standalone(n: int, data: str, repeats: int, budget_s: float) -> dict:
    t0 = time.perf_counter()
    import brian2 as b2

    directory = tempfile.mkdtemp(prefix="cuba_standalone_")
    try:
        b2.set_device("cpp_standalone", build_on_run=True, directory=directory)
        b2.prefs.devices.cpp_standalone.openmp_threads = 0
        b2.defaultclock.dt = DT * b2.ms
        net, sm = _brian2_network(b2, n, data)
        net.run(STEPS * DT * b2.ms)  # code generation + compilation + first run
        whole = time.perf_counter() - t0
        counts = np.asarray(sm.count[:])
        loop = [b2.device._last_run_time]
        binary = [b2.device.timers["run_binary"]]
        first = json.loads(json.dumps(b2.device.timers, default=str))
        while len(loop) < repeats + 1:  # the first run counts as a warm-up
            b2.device.run(directory=directory, with_output=False)
            loop.append(b2.device._last_run_time)
            binary.append(b2.device.timers["run_binary"])
            repeats = _budgeted(repeats, binary[1] if len(binary) > 1 else binary[0], budget_s)
        return {
            "sim_s": loop[1:],
            "binary_s": binary[1:],
            "first_run_sim_s": loop[0],
            "whole_codegen_build_run_s": whole,
            "timers_first": first,
            "counts": counts.tolist(),
            "compile_flags": list(b2.prefs.codegen.cpp.extra_compile_args_gcc),
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _budgeted(repeats: int, first_s: float, budget_s: float) -> int:
    """Fewer repeats when ``repeats`` runs of ``first_s`` would exceed ``budget_s`` (min 2)."""
    return min(repeats, max(2, int(budget_s // max(first_s, 1e-9))))


def _run_worker(args: list[str], env: dict[str, str] | None = None) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory(prefix="cuba_out_") as d:
        out = Path(d) / "out.json"
        t = time.perf_counter()
        subprocess.run(
            [PY, str(HERE), "--worker", *args, "--out", str(out)],
            check=True,
            env={**os.environ, **(env or {})},
        )
        wall = time.perf_counter() - t
        return json.loads(out.read_text()), wall


# ------------------------------------------------------------------ measurements (main process)
def _stats(times: list[float]) -> dict:
    return {
        "min_s": min(times),
        "median_s": statistics.median(times),
        "all_s": times,
        "repeats": len(times),
    }


def _timed_full_runs(sim, repeats: int, budget_s: float) -> tuple[list[float], tuple]:
    """Wall times of ``repeats`` full runs from reset (fewer if over budget), the last run's
    events (steps, neurons)."""
    times, events = [], None
    while len(times) < repeats:
        sim.reset()
        t = time.perf_counter()
        events = sim.run(STEPS).events["P"]
        times.append(time.perf_counter() - t)
        repeats = _budgeted(repeats, times[0], budget_s)
    return times, events


def _counts(events: tuple, n: int) -> np.ndarray:
    """Spikes per neuron from (steps, neurons) events."""
    return np.bincount(events[1], minlength=n)


def _rate_hz(counts: np.ndarray, n: int) -> float:
    return float(np.sum(counts)) / n / (STEPS * DT / 1000.0)


def _measure_numba(net, repeats: int, budget_s: float) -> tuple[dict, tuple, object]:
    import neuromem

    t = time.perf_counter()
    sim = neuromem.compile(net, backend="numba")
    sim.run(10)  # warm-up: loads or compiles the machine code
    warm = time.perf_counter() - t
    times, events = _timed_full_runs(sim, repeats, budget_s)
    return {**_stats(times), "compile_and_warmup_s": warm}, events, sim


def _profile_numba(sim, events: tuple, c: dict[str, np.ndarray]) -> dict:
    """Time the parts of the numba driver's step by replaying the recorded spikes through the
    same kernels in jitted loops (best of 3 each): the generated neuron kernel alone (its
    neurons fire on their own, El > Vt; no events), spike gathering, propagation from the
    spike lists (with the touch lists the kernel's delivery reads), delivery of those events,
    and recording the event list. The remainder is the driver's
    own loop and the run call (input assembly, probes)."""
    import numba

    from neuromem.backends import _numba_kernels as K
    from neuromem.backends import numba as nb

    a = sim._arrays
    g = sim._groups[0]
    p0 = g.populations[0]
    steps, n = STEPS, g.size
    st, ix = events
    raster = np.zeros((steps, n), np.bool_)  # for the gathering replay only
    raster[st, ix] = True
    ptr = np.searchsorted(st, np.arange(steps + 1))
    ix = ix.astype(np.int64)
    kernel = nb._load(
        nb._HEADER.format(name="kernel")
        + "\n"
        + nb._neuron_kernel(p0, sim.program.reset_mode, g.scalars, frozenset())
        + "\n"
    ).kernel
    names = [
        f"G0__{k}"
        for k in (
            "ref",
            "refsteps",
            *p0.state,
            *[f"c_{k}" for k in g.constants],
            *[f"{x}_{port}" for port in p0.ports for x in ("ring", "touch", "n_touch")],
        )
    ]

    @numba.njit
    def kernel_loop(n_steps, n_slots, spk, args):
        for t in range(n_steps):
            kernel(t, t % n_slots, spk, *args)

    @numba.njit
    def gather_loop(raster, words, spikes):
        total = 0
        for t in range(raster.shape[0]):
            total += K.gather_spikes(raster[t], words[t], 0, raster.shape[1], spikes, 0)
        return total

    @numba.njit(inline="always")
    def propagate_step(ix, ptr, t, ne, n, e, i, ring_e, touch_e, nt_e, ring_i, touch_i, nt_i):
        # the driver's propagation of step t: uniform weights (1 where the ring counts events)
        sp = ix[ptr[t] : ptr[t + 1]]
        s = (t + 1) % ring_e.shape[0]
        nt_e[s] = 0
        nt_i[s] = 0
        K.propagate_list_slot(sp, sp.shape[0], 0, ne, *e, ring_e, touch_e, nt_e, s)
        K.propagate_list_slot(sp, sp.shape[0], ne, n, *i, ring_i, touch_i, nt_i, s)
        return s

    @numba.njit
    def propagate_loop(ix, ptr, ne, n, e, i, ring_e, touch_e, nt_e, ring_i, touch_i, nt_i):
        for t in range(ptr.shape[0] - 1):
            propagate_step(ix, ptr, t, ne, n, e, i, ring_e, touch_e, nt_e, ring_i, touch_i, nt_i)

    @numba.njit(inline="always")
    def deliver_counted(ring, touch, nt, s, table, scale, x):
        for m in range(min(nt[s], touch.shape[1])):
            j = touch[s, m]
            if ring[s, j] != 0:
                x[j] += table[ring[s, j]] * scale
                ring[s, j] = 0

    @numba.njit(inline="always")
    def deliver_float(ring, touch, nt, s, table, scale, x):
        for m in range(min(nt[s], touch.shape[1])):
            j = touch[s, m]
            if ring[s, j] != 0:
                x[j] += ring[s, j] * scale
                ring[s, j] = 0.0

    @numba.njit
    def deliver_loop(
        ix, ptr, ne, n, e, i, ring_e, touch_e, nt_e, ring_i, touch_i, nt_i, tabs, how_e, how_i
    ):
        # propagation as above, then the kernel's scattered delivery for both ports
        ie, ii = np.zeros(n), np.zeros(n)
        for t in range(ptr.shape[0] - 1):
            s = propagate_step(
                ix, ptr, t, ne, n, e, i, ring_e, touch_e, nt_e, ring_i, touch_i, nt_i
            )
            how_e(ring_e, touch_e, nt_e, s, tabs[0], 0.99, ie)
            how_i(ring_i, touch_i, nt_i, s, tabs[1], 0.99, ii)

    @numba.njit
    def record_loop(ev_steps, ev_neurons, count, n, ix, ptr):
        for t in range(ptr.shape[0] - 1):
            sp = ix[ptr[t] : ptr[t + 1]]
            K.record_events(ev_steps, ev_neurons, count, t, sp, sp.shape[0], 0, n)

    def record_args():
        return (
            np.empty(ix.size + n, np.int64),
            np.empty(ix.size + n, np.int64),
            np.zeros(1, np.int64),
        )

    ne = n * 4 // 5
    # the driver's rings: counted (uint8/16 entries, weight 1, a table of sums) or float
    rings, tables = {}, []
    for port, q in (("exc", "Q_E"), ("inh", "Q_I")):
        dtype, table = sim._counted.get(("G0", port), (np.float64, None))
        w = 1 if table is not None else a[f"{q}__wu"]
        rings[port] = (dtype, w)
        tables.append(table if table is not None else np.arange(2.0) * w)  # unused if float
    e = (a["Q_E__indptr"], a["Q_E__post_in_group"], rings["exc"][1])
    i = (a["Q_I__indptr"], a["Q_I__post_in_group"], rings["inh"][1])
    tables = tuple(tables)
    how = tuple(deliver_float if rings[p][0] is np.float64 else deliver_counted for p in rings)

    def lists():
        out = []
        for port in ("exc", "inh"):
            touch = a[f"G0__touch_{port}"]
            out += [
                np.zeros(a[f"G0__ring_{port}"].shape, rings[port][0]),
                np.zeros(touch.shape, touch.dtype),
                np.zeros(touch.shape[0], np.int64),
            ]
        return out

    def fresh_kernel_args():
        sim.reset()
        return tuple(sim._arrays[k] for k in names)

    spikes = np.zeros(n, np.int64)
    n_slots = a["G0__ring_exc"].shape[0]  # the driver's ring length
    kernel_loop(2, n_slots, np.zeros(n, np.bool_), fresh_kernel_args())
    words = raster.view(np.uint64)  # n is a multiple of 8 at every size
    gather_loop(raster[:2], words[:2], spikes)
    propagate_loop(ix, ptr[:3], ne, n, e, i, *lists())
    deliver_loop(ix, ptr[:3], ne, n, e, i, *lists(), tables, *how)
    record_loop(*record_args(), n, ix, ptr[:3])

    def best(fn, setup=lambda: (), k=3):
        out = []
        for _ in range(k):
            args = setup()
            t = time.perf_counter()
            fn(*args)
            out.append(time.perf_counter() - t)
        return min(out)

    t_run = best(lambda: sim.run(STEPS), setup=lambda: (sim.reset(), ())[1])
    t_kernel = best(
        lambda args: kernel_loop(steps, n_slots, np.zeros(n, np.bool_), args),
        setup=lambda: (fresh_kernel_args(),),
    )
    t_gather = best(lambda: gather_loop(raster, words, spikes))
    t_prop = best(lambda *ls: propagate_loop(ix, ptr, ne, n, e, i, *ls), setup=lists)
    t_deliv = best(
        lambda *ls: deliver_loop(ix, ptr, ne, n, e, i, *ls, tables, *how),
        setup=lists,
    )
    t_rec = best(lambda *r: record_loop(*r, n, ix, ptr), setup=record_args)
    sim.reset()
    return {
        "method": "kernels replayed in jitted loops from the recorded events, best of 3 each; "
        "the parts overlap the run only approximately (caches, other dynamics for the kernel)",
        "sim_run_s": t_run,
        "neuron_kernel_alone_s (generated kernel, 10,000 steps, no events)": t_kernel,
        "gather_spikes_s": t_gather,
        "propagate_s (spike lists -> rings and touch lists)": t_prop,
        "propagate_and_scattered_delivery_s": t_deliv,
        "record_spikes_s (event list)": t_rec,
        "rest_s (sim_run - kernel - gather - propagate/deliver - record)": t_run
        - (t_kernel + t_gather + t_deliv + t_rec),
        "synaptic_events": int((_counts(events, n) * fan_out(n, c)).sum()),
        "neuron_updates": n * steps,
    }


#: torch rows: float64 and float32 with the default (numpy) CPU engine, float64 with torch ops
TORCH_KEYS = ("torch_float64", "torch_float32", "torch_float64_torch_ops")


def _measure_torch(
    net, dtype_name: str, repeats: int, budget_s: float, cpu_engine: str = "numpy"
) -> dict:
    import torch

    import neuromem

    dtype = getattr(torch, dtype_name)
    t = time.perf_counter()
    try:
        sim = neuromem.compile(net, backend="torch", dtype=dtype, cpu_engine=cpu_engine)
        sim.run(10)
    except (RuntimeError, MemoryError) as e:
        return {"skipped": f"compile failed: {type(e).__name__}: {e}"[:300]}
    warm = time.perf_counter() - t
    sim.reset()
    probe_steps = 200
    t = time.perf_counter()
    sim.run(probe_steps)
    est = (time.perf_counter() - t) * STEPS / probe_steps
    if est > budget_s:
        # too slow for full runs: time run(10) and run(steps), fit fixed + per-step cost
        # and extrapolate (no rate check)
        steps = max(probe_steps, int(probe_steps * budget_s / 3 / est))
        times, fixed = [], []
        for _ in range(3):
            sim.reset()
            t = time.perf_counter()
            sim.run(10)
            t1 = time.perf_counter() - t
            sim.reset()
            t = time.perf_counter()
            sim.run(steps)
            t2 = time.perf_counter() - t
            per_step = (t2 - t1) / (steps - 10)
            fixed.append(t1 - 10 * per_step)
            times.append(t1 + per_step * (STEPS - 10))
        del sim
        return {
            **_stats(times),
            "compile_and_warmup_s": warm,
            "per_run_call_fixed_s": statistics.median(fixed),
            "extrapolated": f"timed run(10) and run({steps}) x 3, fitted fixed + per-step "
            f"cost, extrapolated to {STEPS} steps: a full run was estimated at {est:.0f} s "
            f"(> {budget_s:.0f} s budget)",
        }
    times, events = _timed_full_runs(sim, repeats, budget_s)
    del sim
    return {**_stats(times), "compile_and_warmup_s": warm, "events": events}


def measure(n: int, quick: bool, workdir: Path) -> dict:
    import torch

    repeats = 2 if quick else 5
    budget = 60.0 if quick else 180.0  # seconds of timed runs per configuration
    torch_budget = 30.0 if quick else 60.0
    row: dict = {"N": n}
    t = time.perf_counter()
    c = connectivity(n)
    row["connectivity_build_s"] = time.perf_counter() - t
    row["connectivity"] = "neuromem.spec.fixed_probability (per pre neuron, O(synapses))"
    data = workdir / f"cuba_{n}.npz"
    np.savez(data, **c)
    fo = fan_out(n, c)
    n_syn = int(fo.sum())
    row["synapses"] = n_syn
    row["synapses_per_neuron"] = n_syn / n
    net = network(n, c)
    print(f"N={n}: {n_syn} synapses ({n_syn / n:.1f}/neuron)", flush=True)

    def finish(name: str, res: dict, counts: np.ndarray | None) -> dict:
        if counts is not None:
            res["rate_hz"] = _rate_hz(counts, n)
            res["spikes"] = int(np.sum(counts))
            res["synaptic_events"] = int(np.sum(counts * fo))
            res["synaptic_events_per_s"] = res["synaptic_events"] / res["min_s"]
        print(
            f"  {name:<22} sim min {res['min_s']:8.3f} s  median {res['median_s']:8.3f} s"
            + (f"  rate {res['rate_hz']:.2f} Hz" if "rate_hz" in res else "")
            + (f"  [{res['extrapolated']}]" if "extrapolated" in res else ""),
            flush=True,
        )
        return res

    # Brian2 cython runtime
    res, wall = _run_worker(
        ["brian2_cython", "--n", str(n), "--data", str(data), "--repeats", str(repeats)]
        + ["--budget", str(budget)]
    )
    counts = np.asarray(res.pop("counts"))
    row["brian2_cython"] = finish(
        "brian2 cython", {**_stats(res.pop("sim_s")), **res, "process_wall_s": wall}, counts
    )
    # Brian2 cpp_standalone
    res, wall = _run_worker(
        ["brian2_standalone", "--n", str(n), "--data", str(data), "--repeats", str(repeats)]
        + ["--budget", str(budget)]
    )
    counts = np.asarray(res.pop("counts"))
    row["brian2_cpp_standalone"] = finish(
        "brian2 cpp_standalone",
        {**_stats(res.pop("sim_s")), **res, "process_wall_s": wall},
        counts,
    )
    # neuromem numba: warm simulation time
    res, events, sim = _measure_numba(net, repeats, budget)
    row["numba"] = finish("neuromem numba", res, _counts(events, n))
    row["numba"]["profile"] = _profile_numba(sim, events, c)
    del sim, events
    # neuromem numba: whole first run in a fresh process, cold and warm caches
    first: dict = {}
    for label, fresh_numba in (("cold", True), ("cold_neuromem_cache_only", False)):
        cache = tempfile.mkdtemp(prefix="cuba_cache_", dir=workdir)
        env = {"NEUROMEM_CACHE": cache}
        if fresh_numba:
            env["NUMBA_CACHE_DIR"] = str(Path(cache) / "numba_cache_dir")
        res, wall = _run_worker(["numba_first_run", "--n", str(n)], env)
        first[label] = {"process_wall_s": wall, **res, "env": list(env)}
        if fresh_numba:  # the same caches again: warm
            res, wall = _run_worker(["numba_first_run", "--n", str(n)], env)
            first["warm"] = {"process_wall_s": wall, **res}
        shutil.rmtree(cache, ignore_errors=True)
    row["numba_first_run"] = first
    print(
        "  numba whole first run: cold {:.2f} s, neuromem-cache-only cold {:.2f} s, warm "
        "{:.2f} s".format(
            *(first[k]["process_wall_s"] for k in ("cold", "cold_neuromem_cache_only", "warm"))
        ),
        flush=True,
    )
    # neuromem torch CPU, one thread
    torch.set_num_threads(1)
    # the default CPU engine runs the generated sparse loop with numpy on the tensors' memory;
    # "torch_ops" runs the same statements as torch operations (per-call dispatch cost)
    for key, dname, engine in (
        ("torch_float64", "float64", "numpy"),
        ("torch_float32", "float32", "numpy"),
        ("torch_float64_torch_ops", "float64", "torch"),
    ):
        res = _measure_torch(net, dname, repeats, torch_budget, engine)
        if "skipped" in res:
            row[key] = res
            print(f"  {key}: {res['skipped']}", flush=True)
            continue
        ev = res.pop("events", None)
        label = f"neuromem torch {dname}" + (" (torch ops)" if engine == "torch" else "")
        row[key] = finish(label, res, None if ev is None else _counts(ev, n))
    # spike statistics against Brian2 (cython runtime is the reference)
    ref = row["brian2_cython"]["rate_hz"]
    checks = {}
    for k in ("brian2_cpp_standalone", "numba", *TORCH_KEYS):
        if "rate_hz" in row.get(k, {}):
            dev = row[k]["rate_hz"] / ref - 1
            checks[k] = {"rate_hz": row[k]["rate_hz"], "rel_diff": dev, "ok": abs(dev) <= 0.05}
    row["rate_check_vs_brian2_cython"] = {"reference_rate_hz": ref, "runs": checks}
    row["ratios"] = {
        "numba_over_brian2_cpp_standalone": row["numba"]["min_s"]
        / row["brian2_cpp_standalone"]["min_s"],
        "numba_over_brian2_cython": row["numba"]["min_s"] / row["brian2_cython"]["min_s"],
        **{
            f"{k}_over_brian2_cython": row[k]["min_s"] / row["brian2_cython"]["min_s"]
            for k in TORCH_KEYS
            if "min_s" in row.get(k, {})
        },
    }
    del net
    return row


def goals(rows: list[dict]) -> dict:
    out: dict = {}
    r = {row["N"]: row for row in rows}
    out["numba_sim_le_0.5x_brian2_cpp_standalone"] = {
        str(n): {
            "ratio": row["ratios"]["numba_over_brian2_cpp_standalone"],
            "pass": row["ratios"]["numba_over_brian2_cpp_standalone"] <= 0.5,
        }
        for n, row in r.items()
    }
    if 4000 in r:
        row = r[4000]
        ev = row["numba"]["synaptic_events_per_s"]
        out["numba_ge_2e7_synaptic_events_per_s_at_4000"] = {"value": ev, "pass": ev >= 2e7}
        cold = row["numba_first_run"]["cold"]["process_wall_s"]
        out["numba_whole_first_run_cold_le_5s_at_4000"] = {"value_s": cold, "pass": cold <= 5.0}
        ratios = {
            k: row["ratios"][f"{k}_over_brian2_cython"]
            for k in TORCH_KEYS
            if f"{k}_over_brian2_cython" in row["ratios"]
        }
        out["torch_cpu_le_2x_brian2_cython_at_4000"] = {
            k: {"ratio": v, "pass": v <= 2.0} for k, v in ratios.items()
        }
    out["rates_within_5pct_of_brian2"] = all(
        c["ok"] for row in rows for c in row["rate_check_vs_brian2_cython"]["runs"].values()
    )
    return out


def _figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = (
        ("numba", "neuromem numba"),
        ("torch_float64", "neuromem torch f64"),
        ("torch_float32", "neuromem torch f32"),
        ("torch_float64_torch_ops", "neuromem torch f64 (torch ops)"),
        ("brian2_cython", "Brian2 cython"),
        ("brian2_cpp_standalone", "Brian2 cpp_standalone"),
    )
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    ns = [row["N"] for row in rows]
    x = np.arange(len(rows))
    width = 0.16
    for j, (key, label) in enumerate(series):
        vals = [row.get(key, {}).get("min_s", np.nan) for row in rows]
        bars = ax0.bar(x + (j - 2) * width, vals, width, label=label)
        for b, row in zip(bars, rows, strict=True):
            if "extrapolated" in row.get(key, {}):
                b.set_hatch("//")
        rates = [row.get(key, {}).get("rate_hz", np.nan) for row in rows]
        ax1.bar(x + (j - 2) * width, rates, width, label=label)
    ax0.set_yscale("log")
    ax0.set_xticks(x, [f"N = {n:,}" for n in ns])
    ax0.set_ylabel("simulation time of 1 s (10,000 steps), min [s]")
    ax0.set_title("CUBA, one thread (hatched: extrapolated)")
    ax0.legend(fontsize=7)
    ax1.set_xticks(x, [f"N = {n:,}" for n in ns])
    ax1.set_ylabel("mean firing rate [Hz]")
    ax1.set_title("spike statistics (same network everywhere)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(quick: bool = False) -> dict:
    import brian2
    import numba
    import torch

    import neuromem

    sizes = (4000,) if quick else (4000, 16_000, 64_000)
    t_start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cuba_bench_") as d:
        for n in sizes:
            rows.append(measure(n, quick, Path(d)))
    doc = {
        "benchmark": "cuba",
        "what": "Brian2's CUBA example network: N current-based LIF neurons (80% exc, 20% inh), "
        "exponential synaptic currents, p = 80/N, dt = 0.1 ms, 1 s (10,000 steps), exact "
        "integration; simulation time of 1 s after warm-up, whole first run, spike statistics",
        "peer": "Brian2 (cython runtime and cpp_standalone) running the same network (same "
        "synapses and initial v, given as arrays), written as Brian2's CUBA example",
        "ours": "neuromem numba (float64) and torch CPU (sparse event-driven run loop: float64 and "
        "float32 with the default numpy CPU engine, float64 with torch operations)",
        "timing": "simulation time: sim.run(10000) wall (neuromem, after a warm-up compile, "
        "sim.reset() between repeats), Brian2 cython: Network.run main-loop time "
        "(device._last_run_time, after a 1 ms warm-up run, restore() between repeats), "
        "cpp_standalone: the binary's own run time (last_run_info.txt) over re-runs of the "
        "built binary (first run excluded). min and median over the repeats given per entry",
        "first_run": "neuromem numba whole process (python start, import, connectivity + "
        "Network, compile, run(10000)) in a subprocess: 'cold' = fresh NEUROMEM_CACHE and "
        "NUMBA_CACHE_DIR, 'cold_neuromem_cache_only' = fresh NEUROMEM_CACHE (the network-"
        "independent kernels of _numba_kernels.py cached as installed), 'warm' = the same "
        "process again. Brian2 cpp_standalone: code generation + g++ build + first run "
        "(whole_codegen_build_run_s)",
        "budget": "5 repeats (2 in --quick); a configuration whose repeats would exceed 180 s "
        "(60 s quick) of timed runs gets fewer (>= 2), see 'repeats' per entry; torch runs "
        "estimated above 60 s (30 s quick) are timed on fewer steps and extrapolated, marked "
        "'extrapolated' (no rate check)",
        "synaptic_events": "sum over neurons of spikes x fan-out; per second of simulation time",
        "mapping": MAPPING,
        "threads": 1,
        "thread_settings": "OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS="
        "NUMBA_NUM_THREADS=1, torch.set_num_threads(1), cpp_standalone openmp_threads=0",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "note": "2 shared cores (virtual machine); timings can vary between runs",
        },
        "versions": {
            "neuromem": neuromem.__version__,
            "numba": numba.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
            "brian2": brian2.__version__,
            "python": platform.python_version(),
        },
        "quick": quick,
        "rows": rows,
        "goals": goals(rows),
        "total_benchmark_s": time.perf_counter() - t_start,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "cuba_quick" if quick else "cuba"
    with open(RESULTS / f"{name}.json", "w") as f:
        json.dump(doc, f, indent=1)
    _figure(rows, RESULTS / f"{name}.png")
    print(json.dumps(doc["goals"], indent=1))
    return doc


def _worker(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("numba_first_run", "brian2_cython", "brian2_standalone"))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--data")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=180.0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.kind == "numba_first_run":
        res = _worker_numba_first_run(a.n)
    elif a.kind == "brian2_cython":
        res = _worker_brian2_cython(a.n, a.data, a.repeats, a.budget)
    else:
        res = _worker_brian2_standalone(a.n, a.data, a.repeats, a.budget)
    Path(a.out).write_text(json.dumps(res))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--quick", action="store_true", help="N = 4,000 only, 2 repeats")
        main(parser.parse_args().quick)
