"""Fused populations of the layered schedule: one autograd node per population and chunk.

With autograd, a population of the layered schedule runs as one :class:`_FusedPopulation`
node whose backward pass is generated from sympy derivatives of the same expressions
(:func:`generate_population_backward`), instead of a per-step autograd graph: its forward is
the ``"saving"`` loop of :func:`~.layered.generate_population_loop`, run by
:class:`_FusedRun`. On the CPU the node computes a port's product itself, one cache-sized
block of steps at a time, and keeps its (T, B, n) work tensors in buffers reused across calls
(:class:`WorkBuffers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ...codegen import SourceWriter
from ...equations import Expression, Printer
from ...errors import SpecError
from ...lower import PopulationProgram
from .printing import _FUNCS, _constant_name, _Names, _refractory

if TYPE_CHECKING:
    from .simulation import TorchSimulation


_PER_STEP_FACTORS = 4096  # B * n from which backward factors are computed step by step
_BLOCK_BYTES = 2**20  # a fused population's time block: (steps, B, n) values in this many bytes
_FREE_BYTES = 2**28  # work buffers of the fused populations kept for reuse, at most


def _saved_names(p: PopulationProgram, keep: set[str] | None) -> list[str]:
    """What the ``"saving"`` loop keeps for the fused backward: ``U_<var>`` (state after
    delivery), ``Z_<var>`` (after integration), ``R`` (refractory flags, bool); only those
    in ``keep`` (the names the backward reads) when given, ``R`` always when refractory."""
    saved = [f"U_{v}" for v in p.state] + [f"Z_{v}" for v in p.state]
    saved += ["R"] if _refractory(p) else []
    return [x for x in saved if keep is None or x in keep or x == "R"]


class _NotFusable(Exception):
    pass


def _derivatives(expr: Expression, wrt: tuple[str, ...], where: str) -> dict[str, Expression]:
    """Nonzero partial derivatives of ``expr`` by each name in ``wrt`` (sympy, printed back into
    the grammar); raises :class:`_NotFusable` where an expression has no derivative there."""
    import sympy

    from ...lower import _Nonlinear, _to_expression, _to_sympy

    symbols: dict[str, sympy.Symbol] = {}
    try:
        e = _to_sympy(expr, symbols)
    except _Nonlinear as exc:
        raise _NotFusable(f"{where}: {exc}") from None
    out = {}
    for v in wrt:
        if v not in symbols:
            continue
        d = sympy.diff(e, symbols[v])
        if d != 0:
            try:
                out[v] = _to_expression(d, where)
            except SpecError as exc:  # e.g. sign(x) from abs: outside the grammar
                raise _NotFusable(str(exc)) from None
    return out


def generate_population_backward(
    sim: TorchSimulation, p: PopulationProgram, driven_ports: tuple[str, ...]
) -> str:
    """Source of ``bwd(K, saved, SF, G, cur, T, OUT)``: backpropagation through the ``T`` steps
    of the ``"saving"`` loop of :func:`generate_population_loop`, derived symbolically (sympy)
    from the same lowered expressions. ``SF``: float spikes (T, B, n); ``G``: the gradient of
    the loss by them. The gradient by each driven port's input in step ``k`` is copied into
    ``OUT[port][k]`` (a (B, n) row of the caller's buffer; None: not wanted), so no per-step
    tensors are kept and no (T, B, n) tensor is stacked from them.

    One step, forward: ``u`` = state after delivery, ``z_j = new_j(u)`` (``u_j`` while
    refractory for clamped ``j``), ``s = H(m(z))`` with ``ds/dm`` the surrogate (zero while
    refractory), then for each reset target ``y_r = z_r (1 - s) + value_r(z) s`` (the blend of
    the autograd schedule). Every factor that depends only on saved values (``z``, ``u``,
    spikes, refractory flags) is computed for all ``T`` steps at once before the reverse loop,
    which is left with a few multiply-adds per step and variable.
    Raises :class:`_NotFusable` for what it cannot derive (``next_step`` reset, reset values
    reading earlier reset targets, expressions without a derivative in the grammar).
    """
    prog = sim.program
    n = p.name
    where = f"population {n!r}"
    if prog.reset_mode != "same_step":
        raise _NotFusable("reset_mode 'next_step'")
    nm = _Names()
    refractory = _refractory(p)
    names = tuple(p.state)
    targets = [s.target for s in p.reset]
    if len(set(targets)) < len(targets):
        raise _NotFusable(f"{where}: a variable is reset twice")
    for i, st in enumerate(p.reset):
        if st.value.names & set(targets[:i]):
            raise _NotFusable(f"{where}: reset value reads an earlier reset target")
    used: set[str] = set()  # stacked saved tensors the precomputation reads

    def printer(prefix: str) -> Printer:
        def name(x: str) -> str:
            if x in p.state:
                used.add(f"{prefix}{x}")
                return f"{prefix}{x}"
            if x in p.inputs:
                return f"{'i' if prefix.islower() else 'I'}_{x}"
            return _constant_name(nm, n, p.constants, p.dt, x)

        return Printer(name, _FUNCS, "array")

    # Factors that vary over steps: for small populations computed for the whole chunk at
    # once (few large operations); for large ones (B * n >= _PER_STEP_FACTORS) step by step
    # inside the loop, where the step's tensors are still in cache (a chunk-wide operation on
    # T * B * n values is memory-bound and slower than T operations on cached B * n values).
    per_step = sim.batch_size * p.size >= _PER_STEP_FACTORS
    Zp, Up, SFn, NRn, RRn = (
        ("z_", "u_", "sf", "nr", "rr") if per_step else ("Z_", "U_", "SF", "NR", "RR")
    )
    pz, pu = printer(Zp), printer(Up)

    def factor_of(pr: Printer, e: Expression) -> tuple[str, bool]:
        """Printed factor and whether it varies over steps (reads state or inputs)."""
        return f"({pr(e)})", bool(e.names & (set(p.state) | set(p.inputs)))

    pre = SourceWriter(depth=1)  # once per chunk
    c = SourceWriter(depth=2)  # the reverse loop
    body = SourceWriter(depth=2)  # per-step factors (per_step mode), before the recursion
    terms_sf = ["G[k]"]
    terms_z: dict[str, list[str]] = {v: [] for v in names}
    nf = 0

    def factor(text: str, timed: bool = True) -> str:
        """Name under which step k reads the factor ``text``."""
        nonlocal nf
        nf += 1
        if timed and per_step:
            body(f"F{nf} = {text}")
            return f"F{nf}"
        pre(f"F{nf} = {text}")
        return f"F{nf}[k]" if timed else f"F{nf}"

    # reset blends
    for st in p.reset:
        r = st.target
        used.add(f"{Zp}{r}")
        terms_sf.append(f"gy_{r} * {factor(f'({pz(st.value)}) - {Zp}{r}')}")
        terms_z[r].append(f"gy_{r} * {factor(f'1.0 - {SFn}')}")
        for x, d in _derivatives(st.value, names, where).items():
            terms_z[x].append(f"gy_{r} * {factor(f'{SFn} * {factor_of(pz, d)[0]}')}")
    for v in names:
        if v not in targets:
            terms_z[v].insert(0, f"gy_{v}")
    # surrogate spike
    if p.threshold is not None and p.threshold_margin is not None:
        ds = f"_surrogate({pz(p.threshold_margin)})"
        ds_ref = factor(f"{ds} * {NRn}" if refractory else ds)
        for x, d in _derivatives(p.threshold_margin, names, where).items():
            if d.text in ("1", "1.0"):
                terms_z[x].append(f"g_sf * {ds_ref}")
            else:
                f, timed = factor_of(pz, d)
                terms_z[x].append(f"g_sf * {ds_ref} * {factor(f, timed)}")
    # clamping and integration: the factors multiplying gz_j in the gradient by u_x
    parts: dict[str, dict[str, list[tuple[str, bool]]]] = {v: {} for v in names}
    for v in names:
        if v not in p.updates:
            parts[v].setdefault(v, []).append(("1.0", False))
        elif v in p.clamped and refractory:
            parts[v].setdefault(v, []).append((RRn, True))
    for j, e in p.updates.items():
        gate = refractory and j in p.clamped
        for x, d in _derivatives(e, names, where).items():
            f, timed = factor_of(pu, d)
            parts[x].setdefault(j, []).append((f"{NRn} * {f}", True) if gate else (f, timed))
    terms_u: dict[str, list[str]] = {v: [] for v in names}
    for x in names:
        for j, fs in parts[x].items():
            text = " + ".join(f for f, _ in fs)
            if text in ("(1)", "(1.0)", "1.0"):
                terms_u[x].append(f"gz_{j}")
            else:
                terms_u[x].append(f"gz_{j} * {factor(text, any(t for _, t in fs))}")
    c("g_sf = " + " + ".join(terms_sf))
    for v in names:
        c(f"gz_{v} = {' + '.join(terms_z[v]) if terms_z[v] else '0.0'}")
    for v in names:
        c(f"gy_{v} = {' + '.join(terms_u[v]) if terms_u[v] else f'0.0 * gy_{v}'}")
    for port, (var, _scale) in p.ports.items():
        if port in driven_ports:
            c(f"o = gX_{port}[k]")
            c("if o is not None:")
            with c.block():
                c(f"o.copy_(gy_{var})")
    head = ["def bwd(K, saved, SF, G, cur, T, OUT):"]
    head += [f"    {k} = K[{k!r}]" for k in sorted(nm.constants)]
    step_lines = []
    if per_step:
        head += [f"    I_{v} = _over_time(cur.get({v!r}, K[{f'Z_{n}'!r}]), T)" for v in p.inputs]
        head += [
            f"    {x.upper()[0]}{x[1:]} = saved[{(x.upper()[0] + x[1:])!r}].unbind(0)"
            for x in sorted(used)
        ]
        step_lines += [f"        i_{v} = I_{v}[k]" for v in p.inputs]
        step_lines += [f"        {x} = {x.upper()[0]}{x[1:]}[k]" for x in sorted(used)]
        head += ["    SFl = SF.unbind(0)"]
        step_lines += ["        sf = SFl[k]"]
        if refractory:
            head += ["    R = saved['R'].unbind(0)"]
            step_lines += ["        nr = _as_float(~R[k])", "        rr = _as_float(R[k])"]
    else:
        head += [f"    I_{v} = cur.get({v!r}, K[{f'Z_{n}'!r}])" for v in p.inputs]
        head += [f"    {x} = saved[{x!r}]" for x in sorted(used)]
        if refractory:
            head += [
                "    R = saved['R']",
                "    NR = _as_float(~R)",
                "    RR = _as_float(R)",
            ]
    head += pre.lines
    head += [f"    gy_{v} = torch.zeros_like(G[0])" for v in names]
    head += [f"    gX_{port} = OUT[{port!r}]" for port in driven_ports]
    head += ["    for k in range(T - 1, -1, -1):"]
    tail = ["    return None"]
    return "\n".join(head + step_lines + body.lines + c.lines + tail) + "\n"


def _steps(head: list[torch.Tensor], Y: torch.Tensor, d: int, T: int) -> list[torch.Tensor]:
    """Per-step inputs: ``head`` for the first ``d`` steps, then the rows of ``Y``."""
    return [*head, *Y.unbind(0)[: T - d]] if d else list(Y.unbind(0))


class _FusedRun:
    """One population over a run chunk, as :class:`_FusedPopulation` runs it: the generated
    ``"saving"`` loop over blocks of steps and the generated backward.

    ``ports`` maps each driven port to ``(kind, head, d)``: step ``k`` receives ``head[k]`` for
    ``k < d``, then row ``k - d`` of the port's arrivals. Kind ``"Y"``: the arrivals (T, B, n)
    are one input of the node. Kind ``"mm"``: two inputs, the presynaptic float spikes
    ``pre`` (T, B, n_pre) and the weights ``W`` (n_pre, n); the node computes ``pre @ W``
    itself, one block of steps at a time into a reused buffer that stays in cache (with MKL
    on the CPU the rows of a product do not depend on the other rows: the same bits as one
    product over all ``T * B`` rows; tests/test_torch_layered.py checks it), and in the
    backward the products autograd's ``mm`` would compute.
    What the backward reads (``saved``: :func:`_saved_names`) and the gradient by the
    arrivals go to work buffers of the simulation, reused across calls; so the only new
    (T, B, n) tensors of a call are the float spikes and, for a ``"Y"`` port, the gradient.
    """

    def __init__(
        self,
        sim: TorchSimulation,
        n: str,
        K: dict[str, torch.Tensor],
        cur: dict[str, torch.Tensor],
        PI: dict[int, torch.Tensor],
        T: int,
        ports: dict[str, tuple[str, list[torch.Tensor], int]],
    ) -> None:
        self.sim, self.K, self.cur, self.PI, self.T, self.ports = sim, K, cur, PI, T, ports
        self.loop, self.bwd = sim._pop_loops[n]["saving"], sim._pop_bwd[n]
        self.names, self.size = sim._pop_saved[n], sim.program.populations[n].size
        self.rec: dict[int, list[torch.Tensor]] = {}
        self.saved: dict[str, torch.Tensor] = {}

    def forward(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Float spikes (T, B, n); keeps the probes and what the backward reads."""
        sim, T, n = self.sim, self.T, self.size
        B = sim.batch_size
        # steps per block: the block's arrivals, states and spikes stay in cache
        block = max(1, min(T, _BLOCK_BYTES // (B * n * sim.dtype.itemsize)))
        src: dict[str, Any] = {}
        it = iter(inputs)
        for port, (kind, head, d) in self.ports.items():
            if kind == "mm":
                pre, W = next(it), next(it)
                src[port] = (pre.reshape(T * B, pre.shape[2]), W, sim._buffer((block * B, n)))
            else:
                src[port] = _steps(head, next(it), d, T)
        self.saved = {
            x: sim._buffer((T, B, n), torch.bool if x == "R" else None) for x in self.names
        }
        soft = torch.empty(T, B, n, dtype=sim.dtype, device=sim.device)
        spk = sim._buffer((block, B, n), torch.bool)
        for k0 in range(0, T, block):
            k1 = min(T, k0 + block)
            X = {}
            for port, (kind, head, d) in self.ports.items():
                if kind != "mm":
                    X[port] = src[port][k0:k1]
                    continue
                pre, W, buf = src[port]
                r0, r1 = max(k0, d) - d, k1 - d  # product rows arriving in this block
                X[port] = head[k0:k1]
                if r1 > r0:
                    Y = torch.mm(pre[r0 * B : r1 * B], W, out=buf[: (r1 - r0) * B])
                    X[port] = [*X[port], *Y.view(r1 - r0, B, n).unbind(0)]
            cur = {v: x[k0:k1] if x.dim() == 3 else x for v, x in self.cur.items()}
            SV = {x: b[k0:k1] for x, b in self.saved.items()}
            hard, _, rec = self.loop(sim._S, self.K, X, cur, k1 - k0, self.PI, SV)
            torch.stack(hard, out=spk[: k1 - k0])
            soft[k0:k1].copy_(spk[: k1 - k0].view(torch.uint8))  # 0/1 as _as_float gives
            for r, values in rec.items():
                self.rec.setdefault(r, []).extend(values)
        sim._release(spk, *(v[2] for v in src.values() if isinstance(v, tuple)))
        return soft

    def backward(
        self, g: torch.Tensor, soft: torch.Tensor, inputs: tuple[torch.Tensor, ...], needs
    ) -> list[torch.Tensor | None]:
        """Gradients by the node's inputs (``needs``: which are wanted)."""
        sim, T, n = self.sim, self.T, self.size
        B = sim.batch_size
        out, gys = {}, []
        for port, (kind, _, d) in self.ports.items():
            # "mm": a work buffer, consumed below; "Y": handed to autograd
            gy = sim._buffer((T, B, n)) if kind == "mm" else g.new_empty(T, B, n)
            if d:  # rows of the arrivals that left the chunk (into the ring): no gradient
                gy[T - d :].zero_()
            out[port] = [None] * d + list(gy.unbind(0)[: T - d])
            gys.append(gy)
        self.bwd(self.K, self.saved, soft, g.unbind(0), self.cur, T, out)
        sim._release(*self.saved.values())
        self.saved = {}
        grads: list[torch.Tensor | None] = []
        i = 0
        for (kind, _, _), gy in zip(self.ports.values(), gys, strict=True):
            if kind != "mm":
                grads.append(gy)
                i += 1
                continue
            pre, W = inputs[i], inputs[i + 1]
            gf, pf = gy.view(T * B, n), pre.reshape(T * B, pre.shape[2])
            # as autograd differentiates pre.reshape(T * B, n_pre) @ W (row-major operands)
            grads.append(gf.mm(W.t()).view(pre.shape) if needs[i] else None)
            grads.append(pf.t().mm(gf) if needs[i + 1] else None)
            sim._release(gy)
            i += 2
        return grads


class _FusedPopulation(torch.autograd.Function):
    """One population over a run chunk as one autograd node (:class:`_FusedRun`): forward by
    the ``"saving"`` loop without a graph, backward by the generated BPTT loop (far fewer
    tensor operations and no per-step autograd bookkeeping). Gradients flow to the port
    inputs only: the arrivals, or the presynaptic spikes and weights of a product."""

    @staticmethod
    def forward(ctx, run, *inputs):  # type: ignore[override]
        with torch.no_grad():
            soft = run.forward(inputs)
        ctx.run, ctx.soft = run, soft
        # the backward's products read pre and W; the arrivals of a "Y" port are not kept
        keep = [
            f for k, _, _ in run.ports.values() for f in ((True, True) if k == "mm" else (False,))
        ]
        ctx.save_for_backward(*(x if f else None for x, f in zip(inputs, keep, strict=True)))
        return soft

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        if ctx.run is None:  # its saved values are work buffers again
            raise RuntimeError(
                "neuromem torch backend: a fused population's backward ran twice "
                "(retain_graph is not supported by the layered schedule; use schedule='step')"
            )
        with torch.no_grad():
            grads = ctx.run.backward(g, ctx.soft, ctx.saved_tensors, ctx.needs_input_grad[1:])
        ctx.run = ctx.soft = None
        return (None, *grads)


class WorkBuffers:
    """The :class:`~.simulation.TorchSimulation` methods that lend the fused populations their
    work buffers."""

    def _buffer(self, shape: tuple[int, ...], dtype: torch.dtype | None = None) -> torch.Tensor:
        """An uninitialised work buffer of the fused populations, reused across calls: large
        (T, B, n) tensors allocated afresh in every call cost page faults and zeroing by the
        OS (glibc maps allocations above 32 MiB anew each time)."""
        free = self._free.get((tuple(shape), dtype or self.dtype))
        if free:
            return free.pop()
        return torch.empty(shape, dtype=dtype or self.dtype, device=self.device)

    def _release(self, *buffers: torch.Tensor) -> None:
        """Give back buffers from :meth:`_buffer` that nothing reads any more; the most recently
        used shapes are kept, up to ``_FREE_BYTES`` in all."""
        for b in buffers:
            key = (tuple(b.shape), b.dtype)
            self._free[key] = [*self._free.pop(key, []), b]  # most recent last
        total = sum(b.nbytes for free in self._free.values() for b in free)
        while total > _FREE_BYTES:
            free = self._free[next(iter(self._free))]
            total -= free.pop(0).nbytes
            if not free:
                del self._free[next(iter(self._free))]
