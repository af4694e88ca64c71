"""ELM neuron forward+backward time: neuromem's ELMTorch against a per-step torch loop.

NeuronIO shape: batch 8, T = 500 steps, 1278 inputs, 45 branches x 100 synapses, d_m = 20,
hidden 40 (a fresh seeded model, float32, CPU, one thread). Peer: the same equations written
step by step as in the authors' implementation (inputs routed to synapses once, then the
synaptic trace, branch sums, MLP and memory updated per step with ``x[:, t]`` slicing). Both
produce the same outputs and gradients (checked). Loss: sum(y * r) with a fixed random r.
Writes ``benchmarks/results/elm_forward_backward.json`` and ``.png``.

    .venv/bin/python benchmarks/elm_forward_backward.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from neuromem.models.elm.core import ELMTorch, init_parameters  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GOAL = 2.0


def reference_forward(mod: ELMTorch, x: torch.Tensor) -> torch.Tensor:
    """The ELM equations step by step (the authors' structure), sharing ``mod``'s parameters."""
    p = mod.params
    B, T, _ = x.shape
    nb, dt = p.num_branch, p.dt
    tau_s = torch.tensor(p.tau_s, dtype=x.dtype)
    tau_m = torch.exp(mod.log_tau_m)
    ks, km = torch.exp(-dt / tau_s), torch.exp(-dt / tau_m)
    x_syn = x[..., mod._ri] * mod._mask  # routed once, as the authors do
    s = x.new_zeros(B, p.num_synapse)
    m = x.new_zeros(B, p.d_m)
    ys = []
    for t in range(T):
        s = ks * s + mod.w_s * x_syn[:, t]
        b = s.view(B, nb, -1).sum(-1)
        inp = torch.cat([b, km * m], dim=-1)
        h = torch.relu(torch.nn.functional.linear(inp, mod.mlp_w0, mod.mlp_b0))
        dm = 1.7159 * torch.tanh(
            (2.0 / 3.0) * torch.nn.functional.linear(h, mod.mlp_w1, mod.mlp_b1)
        )
        m = km * m + p.lambda_value * (1.0 - km) * dm
        ys.append(torch.nn.functional.linear(m, mod.w_y, mod.b_y))
    return torch.stack(ys, 1)


def _step(fn, mod, x, r):
    mod.zero_grad(set_to_none=True)
    y = fn(x)
    (y * r).sum().backward()
    return y.detach(), {n: q.grad.clone() for n, q in mod.named_parameters()}


def _time(fn, mod, x, r, repeats):
    _step(fn, mod, x, r)  # warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _step(fn, mod, x, r)
        times.append(time.perf_counter() - t)
    return {"s_min": min(times), "s_median": statistics.median(times), "repeats": repeats}


def main(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    B, T, N = (8, 100 if quick else 500, 1278)
    repeats = 5 if quick else 7
    params = init_parameters(num_input=N, num_memory=20, mlp_hidden_size=40, seed=0)
    mod = ELMTorch(params, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(B, T, N, generator=g) < 0.01).float()  # ~1% spike probability per ms
    r = torch.randn(B, T, 2, generator=g)

    y_ours, g_ours = _step(mod, mod, x, r)
    y_ref, g_ref = _step(lambda z: reference_forward(mod, z), mod, x, r)
    scale = y_ref.abs().max().item()
    out_err = (y_ours - y_ref).abs().max().item() / scale
    grad_err = max(
        ((g_ours[n] - g_ref[n]).abs().max() / g_ref[n].abs().max().clamp_min(1e-30)).item()
        for n in g_ref
    )
    assert out_err < 1e-4 and grad_err < 1e-3, (out_err, grad_err)

    ours = _time(mod, mod, x, r, repeats)
    peer = _time(lambda z: reference_forward(mod, z), mod, x, r, repeats)
    res = {
        "benchmark": "elm_forward_backward",
        "shape": {"batch": B, "T": T, "num_input": N, "d_m": 20, "hidden": 40, "synapses": 4500},
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "ours": {
            "name": "neuromem.models.elm.core.ELMTorch (scan trace + unbind memory loop)",
            **ours,
        },
        "peer": {"name": "per-step torch loop, x[:, t] slicing (authors' structure)", **peer},
        "ratio_min": peer["s_min"] / ours["s_min"],
        "ratio_median": peer["s_median"] / ours["s_median"],
        "goal_ratio": GOAL,
        "max_rel_output_diff": out_err,
        "max_rel_grad_diff": grad_err,
        "quick": quick,
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    if not quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "elm_forward_backward.json").write_text(json.dumps(res, indent=2) + "\n")
        fig, ax = plt.subplots(figsize=(5, 3.2))
        names = ["per-step loop", "neuromem ELMTorch"]
        med = [peer["s_median"], ours["s_median"]]
        mins = [peer["s_min"], ours["s_min"]]
        ax.bar(names, med, color=["0.6", "C0"], label="median")
        ax.scatter(names, mins, color="k", zorder=3, label="min")
        ax.set_ylabel("forward + backward (s)")
        ax.set_title(f"ELM B={B} T={T} d_m=20, 1 thread: {res['ratio_median']:.2f}x")
        ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / "elm_forward_backward.png", dpi=120)
        plt.close(fig)
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="T = 100, no files written")
    res = main(ap.parse_args().quick)
    print(json.dumps({k: res[k] for k in ("ours", "peer", "ratio_min", "ratio_median")}, indent=2))
