"""Multitasking Hebbian network: hierarchical vs parallel retrieval of diluted patterns.

Glauber Monte Carlo of the multitasking Hebbian network (Agliari, Alessandrelli, Barra,
Ricci-Tersenghi, JSTAT 2023, arXiv 2308.04106) on the numba backend:

(a) sorted |m_k| vs dilution d for K = 2, 3, 4 at zero noise, from the hierarchical state, with
    (1-d) d^(k-1) and the zero-temperature mean field overlaid and 1 - 2d + d^K = 0 marked;
(b) the acceptance table (N = 20,000, K = 3, 4 seeds) beside the prediction and the independent
    MC numbers of docs/models/multitasking_hopfield_paper_facts.md, section 8 (no paper numbers
    could be read);
(c) the transition vs d for several beta; (d) supervised vs unsupervised learning from examples;
(e) |m_k| vs temperature; (f) numba vs torch (bit-identical synchronous trajectories under the
    host RNG, sequential statistics over seeds).

Writes ``experiments/results/multitasking_hopfield.json``, ``multitasking_hopfield.png`` and
``multitasking_hopfield_learning.png`` (``--quick``: ``multitasking_hopfield_quick*``, not kept).
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import neuromem  # noqa: E402
from neuromem.models.multitasking_hopfield import (  # noqa: E402
    MultitaskingHopfield,
    hierarchical_prediction,
    hierarchical_state,
    mean_field,
    sorted_abs,
    stability_bound,
)
from neuromem.progress import progress_bar  # noqa: E402
from neuromem.spec import diluted_patterns, noisy_examples  # noqa: E402

DESCRIPTION = "Multitasking Hebbian network: hierarchical/parallel retrieval, learning (numba)"
SUPPORTED_BACKENDS = ("numba", "torch")  # (f) compares them; (a)-(e) run on numba
RESULTS = Path(__file__).resolve().parent / "results"
TOL = 0.01  # acceptance tolerance on each sorted |m_k| (table b)
SUP_UNS_TOL = 0.005  # acceptance: |supervised - unsupervised| per sorted component

#: Independent numba MC (docs/models/multitasking_hopfield_paper_facts.md section 8; NOT the
#: paper's numbers).
SHARED_MC = {
    0.2: [0.799, 0.162, 0.035],
    0.5: [0.500, 0.250, 0.129],
    0.6: [0.402, 0.242, 0.144],
    0.65: [0.330, 0.251, 0.171],
}
SHARED_MC_LEARNING = {
    (0.3, 100): [0.561, 0.272, 0.127],
    (0.6, 30): [0.587, 0.252, 0.112],
    (0.3, 15): [0.322, 0.283, 0.248],
}
#: Acceptance expectations of the issue (d = 0.65: the zero-temperature mean field).
EXPECTED = {
    0.2: [0.80, 0.16, 0.032],
    0.5: [0.50, 0.25, 0.125],
    0.6: [0.40, 0.24, 0.144],
    0.65: [0.329, 0.249, 0.169],
}

PROTOCOL = (
    "Patterns xi in {-1,0,+1}^N, P(0) = d, J = (1/N) sum_mu xi^mu xi^mu with zero diagonal "
    "(low-rank O(K) field). Start: the hierarchical (cascade) state sigma_i = first nonzero "
    "xi_i^mu, random where all are zero. Zero noise: sequential sweeps (N single-spin updates "
    "in a fresh random order), tie rule at h_i = 0: +-1 with probability 1/2 (the beta -> inf "
    "limit of Glauber), run until a sweep changes no informative spin (one with a nonzero "
    "coupling entry; neurons with all xi = 0 have h = 0 exactly and are redrawn each sweep) or "
    "a sweep cap. Finite beta: heat-bath sweeps, |m| sorted per sweep and averaged over the "
    "second half of the run. |m| is measured against the archetypes xi and sorted "
    "decreasingly (gauge symmetry); a new pattern set per seed. numba backend, rng='backend'."
)

FINITE_BETA_NOTE = (
    "Finite beta: sorted |m| per sweep averaged over the last half of the sweeps. A tier that "
    "the mean field puts at 0 shows a finite-N value well above 1/sqrt(N) (e.g. ~0.045 at "
    "d = 0.5, T = 0.35): the pattern cross-talk xi^1.xi^mu/N ~ (1-d)/sqrt(N) acts as a quenched "
    "field on m_mu, amplified by the susceptibility 1/(1 - beta(1-d)(d + (1-d)(1 - "
    "tanh^2(beta m_1)))) (~16 there), which diverges as T -> T_c = 1-d."
)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _round(a: Any, nd: int = 5) -> Any:
    return np.round(np.asarray(a, dtype=float), nd).tolist()


def zero_noise_runs(
    n: int, k: int, d: float, seeds: list[int], cap: int, tag: int, update: str = "sequential"
) -> dict[str, Any]:
    """Zero-noise runs from the hierarchical state; sorted |m| per seed."""
    ms, sweeps, stable, margin = [], [], [], []
    for s in seeds:
        xi = diluted_patterns(k, n, d, seed=_seed(tag, k, round(d * 1000), s))
        net = MultitaskingHopfield(n)
        net.store_patterns(xi)
        start = hierarchical_state(xi, seed=s)
        m0 = xi @ start / n
        # field on the worst neurons (xi^1 opposite to all others) in the start state: the
        # finite-N value of 1 - 2d + d^K; the hierarchy is left where it is negative
        margin.append(float(m0[0] - np.sum(np.abs(m0[1:]))))
        out = net.run(start, math.inf, cap, update=update, seed=s)
        ms.append(out.sorted_abs)
        sweeps.append(out.sweeps)
        stable.append(out.stable)
    ms_a = np.array(ms)
    return {
        "per_seed": ms_a,
        "mean": ms_a.mean(axis=0),
        "std": ms_a.std(axis=0, ddof=1) if len(seeds) > 1 else np.zeros(k),
        "sweeps": sweeps,
        "stable": stable,
        "start_margin": margin,
    }


def finite_beta_runs(
    n: int, k: int, d: float, beta: float, seeds: list[int], sweeps: int, tag: int
) -> np.ndarray:
    """Sorted |m| averaged over the second half of ``sweeps`` heat-bath sweeps, per seed."""
    if math.isinf(beta):
        return zero_noise_runs(n, k, d, seeds, sweeps, tag)["per_seed"]
    out = []
    for s in seeds:
        xi = diluted_patterns(k, n, d, seed=_seed(tag, k, round(d * 1000), s))
        net = MultitaskingHopfield(n)
        net.store_patterns(xi)
        r = net.run(hierarchical_state(xi, seed=s), beta, sweeps, seed=s, until_stable=False)
        out.append(r.tail_sorted_abs(sweeps // 2))
    return np.array(out)


def learning_runs(
    n: int, k: int, d: float, r: float, m_ex: int, seeds: list[int], cap: int, tag: int
) -> dict[str, np.ndarray]:
    """Zero-noise runs with couplings learnt from the same examples by both protocols."""
    res: dict[str, list] = {"supervised": [], "unsupervised": []}
    for s in seeds:
        xi = diluted_patterns(k, n, d, seed=_seed(tag, k, round(d * 1000), s))
        eta = noisy_examples(xi, m_ex, r, seed=_seed(tag + 1, round(r * 1000), m_ex, s))
        init = hierarchical_state(xi, seed=s)
        for protocol in res:
            net = MultitaskingHopfield(n)
            net.store_examples(eta, r, protocol, archetypes=xi)  # type: ignore[arg-type]
            res[protocol].append(net.run(init, math.inf, cap, seed=s).sorted_abs)
    return {p: np.array(v) for p, v in res.items()}


# ------------------------------------------------------------------ (f) numba vs torch
def backend_consistency(quick: bool) -> dict[str, Any]:
    """Synchronous trajectories under the host RNG (bit-identical) and sequential statistics."""
    out: dict[str, Any] = {}
    n, k, d = (600, 3, 0.5) if quick else (2000, 3, 0.5)
    xi = diluted_patterns(k, n, d, seed=11)
    init = hierarchical_state(xi, seed=11)
    rng0 = np.random.default_rng(5)
    noisy_init = np.where(rng0.random(n) < 0.3, -init, init)  # a corrupted start, so spins move
    model = MultitaskingHopfield(n)
    model.store_patterns(xi)
    sync = []
    for beta in (math.inf, 3.0):
        net = model.network(noisy_init, beta, "synchronous", "random", 7, "host", True)
        t0 = time.perf_counter()
        a = neuromem.compile(net, backend="numba").run(30).state
        t1 = time.perf_counter()
        b = neuromem.compile(net, backend="torch").run(30).state
        t2 = time.perf_counter()
        sa, sb = np.asarray(a["s.sigma"]), np.asarray(b["s.sigma"])
        flips = int(np.sum(sa[1:] != sa[:-1]) + np.sum(sa[0] != noisy_init))
        sync.append(
            {
                "n": n,
                "beta": "inf" if math.isinf(beta) else beta,
                "sweeps": 30,
                "spin_flips_in_trajectory": flips,
                "sigma_trajectories_identical": bool(np.array_equal(sa, sb)),
                "m_trajectories_identical": bool(np.array_equal(a["s.m"], b["s.m"])),
                "max_abs_m_difference": float(np.max(np.abs(a["s.m"] - b["s.m"]))),
                "final_m": _round(a["s.m"][-1]),
                "numba_s": round(t1 - t0, 3),
                "torch_s": round(t2 - t1, 3),
            }
        )
    out["synchronous_host_rng"] = sync
    out["synchronous_bit_identical"] = all(r["sigma_trajectories_identical"] for r in sync)

    # sequential: same trajectory under the host RNG? (informative; float sums may differ)
    net = model.network(noisy_init, 3.0, "sequential", "random", 7, "host", True)
    steps = 3 if quick else 5
    a = neuromem.compile(net, backend="numba").run(steps).state
    b = neuromem.compile(net, backend="torch").run(steps).state
    out["sequential_host_rng_identical"] = {
        "n": n,
        "beta": 3.0,
        "sweeps": steps,
        "identical": bool(np.array_equal(a["s.sigma"], b["s.sigma"])),
    }

    # sequential statistics: numba seeds vs one torch batch of independent replicas
    ns, reps, sweeps, beta, ds = (300, 16, 30, 4.0, 0.3) if quick else (500, 32, 40, 4.0, 0.3)
    xs = diluted_patterns(3, ns, ds, seed=21)
    mod = MultitaskingHopfield(ns)
    mod.store_patterns(xs)
    init_s = np.where(np.random.default_rng(22).random(ns) < 0.5, 1.0, -1.0)
    init_s = np.where(np.random.default_rng(23).random(ns) < 0.2, init_s, xs[0] + (xs[0] == 0))
    tail = sweeps // 2
    t0 = time.perf_counter()
    mn = np.array(
        [
            mod.run(init_s, beta, sweeps, seed=s, until_stable=False).tail_sorted_abs(tail)
            for s in range(reps)
        ]
    )
    t1 = time.perf_counter()
    modt = MultitaskingHopfield(ns, backend="torch", batch_size=reps)
    modt.store_patterns(xs)
    rt = modt.run(init_s, beta, sweeps, seed=1234, until_stable=False)
    mt = sorted_abs(rt.trajectory[-tail:]).mean(axis=0)  # (reps, K)
    t2 = time.perf_counter()
    se = np.sqrt(mn.var(axis=0, ddof=1) / reps + mt.var(axis=0, ddof=1) / reps)
    diff = mt.mean(axis=0) - mn.mean(axis=0)
    z = np.abs(diff) / np.maximum(se, 1e-12)
    out["sequential_statistics"] = {
        "n": ns,
        "K": 3,
        "d": ds,
        "beta": beta,
        "sweeps": sweeps,
        "averaged_over_last_sweeps": tail,
        "replicas": reps,
        "start": "xi^1 (zeros set to +1) with 20% of the spins replaced by random signs",
        "numba_mean_sorted_abs_m": _round(mn.mean(axis=0)),
        "torch_mean_sorted_abs_m": _round(mt.mean(axis=0)),
        "difference": _round(diff),
        "standard_error_of_difference": _round(se),
        "z_scores": _round(z, 2),
        "pass_within_3_standard_errors": bool(np.all(z < 3.0)),
        "numba_s": round(t1 - t0, 3),
        "torch_s": round(t2 - t1, 3),
    }
    return out


# ------------------------------------------------------------------ figures
def _figure(res: dict[str, Any], path: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
    colors = ["C0", "C1", "C2", "C3"]
    a = res["a_hierarchy_vs_d"]
    for ax, (key, v) in zip(axes[0], a.items(), strict=True):
        k = v["K"]
        d = np.array(v["d"])
        m, sd = np.array(v["m_sorted_mean"]), np.array(v["m_sorted_std"])
        dd = np.linspace(0, 1, 201)
        for j in range(k):
            ax.errorbar(
                d, m[:, j], sd[:, j], fmt="o", ms=4, color=colors[j], label=f"MC |m|_{j + 1}"
            )
            ax.plot(dd, (1 - dd) * dd**j, "-", color=colors[j], lw=1, alpha=0.7)
            ax.plot(d, np.array(v["mean_field_T0"])[:, j], ":", color=colors[j], lw=1.5)
        if not math.isnan(v["stability_bound"]):  # in the legend: a label would hide data
            ax.axvline(
                v["stability_bound"],
                color="k",
                ls="--",
                lw=1,
                label=f"1-2d+d^{k}=0: d={v['stability_bound']:.3f}",
            )
        ax.set(xlabel="dilution d", ylabel="sorted |m_k|", title=f"(a) {key}, beta = inf")
        ax.set_ylim(0, 1)
        ax.legend(
            fontsize=7,
            title="solid: (1-d)d^(k-1); dotted: T = 0 mean field",
            title_fontsize=7,
            loc="upper right",
        )
    c = res["c_beta_transition"]
    ax = axes[1, 1]
    for i, (bkey, v) in enumerate(c["curves"].items()):
        d = np.array(c["d"])
        m = np.array(v["m_sorted_mean"])
        for j, mk in enumerate("os^"):
            lab = bkey if j == 0 else None
            ax.plot(d, m[:, j], mk + "-", ms=3.5, color=f"C{i}", lw=0.8, label=lab)
            ax.plot(d, np.array(v["mean_field"])[:, j], ":", color=f"C{i}", lw=1.2)
    ax.axvline(stability_bound(3), color="k", ls="--", lw=1)
    ax.set(xlabel="dilution d", ylabel="sorted |m_k|", title="(c) K = 3, several beta")
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=7, title="o/s/^: |m|_1,2,3; dotted: mean field", title_fontsize=7,
              loc="upper right", ncol=2)  # fmt: skip
    e = res["e_temperature"]
    ax = axes[1, 2]
    for i, (dkey, v) in enumerate(e["curves"].items()):
        t = np.array(e["T"])
        m = np.array(v["m_sorted_mean"])
        for j in range(3):
            ax.plot(t, m[:, j], "o", ms=3, color=f"C{3 * i + j}", label=f"{dkey} |m|_{j + 1}")
            ax.plot(t, np.array(v["mean_field"])[:, j], "-", color=f"C{3 * i + j}", lw=1)
        ax.axvline(v["T_c"], color="grey", ls="--", lw=1)
    ax.set(xlabel="T = 1/beta", ylabel="sorted |m_k|", title="(e) K = 3 vs temperature")
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=6, ncol=2, title="lines: mean field; dashed: T_c = 1-d", title_fontsize=7,
              loc="upper right")  # fmt: skip
    ax = axes[1, 0]
    ax.axis("off")
    rows = [
        [
            f"{r['d']}",
            "/".join(f"{x:.3f}" for x in r["ours_mean"]),
            "/".join(f"{x:.3f}" for x in r["expected"]),
            "/".join(f"{x:.3f}" for x in r["independent_mc"]),
            "pass" if r.get("pass_4_seeds_at_N", r["pass"]) else "FAIL",
        ]
        for r in res["b_acceptance"]["rows"]
    ]
    for r in res["b_acceptance"]["rows"]:  # the restated d = 0.6 row: what it was judged on
        if "pass_samples_at_N" in r:
            rows.append(
                [
                    f"{r['d']}*",
                    "/".join(f"{x:.3f}" for x in r["mean_over_diagnosis_samples"]),
                    "/".join(f"{x:.3f}" for x in r["expected"]),
                    f"4 seeds at 4N: {'pass' if r['pass_4_seeds_at_4N'] else 'FAIL'}",
                    "pass" if r["pass_samples_at_N"] else "FAIL",
                ]
            )
    tab = ax.table(
        cellText=rows,
        colLabels=[
            "d",
            f"ours ({len(res['setting']['seeds'])} seeds)",
            "expected",
            "independent MC",
            "",
        ],
        loc="center",
        cellLoc="center",
        colWidths=[0.08, 0.27, 0.27, 0.27, 0.1],
    )
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.scale(1.1, 1.6)
    ax.set_title(
        f"(b) K = 3, N = {res['setting']['N']}, beta = inf, tol {TOL}\n"
        "* d = 0.6 as judged (the row above: 4 seeds at N, recorded): the mean over\n"
        f"{res['b_acceptance']['finite_size_diagnosis']['d=0.6']['samples']} pattern samples "
        "at N, and the 4 seeds at 4N",
        fontsize=9,
    )
    fig.suptitle("Multitasking Hebbian network (Glauber MC, numba)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _learning_figure(res: dict[str, Any], path: Path) -> None:
    lr = res["d_learning"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (key, xname) in zip(axes, (("vs_r", "r"), ("vs_M", "M")), strict=True):
        cur = lr["curves"][key]
        x = np.array(cur[xname])
        for j in range(3):
            for p, mk in (("supervised", "o-"), ("unsupervised", "x--")):
                ax.plot(
                    x,
                    np.array(cur[p])[:, j],
                    mk,
                    color=f"C{j}",
                    ms=5,
                    lw=1,
                    label=f"{p} |m|_{j + 1}",
                )
        ax.set(
            xlabel=xname,
            ylabel="sorted |m_k|",
            title=f"(d) K = 3, d = {lr['d']}, {cur['fixed']}",
            xscale="log" if xname == "M" else "linear",
        )
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle("Learning from examples: supervised (o) vs unsupervised (x), beta = inf")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ main
def run(
    quick: bool = False,
    backends: list[str] | None = None,
    data: str | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run (a)-(f); ``quick`` uses N = 4,000, coarser grids and fewer seeds.

    (a)-(e) run on numba (torch's sequential sweep is a Python loop over spins, far too slow at
    N = 20,000); (f) compares numba with torch when both are in ``backends`` (default).
    ``data`` is unused.
    """
    out = Path(out_dir) if out_dir is not None else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    backends = list(backends or ["numba", "torch"])
    n = 4000 if quick else 20000
    seeds = [0, 1] if quick else [0, 1, 2, 3]
    cap = 200
    d_grid = (
        [0.1, 0.3, 0.5, 0.6, 0.7, 0.9]
        if quick
        else [round(x, 2) for x in np.arange(0.05, 0.951, 0.05)] + [0.52, 0.54, 0.56, 0.58, 0.62]
    )
    d_grid = sorted(set(d_grid))
    betas = [math.inf, 20.0, 10.0, 5.0]
    fin_sweeps = 60 if quick else 200
    t_grid = (
        [0.05, 0.15, 0.25, 0.35, 0.45, 0.6, 0.75, 0.9]
        if quick
        else [round(x, 3) for x in np.linspace(0.025, 0.9, 24)]
    )
    t_ds = [0.2, 0.5]
    timings: dict[str, float] = {}
    res: dict[str, Any] = {
        "experiment": "multitasking_hopfield",
        "paper": "Agliari, Alessandrelli, Barra, Ricci-Tersenghi, 'Parallel Learning by "
        "Multitasking Neural Networks', JSTAT (2023) 113401, arXiv:2308.04106",
        "paper_numbers": "none: the paper body could not be read through the tools "
        "(docs/models/multitasking_hopfield_paper_facts.md); the 'independent_mc' columns are "
        "from docs/models/multitasking_hopfield_paper_facts.md section 8, not from the paper",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "neuromem": neuromem.__version__,
        },
        "setting": {
            "quick": quick,
            "N": n,
            "seeds": seeds,
            "sweep_cap_zero_noise": cap,
            "finite_beta_sweeps": fin_sweeps,
            "backend": "numba (rng='backend')",
        },
        "protocol": PROTOCOL,
    }
    t_all = time.perf_counter()

    # (a) hierarchy vs d, K = 2, 3, 4
    t0 = time.perf_counter()
    a: dict[str, Any] = {}
    with progress_bar(total=3 * len(d_grid), desc="(a) |m| vs d") as bar:
        for k in (2, 3, 4):
            rows = []
            for d in d_grid:
                rows.append(zero_noise_runs(n, k, d, seeds, cap, tag=1))
                bar.update(1)
            a[f"K={k}"] = {
                "K": k,
                "d": d_grid,
                "m_sorted_mean": _round([r["mean"] for r in rows]),
                "m_sorted_std": _round([r["std"] for r in rows]),
                "prediction": _round([hierarchical_prediction(d, k) for d in d_grid]),
                "mean_field_T0": _round([mean_field(d, k) for d in d_grid]),
                "stability_bound": stability_bound(k),
                "sweeps_to_stable": [r["sweeps"] for r in rows],
                "all_runs_stable": bool(all(all(r["stable"]) for r in rows)),
            }
    res["a_hierarchy_vs_d"] = a
    timings["a_s"] = time.perf_counter() - t0

    # (b) acceptance table
    t0 = time.perf_counter()
    table = []
    with progress_bar(total=len(EXPECTED), desc="(b) acceptance") as bar:
        for d, exp in EXPECTED.items():
            r = zero_noise_runs(n, 3, d, seeds, cap, tag=2)
            ours = r["mean"]
            hier = hierarchical_prediction(d, 3)
            diff = ours - np.array(exp)
            row = {
                "d": d,
                "ours_mean": _round(ours, 4),
                "ours_per_seed": _round(r["per_seed"], 4),
                "ours_std_over_seeds": _round(r["std"], 4),
                "sweeps_to_stable": r["sweeps"],
                "all_runs_stable": bool(all(r["stable"])),
                "start_margin_per_seed": _round(r["start_margin"], 5),
                "start_margin_expected_1-2d+d^3": round(1 - 2 * d + d**3, 5),
                "expected": exp,
                "expected_from": "hierarchical (1-d)d^(k-1)"
                if d < stability_bound(3)
                else "T = 0 mean field from the hierarchical start (hierarchy unstable)",
                "hierarchical_prediction": _round(hier, 4),
                "mean_field_T0": _round(mean_field(d, 3), 4),
                "independent_mc": SHARED_MC[d],
                "difference_to_expected": _round(diff, 4),
                "pass": bool(np.all(np.abs(diff) <= TOL)),
            }
            if d > stability_bound(3):
                dep = float(np.max(np.abs(ours - hier)))
                row["max_departure_from_hierarchical"] = round(dep, 4)
                row["departs_from_hierarchical"] = bool(dep > TOL)
                row["pass"] = row["pass"] and row["departs_from_hierarchical"]
            table.append(row)
            bar.update(1)
    # finite-N diagnosis near the bound: how often does a pattern sample leave the hierarchy?
    diag = {}
    n_samples = 40 if quick else 200
    with progress_bar(total=3, desc="(b) finite-N diagnosis") as bar:
        for d in (0.55, 0.6, 0.62):
            r = zero_noise_runs(n, 3, d, list(range(100, 100 + n_samples)), cap, tag=7)
            left = np.array(r["sweeps"]) > 1  # a sweep changed the start state
            mg = np.array(r["start_margin"])
            diag[f"d={d}"] = {
                "samples": n_samples,
                "fraction_leaving_hierarchical_state": float(left.mean()),
                "fraction_with_negative_start_margin": float((mg < 0).mean()),
                "start_margin_mean": round(float(mg.mean()), 5),
                "start_margin_std": round(float(mg.std(ddof=1)), 5),
                "start_margin_expected_1-2d+d^3": round(1 - 2 * d + d**3, 5),
                "mean_sorted_abs_m": _round(r["mean"], 4),
                "std_sorted_abs_m_over_samples": _round(r["std"], 4),
            }
            bar.update(1)
            for row in table:
                if row["d"] == d:
                    row["mean_over_diagnosis_samples"] = _round(r["mean"], 4)
    # finite-size scaling at d = 0.6: the same 4 acceptance seeds (tag 2) and 50 samples
    # (tag 7) at growing N; the start margin's spread falls as 1/sqrt(N)
    scaling = {}
    sizes = [n, 4 * n] if quick else [n, 4 * n, 16 * n]
    with progress_bar(total=len(sizes), desc="(b) finite-size scaling, d = 0.6") as bar:
        for size in sizes:
            four = zero_noise_runs(size, 3, 0.6, seeds, cap, tag=2)
            many = zero_noise_runs(size, 3, 0.6, list(range(100, 150)), cap, tag=7)
            diff = four["mean"] - np.array(EXPECTED[0.6])
            scaling[f"N={size}"] = {
                "acceptance_seeds_mean": _round(four["mean"], 4),
                "acceptance_seeds_m1": _round(four["per_seed"][:, 0], 4),
                "acceptance_seeds_pass": bool(np.all(np.abs(diff) <= TOL)),
                "fraction_of_50_samples_leaving": float((np.array(many["sweeps"]) > 1).mean()),
                "start_margin_std_50_samples": round(
                    float(np.std(many["start_margin"], ddof=1)), 5
                ),
            }
            bar.update(1)
    # the d = 0.6 row restated (issue 17): the bound is within the spread of 4 samples at N, so
    # it is judged on the mean over the pattern samples at N and on the 4 seeds at 4N
    for row in table:
        if row["d"] == 0.6:
            samples = np.array(row["mean_over_diagnosis_samples"])
            big = scaling[f"N={4 * n}"]
            row["criterion"] = (
                f"mean over {n_samples} pattern samples at N = {n} within the tolerance, and the "
                f"4 acceptance seeds at N = {4 * n} within the tolerance (the 4 seeds at N are "
                "recorded as pass_4_seeds_at_N)"
            )
            row["pass_4_seeds_at_N"] = row["pass"]
            row["pass_samples_at_N"] = bool(np.all(np.abs(samples - EXPECTED[0.6]) <= TOL))
            row["pass_4_seeds_at_4N"] = big["acceptance_seeds_pass"]
            row["pass"] = row["pass_samples_at_N"] and row["pass_4_seeds_at_4N"]
    res["b_acceptance"] = {
        "N": n,
        "K": 3,
        "beta": "inf",
        "tolerance": TOL,
        "rows": table,
        "all_pass": all(r["pass"] for r in table),
        "finite_size_diagnosis": diag,
        "finite_size_scaling_d=0.6": scaling,
        "note": "At N = 20,000 the start state's worst-neuron field m1 - |m2| - |m3| has a "
        "sample-to-sample spread ~0.008 (pattern cross-talk ~ 1/sqrt(N)), comparable to its mean "
        "1 - 2d + d^3 = 0.016 at d = 0.6: a few percent of pattern samples at d = 0.6 leave the "
        "hierarchical state and flow to the departed branch (~0.36/0.27/0.17). The spread falls "
        "as 1/sqrt(N) ('finite_size_scaling_d=0.6'): with the same seeds at 4N and 16N no sample "
        "leaves and the 4-seed mean is within the tolerance.",
    }
    timings["b_s"] = time.perf_counter() - t0

    # (c) transition vs beta
    t0 = time.perf_counter()
    c_d = d_grid if quick else [round(x, 2) for x in np.arange(0.05, 0.951, 0.05)]
    c_seeds = seeds
    curves = {}
    with progress_bar(total=len(betas) * len(c_d), desc="(c) |m| vs d, beta") as bar:
        for beta in betas:
            ms, mf = [], []
            for d in c_d:
                ms.append(finite_beta_runs(n, 3, d, beta, c_seeds, fin_sweeps, 3).mean(axis=0))
                mf.append(mean_field(d, 3, beta))
                bar.update(1)
            curves["beta=inf" if math.isinf(beta) else f"beta={beta:g}"] = {
                "beta": "inf" if math.isinf(beta) else beta,
                "m_sorted_mean": _round(ms),
                "mean_field": _round(mf),
            }
    res["c_beta_transition"] = {
        "K": 3,
        "d": c_d,
        "seeds": c_seeds,
        "note": FINITE_BETA_NOTE,
        "curves": curves,
    }
    timings["c_s"] = time.perf_counter() - t0

    # (d) supervised vs unsupervised
    t0 = time.perf_counter()
    d_l = 0.4
    # per-sample sup/uns differences are O(N^-1/2) but reach 0.02 at (r, M) = (0.3, 15), so
    # the mean over 4 seeds is too noisy for a 0.005 tolerance: 16 seeds in the full setting
    l_seeds = seeds if quick else list(range(16))
    ltable = []
    with progress_bar(total=len(SHARED_MC_LEARNING), desc="(d) learning table") as bar:
        for (r, m_ex), mc in SHARED_MC_LEARNING.items():
            lr = learning_runs(n, 3, d_l, r, m_ex, l_seeds, cap, tag=4)
            sup, uns = lr["supervised"].mean(axis=0), lr["unsupervised"].mean(axis=0)
            per_seed = lr["supervised"] - lr["unsupervised"]
            diff = np.abs(sup - uns)
            ltable.append(
                {
                    "r": r,
                    "M": m_ex,
                    "seeds": len(l_seeds),
                    "supervised_mean": _round(sup, 4),
                    "unsupervised_mean": _round(uns, 4),
                    "supervised_std_over_seeds": _round(lr["supervised"].std(axis=0, ddof=1), 4),
                    "abs_difference": _round(diff, 4),
                    "standard_error_of_difference": _round(
                        per_seed.std(axis=0, ddof=1) / np.sqrt(len(l_seeds)), 4
                    ),
                    "max_per_seed_abs_difference": round(float(np.max(np.abs(per_seed))), 4),
                    "first_4_seeds_abs_difference": _round(np.abs(per_seed[:4].mean(axis=0)), 4),
                    "first_4_seeds_supervised_mean": _round(lr["supervised"][:4].mean(axis=0), 4),
                    "independent_mc": mc,
                    "supervised_minus_independent_mc": _round(sup - np.array(mc), 4),
                    "pass": bool(np.all(diff <= SUP_UNS_TOL)),
                }
            )
            bar.update(1)
    r_grid = [0.1, 0.3, 0.5, 0.7, 0.9] if quick else [round(x, 2) for x in np.arange(0.1, 1, 0.1)]
    m_grid = [5, 15, 50] if quick else [3, 5, 10, 15, 20, 30, 50, 100]
    c_seeds = seeds
    lcurves: dict[str, Any] = {
        "vs_r": {"fixed": "M = 30", "r": r_grid, "supervised": [], "unsupervised": []},
        "vs_M": {"fixed": "r = 0.3", "M": m_grid, "supervised": [], "unsupervised": []},
    }
    with progress_bar(total=len(r_grid) + len(m_grid), desc="(d) learning curves") as bar:
        for key, pts in (("vs_r", [(r, 30) for r in r_grid]), ("vs_M", [(0.3, m) for m in m_grid])):
            for r, m_ex in pts:
                lr = learning_runs(n, 3, d_l, r, m_ex, c_seeds, cap, tag=5)
                for p in ("supervised", "unsupervised"):
                    lcurves[key][p].append(_round(lr[p].mean(axis=0), 4))
                bar.update(1)
    for cur in lcurves.values():
        cur["max_abs_difference"] = round(
            float(np.max(np.abs(np.array(cur["supervised"]) - np.array(cur["unsupervised"])))), 4
        )
    res["d_learning"] = {
        "K": 3,
        "d": d_l,
        "beta": "inf",
        "tolerance": SUP_UNS_TOL,
        "examples": "eta^{mu a} = chi^{mu a} xi^mu, P(chi = +1) = (1+r)/2; the same examples "
        "and the same start and dynamics seed for both protocols; |m| against the archetypes",
        "ideal_M_to_infinity": _round(hierarchical_prediction(d_l, 3), 4),
        "table": ltable,
        "all_pass": all(r["pass"] for r in ltable),
        "curves": lcurves,
        "curve_seeds": c_seeds,
    }
    timings["d_s"] = time.perf_counter() - t0

    # (e) magnetisation vs temperature
    t0 = time.perf_counter()
    ecurves = {}
    with progress_bar(total=len(t_ds) * len(t_grid), desc="(e) |m| vs T") as bar:
        for d in t_ds:
            ms, mf = [], []
            for t in t_grid:
                ms.append(finite_beta_runs(n, 3, d, 1 / t, seeds, fin_sweeps, 6).mean(axis=0))
                mf.append(mean_field(d, 3, 1 / t))
                bar.update(1)
            ecurves[f"d={d}"] = {
                "d": d,
                "T_c": 1 - d,
                "m_sorted_mean": _round(ms),
                "mean_field": _round(mf),
            }
    res["e_temperature"] = {
        "K": 3,
        "T": t_grid,
        "seeds": seeds,
        "note": FINITE_BETA_NOTE,
        "curves": ecurves,
    }
    timings["e_s"] = time.perf_counter() - t0

    # (f) numba vs torch
    t0 = time.perf_counter()
    if "numba" in backends and "torch" in backends:
        with progress_bar(total=1, desc="(f) numba vs torch") as bar:
            res["f_backends"] = backend_consistency(quick)
            bar.update(1)
    else:
        res["f_backends"] = {"skipped": f"needs numba and torch, got {backends}"}
    timings["f_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all
    res["wall_time_s"] = {k: round(v, 2) for k, v in timings.items()}

    f = res["f_backends"]
    acceptance = {
        f"b_d={r['d']}": (
            {"ours": r["ours_mean"], "expected": r["expected"], "pass": r["pass"]}
            if "pass_samples_at_N" not in r
            else {  # the restated row: what it is judged on
                "ours_mean_over_samples": r["mean_over_diagnosis_samples"],
                "ours_4_seeds_at_4N": scaling[f"N={4 * n}"]["acceptance_seeds_mean"],
                "expected": r["expected"],
                "pass": r["pass"],
            }
        )
        for r in table
    }
    acceptance.update(
        {
            f"d_sup_vs_uns_r={r['r']}_M={r['M']}": {
                "abs_difference": r["abs_difference"],
                "pass": r["pass"],
            }
            for r in ltable
        }
    )
    if "skipped" not in f:
        acceptance["f_synchronous_bit_identical"] = {"pass": f["synchronous_bit_identical"]}
        acceptance["f_sequential_statistics"] = {
            "z_scores": f["sequential_statistics"]["z_scores"],
            "pass": f["sequential_statistics"]["pass_within_3_standard_errors"],
        }
    res["acceptance"] = acceptance
    res["all_acceptance_pass"] = all(v["pass"] for v in acceptance.values())
    if quick:
        res["acceptance_note"] = (
            "quick setting: N = 4,000 and 2 seeds; the 0.01 tolerances are meant for N = 20,000"
        )
    # the quick setting never overwrites the full results
    stem = "multitasking_hopfield_quick" if quick else "multitasking_hopfield"
    with open(out / f"{stem}.json", "w") as fh:
        json.dump(res, fh, indent=1)
    _figure(res, out / f"{stem}.png")
    _learning_figure(res, out / f"{stem}_learning.png")
    return {
        "all_acceptance_pass": res["all_acceptance_pass"],
        "acceptance": acceptance,
        "wall_time_s": res["wall_time_s"],
    }
