"""Brian2 backend: the lowered program as Brian2 objects (the reference simulator).

Every population is a ``NeuronGroup`` of dimensionless variables; every projection one
``Synapses`` object per delay value. Brian2's ODE integrators are *not* used: a
``run_regularly`` operation of each group applies the lowered per-step update expressions of
:mod:`neuromem.lower`, printed from the checked expression trees, so that the arithmetic is the
numba backend's operation for operation (loop-invariant optimisation is switched off, and the C
compiler runs without ``-ffast-math`` and with ``-ffp-contract=off``, so nothing is reordered or
fused). Conditionals, guarded statements (resets, trace statements), the refractory clamp and
the weight ring are selections (``nm_where``), never arithmetic blends: a NaN or inf in the
branch not taken cannot reach the result, as in numba and torch.

One time step t in Brian2's schedule (``when``/``order`` of each object)::

    start       network_operation: spike-source flags and external currents of step t
    groups      per population: deliver (port += acc * scale; acc = 0), integrate (clamped
                variables held while the refractory counter is > 0; counter decremented),
                threshold flag ``spk``, reset statements, counter = refractory steps on spike
    thresholds  threshold 'spk' (emits the flags as Brian2 spikes); SpikeMonitors (order 1)
    synapses    order 0: traces integrate (run_regularly of pre/post groups)
                order 1: on_post synaptic statements (post pathway, delay 0)
                order 2: on_pre synaptic statements (pre pathway 'plast', delay 0)
                order 3: trace statements on spike (run_regularly of pre/post groups)
                order 10 + (D_max - d) * P + k: transmission of the delay-d part of projection
                         k (pathway 'tx', delay (d - 1) dt): acc_port_post += w, consumed by
                         the deliver of step t + d
    end         StateMonitors (values after reset)

Each projection becomes one ``Synapses`` object per delay value, synapses in the program's CSR
order; the ``tx`` orders above make the events of one arrival step sum in the order of numba's
ring buffer (earlier emissions first, then projection, pre neuron, synapse), so even the
membrane potentials agree bit for bit. The weight a spike carries is the weight after its own
on_pre update: for a plastic projection with delay d > 1 the weight at emission is kept in a
per-synapse ring ``wq0..wq{d-1}`` at slot ``t_in_timesteps % d``, which transmission reads.
Spike-source populations are ``NeuronGroup``s whose ``spk`` flag is written each step by a
network_operation (so they can carry plasticity traces), not ``SpikeGeneratorGroup``s.

Options: ``target="cython"`` (default; compiled code is cached under ``NEUROMEM_CACHE`` or
``~/.cache/neuromem/brian2``) or ``target="numpy"`` (no compilation; same results, slower for
long runs). See docs/brian2_agreement.md for the measured agreement with numba.
"""

from __future__ import annotations

import ast
import contextlib
import functools
from typing import Any

import numpy as np

from ..codegen import cache_dir
from ..equations import Printer, Statement
from ..errors import SpecError
from ..lower import PHASES, PopulationProgram, ProjectionProgram
from .base import Simulation

_FUNCS = {"exp": "exp", "log": "log", "sqrt": "sqrt", "tanh": "tanh", "abs": "abs", "clip": "clip"}

_COMPILE_ARGS = ["-w", "-O2", "-fno-fast-math", "-ffp-contract=off"]


#: Selections and division as Brian2 functions (see :func:`_functions`): ``nm_where(c, a, b)``
#: is ``a`` where ``c`` holds, else ``b`` (float), ``nm_iwhere`` the same for integers,
#: ``nm_div(a, b)`` IEEE division (``x / 0`` is +-inf, ``0 / 0`` NaN, as numba and torch).
_CYTHON_CODE = {
    "nm_where": """
cdef inline double _nm_where(bint c, double a, double b):
    return a if c else b
""",
    "nm_iwhere": """
cdef inline int64_t _nm_iwhere(bint c, int64_t a, int64_t b):
    return a if c else b
""",
    "nm_div": """
@_cython.cdivision(True)
cdef inline double _nm_div(double a, double b):
    return a / b
""",
}


@functools.cache
def _functions() -> dict[str, Any]:
    """The Brian2 ``Function`` objects of the printed code, for the run namespace.

    A selection never multiplies: the branch not taken may hold inf or NaN (numpy evaluates
    both branches of ``np.where`` and selects; Cython selects between evaluated arguments).
    Division is ``nm_div`` because Cython code runs with ``cdivision=False``, where a division
    by zero raises ``ZeroDivisionError`` (also in a branch not taken); Python floats of the
    numpy target would raise too."""
    from brian2 import Function
    from brian2.codegen.generators.cython_generator import CythonCodeGenerator
    from brian2.codegen.generators.numpy_generator import NumpyCodeGenerator

    def where(c, a, b):
        return np.where(c, a, b)

    def div(a, b):
        return np.true_divide(a, b)

    out = {}
    for name, py, ret in (
        ("nm_where", where, "float"),
        ("nm_iwhere", where, "integer"),
        ("nm_div", div, "float"),
    ):
        n_args = 3 if py is where else 2
        f = Function(
            py, arg_units=[1] * n_args, return_unit=1, arg_types=["any"] * n_args, return_type=ret
        )
        f.implementations.add_implementation(NumpyCodeGenerator, code=py)
        f.implementations.add_implementation(
            CythonCodeGenerator, code=_CYTHON_CODE[name], name=f"_{name}"
        )
        out[name] = f
    return out


class _Brian2Printer(Printer):
    """Prints Brian2 abstract code. Brian2 has no ``a if c else b``; conditionals become
    selections ``nm_where(c, a, b)`` (never an arithmetic blend such as ``c * a + (1 - c) * b``,
    which turns an inf or NaN of the branch not taken into NaN), boolean-valued ones
    ``(c and a) or ((not c) and b)``; ``minimum``/``maximum`` are selections with Python's
    ``min``/``max`` ties, division is ``nm_div``. ``flags`` are the grammar names that are
    booleans (``pre_event``, ``post_event``)."""

    def __init__(self, name, flags: frozenset[str] = frozenset()):
        super().__init__(name, _FUNCS, "scalar")
        self.flags = flags

    def _is_bool(self, n: ast.AST) -> bool:
        if isinstance(n, ast.Compare | ast.BoolOp):
            return True
        if isinstance(n, ast.UnaryOp):
            return isinstance(n.op, ast.Not)
        if isinstance(n, ast.Name):
            return n.id in self.flags
        if isinstance(n, ast.IfExp):
            return self._is_bool(n.body) and self._is_bool(n.orelse)
        return False

    def _test(self, n: ast.AST) -> str:
        """A condition as a boolean: a number is true where it is not 0 (NaN too, as Python)."""
        return self._p(n) if self._is_bool(n) else f"({self._p(n)} != 0.0)"

    def _p(self, n: ast.AST) -> str:
        if isinstance(n, ast.IfExp):
            c, a, b = self._test(n.test), self._p(n.body), self._p(n.orelse)
            if self._is_bool(n):  # booleans have no value that could contaminate
                return f"(({c} and {a}) or ((not {c}) and {b}))"
            return f"nm_where({c}, {a}, {b})"
        if isinstance(n, ast.Call) and n.func.id in ("minimum", "maximum"):  # type: ignore
            a, b = (self._p(x) for x in n.args)
            op = "<" if n.func.id == "minimum" else ">"  # type: ignore[attr-defined]
            return f"nm_where(({b} {op} {a}), {b}, {a})"  # min(a, b) = b if b < a else a
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div):
            return f"nm_div({self._p(n.left)}, {self._p(n.right)})"
        return super()._p(n)


def _pop_name(p: PopulationProgram):
    def name(n: str) -> str:
        if n in p.state:
            return f"s_{n}"
        if n in p.inputs:
            return f"in_{n}"
        if n == "dt" and n not in p.constants:
            return repr(float(p.dt))
        return f"h{n}" if n.startswith("_") else f"c_{n}"

    return name


class _Code:
    """Abstract code lines; every assignment goes through a fresh temporary so that Brian2
    never rewrites an expression (it turns ``x = x + e`` into ``x += e`` via sympy)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0

    def temp(self, expr: str, prefix: str = "tmp") -> str:
        self.n += 1
        name = f"{prefix}{self.n}"
        self.lines.append(f"{name} = {expr}")
        return name

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines)


def _guarded(code: _Code, stmts: tuple[Statement, ...], pr: Printer, flag: str | None) -> None:
    """``target = value`` for each statement (sequentially), only where boolean ``flag`` holds
    (a selection: the value computed for the other neurons is never used)."""
    for s in stmts:
        tmp = code.temp(pr(s.value))
        tgt = pr.name(s.target)
        if flag is not None:
            tmp = code.temp(f"nm_where({flag}, {tmp}, {tgt})", "sel")
        code(f"{tgt} = {tmp}")


def _population_code(p: PopulationProgram) -> str:
    pr = _Brian2Printer(_pop_name(p))
    c = _Code()
    for port, (var, scale) in p.ports.items():  # deliver
        tmp = c.temp(f"s_{var} + acc_{port} * h{scale}")
        c(f"s_{var} = {tmp}")
        c(f"acc_{port} = 0.0")
    c("refr = ref > 0")
    c(f"ref = {c.temp('nm_iwhere(refr, ref - 1, ref)', 'cnt')}")
    new = {v: c.temp(pr(e), "new") for v, e in p.updates.items()}
    for v, tmp in new.items():
        if v in p.clamped:  # held while refractory: the candidate is not used then
            tmp = c.temp(f"nm_where(refr, s_{v}, {tmp})", "sel")
        c(f"s_{v} = {tmp}")
    if p.threshold is None:
        c("spk = False")
    else:
        c(f"spk = (not refr) and {pr(p.threshold)}")
    _guarded(c, p.reset, pr, "spk")
    c(f"ref = {c.temp('nm_iwhere(spk, refsteps, ref)', 'cnt')}")
    return c.text()


class Brian2Simulation(Simulation):
    """Simulation with Brian2 (runtime mode, float64, ``target`` "cython" or "numpy")."""

    backend = "brian2"

    def __init__(self, net, target: str = "cython", **options: Any) -> None:
        if target not in ("cython", "numpy"):
            raise SpecError(f"backend 'brian2': target must be 'cython' or 'numpy', got {target!r}")
        super().__init__(net, **options)
        assert self.program.phases == PHASES, "lowering phases changed: update brian2 backend"
        if self.program.reset_mode != "same_step":  # compile() refuses it before this
            raise SpecError("backend 'brian2' supports only reset_mode 'same_step'")
        self.target = target
        self._reset()

    def _reset(self) -> None:
        # connect() runs generated code once: numpy, so that nothing is compiled for it (the
        # objects' own target is chosen when the network runs)
        with self._prefs("numpy"):
            self._build()

    # --------------------------------------------------------------- Brian2 settings
    @contextlib.contextmanager
    def _prefs(self, target: str | None = None):
        from brian2 import prefs

        new = {
            "codegen.target": target or self.target,
            "codegen.loop_invariant_optimisations": False,
            "codegen.cpp.extra_compile_args_gcc": _COMPILE_ARGS,
            "codegen.runtime.cython.cache_dir": str(cache_dir("brian2")),
        }
        old = {k: prefs[k] for k in new}
        try:
            for k, v in new.items():
                prefs[k] = v
            yield
        finally:
            for k, v in old.items():
                prefs[k] = v

    # --------------------------------------------------------------- network build
    def _build(self) -> None:
        import brian2 as b2

        prog = self.program
        dt = prog.dt * b2.ms
        self._dt_s = float(dt)
        clock = b2.Clock(dt, name="nm_clock")
        objs: list[Any] = []
        groups: dict[str, Any] = {}
        traces: dict[str, list[str]] = {n: [] for n in prog.populations}
        for q in prog.projections.values():
            if q.plasticity is not None:
                traces[q.pre] += [f"tr_{q.name}_{t}" for t in q.plasticity.pre_traces]
                traces[q.post] += [f"tr_{q.name}_{t}" for t in q.plasticity.post_traces]
        for p in prog.populations.values():
            lines = ["spk : boolean"] + [f"{t} : 1" for t in traces[p.name]]
            if not p.spike_source:
                name = _pop_name(p)
                lines += [f"s_{v} : 1" for v in p.state]
                lines += [f"{name(k)} : 1 (constant)" for k in p.constants]
                lines += [f"in_{v} : 1" for v in p.inputs]
                lines += [f"acc_{port} : 1" for port in p.ports]
                lines += ["ref : integer", "refsteps : integer (constant)"]
            g = b2.NeuronGroup(
                p.size, "\n".join(lines), threshold="spk", reset="", clock=clock, name=f"P_{p.name}"
            )
            if not p.spike_source:
                for v, x in p.state.items():
                    g.variables[f"s_{v}"].set_value(x)
                for k, x in p.constants.items():
                    g.variables[name(k)].set_value(x)
                g.variables["refsteps"].set_value(p.refractory_steps.astype(np.int32))
                g.run_regularly(
                    _population_code(p), when="groups", order=0, name=f"P_{p.name}_step"
                )
            groups[p.name] = g
            objs.append(g)
        self._groups = groups
        self._synapses: dict[str, Any] = {}
        for k, q in enumerate(prog.projections.values()):
            objs += self._projection(b2, q, k, groups, dt, clock)
        self._spike_mons = {}
        recorded = tuple(dict.fromkeys(prog.spike_probes + prog.event_probes))
        for n in recorded:
            m = b2.SpikeMonitor(groups[n], name=f"M_{n}")
            self._spike_mons[n] = m
            objs.append(m)
        self._spikes_seen = dict.fromkeys(recorded, 0)
        self._state_mons = []
        for r, (pop, var, idx) in enumerate(prog.state_probes):
            uniq, inv = np.unique(idx, return_inverse=True)
            m = b2.StateMonitor(
                groups[pop], f"s_{var}", record=uniq, when="end", clock=clock, name=f"R_{r}"
            )
            self._state_mons.append((m, f"s_{var}", inv))
            objs.append(m)
        self._states_seen = [0] * len(self._state_mons)
        # inputs of step t, written at the start of the step
        self._src = {
            n: groups[n].variables["spk"].get_value()
            for n, p in prog.populations.items()
            if p.spike_source
        }
        self._in = {
            (n, v): groups[n].variables[f"in_{v}"].get_value()
            for n, p in prog.populations.items()
            if not p.spike_source
            for v in p.inputs
        }
        self._feed_spikes: dict[str, np.ndarray] = {}
        self._feed_currents: dict[tuple[str, str], np.ndarray] = {}
        self._step = 0
        objs.append(
            b2.NetworkOperation(self._feed, when="start", order=0, clock=clock, name="nm_inputs")
        )
        self._net = b2.Network(*objs, name="nm_network")

    def _projection(self, b2, q: ProjectionProgram, k: int, groups, dt, clock) -> list[Any]:
        """One ``Synapses`` object per delay value of ``q`` (see the module docstring)."""
        pl = q.plasticity
        n_proj = len(self.program.projections)
        d_max = self.program.max_delay
        sp = None
        if pl is not None:

            def name(n: str) -> str:
                if n == "w":
                    return "w"
                if n in pl.pre_traces:
                    return f"tr_{q.name}_{n}_pre"
                if n in pl.post_traces:
                    return f"tr_{q.name}_{n}_post"
                if n == "pre_event":
                    return "spk_pre"
                if n == "post_event":
                    return "spk_post"
                if n == "dt":
                    return repr(float(self.program.dt))
                return repr(float(pl.constants[n][0]))

            sp = _Brian2Printer(name, frozenset({"pre_event", "post_event"}))
        parts = []
        out: list[Any] = []
        for d in (int(x) for x in np.unique(q.delay)):
            pos = np.nonzero(q.delay == d)[0]  # stored (CSR) positions, in order
            ring = pl is not None and d > 1
            model = ["w : 1"] + ([f"wq{m} : 1" for m in range(d)] if ring else [])
            on_pre: dict[str, str] = {}
            on_post: dict[str, str] = {}
            delays: dict[str, Any] = {"tx": (d - 1) * dt}
            if pl is not None:
                if pl.on_post_synapse:
                    c = _Code()
                    _guarded(c, pl.on_post_synapse, sp, None)
                    on_post["plast_post"] = c.text()
                    delays["plast_post"] = 0 * b2.ms
                if pl.on_pre_synapse or ring:
                    c = _Code()
                    _guarded(c, pl.on_pre_synapse, sp, None)
                    if ring:  # keep the weight each emission carries
                        c(f"slot = t_in_timesteps % {d}")
                        for m in range(d):
                            c(f"wq{m} = {c.temp(f'nm_where(slot == {m}, w, wq{m})', 'sel')}")
                    on_pre["plast"] = c.text()
                    delays["plast"] = 0 * b2.ms
            if ring:  # processed d - 1 steps after emission: read the emission's slot
                sel = f"wq{d - 1}"
                for m in reversed(range(d - 1)):
                    sel = f"nm_where(rslot == {m}, wq{m}, {sel})"
                on_pre["tx"] = f"rslot = (t_in_timesteps + 1) % {d}\nacc_{q.port}_post += {sel}"
            else:
                on_pre["tx"] = f"acc_{q.port}_post += w"
            s = b2.Synapses(
                groups[q.pre],
                groups[q.post],
                "\n".join(model),
                on_pre=on_pre,
                on_post=on_post or None,
                delay=delays,
                clock=clock,
                name=f"Q_{q.name}_d{d}",
            )
            # synapses in the program's CSR order, so that events sum in numba's order
            s.connect(i=q.pre_index[pos].astype(np.int32), j=q.post_index[pos].astype(np.int32))
            s.variables["w"].set_value(q.weight[pos])
            # events of one arrival step: earlier emissions (longer delays) first, then by
            # projection, pre neuron and synapse, as numba's ring buffer sums them
            s.tx.order = 10 + (d_max - d) * n_proj + k
            if "plast" in on_pre:
                s.plast.order = 2
            if "plast_post" in on_post:
                s.plast_post.order = 1
            parts.append((s, pos))
            out.append(s)
        self._synapses[q.name] = parts
        if pl is not None:
            for side, traces, stmts, pop in (
                ("pre", pl.pre_traces, pl.on_pre_neuron, q.pre),
                ("post", pl.post_traces, pl.on_post_neuron, q.post),
            ):

                def tname(n: str, _t=traces, _pl=pl) -> str:
                    if n in _t:
                        return f"tr_{q.name}_{n}"
                    if n == "dt":
                        return repr(float(self.program.dt))
                    return repr(float(_pl.constants[n][0]))

                tp = _Brian2Printer(tname)
                g = groups[pop]
                if traces:
                    c = _Code()
                    new = {t: c.temp(tp(e), "new") for t, e in traces.items()}
                    for t, tmp in new.items():
                        c(f"tr_{q.name}_{t} = {tmp}")
                    g.run_regularly(
                        c.text(), when="synapses", order=0, name=f"Q_{q.name}_{side}_traces"
                    )
                if stmts:
                    c = _Code()
                    _guarded(c, stmts, tp, "spk")
                    g.run_regularly(
                        c.text(), when="synapses", order=3, name=f"Q_{q.name}_{side}_events"
                    )
        return out

    # --------------------------------------------------------------- running
    def _feed(self) -> None:
        s = self._step
        for n, arr in self._src.items():
            arr[:] = self._feed_spikes[n][s]
        for key, arr in self._in.items():
            d = self._feed_currents.get(key)
            arr[:] = 0.0 if d is None else d[s]
        self._step += 1

    def _run(self, steps, spikes, currents):
        prog = self.program
        if steps == 0:
            return (
                {n: np.zeros((0, prog.populations[n].size), bool) for n in prog.spike_probes},
                {f"{pop}.{var}": np.zeros((0, idx.size)) for pop, var, idx in prog.state_probes},
                {n: (np.zeros(0, np.int64), np.zeros(0, np.int64)) for n in prog.event_probes},
            )
        self._feed_spikes, self._feed_currents, self._step = spikes, currents, 0
        with self._prefs():
            from brian2 import second

            # IEEE arithmetic without warnings (numpy target), as numba and torch
            with np.errstate(all="ignore"):
                self._net.run(steps * self._dt_s * second, namespace=dict(_functions()))
        assert self._step == steps
        out, events = {}, {}
        for n, m in self._spike_mons.items():
            seen = self._spikes_seen[n]
            i = np.asarray(m.i[seen:], dtype=np.int64)
            t = np.rint(np.asarray(m.t_[seen:]) / self._dt_s).astype(np.int64) - self.t
            self._spikes_seen[n] = seen + i.size
            if n in prog.event_probes:
                order = np.lexsort((i, t))  # time order, ascending neuron within a step
                events[n] = (t[order], i[order])
            if n in prog.spike_probes:
                r = np.zeros((steps, prog.populations[n].size), dtype=bool)
                r[t, i] = True
                out[n] = r
        state = {}
        for r, ((pop, var, _), (m, v, inv)) in enumerate(
            zip(prog.state_probes, self._state_mons, strict=True)
        ):
            data = np.asarray(m.variables[v].get_value())  # (time, recorded neurons)
            seen = self._states_seen[r]
            state[f"{pop}.{var}"] = data[seen : seen + steps][:, inv].copy()
            self._states_seen[r] = seen + steps
        return out, state, events

    @property
    def state(self) -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, np.ndarray]] = {}
        for p in self.program.populations.values():
            if not p.spike_source:
                g = self._groups[p.name]
                out[p.name] = {
                    v: np.array(g.variables[f"s_{v}"].get_value(), dtype=np.float64)
                    for v in p.state
                }
        out["weights"] = {}
        for q in self.program.projections.values():
            w = np.empty(q.weight.size)
            for s, pos in self._synapses[q.name]:
                w[pos] = s.variables["w"].get_value()
            out["weights"][q.name] = w[q.order]
        return out
