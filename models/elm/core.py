"""Expressive Leaky Memory (ELM) neuron (Spieler, Rahaman, Martius, Schölkopf, Levina, ICLR 2024).

A phenomenological single-neuron model: ``num_input`` spike trains are routed onto
``num_branch x num_synapse_per_branch`` synapses with leaky traces; per-branch sums drive an MLP
that writes into ``d_m`` leaky memory units; a linear readout gives the outputs. With dt = 1 ms::

    x_syn = x[routing_index] * routing_mask
    s_t   = exp(-dt/tau_s) * s_{t-1} + w_s * x_syn_t
    b_t   = sum of s_t over the synapses of each branch            (uses s_t, after input t)
    dm_t  = 1.7159 * tanh((2/3) * MLP([b_t, exp(-dt/tau_m) * m_{t-1}]))
    m_t   = exp(-dt/tau_m) * m_{t-1} + lambda * (1 - exp(-dt/tau_m)) * dm_t
    y_t   = w_y @ m_t + b_y

with ``s_0 = m_0 = 0``. Three implementations share :class:`ELMParameters`:

- :class:`ELMTorch` (differentiable, float32/float64, CPU/CUDA): the synaptic trace is linear, so
  the input is first projected onto (branch, tau_s-group) channels with one matmul and the trace
  is computed for all steps at once by a chunked causal convolution (exact decay powers
  ``exp(-k dt/tau_s)``, no growing factors); only the memory recurrence runs as a Python loop,
  over ``unbind`` of time-major tensors.
- :func:`elm_forward_numba`: float64 inference, the whole time loop jitted.
- the per-step reference structure lives in ``benchmarks/elm_forward_backward.py``.

Parameter count (:func:`parameter_count`), the authors' rule: the trainable tensors ``w_s``,
the MLP weights and biases, the readout ``w_y``/``b_y``, plus ``tau_m`` when it is learnable.
``tau_s``, ``lambda`` and the routing are fixed and not counted. d_m = 1 gives 4,601 and
d_m = 20 gives 8,002 for the released NeuronIO models.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields

import numba
import numpy as np
import torch
from torch import nn

from neuromem.data import verified_path
from neuromem.errors import SpecError

AUTHORS_MODELS = ("num_memory_1", "num_memory_20")
ACTIVATIONS = ("relu", "silu")
_TANH_GAIN, _TANH_SLOPE = 1.7159, 2.0 / 3.0


def _err(name: str, msg: str) -> SpecError:
    return SpecError(f"ELMParameters.{name}: {msg}")


@dataclass(eq=False)
class ELMParameters:
    """All parameters of one ELM neuron (numpy, float64; validated on construction).

    Shapes: ``S = num_branch * num_synapse_per_branch`` synapses (branch-major: synapse ``j``
    belongs to branch ``j // num_synapse_per_branch``), ``H`` MLP hidden units, ``d_m`` memory
    units, ``n_out`` outputs. ``mlp_w0`` is (H, num_branch + d_m): branch inputs first.
    """

    num_input: int
    num_branch: int
    num_synapse_per_branch: int
    routing_index: np.ndarray  # (S,) int, input feeding each synapse
    routing_mask: np.ndarray  # (S,) bool, synapse connected
    w_s: np.ndarray  # (S,)
    tau_s: np.ndarray  # (S,) ms
    tau_m: np.ndarray  # (d_m,) ms
    mlp_w0: np.ndarray  # (H, num_branch + d_m)
    mlp_b0: np.ndarray  # (H,)
    mlp_w1: np.ndarray  # (d_m, H)
    mlp_b1: np.ndarray  # (d_m,)
    w_y: np.ndarray  # (n_out, d_m)
    b_y: np.ndarray  # (n_out,)
    lambda_value: float = 5.0
    activation: str = "relu"
    learn_memory_tau: bool = False
    dt: float = 1.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("num_input", "num_branch", "num_synapse_per_branch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise _err(name, f"must be a positive integer, got {v!r}")
            setattr(self, name, int(v))
        for name in ("lambda_value", "dt"):
            v = getattr(self, name)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise _err(name, f"must be a number, got {v!r}") from None
            if not math.isfinite(v):
                raise _err(name, f"must be finite, got {v}")
            setattr(self, name, v)
        if self.dt <= 0:
            raise _err("dt", f"must be > 0, got {self.dt}")
        if self.activation not in ACTIVATIONS:
            raise _err("activation", f"must be one of {ACTIVATIONS}, got {self.activation!r}")
        self.learn_memory_tau = bool(self.learn_memory_tau)

        S = self.num_branch * self.num_synapse_per_branch
        ri = np.asarray(self.routing_index)
        if ri.shape != (S,):
            raise _err("routing_index", f"shape {ri.shape}, expected ({S},)")
        if ri.size and not np.issubdtype(ri.dtype, np.integer):
            if not np.all(np.isfinite(ri)) or not np.all(ri == np.round(ri)):
                raise _err("routing_index", "must hold integers")
        ri = ri.astype(np.int64)
        if ri.size and (ri.min() < 0 or ri.max() >= self.num_input):
            raise _err(
                "routing_index",
                f"values must lie in [0, {self.num_input}), got [{ri.min()}, {ri.max()}]",
            )
        self.routing_index = ri
        rm = np.asarray(self.routing_mask)
        if rm.shape != (S,):
            raise _err("routing_mask", f"shape {rm.shape}, expected ({S},)")
        self.routing_mask = rm.astype(bool)

        try:
            tm = np.atleast_1d(np.asarray(self.tau_m, dtype=np.float64))
        except (TypeError, ValueError):
            raise _err("tau_m", "must be numeric") from None
        if tm.ndim != 1 or tm.size < 1:
            raise _err("tau_m", f"must be a non-empty vector, got shape {tm.shape}")
        d_m = tm.size
        h = np.asarray(self.mlp_b0).shape[0] if np.ndim(self.mlp_b0) == 1 else -1
        n_out = np.asarray(self.b_y).shape[0] if np.ndim(self.b_y) == 1 else -1
        expected = {
            "w_s": (S,),
            "tau_s": (S,),
            "tau_m": (d_m,),
            "mlp_b0": (h,),
            "mlp_w0": (h, self.num_branch + d_m),
            "mlp_w1": (d_m, h),
            "mlp_b1": (d_m,),
            "b_y": (n_out,),
            "w_y": (n_out, d_m),
        }
        for name, shape in expected.items():
            a = np.asarray(getattr(self, name))
            if name == "tau_m":
                a = tm
            try:
                a = a.astype(np.float64)
            except (TypeError, ValueError):
                raise _err(name, "must be numeric") from None
            if a.shape != shape or min(shape) < 1:
                raise _err(name, f"shape {a.shape}, expected {shape}")
            if not np.all(np.isfinite(a)):
                raise _err(name, "contains non-finite values")
            setattr(self, name, a)
        for name in ("tau_s", "tau_m"):
            a = getattr(self, name)
            if np.any(a <= 0):
                raise _err(name, f"time constants must be > 0, got min {a.min()}")

    # -- derived ------------------------------------------------------------------------------
    @property
    def d_m(self) -> int:
        return self.tau_m.size

    @property
    def hidden_size(self) -> int:
        return self.mlp_b0.size

    @property
    def num_output(self) -> int:
        return self.b_y.size

    @property
    def num_synapse(self) -> int:
        return self.num_branch * self.num_synapse_per_branch

    def copy(self, **changes) -> ELMParameters:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw = {k: (v.copy() if isinstance(v, np.ndarray | dict) else v) for k, v in kw.items()}
        kw.update(changes)
        return ELMParameters(**kw)


def parameter_count(p: ELMParameters) -> int:
    """Trainable parameters, counted as the authors do (see module docstring)."""
    n = p.w_s.size + p.mlp_w0.size + p.mlp_b0.size + p.mlp_w1.size + p.mlp_b1.size
    n += p.w_y.size + p.b_y.size
    return n + (p.tau_m.size if p.learn_memory_tau else 0)


def load_authors_model(name: str, root: str | os.PathLike | None = None) -> ELMParameters:
    """One of the authors' trained NeuronIO models, ``"num_memory_1"`` or ``"num_memory_20"``."""
    if name not in AUTHORS_MODELS:
        raise SpecError(f"unknown ELM model {name!r}; known: {', '.join(AUTHORS_MODELS)}")
    cfg = json.loads(verified_path(f"elm/{name}_config.json", root).read_text())
    with np.load(verified_path(f"elm/{name}_weights.npz", root)) as w:
        arrays = {k: w[k] for k in w.files}
    return ELMParameters(
        num_input=cfg["num_input"],
        num_branch=cfg["num_branch"],
        num_synapse_per_branch=cfg["num_synapse_per_branch"],
        lambda_value=cfg["lambda_value"],
        activation=cfg["mlp_activation"],
        learn_memory_tau=cfg["learn_memory_tau"],
        dt=cfg["delta_t"],
        meta={"source": name, "config": cfg},
        **arrays,
    )


def load_golden(name: str, root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The authors' fixed test input and output: (spikes bool (B, T, N), output (B, T, n_out))."""
    if name not in AUTHORS_MODELS:
        raise SpecError(f"unknown ELM model {name!r}; known: {', '.join(AUTHORS_MODELS)}")
    with np.load(verified_path(f"elm/{name}_golden.npz", root)) as g:
        x = np.zeros(tuple(int(s) for s in g["input_shape"]), dtype=bool)
        idx = g["spike_index"].astype(np.int64)
        x[idx[:, 0], idx[:, 1], idx[:, 2]] = True
        return x, g["output"].astype(np.float64)


def init_parameters(
    num_input: int = 1278,
    num_branch: int = 45,
    num_synapse_per_branch: int = 100,
    num_memory: int = 20,
    mlp_hidden_size: int | None = None,
    num_output: int = 2,
    *,
    activation: str = "relu",
    lambda_value: float = 5.0,
    tau_s: float | np.ndarray = 5.0,
    tau_m: np.ndarray | None = None,
    memory_tau_min: float = 1.0,
    memory_tau_max: float = 150.0,
    learn_memory_tau: bool = False,
    routing_index: np.ndarray | None = None,
    routing_mask: np.ndarray | None = None,
    dt: float = 1.0,
    seed: int = 0,
) -> ELMParameters:
    """A fresh, seeded ELM.

    ``tau_m`` defaults to ``num_memory`` values log-spaced in [memory_tau_min, memory_tau_max];
    the hidden size to ``2 * num_memory`` (the authors' NeuronIO choice). Linear layers use the
    PyTorch default init U(+-1/sqrt(fan_in)); ``w_s`` ~ U(0, 0.5) (our choice). Without a given
    routing, each synapse draws its input uniformly and every synapse is connected.
    """
    rng = np.random.default_rng(seed)
    S = num_branch * num_synapse_per_branch
    h = 2 * num_memory if mlp_hidden_size is None else mlp_hidden_size
    if tau_m is None:
        if not (0 < memory_tau_min <= memory_tau_max):
            raise _err(
                "tau_m",
                f"need 0 < memory_tau_min <= memory_tau_max, got "
                f"{memory_tau_min}, {memory_tau_max}",
            )
        tau_m = np.logspace(np.log10(memory_tau_min), np.log10(memory_tau_max), num_memory)
    if routing_index is None:
        routing_index = rng.integers(0, num_input, S)
    if routing_mask is None:
        routing_mask = np.ones(S, dtype=bool)

    def lin(n_out, n_in):
        k = 1.0 / math.sqrt(n_in)
        return rng.uniform(-k, k, (n_out, n_in)), rng.uniform(-k, k, n_out)

    w0, b0 = lin(h, num_branch + num_memory)
    w1, b1 = lin(num_memory, h)
    wy, by = lin(num_output, num_memory)
    return ELMParameters(
        num_input=num_input,
        num_branch=num_branch,
        num_synapse_per_branch=num_synapse_per_branch,
        routing_index=routing_index,
        routing_mask=routing_mask,
        w_s=rng.uniform(0.0, 0.5, S),
        tau_s=np.broadcast_to(np.asarray(tau_s, dtype=np.float64), (S,)).copy(),
        tau_m=tau_m,
        mlp_w0=w0,
        mlp_b0=b0,
        mlp_w1=w1,
        mlp_b1=b1,
        w_y=wy,
        b_y=by,
        lambda_value=lambda_value,
        activation=activation,
        learn_memory_tau=learn_memory_tau,
        dt=dt,
        meta={"source": f"init_parameters(seed={seed})"},
    )


# ---------------------------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------------------------


def decay_scan(
    v: torch.Tensor, log_decay: torch.Tensor, chunk: int, initial: torch.Tensor | None = None
) -> torch.Tensor:
    """``s_t = exp(log_decay) * s_{t-1} + v_t`` for all t at once (``s_{-1} = initial`` or 0,
    shape (B, G, K)).

    ``v`` is time-major (T, B, G, K); ``log_decay`` (G,) <= 0. Chunks of ``chunk`` steps are
    a causal convolution with the exact kernel ``exp(k * log_decay)`` (one batched matmul);
    the state is carried between chunks (T / chunk sequential steps). No factor exceeds 1.
    """
    if initial is not None:  # a linear recursion: the start state adds its own decay
        T = v.shape[0]
        ramp0 = torch.exp(
            torch.arange(1, T + 1, device=v.device, dtype=v.dtype)[:, None] * log_decay[None, :]
        )[:, None, :, None]
        return decay_scan(v, log_decay, chunk) + ramp0 * initial[None]
    T, B, G, K = v.shape
    L = max(1, min(chunk, T))
    n = -(-T // L)
    if n * L != T:
        v = torch.cat([v, v.new_zeros(n * L - T, B, G, K)])
    v = v.reshape(n, L, B, G, K)
    k = torch.arange(L, device=v.device, dtype=v.dtype)
    lag = k[:, None] - k[None, :]  # (L, L): i - j
    kern = torch.exp(lag.clamp(min=0)[None] * log_decay[:, None, None])  # (G, L, L)
    kern = kern * (lag >= 0)
    local = torch.einsum("gij,cjbgk->cibgk", kern, v)  # (n, L, B, G, K)
    if n == 1:
        return local[0, :T]
    ramp = torch.exp((k + 1)[:, None] * log_decay[None, :])[:, None, :, None]  # (L, 1, G, 1)
    out, carry = [], None
    for blk in local.unbind(0):
        if carry is not None:
            blk = blk + ramp * carry
        out.append(blk)
        carry = blk[-1]
    return torch.cat(out)[:T]


class ELMTorch(nn.Module):
    """Differentiable ELM. ``forward(x)``: x (B, T, num_input) -> y (B, T, n_out).

    Trainable: ``w_s``, the MLP, the readout and (if ``learn_memory_tau``) ``log_tau_m``.
    ``max_groups``: synapses are grouped by their ``tau_s`` value; with at most this many
    distinct values the input is projected onto (group, branch) channels by one matmul, otherwise
    every synapse is its own channel (gather). ``chunk``: the scan's chunk length.
    """

    def __init__(
        self,
        params: ELMParameters,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        max_groups: int = 16,
        chunk: int = 64,
    ):
        super().__init__()
        self.params = params
        p = params
        kw = dict(dtype=dtype, device=device)
        self.num_input, self.num_branch = p.num_input, p.num_branch
        self.activation = p.activation
        self.lambda_value = p.lambda_value
        self.dt = p.dt
        self.w_s = nn.Parameter(torch.tensor(p.w_s, **kw))
        self.mlp_w0 = nn.Parameter(torch.tensor(p.mlp_w0, **kw))
        self.mlp_b0 = nn.Parameter(torch.tensor(p.mlp_b0, **kw))
        self.mlp_w1 = nn.Parameter(torch.tensor(p.mlp_w1, **kw))
        self.mlp_b1 = nn.Parameter(torch.tensor(p.mlp_b1, **kw))
        self.w_y = nn.Parameter(torch.tensor(p.w_y, **kw))
        self.b_y = nn.Parameter(torch.tensor(p.b_y, **kw))
        log_tau_m = torch.tensor(np.log(p.tau_m), **kw)
        if p.learn_memory_tau:
            self.log_tau_m = nn.Parameter(log_tau_m)
        else:
            self.register_buffer("log_tau_m", log_tau_m)

        taus, group = np.unique(p.tau_s, return_inverse=True)
        branch = np.arange(p.num_synapse) // p.num_synapse_per_branch
        self.grouped = taus.size <= max_groups
        if self.grouped:  # channel (group, branch); W[input, channel] += w_s * mask
            col = group.reshape(-1) * p.num_branch + branch
            self.register_buffer("_col", torch.tensor(col, dtype=torch.long, device=device))
            log_decay = -p.dt / taus
        else:  # channel = synapse
            log_decay = -p.dt / p.tau_s
        self.n_groups = log_decay.size
        # per-synapse kernels are (S, L, L): keep them near 2**18 entries
        self.chunk = (
            chunk if self.grouped else max(4, min(chunk, math.isqrt(2**18 // p.num_synapse)))
        )
        self.register_buffer("_log_decay_s", torch.tensor(log_decay, **kw))
        self.register_buffer("_ri", torch.tensor(p.routing_index, dtype=torch.long, device=device))
        self.register_buffer("_mask", torch.tensor(p.routing_mask, **kw))

    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.parameters() if t.requires_grad)

    def branch_input(self, xt: torch.Tensor, trace: torch.Tensor | None = None):
        """Branch sums b_t (T, B, num_branch) for time-major input xt (T, B, num_input), and the
        final trace state (B, channels, 1 or num_branch) to continue from (``trace``)."""
        T, B, _ = xt.shape
        ws = self.w_s * self._mask
        if self.grouped:
            nc = self.n_groups * self.num_branch
            W = xt.new_zeros(self.num_input, nc).index_put(
                (self._ri, self._col), ws, accumulate=True
            )
            v = (xt.reshape(T * B, -1) @ W).reshape(T, B, self.n_groups, self.num_branch)
            s = decay_scan(v, self._log_decay_s, self.chunk, trace)
            return s.sum(2), s[-1]
        v = (xt[..., self._ri] * ws).unsqueeze(-1)  # (T, B, S, 1)
        s = decay_scan(v, self._log_decay_s, self.chunk, trace)
        return s.reshape(T, B, self.num_branch, -1).sum(-1), s[-1]

    def forward(self, x: torch.Tensor, return_memory: bool = False, state=None):
        """y (B, T, n_out) [and memory (B, T, d_m)]. With ``state`` (from ``self.last_state``
        of an earlier call, or None for rest) the call continues that run exactly."""
        if x.dim() != 3 or x.shape[-1] != self.num_input:
            raise ValueError(f"input must be (batch, T, {self.num_input}), got {tuple(x.shape)}")
        x = x.to(dtype=self.w_s.dtype, device=self.w_s.device)
        xt = x.transpose(0, 1)  # (T, B, N), time-major
        T, B, _ = xt.shape
        nb = self.num_branch
        trace0, m0 = (None, None) if state is None else state
        b, trace = self.branch_input(xt, trace0)  # (T, B, nb)
        km = torch.exp(-self.dt * torch.exp(-self.log_tau_m))  # (d_m,)
        # Hoisted out of the loop: the branch part of the first layer for all steps, the decay
        # folded into the memory part of the first layer, the tanh slope and gain folded into
        # the second layer and the memory update.
        pre = torch.addmm(self.mlp_b0, b.reshape(T * B, nb), self.mlp_w0[:, :nb].t())
        pre = pre.reshape(T, B, -1)
        w0m = (self.mlp_w0[:, nb:] * km).t()  # (d_m, H)
        w1 = (_TANH_SLOPE * self.mlp_w1).t()  # (H, d_m)
        b1 = _TANH_SLOPE * self.mlp_b1
        gain = self.lambda_value * _TANH_GAIN * (1.0 - km)
        act = torch.relu if self.activation == "relu" else nn.functional.silu
        m = x.new_zeros(B, km.shape[0]) if m0 is None else m0
        ms = []
        for pre_t in pre.unbind(0):
            h = act(torch.addmm(pre_t, m, w0m))
            dm = torch.tanh(torch.addmm(b1, h, w1))
            m = torch.addcmul(km * m, gain, dm)
            ms.append(m)
        mem = torch.stack(ms, 1)  # (B, T, d_m)
        self.last_state = (trace, m)
        y = mem @ self.w_y.t() + self.b_y
        return (y, mem) if return_memory else y


# ---------------------------------------------------------------------------------------------
# numba
# ---------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _elm_numba_kernel(x, ri, mask, w_s, ks, spb, km, w0, b0, w1, b1, silu, lam, wy, by, S0, M0):
    """S0 (B, S) and M0 (B, d_m): the traces and memory to start from; updated in place."""
    B, T, _ = x.shape
    S = ri.size
    nb = S // spb
    d_m = km.size
    H = b0.size
    n_out = by.size
    out = np.empty((B, T, n_out))
    inp = np.empty(nb + d_m)
    h = np.empty(H)
    for bi in range(B):
        s = S0[bi]
        m = M0[bi]
        for t in range(T):
            for br in range(nb):
                acc = 0.0
                for j in range(br * spb, (br + 1) * spb):
                    v = ks[j] * s[j]
                    if mask[j]:
                        v += w_s[j] * x[bi, t, ri[j]]
                    s[j] = v
                    acc += v
                inp[br] = acc
            for k in range(d_m):
                inp[nb + k] = km[k] * m[k]
            for i in range(H):
                acc = b0[i]
                for j in range(nb + d_m):
                    acc += w0[i, j] * inp[j]
                if silu:
                    h[i] = acc / (1.0 + np.exp(-acc))
                else:
                    h[i] = acc if acc > 0.0 else 0.0
            for k in range(d_m):
                acc = b1[k]
                for i in range(H):
                    acc += w1[k, i] * h[i]
                dm = 1.7159 * np.tanh((2.0 / 3.0) * acc)
                m[k] = inp[nb + k] + lam * (1.0 - km[k]) * dm
            for o in range(n_out):
                acc = by[o]
                for k in range(d_m):
                    acc += wy[o, k] * m[k]
                out[bi, t, o] = acc
    return out


def elm_forward_numba(
    params: ELMParameters, spikes: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Float64 inference: spikes (B, T, num_input) (or (T, num_input)) -> y (B, T, n_out).

    ``state``: (traces (B, S), memory (B, d_m)) to start from, updated in place so that a later
    call continues the run; None starts from rest."""
    p = params
    x = np.asarray(spikes, dtype=np.float64)
    squeeze = x.ndim == 2
    if squeeze:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != p.num_input:
        raise ValueError(f"spikes must be (batch, T, {p.num_input}), got {x.shape}")
    if state is None:
        state = (np.zeros((x.shape[0], p.num_synapse)), np.zeros((x.shape[0], p.d_m)))
    y = _elm_numba_kernel(
        np.ascontiguousarray(x),
        p.routing_index,
        p.routing_mask,
        p.w_s,
        np.exp(-p.dt / p.tau_s),
        p.num_synapse_per_branch,
        np.exp(-p.dt / p.tau_m),
        p.mlp_w0,
        p.mlp_b0,
        p.mlp_w1,
        p.mlp_b1,
        p.activation == "silu",
        p.lambda_value,
        p.w_y,
        p.b_y,
        state[0],
        state[1],
    )
    return y[0] if squeeze else y
