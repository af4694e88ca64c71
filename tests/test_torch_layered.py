"""The layered schedule's fused populations: time blocks, work buffers reused across calls and
the matrix products computed inside the autograd node give the bits of one block."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuromem
import neuromem.backends.torch.fused as torch_fused
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

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _feedforward(sizes: tuple[int, ...], seed: int = 0) -> Network:
    """Source -> all-to-all -> NIR LIF layers (one delay each: the node's own products)."""
    rng = np.random.default_rng(seed)
    names = ["inp"] + [f"l{i}" for i in range(1, len(sizes))]
    pops = [Population("inp", sizes[0], spike_source())] + [
        Population(n, s, nir_lif(), {"tau": 9.5}) for n, s in zip(names[1:], sizes[1:], strict=True)
    ]
    projs = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        pre, post = all_to_all(a, b)
        w = rng.normal(0.0, 0.6 / np.sqrt(0.1 * a), (a, b))
        projs.append(Projection(f"w{i}", names[i], names[i + 1], pre, post, w[pre, post]))
    probes = tuple(SpikeProbe(n) for n in names[1:])
    return Network("ff", Discretization(dt=1.0), tuple(pops), tuple(projs), probes=probes)


def _train(sim, x: torch.Tensor, splits: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Forward over ``x`` in calls of ``splits`` steps (the ring carries events across them),
    one backward of a weighted spike sum; spikes and gradients (weights and input)."""
    sim.reset()
    for p in sim.parameters():
        p.grad = None
    x = x.clone().requires_grad_(True)
    outs, t = [], 0
    for s in splits:
        outs.append(sim({"inp": x[t : t + s]}))
        t += s
    spikes = {n: torch.cat([o[n] for o in outs]) for n in outs[0]}
    last = spikes[max(spikes)]
    loss = (
        spikes["l1"].sum() + (last * torch.linspace(0.5, 2.0, last.numel()).view(last.shape)).sum()
    )
    loss.backward()
    res = {f"spikes/{n}": s.detach() for n, s in spikes.items()}
    res.update({f"grad/{k}": w.grad.clone() for k, w in sim.weights.items()})
    res["grad/input"] = x.grad
    return res


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_time_blocks_and_work_buffers_keep_the_bits(monkeypatch, dtype):
    # B * n = 16 * 300 >= _PER_STEP_FACTORS: per-step backward factors in l1, chunk-wide in l2
    sizes, B, T = (40, 300, 6), 16, 60
    sim = neuromem.compile(
        _feedforward(sizes), backend="torch", dtype=dtype, batch_size=B, trainable=True
    )
    x = (torch.rand(T, B, sizes[0], generator=torch.Generator().manual_seed(1)) < 0.2).to(dtype)
    runs = {}
    for steps in (T, 1, 7):  # steps per time block: one block, one step, blocks with a tail
        per_step = B * sizes[1] * dtype.itemsize
        monkeypatch.setattr(torch_fused, "_BLOCK_BYTES", steps * per_step)
        for splits in ((T,), (25, 35)):
            # twice: the second run takes its buffers from the first one's
            first, second = _train(sim, x, splits), _train(sim, x, splits)
            for k in first:
                assert torch.equal(first[k], second[k]), k
            runs[steps, splits] = first
        # the node computed the products (its block buffer) and kept its work buffers
        assert ((min(steps, T) * B, sizes[1]), dtype) in sim._free
    ref = runs[T, (T,)]
    assert ref["spikes/l1"].sum() > 100 and ref["spikes/l2"].sum() > 10
    assert ref["grad/w0"].abs().sum() > 0 and ref["grad/input"].abs().sum() > 0
    for key, got in runs.items():
        if key[1] == (T,):
            for k in ref:
                assert torch.equal(got[k], ref[k]), (key, k)
    # split runs: the same spikes as the whole run (the ring carries the last step's events)
    for steps in (T, 1, 7):
        for n in ("l1", "l2"):
            assert torch.equal(runs[steps, (25, 35)][f"spikes/{n}"], ref[f"spikes/{n}"])


def test_fused_products_match_the_step_schedule():
    sizes = (30, 20, 5)
    x = (torch.rand(80, 3, sizes[0], generator=torch.Generator().manual_seed(2)) < 0.2).double()
    res = {}
    for schedule in ("step", "layered"):
        sim = neuromem.compile(
            _feedforward(sizes, seed=3),
            backend="torch",
            batch_size=3,
            trainable=True,
            schedule=schedule,
        )
        res[schedule] = _train(sim, x, (50, 30))
    step, lay = res["step"], res["layered"]
    assert step["spikes/l2"].sum() > 5
    for k in step:
        if k.startswith("spikes"):
            assert torch.equal(step[k], lay[k]), k
        else:
            assert step[k].abs().sum() > 0, k
            torch.testing.assert_close(lay[k], step[k], rtol=1e-10, atol=1e-12)


def test_work_buffers_are_reused_across_calls():
    sim = neuromem.compile(
        _feedforward((20, 64, 4)),
        backend="torch",
        dtype=torch.float32,
        batch_size=8,
        trainable=True,
    )
    x = (torch.rand(50, 8, 20, generator=torch.Generator().manual_seed(4)) < 0.2).float()
    _train(sim, x, (50,))
    before = {k: sorted(b.data_ptr() for b in v) for k, v in sim._free.items()}
    assert ((50, 8, 64), torch.float32) in before  # the saved states and the gradient buffer
    _train(sim, x, (50,))
    after = {k: sorted(b.data_ptr() for b in v) for k, v in sim._free.items()}
    assert after == before


def test_second_backward_through_a_fused_population_raises():
    sim = neuromem.compile(_feedforward((10, 8)), backend="torch", trainable=True)
    x = (torch.rand(30, 10, generator=torch.Generator().manual_seed(5)) < 0.3).double()
    loss = sim({"inp": x})["l1"].sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()
