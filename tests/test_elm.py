"""ELM neuron: golden equivalence with the authors' outputs, gradients, counts, validation."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from neuromem.errors import SpecError
from neuromem.models.elm import ELMNeuron
from neuromem.models.elm.core import (
    AUTHORS_MODELS,
    ELMParameters,
    ELMTorch,
    decay_scan,
    elm_forward_numba,
    init_parameters,
    load_authors_model,
    load_golden,
    parameter_count,
)

needs_data = pytest.mark.skipif(
    not os.environ.get("NEUROMEM_DATA"),
    reason="NEUROMEM_DATA is not set (the authors' ELM weights and golden outputs)",
)

#: max|error| / max|y| against the authors' outputs (measured: 1.3e-7 for d_m = 1,
#: 7.8e-7 for d_m = 20, float64 torch and numba; float32 torch 2.4e-7 and 7.8e-7).
TOL_F64 = 1e-4
TOL_F32 = 5e-4


def _tiny(seed=0, **kw):
    opts = dict(num_input=7, num_branch=3, num_synapse_per_branch=4, num_memory=3, seed=seed)
    opts.update(kw)
    p = init_parameters(**opts)
    return p


def _spikes(shape, rate=0.2, seed=0):
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float64)


@needs_data
@pytest.mark.parametrize("name", AUTHORS_MODELS)
def test_golden_torch_float64_and_numba(name):
    p = load_authors_model(name)
    x, y = load_golden(name)
    scale = np.abs(y).max()
    out = ELMTorch(p, dtype=torch.float64)(torch.tensor(x)).detach().numpy()
    assert np.abs(out - y).max() <= TOL_F64 * scale
    out = elm_forward_numba(p, x)
    assert np.abs(out - y).max() <= TOL_F64 * scale
    # every synapse its own scan channel (the path taken when tau_s has many values)
    mod = ELMTorch(p, dtype=torch.float64, max_groups=0)
    assert not mod.grouped
    out = mod(torch.tensor(x)).detach().numpy()
    assert np.abs(out - y).max() <= TOL_F64 * scale


@needs_data
@pytest.mark.parametrize("name", AUTHORS_MODELS)
def test_golden_torch_float32(name):
    neuron = ELMNeuron.from_authors(name, dtype=torch.float32)
    x, y = load_golden(name)
    out = neuron(x).detach().double().numpy()
    assert out.shape == y.shape
    assert np.abs(out - y).max() <= TOL_F32 * np.abs(y).max()


@needs_data
def test_authors_parameter_counts():
    assert parameter_count(load_authors_model("num_memory_1")) == 4601
    assert parameter_count(load_authors_model("num_memory_20")) == 8002
    neuron = ELMNeuron.from_authors("num_memory_20")
    assert neuron.parameter_count() == neuron.module.parameter_count() == 8002


def test_parameter_count_rule():
    # same architecture as the authors' models: w_s + MLP + readout (+ tau_m when learnable)
    assert parameter_count(init_parameters(num_memory=1, mlp_hidden_size=2)) == 4601
    p = init_parameters(num_memory=20, mlp_hidden_size=40)
    assert parameter_count(p) == 8002 == ELMTorch(p).parameter_count()
    q = init_parameters(num_memory=20, mlp_hidden_size=40, learn_memory_tau=True)
    assert parameter_count(q) == 8022 == ELMTorch(q).parameter_count()


def test_fresh_tau_m_log_spaced():
    p = init_parameters(num_memory=5, memory_tau_min=1.0, memory_tau_max=100.0)
    np.testing.assert_allclose(p.tau_m, [1.0, 10**0.5, 10.0, 10**1.5, 100.0])
    assert init_parameters(seed=3).w_s.tolist() == init_parameters(seed=3).w_s.tolist()


@pytest.mark.parametrize("activation", ["relu", "silu"])
def test_torch_matches_numba_random_models(activation):
    # distinct tau_s per synapse (per-synapse channels) and two tau_s groups, short chunks so
    # that the scan crosses chunk boundaries (T = 37 is not a multiple of the chunk)
    p = _tiny(num_input=11, num_branch=4, num_synapse_per_branch=5, activation=activation)
    rng = np.random.default_rng(5)
    x = _spikes((3, 37, 11))
    for tau_s in (rng.uniform(2.0, 20.0, 20), np.where(np.arange(20) % 2, 3.0, 9.0)):
        q = p.copy(tau_s=tau_s, routing_mask=rng.random(20) < 0.8)
        ref = elm_forward_numba(q, x)
        for kw in ({}, {"chunk": 5}, {"max_groups": 0, "chunk": 4}):
            out = ELMTorch(q, dtype=torch.float64, **kw)(torch.tensor(x)).detach().numpy()
            np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    assert np.allclose(elm_forward_numba(p, x[0]), elm_forward_numba(p, x)[0])


def test_decay_scan_matches_recursion():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(23, 2, 3, 4, generator=g, dtype=torch.float64)
    log_decay = -torch.tensor([0.05, 1.0, 30.0], dtype=torch.float64)
    s, ref = torch.zeros(2, 3, 4, dtype=torch.float64), []
    for vt in v.unbind(0):
        s = torch.exp(log_decay)[:, None] * s + vt
        ref.append(s)
    for chunk in (1, 4, 23, 64):
        torch.testing.assert_close(decay_scan(v, log_decay, chunk), torch.stack(ref))


def test_gradients_match_finite_differences():
    p = _tiny(learn_memory_tau=True, activation="silu", tau_s=np.linspace(2.0, 8.0, 12))
    mod = ELMTorch(p, dtype=torch.float64, chunk=3)
    x = torch.tensor(_spikes((2, 9, 7), rate=0.4))
    r = torch.randn(2, 9, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    names = [n for n, q in mod.named_parameters()]
    assert "log_tau_m" in names and "w_s" in names

    def loss():
        return (mod(x) * r).sum()

    mod.zero_grad()
    loss().backward()
    eps, worst = 1e-6, 0.0
    with torch.no_grad():
        for q in mod.parameters():
            flat = q.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = loss().item()
                flat[i] = old - eps
                down = loss().item()
                flat[i] = old
                fd = (up - down) / (2 * eps)
                an = q.grad.view(-1)[i].item()
                worst = max(worst, abs(fd - an) / max(1.0, abs(fd)))
    assert worst < 1e-6, worst  # measured ~1e-9


def test_gradcheck_relu_model():
    p = _tiny(seed=2, num_memory=2, mlp_hidden_size=3)
    mod = ELMTorch(p, dtype=torch.float64)
    x = torch.tensor(_spikes((1, 6, 7), rate=0.5, seed=3))
    params = list(mod.parameters())

    def f(*ps):
        state = dict(zip([n for n, _ in mod.named_parameters()], ps, strict=True))
        return torch.func.functional_call(mod, state, (x,))

    assert torch.autograd.gradcheck(f, tuple(q.detach().requires_grad_() for q in params))


def _bad(**changes):
    return changes


@pytest.mark.parametrize(
    "changes, field",
    [
        (_bad(tau_s=-np.ones(12)), "tau_s"),
        (_bad(tau_m=np.array([1.0, 0.0, 3.0])), "tau_m"),
        (_bad(w_s=np.ones(11)), "w_s"),
        (_bad(w_s=np.full(12, np.nan)), "w_s"),
        (_bad(routing_index=np.full(12, 7)), "routing_index"),
        (_bad(routing_index=np.full(12, -1)), "routing_index"),
        (_bad(routing_mask=np.ones(5, bool)), "routing_mask"),
        (_bad(mlp_w0=np.ones((6, 5))), "mlp_w0"),
        (_bad(mlp_w1=np.ones((3, 5))), "mlp_w1"),
        (_bad(mlp_b1=np.ones(2)), "mlp_b1"),
        (_bad(w_y=np.ones((2, 4))), "w_y"),
        (_bad(b_y=np.array([np.inf, 0.0])), "b_y"),
        (_bad(activation="tanh"), "activation"),
        (_bad(lambda_value=float("nan")), "lambda_value"),
        (_bad(num_branch=0), "num_branch"),
        (_bad(dt=0.0), "dt"),
    ],
)
def test_bad_parameters_refused(changes, field):
    p = _tiny()
    with pytest.raises(SpecError, match=rf"ELMParameters\.{field}\b"):
        p.copy(**changes)


def test_bad_model_name_and_input_shape():
    with pytest.raises(SpecError, match="num_memory_3"):
        load_authors_model("num_memory_3", root=".")
    mod = ELMTorch(_tiny())
    with pytest.raises(ValueError, match="batch, T, 7"):
        mod(torch.zeros(2, 5, 8))
    assert isinstance(_tiny(), ELMParameters)


def test_model_api_backends_agree():
    torch_neuron = ELMNeuron.fresh(
        num_input=20, num_branch=3, num_synapse_per_branch=6, num_memory=4, dtype=torch.float64
    )
    numba_neuron = ELMNeuron(torch_neuron.params, backend="numba")
    x = _spikes((2, 15, 20))
    a = torch_neuron(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(a, numba_neuron(x), atol=1e-12)
    assert torch_neuron.parameter_count() == numba_neuron.parameter_count()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_cuda_matches_cpu(dtype, tol):
    p = init_parameters(num_input=100, num_branch=5, num_synapse_per_branch=20, num_memory=6)
    x = torch.tensor(_spikes((4, 130, 100), rate=0.05))
    cpu = ELMTorch(p, dtype=torch.float64)(x).detach()
    mod = ELMTorch(p, dtype=dtype, device="cuda")
    out = mod(x.cuda())
    out.sum().backward()
    assert mod.w_s.grad is not None and mod.w_s.grad.is_cuda
    err = (out.detach().double().cpu() - cpu).abs().max() / cpu.abs().max()
    assert err <= tol
