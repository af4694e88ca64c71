"""Training-speed benchmark: feed-forward LIF networks with surrogate gradients on the CPU.

neuromem's torch backend (a spec network of NIR LIF populations and all-to-all projections,
``backend="torch"``, float32, fast-sigmoid surrogate) against a hand-written torch loop of the
same equations, snnTorch (``snn.Leaky``), SpikingJelly (``activation_based``, multi-step mode,
its torch reference implementation on the CPU) and Norse (``LIFBoxCell``), and against the
floor: the matrix products alone.

Shapes (batch 32, Bernoulli input spikes with p = 0.1 per step):

* ``784-512-10``: 784 inputs -> 512 LIF -> 10 LIF, T = 100 and 200;
* ``512-512``: 512 inputs -> 512 LIF (one layer), T = 500 and 1000.

Neuron (every implementation): ``v_t = beta * v_{t-1} + I_t``, spike when ``v_t >= 1``, reset
to 0 in the same step, beta = 0.9, no refractory period, fast-sigmoid surrogate
``1 / (1 + 10 |v - 1|)^2`` (SpikingJelly's own ``SuperSpike`` is ``alpha / (1 + |x|)^2``, another
shape, so it gets this function as its ``surrogate_function``). neuromem's ``nir_lif`` adds an
event to ``v`` before the exact decay (``v_t = beta (v_{t-1} + x_t)``), so the peers get weights
``beta * W`` (Norse's Euler step scales its input by ``dt / tau``: ``beta * W / (dt / tau)``) and
compute the same membrane. State difference: neuromem projections have a delay of one step
(>= 1 is required), so a spike reaches the next layer one step later; the hand-written loop
reproduces these delays (its spikes are checked against ours), the library peers have none.

Timed: forward (``torch.no_grad``) and forward+backward of ``loss = mean(output spikes)``
(gradients of all weights; the output gradient ``1 / numel`` is made once per shape, outside
the timed runs, as the floor's gradients are), including state reset; min and median over
repeats after two warm-ups, one thread; the implementations take turns within each repeat.
The floor: forward ``X_l @ W_l`` over all ``T * B`` rows of each layer; forward+backward adds
the weight gradient
``X_l^T @ G_l`` of every layer and the input gradient ``G_l @ W_l^T`` of every layer but the
first (whose input is data: no implementation computes that product).

Everything is measured twice: with glibc's default allocator settings, then with its mmap
threshold raised to 1 GiB and trimming off (``mallopt``), which removes the page faults of
fresh > 32 MiB allocations that otherwise make even the bare matrix products grow faster
than T.

Writes ``benchmarks/results/snn_training.json`` and ``.png`` (the figure: default allocator).

    .venv/bin/python benchmarks/snn_training.py [--repeats 7] [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 32
BETA = 0.9
DT = 1.0  # ms
TAU = -DT / math.log(BETA)  # ms: exp(-dt / tau) = beta
SLOPE = 10.0
P_IN = 0.1
GAIN = 0.6  # std of a layer's input per step (for inputs firing with p = P_IN)
SHAPES = {"784-512-10": ((784, 512, 10), 100), "512-512": ((512, 512), 500)}
PEERS = ("hand_torch", "snntorch", "spikingjelly", "norse")
NORSE_DT, NORSE_TAU_INV = 1e-3, 100.0  # Norse's Euler step: beta = 1 - dt * tau_mem_inv


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward, ``1 / (1 + SLOPE |x|)^2`` backward (SuperSpike / fast sigmoid)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g / (1.0 + SLOPE * x.abs()) ** 2


def _weights(sizes: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    """(n_in, n_out) float32 weights giving a few % of spikes per step in every layer."""
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(0.0, GAIN / math.sqrt(a * P_IN), (a, b))).astype(np.float32)
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def _input(T: int, n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, BATCH, n, generator=g) < P_IN).float()


# ------------------------------------------------------------------ implementations
LOSS_PROTOCOL = (
    "loss = mean(output spikes): out.backward(g) with g = 1 / out.numel() everywhere, made once "
    "per output shape in the warm-ups (the floor's gradients are given too), the same weight "
    "gradients as out.mean().backward() without timing the loss's own (T, B, n) allocation"
)

#: d mean(out) / d out for each output shape, made once (in the untimed warm-ups): like the
#: floor's given gradients G, so no implementation's time includes allocating the loss's
#: (T, B, n) gradient (a fresh, page-faulted mapping above 32 MiB)
_GRAD_OF_MEAN: dict[tuple[int, ...], torch.Tensor] = {}


def _backward(out: torch.Tensor, params, train: bool) -> torch.Tensor:
    """With ``train``: clear the gradients and back-propagate ``loss = mean(out)`` into
    ``params`` (``out.backward`` with the loss's gradient ``1 / out.numel()`` everywhere:
    the same weight gradients as ``out.mean().backward()``)."""
    if train:
        for p in params:
            p.grad = None
        g = _GRAD_OF_MEAN.get(tuple(out.shape))
        if g is None:
            g = _GRAD_OF_MEAN[tuple(out.shape)] = torch.full_like(out, 1.0 / out.numel())
        out.backward(g)
    return out


def _linears(W, scale: float = 1.0) -> list[torch.nn.Linear]:
    """Bias-free linear layers holding ``BETA * scale * w.T`` (the peers' input convention)."""
    lins = [torch.nn.Linear(*w.shape, bias=False) for w in W]
    with torch.no_grad():
        for lin, w in zip(lins, W, strict=True):
            lin.weight.copy_(torch.tensor(BETA * scale * w.T))
    return lins


def _stepwise(lins, cells, init, x: torch.Tensor) -> torch.Tensor:
    """Step through time and layers: ``s, state = cell(lin(s), state)`` (snnTorch, Norse)."""
    states = list(init)
    out = []
    for t in range(x.shape[0]):
        s = x[t]
        for i, (lin, cell) in enumerate(zip(lins, cells, strict=True)):
            s, states[i] = cell(lin(s), states[i])
        out.append(s)
    return torch.stack(out)


# Each builder returns run(x, train) -> output spikes (T, B, n_out); with train it also runs
# the backward pass of mean(output) into the weights.
def build_neuromem(sizes, W):
    import neuromem
    from neuromem.spec import (
        Discretization,
        Network,
        Population,
        Projection,
        SpikeProbe,
        all_to_all,
        nir_lif,
        spike_source,
    )

    names = ["inp"] + [f"l{i}" for i in range(1, len(sizes))]
    pops = [Population("inp", sizes[0], spike_source())] + [
        Population(n, s, nir_lif(), {"tau": TAU}) for n, s in zip(names[1:], sizes[1:], strict=True)
    ]
    projs = []
    for i, w in enumerate(W):
        pre, post = all_to_all(*w.shape)
        projs.append(Projection(f"w{i}", names[i], names[i + 1], pre, post, w[pre, post]))
    net = Network(
        "ff", Discretization(dt=DT), tuple(pops), tuple(projs), probes=(SpikeProbe(names[-1]),)
    )
    sim = neuromem.compile(
        net,
        backend="torch",
        dtype=torch.float32,
        batch_size=BATCH,
        trainable=True,
        surrogate="fast_sigmoid",
        surrogate_slope=SLOPE,
    )
    params = list(sim.parameters())

    def run(x, train):
        sim.reset()
        out = sim({"inp": x})[names[-1]]
        return _backward(out, params, train)

    return run, sim


def build_hand(sizes, W):
    """Per step and layer: ``I = s_prev @ W``, one-step delays as in neuromem."""
    Ws = [torch.tensor(w, requires_grad=True) for w in W]
    beta = float(np.exp(-DT / TAU))

    def run(x, train):
        T = x.shape[0]
        v = [torch.zeros(BATCH, w.shape[1]) for w in Ws]
        s = [torch.zeros(BATCH, w.shape[1]) for w in Ws]
        out = []
        for t in range(T):
            prev = [x[t - 1] if t else torch.zeros_like(x[0])] + s[:-1]  # one-step delays
            for i, w in enumerate(Ws):
                v[i] = beta * (v[i] + prev[i] @ w)
                s[i] = FastSigmoidSpike.apply(v[i] - 1.0)
                v[i] = v[i] * (1.0 - s[i])  # reset to 0 (blend keeps the surrogate path)
            out.append(s[-1])
        out = torch.stack(out)
        return _backward(out, Ws, train)

    return run, None


def build_snntorch(sizes, W):
    import snntorch as snn
    from snntorch import surrogate

    lins = _linears(W)
    lifs = [
        snn.Leaky(
            beta=BETA,
            threshold=1.0,
            spike_grad=surrogate.fast_sigmoid(slope=SLOPE),
            reset_mechanism="zero",
            reset_delay=False,
        )
        for _ in W
    ]
    params = [lin.weight for lin in lins]

    def run(x, train):
        out = _stepwise(lins, lifs, [lif.reset_mem() for lif in lifs], x)
        return _backward(out, params, train)

    return run, None


def build_spikingjelly(sizes, W):
    from spikingjelly.activation_based import functional, layer, neuron

    mods = []
    for w in W:
        lin = layer.Linear(*w.shape, bias=False, step_mode="m")
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(BETA * w.T))
        mods += [
            lin,
            neuron.LIFNode(
                tau=1.0 / (1.0 - BETA),  # v += (x - v) / tau without input decay: beta v + x
                decay_input=False,
                v_threshold=1.0,
                v_reset=0.0,
                surrogate_function=FastSigmoidSpike.apply,
                step_mode="m",
            ),
        ]
    net = torch.nn.Sequential(*mods)
    params = list(net.parameters())

    def run(x, train):
        functional.reset_net(net)
        out = net(x)
        return _backward(out, params, train)

    return run, None


def build_norse(sizes, W):
    from norse.torch import LIFBoxCell, LIFBoxParameters

    scale = 1.0 / (NORSE_DT * NORSE_TAU_INV)  # Norse multiplies its input by dt * tau_mem_inv
    lins = _linears(W, scale)
    p = LIFBoxParameters(
        tau_mem_inv=torch.as_tensor(NORSE_TAU_INV),
        v_th=torch.as_tensor(1.0),
        v_reset=torch.as_tensor(0.0),
        method="super",
        alpha=torch.as_tensor(SLOPE),
    )
    cells = [LIFBoxCell(p, dt=NORSE_DT) for _ in W]
    params = [lin.weight for lin in lins]

    def run(x, train):
        out = _stepwise(lins, cells, [None] * len(cells), x)
        return _backward(out, params, train)

    return run, None


BUILDERS: dict[str, Callable] = {
    "neuromem": build_neuromem,
    "hand_torch": build_hand,
    "snntorch": build_snntorch,
    "spikingjelly": build_spikingjelly,
    "norse": build_norse,
}


def floor(sizes, W, x: torch.Tensor, train: bool) -> Callable[[], None]:
    """The matrix products of the same shapes over all T * B rows (random dense operands)."""
    T = x.shape[0]
    g = torch.Generator().manual_seed(3)
    Ws = [torch.tensor(w) for w in W]
    Xs = [x.reshape(T * BATCH, -1)] + [
        (torch.rand(T * BATCH, n, generator=g) < 0.05).float() for n in sizes[1:-1]
    ]
    Gs = [torch.randn(T * BATCH, n, generator=g) for n in sizes[1:]]

    def run():
        for i, (X, w, G) in enumerate(zip(Xs, Ws, Gs, strict=True)):
            X @ w
            if train:
                X.T @ G  # weight gradient
                if i:  # input gradient (the data of the first layer needs none)
                    G @ w.T

    return run


# ------------------------------------------------------------------ timing
def _interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """Min and median wall times; the implementations take turns within every repeat, so a
    burst of load from other jobs on the shared machine hits all of them alike."""
    for fn in fns.values():  # warm-up
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c, t = time.process_time(), time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {
        k: {
            "min_s": min(v),
            "median_s": statistics.median(v),
            "all_s": v,
            # CPU time of this process: not inflated while other jobs hold the cores
            "cpu_min_s": min(cpu[k]),
            "cpu_median_s": statistics.median(cpu[k]),
        }
        for k, v in times.items()
    }


def measure(name: str, sizes, T: int, repeats: int) -> dict:
    W = _weights(sizes)
    x = _input(T, sizes[0])
    row: dict = {"shape": name, "sizes": list(sizes), "T": T, "batch": BATCH, "impl": {}}
    runs = {impl: build(sizes, W)[0] for impl, build in BUILDERS.items()}
    spikes = {}
    for impl, run in runs.items():
        with torch.no_grad():
            spikes[impl] = int(run(x, False).sum().item())
    fwd = _interleaved(
        {
            **{k: (lambda r=r: torch.no_grad()(r)(x, False)) for k, r in runs.items()},
            "floor": floor(sizes, W, x, False),
        },
        repeats,
    )
    fb = _interleaved(
        {
            **{k: (lambda r=r: r(x, True)) for k, r in runs.items()},
            "floor": floor(sizes, W, x, True),
        },
        repeats,
    )
    for impl in runs:
        row["impl"][impl] = {
            "forward": fwd[impl],
            "forward_backward": fb[impl],
            "output_spikes": spikes[impl],
        }
        print(
            f"{name} T={T} {impl:13s} fwd {fwd[impl]['min_s']:.4f} s "
            f"(cpu {fwd[impl]['cpu_min_s']:.4f})  fwd+bwd {fb[impl]['min_s']:.4f} s "
            f"(cpu {fb[impl]['cpu_min_s']:.4f})  spikes {spikes[impl]}",
            flush=True,
        )
    row["floor"] = {"forward": fwd["floor"], "forward_backward": fb["floor"]}
    print(
        f"{name} T={T} floor         fwd {fwd['floor']['min_s']:.4f} s  "
        f"fwd+bwd {fb['floor']['min_s']:.4f} s",
        flush=True,
    )
    ours = row["impl"]["neuromem"]
    for mode in ("forward", "forward_backward"):
        best = min(PEERS, key=lambda p: row["impl"][p][mode]["min_s"])  # noqa: B023
        row[f"{mode}_fastest_peer"] = best
        row[f"{mode}_ratio_to_fastest_peer"] = (
            ours[mode]["min_s"] / row["impl"][best][mode]["min_s"]
        )
        row[f"{mode}_ratio_to_floor"] = ours[mode]["min_s"] / row["floor"][mode]["min_s"]
        for p in PEERS:
            row["impl"][p][f"{mode}_ratio_ours_to_peer"] = (
                ours[mode]["min_s"] / row["impl"][p][mode]["min_s"]
            )
    # same computation: the hand loop has neuromem's delays, so its spikes must agree
    row["hand_torch_spikes_equal_ours"] = spikes["hand_torch"] == spikes["neuromem"]
    return row


def goals(rows: list[dict]) -> dict:
    """Acceptance rows, judged on the min wall time and, since the machine is shared, also on
    the min CPU time of the process (not inflated while other jobs hold the cores)."""
    out = {}
    for name in SHAPES:
        rs = sorted((r for r in rows if r["shape"] == name), key=lambda r: r["T"])
        g: dict = {}
        for clock in ("min_s", "cpu_min_s"):
            ours = [r["impl"]["neuromem"]["forward_backward"][clock] for r in rs]
            peers = [min(r["impl"][p]["forward_backward"][clock] for p in PEERS) for r in rs]
            floors = [r["floor"]["forward_backward"][clock] for r in rs]
            g[clock] = {
                "fwd_bwd_ratio_to_fastest_peer": [o / p for o, p in zip(ours, peers, strict=True)],
                "fwd_bwd_le_fastest_peer": all(o <= p for o, p in zip(ours, peers, strict=True)),
                "fwd_bwd_ratio_to_floor": [o / f for o, f in zip(ours, floors, strict=True)],
                "doubling_T_time_ratio": ours[-1] / ours[0],
                "doubling_T_floor_time_ratio": floors[-1] / floors[0],
                "doubling_T_at_most_doubles": ours[-1] / ours[0] <= 2.0,
            }
            if name == "784-512-10":
                g[clock]["fwd_bwd_le_1.5x_floor"] = all(
                    o <= 1.5 * f for o, f in zip(ours, floors, strict=True)
                )
        out[name] = g
    return out


def _figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    impls = ["neuromem", *PEERS, "floor"]
    for ax, mode in zip(axes, ("forward", "forward_backward"), strict=True):
        labels = [f"{r['shape']}\nT={r['T']}" for r in rows]
        width = 0.8 / len(impls)
        for k, impl in enumerate(impls):
            vals = [
                (r["floor"] if impl == "floor" else r["impl"][impl])[mode]["min_s"] for r in rows
            ]
            ax.bar(
                np.arange(len(rows)) + (k - len(impls) / 2 + 0.5) * width, vals, width, label=impl
            )
        ax.set_xticks(np.arange(len(rows)), labels)
        ax.set_yscale("log")
        ax.set_ylabel("time per iteration (s, min over repeats)")
        ax.set_title(mode.replace("_", "+") + f", batch {BATCH}, one thread, float32")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _versions() -> dict:
    out = {}
    for pkg in ("torch", "numpy", "snntorch", "spikingjelly", "norse", "neuromem"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _set_mmap_threshold(nbytes: int) -> bool:
    """glibc ``mallopt``: allocations below ``nbytes`` come from the heap (M_MMAP_THRESHOLD)
    and freed memory is kept (M_TRIM_THRESHOLD, M_TOP_PAD), so large tensors are reused. By
    default glibc maps every allocation above 32 MiB afresh (page faults and zeroing on each
    use): at T = 1000 the (T * B, 512) float32 tensors are 65 MB, which makes every
    implementation, the bare matrix products included, scale worse than linearly in T.
    Returns whether the calls succeeded (glibc only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(-3, int(nbytes))  # M_MMAP_THRESHOLD
        ok &= libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: never give memory back
        ok &= libc.mallopt(-2, int(nbytes))  # M_TOP_PAD: grow the heap in large steps
        return bool(ok)
    except (OSError, AttributeError):
        return False


def _all_rows(repeats: int) -> list[dict]:
    rows = []
    for name, (sizes, T) in SHAPES.items():
        for steps in (T, 2 * T):
            rows.append(measure(name, sizes, steps, repeats))
    return rows


def main(repeats: int = 7, quick: bool = False) -> dict:
    torch.set_num_threads(1)
    repeats = 5 if quick else repeats
    rows = _all_rows(repeats)  # the default allocator
    heap_rows, heap_goals = None, None
    if not quick and _set_mmap_threshold(2**30):
        print("again with glibc's mmap threshold 1 GiB, no trimming (large tensors reused)")
        heap_rows = _all_rows(repeats)
        heap_goals = goals(heap_rows)
    res = {
        "benchmark": "snn_training",
        "description": __doc__.split("\n\n")[0],
        "neuron": "v_t = 0.9 v_{t-1} + I_t, spike v >= 1, reset to 0 same step, "
        "fast-sigmoid surrogate slope 10",
        "dtype": "float32",
        "threads": 1,
        "timing": "min and median over repeats after 2 warm-ups; the machine is shared "
        "(2 cores, other jobs running): min is the figure of merit",
        "backward": LOSS_PROTOCOL,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": _versions(),
        "rows": rows,
        "goals": goals(rows),
        "mmap_threshold_1GiB": {
            "note": "the same measurements after mallopt(M_MMAP_THRESHOLD, 1 GiB), "
            "mallopt(M_TRIM_THRESHOLD, 2**31 - 1), mallopt(M_TOP_PAD, 1 GiB), every "
            "implementation and the floor alike (see _set_mmap_threshold)",
            "rows": heap_rows,
            "goals": heap_goals,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    name = "snn_training_quick" if quick else "snn_training"  # a quick pass keeps the results
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1))
    _figure(rows, RESULTS / f"{name}.png")
    print(json.dumps(res["goals"], indent=1))
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="5 repeats")
    args = ap.parse_args()
    main(args.repeats, args.quick)
