"""ELM neuron: golden equivalence, and ELM vs a LIF SNN vs an LSTM on a delayed-recall task.

Part 1 (needs ``$NEUROMEM_DATA/elm`` or ``data``): the authors' released NeuronIO models run on
their fixed golden input with torch float64 and numba; max|error| / max|y| is recorded.

Part 2: the synthetic long-horizon task :class:`neuromem.datasets.synthetic.DelayedRecall`.
One of ``n_classes`` fixed random spike patterns is shown on ``n_signal`` channels during a
cue window, ``delay`` steps of background noise follow, then a recall cue fires on ``n_recall``
dedicated channels; the label is the pattern's class, read out in the recall window (mean
output, or hidden spike counts for the LIF network, over its ``recall_len`` steps). Three
models of similar parameter count are trained with Adam for the same number of steps at every
horizon:

- ELM (Spieler et al., ICLR 2024): one branch per input channel, ``d_m`` memory units with
  ``tau_m`` log-spaced in [1, ``elm_tau_max``] (fixed, the same at every horizon);
- LIF: a recurrent network of ``nir_lif`` neurons written in the neuromem spec and compiled to
  the torch backend with ``trainable=True`` (surrogate gradients through the generated step
  function), plus a linear readout of the hidden spike counts in the recall window;
- LSTM: ``torch.nn.LSTM`` plus a linear readout.

Part 3: figures: ELM memory-unit traces (``return_memory=True``) for one test input, and test
accuracy vs horizon per model. Writes ``experiments/results/elm.json``, ``elm_traces.png`` and
``elm_accuracy.png`` (``elm_quick*`` with ``quick=True``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import neuromem  # noqa: E402
from neuromem.datasets.synthetic import DelayedRecall  # noqa: E402
from neuromem.errors import DataError  # noqa: E402
from neuromem.models.elm.core import (  # noqa: E402
    AUTHORS_MODELS,
    ELMTorch,
    elm_forward_numba,
    init_parameters,
    load_authors_model,
    load_golden,
    parameter_count,
)
from neuromem.progress import progress_bar  # noqa: E402
from neuromem.spec import (  # noqa: E402
    Discretization,
    Network,
    Population,
    Projection,
    SpikeProbe,
    all_to_all,
    nir_lif,
    spike_source,
)

#: A float64 re-implementation of the authors' equations reproduces their (float32) golden
#: outputs to about 2e-5 of max|y| (the data's README): the tolerance of the golden check.
GOLDEN_REFERENCE_ERROR = 2e-5
DESCRIPTION = "ELM neuron: golden check, and ELM vs LIF SNN vs LSTM on delayed recall"
RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("elm", "lif", "lstm")

#: The full and the quick setting. ``run(config=...)`` overrides single keys (tests use it).
FULL: dict[str, Any] = {
    "horizons": [25, 100, 400],
    "n_train": 2048,
    "n_test": 512,
    "batch": 64,
    "epochs": 15,
    "lr": {"elm": 5e-3, "lif": 2e-3, "lstm": 5e-3},
    "elm_d_m": 10,
    "elm_tau_max": 1000.0,
    "lif_hidden": 20,
    "lif_tau": 20.0,
    "lstm_hidden": 7,
    "seed": 0,
    "threads": 2,
}
QUICK: dict[str, Any] = {
    **FULL,
    "horizons": [25, 100],
    "n_train": 1024,
    "n_test": 256,
    "epochs": 20,
}


# ---------------------------------------------------------------------------------------------
# the task: neuromem.datasets.synthetic.DelayedRecall
# ---------------------------------------------------------------------------------------------
#: DelayedRecall fields other than ``delay`` (its defaults, spelled out for the JSON).
TASK: dict[str, Any] = {
    "n_classes": 4,
    "n_signal": 32,
    "n_recall": 2,
    "cue_len": 20,
    "recall_len": 10,
    "pattern_rate": 0.2,
    "noise_rate": 0.02,
    "pattern_seed": 0,
}


def task_for(delay: int, task: dict[str, Any] | None = None) -> DelayedRecall:
    return DelayedRecall(delay=int(delay), **(TASK if task is None else task))


def make_task(
    n: int, delay: int, task: dict[str, Any] | None = None, seed: int = 0, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples at horizon ``delay``: spikes float32 (n, T, n_signal + n_recall) and
    labels int64 (n,). Deterministic in (task, delay, seed, split); train and test differ."""
    k = {"train": 0, "test": 1, "figure": 2}[split]
    return task_for(delay, task).sample(n, seed=(int(seed) * 4 + k) * 100_003 + int(delay))


# ---------------------------------------------------------------------------------------------
# the models: x (B, T, channels) -> logits (B, n_classes), read in the recall window
# ---------------------------------------------------------------------------------------------
class ELMClassifier(nn.Module):
    """One ELM neuron with one branch per input channel; logits = mean output in the window."""

    def __init__(self, task: DelayedRecall, d_m: int, tau_max: float, seed: int):
        super().__init__()
        self.window = task.recall_len
        self.params = init_parameters(
            num_input=task.n_in,
            num_branch=task.n_in,
            num_synapse_per_branch=1,
            num_memory=d_m,
            num_output=task.n_classes,
            memory_tau_min=1.0,
            memory_tau_max=tau_max,
            routing_index=np.arange(task.n_in),
            seed=seed,
        )
        self.elm = ELMTorch(self.params, dtype=torch.float32)

    def parameter_count(self) -> int:
        return parameter_count(self.params)

    def forward(self, x: torch.Tensor, return_memory: bool = False):
        y, mem = self.elm(x, return_memory=True)
        logits = y[:, -self.window :].mean(1)
        return (logits, y, mem) if return_memory else logits


class LSTMClassifier(nn.Module):
    def __init__(self, task: DelayedRecall, hidden: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.window = task.recall_len
        self.lstm = nn.LSTM(task.n_in, hidden, batch_first=True)
        with torch.no_grad():  # forget-gate bias 1 (Jozefowicz et al. 2015), gates i, f, g, o
            self.lstm.bias_hh_l0[hidden : 2 * hidden].fill_(1.0)
            self.lstm.bias_ih_l0[hidden : 2 * hidden].zero_()
        self.readout = nn.Linear(hidden, task.n_classes)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)
        return self.readout(h[:, -self.window :].mean(1))


def lif_network(task: DelayedRecall, hidden: int, tau: float, seed: int) -> Network:
    """Input spike source -> recurrent ``nir_lif`` population (all-to-all, self included)."""
    rng = np.random.default_rng([seed, 17])
    n_ch = task.n_in
    pre_i, post_i = all_to_all(n_ch, hidden)
    pre_r, post_r = all_to_all(hidden, hidden)
    w_in = rng.normal(0.15, 0.3, pre_i.size)  # ~ one spike / step of input -> threshold
    w_rec = rng.normal(0.0, 0.5 / math.sqrt(hidden), pre_r.size)
    return Network(
        "elm_lif_baseline",
        Discretization(dt=1.0),
        (
            Population("inp", n_ch, spike_source()),
            Population("hid", hidden, nir_lif(), {"tau": tau}),
        ),
        (
            Projection("w_in", "inp", "hid", pre_i, post_i, w_in),
            Projection("w_rec", "hid", "hid", pre_r, post_r, w_rec),
        ),
        probes=(SpikeProbe("hid"),),
    )


class LIFClassifier(nn.Module):
    """The spec network on the torch backend (trainable) + a linear readout of the hidden
    spike counts in the recall window. The simulation has a fixed batch size: smaller batches
    are padded."""

    def __init__(self, task: DelayedRecall, hidden: int, tau: float, batch: int, seed: int):
        super().__init__()
        self.window = task.recall_len
        self.batch = batch
        self.net = lif_network(task, hidden, tau, seed)
        self.sim = neuromem.compile(
            self.net, backend="torch", trainable=True, dtype=torch.float32, batch_size=batch
        )
        torch.manual_seed(seed)
        self.readout = nn.Linear(hidden, task.n_classes)
        self.last_rate = float("nan")

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        if B > self.batch:
            return torch.cat([self(c) for c in x.split(self.batch)])
        if B < self.batch:
            x = torch.cat([x, x.new_zeros(self.batch - B, *x.shape[1:])])
        self.sim.reset()
        spk = self.sim({"inp": x.transpose(0, 1)})["hid"]  # (T, batch, hidden)
        self.last_rate = float(spk.detach().mean())
        return self.readout(spk[-self.window :].sum(0))[:B]


def build_model(name: str, task: DelayedRecall, cfg: dict[str, Any]) -> nn.Module:
    seed = cfg["seed"]
    if name == "elm":
        return ELMClassifier(task, cfg["elm_d_m"], cfg["elm_tau_max"], seed)
    if name == "lif":
        return LIFClassifier(task, cfg["lif_hidden"], cfg["lif_tau"], cfg["batch"], seed)
    if name == "lstm":
        return LSTMClassifier(task, cfg["lstm_hidden"], seed)
    raise ValueError(f"unknown model {name!r}")


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    with torch.no_grad():
        logits = torch.cat([model(xb) for xb in x.split(batch)])
    return float((logits.argmax(1) == y).float().mean())


def train_one(
    name: str,
    delay: int,
    task: DelayedRecall,
    cfg: dict[str, Any],
    data: tuple[torch.Tensor, ...],
    bar=None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train one model at one horizon with Adam; returns the model and its summary."""
    x_tr, y_tr, x_te, y_te = data
    model = build_model(name, task, cfg)
    lr = cfg["lr"][name] if isinstance(cfg["lr"], dict) else cfg["lr"]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(cfg["seed"] + 1000 * delay)
    B = cfg["batch"]
    n = x_tr.shape[0] - x_tr.shape[0] % B  # whole batches only (the LIF sim's batch is fixed)
    steps_per_epoch = max(1, n // B)
    max_steps = cfg.get("max_steps")
    losses, step = [], 0
    t0 = time.perf_counter()
    for _ in range(cfg["epochs"]):
        perm = torch.randperm(x_tr.shape[0], generator=gen)[: max(n, B)]
        for k in range(steps_per_epoch):
            idx = perm[k * B : (k + 1) * B]
            loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            step += 1
            if bar is not None:
                bar.update(1)
            if max_steps is not None and step >= max_steps:
                break
        if max_steps is not None and step >= max_steps:
            break
    train_s = time.perf_counter() - t0
    model.eval()
    summary = {
        "test_accuracy": evaluate(model, x_te, y_te, B),
        "train_accuracy": evaluate(model, x_tr[:512], y_tr[:512], B),
        "parameters": model.parameter_count(),
        "train_wall_s": round(train_s, 2),
        "optimizer_steps": step,
        "lr": lr,
        "final_loss": float(np.mean(losses[-steps_per_epoch:])) if losses else None,
        "loss_per_epoch": [
            round(float(np.mean(losses[i : i + steps_per_epoch])), 4)
            for i in range(0, len(losses), steps_per_epoch)
        ],
    }
    if name == "lif":
        summary["hidden_spike_rate_last_batch"] = round(model.last_rate, 4)
    return model, summary


# ---------------------------------------------------------------------------------------------
# golden equivalence
# ---------------------------------------------------------------------------------------------
def golden(data: str | None) -> dict[str, Any]:
    if data is None and not os.environ.get("NEUROMEM_DATA"):
        return {"skipped": "NEUROMEM_DATA is not set (the authors' ELM weights and outputs)"}
    out: dict[str, Any] = {}
    for name in AUTHORS_MODELS:
        try:
            p = load_authors_model(name, data)
            x, y = load_golden(name, data)
        except DataError as e:
            return {"skipped": str(e)}
        scale = float(np.abs(y).max())
        t0 = time.perf_counter()
        yt = ELMTorch(p, dtype=torch.float64)(torch.tensor(x)).detach().numpy()
        t1 = time.perf_counter()
        yn = elm_forward_numba(p, x)
        t2 = time.perf_counter()
        out[name] = {
            "input_shape": list(x.shape),
            "parameters": parameter_count(p),
            "max_abs_y": scale,
            "torch_float64_rel_error": float(np.abs(yt - y).max() / scale),
            "numba_float64_rel_error": float(np.abs(yn - y).max() / scale),
            "torch_vs_numba_max_abs": float(np.abs(yt - yn).max()),
            "wall_s": {"torch": round(t1 - t0, 3), "numba_incl_jit": round(t2 - t1, 3)},
        }
    return out


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def traces_figure(model: ELMClassifier, x: np.ndarray, label: int, delay: int, path: Path):
    task_window = model.window
    with torch.no_grad():
        logits, y, mem = model(torch.tensor(x[None]), return_memory=True)
    mem, y = mem[0].numpy(), y[0].numpy()
    tau = model.params.tau_m
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True, height_ratios=[1, 2, 1.3])
    t, ch = np.nonzero(x)
    axes[0].scatter(t, ch, marker="|", s=12, c="k", linewidths=0.8)
    axes[0].set_ylabel("input channel")
    axes[0].set_title(
        f"ELM on delayed recall, delay {delay} steps: class {label}, "
        f"predicted {int(logits.argmax())}"
    )
    cmap = plt.get_cmap("viridis")
    for k in range(mem.shape[1]):
        axes[1].plot(
            mem[:, k], color=cmap(k / max(1, mem.shape[1] - 1)), lw=1, label=f"{tau[k]:.3g}"
        )
    axes[1].set_ylabel("memory m_t")
    axes[1].legend(title="tau_m (ms)", fontsize=6, title_fontsize=7, ncol=2, loc="upper right")
    for c in range(y.shape[1]):
        axes[2].plot(y[:, c], lw=1.5 if c == label else 0.8, label=f"class {c}")
    axes[2].axvspan(x.shape[0] - task_window - 0.5, x.shape[0] - 0.5, color="0.85")
    axes[2].set_ylabel("output y_t")
    axes[2].set_xlabel("step (ms)")
    axes[2].legend(fontsize=6, ncol=5, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def golden_error(g: dict[str, Any]) -> float:
    """The larger relative error of torch and numba against the authors' golden output."""
    return max(g["torch_float64_rel_error"], g["numba_float64_rel_error"])


def accuracy_figure(
    training: dict[str, Any], chance: float, path: Path, golden: dict[str, Any] | None = None
) -> None:
    horizons = sorted(training, key=int)
    fig, ax = plt.subplots(figsize=(7, 4.6))
    w = 0.8 / len(MODELS)
    for i, m in enumerate(MODELS):
        acc = [training[h][m]["test_accuracy"] for h in horizons]
        params = training[horizons[0]][m]["parameters"]
        pos = np.arange(len(horizons)) + (i - (len(MODELS) - 1) / 2) * w
        ax.bar(pos, acc, w, label=f"{m.upper()} ({params} params)")
        for px, a in zip(pos, acc, strict=True):
            ax.text(px, a + 0.01, f"{a:.2f}", ha="center", fontsize=7)
    ax.axhline(chance, color="k", ls="--", lw=0.8, label="chance")
    ax.set_xticks(np.arange(len(horizons)), [f"delay {h}" for h in horizons])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("test accuracy")
    ax.set_title("Delayed recall: test accuracy vs horizon")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4)
    if golden:  # the authors' numbers: their trained neurons' outputs, reproduced
        errors = " / ".join(f"{golden_error(g):.1e}" for g in golden.values())
        ax.set_title(
            "Delayed recall: test accuracy vs horizon\n"
            f"authors' trained ELMs reproduced to {errors} (relative)",
            fontsize=10,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------------
def run(
    quick: bool = False,
    backends: list[str] | None = None,
    data: str | None = None,
    out_dir: str | Path | None = None,
    config: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run all parts; ``backends`` is ignored (the models are torch modules; the golden check
    runs torch and numba). ``config`` overrides keys of the FULL / QUICK setting."""
    cfg = {**(QUICK if quick else FULL), **(config or {})}
    task = dict(TASK if task is None else task)
    out = Path(out_dir) if out_dir is not None else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = "elm_quick" if quick else "elm"
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg["threads"])
    try:
        results: dict[str, Any] = {
            "experiment": "elm",
            "paper": "Spieler et al., The Expressive Leaky Memory Neuron, ICLR 2024",
            "setting": "quick" if quick else "full",
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "torch": torch.__version__,
                "torch_threads": cfg["threads"],
                "neuromem": neuromem.__version__,
            },
            "golden": golden(data),
            "task": {
                **task,
                "generator": "neuromem.datasets.synthetic.DelayedRecall (sample seed: "
                "experiments/elm.py:make_task)",
            },
            "config": cfg,
            "chance": 1.0 / task["n_classes"],
            "training": {},
        }
        horizons = [int(h) for h in cfg["horizons"]]
        B = cfg["batch"]
        per_epoch = max(1, (cfg["n_train"] - cfg["n_train"] % B) // B)
        total = per_epoch * cfg["epochs"]
        if cfg.get("max_steps") is not None:
            total = min(total, cfg["max_steps"])
        elm_models = {}
        with progress_bar(total=total * len(MODELS) * len(horizons), desc="elm") as bar:
            for delay in horizons:
                tr_task = task_for(delay, task)
                xs, ys = make_task(cfg["n_train"], delay, task, cfg["seed"], "train")
                xt, yt = make_task(cfg["n_test"], delay, task, cfg["seed"], "test")
                row = {}
                for name in MODELS:
                    torch.manual_seed(cfg["seed"])
                    model, summary = train_one(name, delay, tr_task, cfg, (xs, ys, xt, yt), bar)
                    row[name] = summary
                    if name == "elm":
                        elm_models[delay] = (model, xt[0].numpy(), int(yt[0]))
                results["training"][str(delay)] = row
        tr = results["training"]
        gaps = {
            h: tr[str(h)]["elm"]["test_accuracy"] - tr[str(h)]["lif"]["test_accuracy"]
            for h in horizons
        }
        grows = all(gaps[b] > gaps[a] for a, b in zip(horizons, horizons[1:], strict=False))
        results["elm_minus_lif_accuracy"] = {str(h): round(g, 4) for h, g in gaps.items()}
        results["elm_advantage_over_lif_grows_with_horizon"] = bool(grows)
        results["elm_minus_lstm_accuracy"] = {
            str(h): round(
                tr[str(h)]["elm"]["test_accuracy"] - tr[str(h)]["lstm"]["test_accuracy"], 4
            )
            for h in horizons
        }
        longest = horizons[-1]
        model, x0, y0 = elm_models[longest]
        traces_figure(model, x0, y0, longest, out / f"{stem}_traces.png")
        accuracy_figure(tr, results["chance"], out / f"{stem}_accuracy.png", results["golden"])
        results["figures"] = [f"{stem}_traces.png", f"{stem}_accuracy.png"]
        with open(out / f"{stem}.json", "w") as f:
            json.dump(results, f, indent=1)
    finally:
        torch.set_num_threads(threads)
    acceptance = {
        f"golden {name}": {
            "ours_rel_error": golden_error(g),
            "reference_rel_error": GOLDEN_REFERENCE_ERROR,
            "pass": golden_error(g) <= GOLDEN_REFERENCE_ERROR,
        }
        for name, g in results["golden"].items()
    }
    acceptance["ELM's lead over LIF grows with the delay"] = {
        "elm_minus_lif": results["elm_minus_lif_accuracy"],
        "pass": results["elm_advantage_over_lif_grows_with_horizon"],
    }
    return {
        "acceptance": acceptance,
        "golden": results["golden"],
        "test_accuracy": {
            h: {m: r["test_accuracy"] for m, r in row.items()} for h, row in tr.items()
        },
        "parameters": {m: r["parameters"] for m, r in tr[str(horizons[0])].items()},
        "train_wall_s": {
            h: {m: r["train_wall_s"] for m, r in row.items()} for h, row in tr.items()
        },
        "elm_advantage_over_lif_grows_with_horizon": results[
            "elm_advantage_over_lif_grows_with_horizon"
        ],
    }
