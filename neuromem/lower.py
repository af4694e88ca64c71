"""Lowering: a Network spec -> a backend-neutral Program.

This module is the one place where the meaning of a time step is fixed (see ``PHASES`` and
docs/architecture.md). It turns equations into explicit per-step update expressions for the
chosen integrator, hoists everything that depends only on parameters and ``dt`` into per-neuron
constant arrays (computed once here with numpy, so every backend uses the same bits), lays out
connectivity as CSR rows sorted by delay, and materialises random stimuli on the host.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np
import sympy

from .equations import Expression, Statement, parse_expression
from .errors import SpecError
from .spec.network import (
    Discretization,
    Network,
    PoissonSpikes,
    Population,
    Projection,
    SpikeArray,
    SpikeProbe,
    StateProbe,
)
from .spec.operators import operator_order

#: The ordered phases of one time step t. Every backend executes exactly these, in this order.
PHASES = (
    "deliver",  # ring-buffer slot t -> ports (w * scale); external currents of step t -> inputs
    "reset_prev",  # reset_mode 'next_step' only: reset neurons that spiked in step t-1
    "integrate",  # all ODEs from start-of-step values; clamped variables held while refractory
    "threshold",  # spike where the threshold holds and the neuron was not refractory this step
    "reset",  # reset_mode 'same_step': reset statements; refractory counter = period
    "plasticity",  # traces decay; on_post (synapses), on_pre (synapses), then trace statements
    "propagate",  # spikes of step t (computed and source) -> ring-buffer slot t + delay
    "record",  # probes read spikes and state after reset
    "spins",  # one sweep of every spin node (independent of the spiking part), then its probes
    "operators",  # operator nodes read this step's spikes and outputs (spec/operators.py)
)

#: A low-rank coupling of rank K is used as such (O(K) per field) while K <= N * LOW_RANK_LIMIT;
#: above, the dense matrix (O(N) per field) is cheaper.
LOW_RANK_LIMIT = 0.25
TIE_RULES = {"keep": 0, "up": 1, "random": 2}

_FUNCS = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "tanh": sympy.tanh,
    "abs": sympy.Abs,
}


# ------------------------------------------------------------------ sympy <-> grammar
def _to_sympy(expr: Expression, symbols: dict[str, sympy.Symbol]) -> sympy.Expr:
    def conv(n: ast.AST):
        if isinstance(n, ast.Constant):
            v = n.value
            return sympy.Integer(v) if isinstance(v, int) else sympy.Float(v, 17)
        if isinstance(n, ast.Name):
            return symbols.setdefault(n.id, sympy.Symbol(n.id, real=True))
        if isinstance(n, ast.BinOp):
            a, b = conv(n.left), conv(n.right)
            return {
                ast.Add: lambda: a + b,
                ast.Sub: lambda: a - b,
                ast.Mult: lambda: a * b,
                ast.Div: lambda: a / b,
                ast.Pow: lambda: a**b,
            }[type(n.op)]()
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub | ast.UAdd):
            return -conv(n.operand) if isinstance(n.op, ast.USub) else conv(n.operand)
        if isinstance(n, ast.Call) and n.func.id in _FUNCS:  # type: ignore[attr-defined]
            return _FUNCS[n.func.id](*[conv(a) for a in n.args])  # type: ignore[attr-defined]
        raise _Nonlinear(ast.unparse(n))

    return conv(expr.tree)


class _Nonlinear(Exception):
    pass


class _GrammarPrinter(sympy.printing.str.StrPrinter):
    def _print_Abs(self, e):
        return f"abs({self._print(e.args[0])})"

    def _print_Float(self, e):
        return repr(float(e))

    def _print_Rational(self, e):
        return f"({e.p}/{e.q})"


def _to_expression(e: sympy.Expr, where: str) -> Expression:
    return parse_expression(_GrammarPrinter().doprint(e), where)


# ------------------------------------------------------------------ numeric constants
#: The grammar's functions as numpy calls (also used by the torch backend's numpy engine).
NUMPY_FUNCS = {
    "exp": "np.exp",
    "log": "np.log",
    "sqrt": "np.sqrt",
    "tanh": "np.tanh",
    "abs": "np.abs",
    "clip": "np.clip",
    "minimum": "np.minimum",
    "maximum": "np.maximum",
    "where": "np.where",
}
_NP_FUNCS = {k: getattr(np, v.removeprefix("np.")) for k, v in NUMPY_FUNCS.items()}
_NP_BINOPS = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.Pow: np.power,
}
_NP_CMPOPS = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}


def evaluate(
    expr: Expression, env: dict[str, np.ndarray | float], strict: bool = False
) -> np.ndarray:
    """Evaluate a checked expression with numpy by walking its tree (no ``eval``): the same
    numpy operations, in the same order, as the printed array code of the torch numpy engine.

    ``strict``: an overflow, division by zero or invalid operation anywhere in the evaluation
    raises :class:`SpecError` naming the expression (so ``exp(-dt / 0)`` cannot hide as 0.0);
    otherwise floating-point warnings are silenced and callers check the result."""

    def ev(n: ast.AST):
        if isinstance(n, ast.Constant):
            return float(n.value)
        if isinstance(n, ast.Name):
            return env[n.id]
        if isinstance(n, ast.BinOp):
            return _NP_BINOPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp):
            v = ev(n.operand)
            if isinstance(n.op, ast.Not):
                return np.invert(v)
            return np.negative(v) if isinstance(n.op, ast.USub) else np.positive(v)
        if isinstance(n, ast.Compare):
            return _NP_CMPOPS[type(n.ops[0])](ev(n.left), ev(n.comparators[0]))
        if isinstance(n, ast.BoolOp):
            op = np.bitwise_and if isinstance(n.op, ast.And) else np.bitwise_or
            out = ev(n.values[0])
            for v in n.values[1:]:
                out = op(out, ev(v))
            return out
        if isinstance(n, ast.IfExp):
            return np.where(ev(n.test), ev(n.body), ev(n.orelse))
        if isinstance(n, ast.Call):
            return _NP_FUNCS[n.func.id](*[ev(a) for a in n.args])  # type: ignore[attr-defined]
        raise AssertionError(f"unchecked node {type(n).__name__}")  # pragma: no cover

    if not strict:
        with np.errstate(all="ignore"):
            return np.asarray(ev(expr.tree), np.float64)
    try:
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            return np.asarray(ev(expr.tree), np.float64)
    except (FloatingPointError, OverflowError, ZeroDivisionError) as exc:
        raise SpecError(f"{expr.text} is not finite for the given parameters ({exc})") from None


class _Hoister:
    """Replaces parameter-only subexpressions by named constants evaluated once."""

    def __init__(self, env: dict[str, np.ndarray], params: set[str], where: str, prefix: str):
        self.env, self.params, self.where, self.prefix = env, params | {"dt"}, where, prefix
        self.cache: dict[sympy.Expr, sympy.Symbol] = {}

    def _const(self, e: sympy.Expr) -> sympy.Expr:
        if e.is_Symbol or e.is_Number or (-e).is_Number:
            return e
        if e not in self.cache:
            name = f"_{self.prefix}{len(self.cache)}"
            try:
                value = evaluate(_to_expression(e, self.where), self.env, strict=True)
            except SpecError as exc:
                raise SpecError(f"{self.where}: {exc}") from None
            if not np.all(np.isfinite(value)):
                raise SpecError(f"{self.where}: {e} is not finite for the given parameters")
            self.env[name] = value
            self.cache[e] = sympy.Symbol(name, real=True)
        return self.cache[e]

    def __call__(self, e: sympy.Expr) -> sympy.Expr:
        if {s.name for s in e.free_symbols} <= self.params:
            return self._const(e)
        if isinstance(e, sympy.Add | sympy.Mul):
            const = [a for a in e.args if {s.name for s in a.free_symbols} <= self.params]
            rest = [self(a) for a in e.args if a not in const]
            if const:
                rest.insert(0, self._const(e.func(*const)))
            return e.func(*rest, evaluate=False)
        if e.args:
            return e.func(*[self(a) for a in e.args])
        return e


def integrate(
    odes: dict[str, Expression], integrator: str, hoist: _Hoister, where: str
) -> dict[str, Expression]:
    """New-value expressions of one step for ``odes`` (all read start-of-step values)."""
    out = {}
    for var, rhs in odes.items():
        symbols: dict[str, sympy.Symbol] = {}
        try:
            f = _to_sympy(rhs, symbols)
        except _Nonlinear as exc:
            raise SpecError(
                f"{where}, equation d{var}/dt: cannot integrate {exc} "
                "(conditionals and clip are not allowed in ODEs)"
            ) from None
        x = symbols.setdefault(var, sympy.Symbol(var, real=True))
        dt = symbols.setdefault("dt", sympy.Symbol("dt", real=True))
        if integrator == "euler":
            new = x + dt * f
        else:
            b = sympy.diff(f, x)
            if x in b.free_symbols:
                raise SpecError(
                    f"{where}, equation d{var}/dt: not linear in {var}; the "
                    "exponential_euler integrator needs linear ODEs (use 'euler')"
                )
            a = sympy.expand(f - b * x)
            if b == 0:
                new = x + dt * a
            else:
                decay = sympy.exp(b * dt)
                new = x * decay + (-a / b) * (1 - decay)
        out[var] = _to_expression(
            hoist(sympy.expand(new, mul=True, deep=False)), f"{where}, update of {var}"
        )
    return out


# ------------------------------------------------------------------ program
@dataclass
class PopulationProgram:
    """One population, lowered. All arrays are per neuron (float64 unless said)."""

    name: str
    size: int
    spike_source: bool
    state: dict[str, np.ndarray]  # initial values
    constants: dict[str, np.ndarray]  # parameters and hoisted constants
    inputs: tuple[str, ...]  # external input variables (zero unless driven)
    updates: dict[str, Expression]  # new value of each integrated variable
    clamped: tuple[str, ...]
    threshold: Expression | None
    threshold_margin: Expression | None  # lhs - rhs of a '>=' / '>' threshold (surrogates)
    reset: tuple[Statement, ...]
    refractory_steps: np.ndarray  # int64
    ports: dict[str, tuple[str, str]]  # port -> (state variable, constant name of scale)
    stimulus: SpikeArray | PoissonSpikes | None
    dt: float

    def stimulus_raster(self, t0: int, steps: int) -> np.ndarray | None:
        """Spikes of this population's stimulus in steps [t0, t0+steps) as bool (steps, size)."""
        return stimulus_raster(self.stimulus, self.size, self.dt, t0, steps)


@dataclass
class PlasticityProgram:
    rule: str
    constants: dict[str, np.ndarray]  # scalars stored as shape (1,)
    pre_traces: dict[str, Expression]  # new value per step
    post_traces: dict[str, Expression]
    on_pre_synapse: tuple[Statement, ...]
    on_pre_neuron: tuple[Statement, ...]
    on_post_synapse: tuple[Statement, ...]
    on_post_neuron: tuple[Statement, ...]


@dataclass
class ProjectionProgram:
    """CSR by pre neuron; within a row synapses are sorted by delay then post index."""

    name: str
    pre: str
    post: str
    port: str
    indptr: np.ndarray  # int64 (n_pre + 1)
    post_index: np.ndarray  # int64 (n_syn)
    delay: np.ndarray  # int64 (n_syn)
    weight: np.ndarray  # float64 (n_syn), initial
    order: np.ndarray  # spec synapse k is stored at position order[k]
    delays: tuple[int, ...]  # the delay buckets present
    pre_index: np.ndarray  # int64 (n_syn): the row of each stored synapse
    post_indptr: np.ndarray  # int64 (n_post + 1): incoming synapses of post neuron j are
    by_post: np.ndarray  # by_post[post_indptr[j]:post_indptr[j+1]] (positions, CSR order)
    plasticity: PlasticityProgram | None


@dataclass
class Program:
    name: str
    dt: float
    reset_mode: str
    populations: dict[str, PopulationProgram]
    projections: dict[str, ProjectionProgram]
    currents: dict[tuple[str, str], np.ndarray]  # (population, variable) -> (steps|1, size)
    spike_probes: tuple[str, ...]
    state_probes: tuple[tuple[str, str, np.ndarray], ...]
    max_delay: int
    spins: dict[str, SpinProgram] = field(default_factory=dict)
    # operator nodes by name, each after the operators it reads (neuromem.spec.operators)
    operators: dict = field(default_factory=dict)
    # spike-source populations the lowering adds for operator outputs that drive projections:
    # name -> (operator, output port); their spikes in step t are the output of step t - 1
    operator_sources: dict[str, tuple[str, str]] = field(default_factory=dict)
    # (population, input variable) -> the real operator outputs that drive it, one step late
    operator_currents: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    phases: tuple[str, ...] = field(default=PHASES)
    # populations with an events spike probe: recorded as (step, neuron) lists, not rasters
    event_probes: tuple[str, ...] = ()

    def buffer_length(self) -> int:
        """Ring-buffer slots: enough for the longest delay and the plasticity history."""
        return self.max_delay + 1


def uniform_value(values: np.ndarray) -> float | int | None:
    """The value every element of ``values`` holds, bit for bit (so -0.0 and 0.0 differ), or
    None when they differ or ``values`` is empty. Backends emit such a per-neuron constant as
    one scalar instead of an array."""
    a = np.ascontiguousarray(values)
    if a.size == 0:
        return None
    bits = a.view(np.uint8).reshape(a.size, a.itemsize)
    if not (bits == bits[0]).all():
        return None
    return a.flat[0].item()


def check_spike_raster(given, steps: int, size: int, where: str) -> np.ndarray:
    """``given`` as a bool (steps, size) raster; it must have exactly that shape and hold bools
    or the integers 0 and 1 (floats, NaN and strings are refused, not coerced)."""
    a = np.asarray(given)
    if a.shape != (steps, size):
        raise SpecError(f"{where} has shape {a.shape}, expected (steps, size) = ({steps}, {size})")
    if a.size and a.dtype.kind in "iu":
        ok = (a == 0) | (a == 1)
        if not ok.all():
            raise SpecError(f"{where}: spikes must be 0 or 1, got {a[~ok].flat[0]}")
    elif a.size and a.dtype.kind != "b":
        raise SpecError(f"{where}: spikes must be bool or 0/1 integers, got dtype {a.dtype}")
    return a.astype(bool, copy=False)


def source_spikes(
    stim, size: int, dt: float, t0: int, steps: int, given: np.ndarray | None, where: str
) -> np.ndarray:
    """A spike source's bool (steps, size) spikes: its stimulus OR a run-time input raster.

    ``given`` (None or a raster of exactly (steps, size), see :func:`check_spike_raster`) is
    checked; ``where`` starts the error message (e.g. ``"run: input for population 'src'"``).
    """
    r = stimulus_raster(stim, size, dt, t0, steps)
    r = np.zeros((steps, size), dtype=bool) if r is None else r
    if given is not None:
        r = r | check_spike_raster(given, steps, size, where)
    return r


def stimulus_raster(stim, size: int, dt: float, t0: int, steps: int) -> np.ndarray | None:
    if stim is None:
        return None
    out = np.zeros((steps, size), dtype=bool)
    if isinstance(stim, SpikeArray):
        sel = (stim.steps >= t0) & (stim.steps < t0 + steps)
        out[stim.steps[sel] - t0, stim.neurons[sel]] = True
        return out
    # Poisson: drawn in fixed blocks seeded by (seed, block) so chunked runs see the same spikes
    p = stim.rate_hz * dt / 1000.0
    block = 1024
    for b in range(t0 // block, (t0 + steps - 1) // block + 1):
        draws = np.random.default_rng([int(stim.seed), b]).random((block, size)) < p
        lo, hi = max(t0, b * block), min(t0 + steps, (b + 1) * block)
        out[lo - t0 : hi - t0] = draws[lo - b * block : hi - b * block]
    stop = stim.stop if stim.stop is not None else t0 + steps
    t = np.arange(t0, t0 + steps)
    out[(t < stim.start) | (t >= stop)] = False
    return out


def _divisors(trees) -> set[str]:
    """Names read in the denominator of a division that is always evaluated (not inside a
    branch of ``a if c else b``)."""
    out: set[str] = set()
    stack = list(trees)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.IfExp):
            stack.append(n.test)
            continue
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div):
            out |= {x.id for x in ast.walk(n.right) if isinstance(x, ast.Name)}
        stack.extend(ast.iter_child_nodes(n))
    return out


def check_divisors(trees, values, units, where: str) -> None:
    """Parameters that divide are non-zero; those in ms (time constants) are > 0.

    ``values`` maps a parameter to its per-element array, ``units`` to its unit string."""
    for name in sorted(_divisors(trees) & set(values)):
        v = np.asarray(values[name], dtype=np.float64).reshape(-1)
        time_constant = units.get(name) == "ms"
        bad = v <= 0 if time_constant else v == 0
        if bad.any():
            i = int(np.argmax(bad))
            need = "> 0 (a time constant in ms)" if time_constant else "non-zero (it divides)"
            at = f" (element {i})" if v.size > 1 else ""
            raise SpecError(f"{where}: parameter {name!r} is {v[i]}{at}; it must be {need}")


#: Longest refractory period, in steps, that every backend's counter holds.
MAX_REFRACTORY_STEPS = 2**31 - 1


def _refractory_steps(p: Population, disc: Discretization, where: str) -> np.ndarray:
    period = p.params[p.model.refractory]
    steps = np.ceil(period / disc.dt - 1e-9)
    bad = (period < 0) | (steps > MAX_REFRACTORY_STEPS)
    if bad.any():
        i = int(np.argmax(bad))
        raise SpecError(
            f"{where}: refractory period {p.model.refractory!r} is {period[i]} ms (neuron {i}); "
            f"it must be >= 0 and at most {MAX_REFRACTORY_STEPS} steps of {disc.dt} ms"
        )
    return np.maximum(steps, 0).astype(np.int64)


def _lower_population(p: Population, disc: Discretization) -> PopulationProgram:
    m = p.model
    where = f"population {p.name!r} (model {m.name!r})"
    check_divisors(
        [e.tree for e in m.ode_expressions().values()]
        + [e.tree for _, e in m.port_scales().values()],
        p.params,
        {k: unit for k, (unit, _) in m.params.items()},
        where,
    )
    env: dict[str, np.ndarray] = {k: np.array(v) for k, v in p.params.items()}
    env["dt"] = np.float64(disc.dt)
    hoist = _Hoister(env, set(p.params), where, "k")
    updates = integrate(m.ode_expressions(), disc.integrator, hoist, where)
    ports = {}
    for port, (var, scale) in m.port_scales().items():
        name = f"_port_{port}"
        try:
            value = evaluate(scale, env, strict=True)
        except SpecError as exc:
            raise SpecError(f"{where}: port {port!r}: {exc}") from None
        env[name] = np.broadcast_to(value, (p.size,)).astype(np.float64)
        if not np.all(np.isfinite(env[name])):
            i = int(np.argmax(~np.isfinite(env[name])))
            raise SpecError(f"{where}: the scale of port {port!r} is {env[name][i]} for neuron {i}")
        ports[port] = (var, name)
    thr = m.threshold_expression()
    margin = None
    if thr is not None:
        t = thr.tree
        if isinstance(t, ast.Compare) and isinstance(t.ops[0], ast.GtE | ast.Gt):
            margin = parse_expression(
                f"({ast.unparse(t.left)}) - ({ast.unparse(t.comparators[0])})", where
            )
    refr = np.zeros(p.size, dtype=np.int64)
    if m.refractory is not None:
        refr = _refractory_steps(p, disc, where)
    return PopulationProgram(
        name=p.name,
        size=p.size,
        spike_source=m.spike_source,
        state={k: np.array(v, dtype=np.float64) for k, v in p.initial.items()},
        constants={k: np.broadcast_to(v, (p.size,)).astype(np.float64) for k, v in env.items()},
        inputs=m.inputs,
        updates=updates,
        clamped=m.clamped,
        threshold=thr,
        threshold_margin=margin,
        reset=m.reset_statements(),
        refractory_steps=refr,
        ports=ports,
        stimulus=p.stimulus,
        dt=disc.dt,
    )


def _lower_plasticity(pr: Projection, disc: Discretization) -> PlasticityProgram:
    rule = pr.plasticity
    assert rule is not None
    where = f"projection {pr.name!r}, plasticity rule {rule.name!r}"
    check_divisors(
        [e.tree for e in rule.trace_odes().values()],
        pr.plasticity_params,
        {k: unit for k, (unit, _) in rule.params.items()},
        where,
    )
    env = {k: np.array([v]) for k, v in pr.plasticity_params.items()}
    env["dt"] = np.float64(disc.dt)
    hoist = _Hoister(env, set(pr.plasticity_params), where, "p")
    odes = rule.trace_odes()
    pre = integrate({k: odes[k] for k in rule.pre_traces}, disc.integrator, hoist, where)
    post = integrate({k: odes[k] for k in rule.post_traces}, disc.integrator, hoist, where)
    pre_syn, pre_neu = rule.pre_statements()
    post_syn, post_neu = rule.post_statements()
    return PlasticityProgram(
        rule=rule.name,
        constants={k: np.asarray(v, np.float64).reshape(1) for k, v in env.items()},
        pre_traces=pre,
        post_traces=post,
        on_pre_synapse=pre_syn,
        on_pre_neuron=pre_neu,
        on_post_synapse=post_syn,
        on_post_neuron=post_neu,
    )


def _indptr(index: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(index, minlength=n))]).astype(np.int64)


def _lower_projection(
    pr: Projection, n_pre: int, n_post: int, disc: Discretization
) -> ProjectionProgram:
    order = np.lexsort((pr.post_index, pr.delay, pr.pre_index))
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    post_index = pr.post_index[order].astype(np.int64)
    return ProjectionProgram(
        name=pr.name,
        pre=pr.pre,
        post=pr.post,
        port=pr.port,
        indptr=_indptr(pr.pre_index, n_pre),
        post_index=post_index,
        delay=pr.delay[order].astype(np.int64),
        weight=np.array(pr.weight[order], dtype=np.float64),
        order=position,
        delays=tuple(int(d) for d in np.unique(pr.delay)),
        pre_index=pr.pre_index[order].astype(np.int64),
        post_indptr=_indptr(post_index, n_post),
        by_post=np.argsort(post_index, kind="stable").astype(np.int64),
        plasticity=_lower_plasticity(pr, disc) if pr.plasticity is not None else None,
    )


@dataclass
class SpinProgram:
    """A Glauber spin node, lowered. The field of spin i is, in this order of operations:

    - ``low_rank_int`` (integer coupling vectors, one weight c): ``S_i = sum_k UT[i, k] *
      sum_j UT[j, k] sigma_j`` exactly in integers, ``h_i = c * S_i - self_coef_i * sigma_i``;
    - ``low_rank``: ``a_k = coef_k * (sum_j UT[j, k] sigma_j)``, ``h_i = sum_k UT[i, k] a_k
      - self_coef_i sigma_i`` (k ascending);
    - ``dense``: ``h_i = sum_j J_ij sigma_j``.
    """

    name: str
    size: int
    beta: float
    update: str
    tie: int  # TIE_RULES code
    seed: int
    rng: str
    initial: np.ndarray
    field: str  # "low_rank_int", "low_rank" or "dense"
    UT: np.ndarray | None  # (N, K), contiguous
    coef: np.ndarray | None  # (K,)
    self_coef: np.ndarray | None  # (N,)
    J: np.ndarray | None  # (N, N)
    overlap_patterns: tuple[np.ndarray, ...]  # per OverlapProbe, (K', N)
    record_sigma: bool

    def host_randoms(self, sweep: int, replica: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(order, uniforms) of one sweep under the ``host`` RNG policy."""
        rng = np.random.default_rng([self.seed, replica, sweep])
        order = rng.permutation(self.size) if self.update == "sequential" else None
        return order, rng.random(self.size)


def lower_spins(sp, probes) -> SpinProgram:
    from .spec.spins import LowRankCouplings, OverlapProbe

    c = sp.couplings
    low_rank = isinstance(c, LowRankCouplings) and c.rank <= LOW_RANK_LIMIT * c.size
    UT = coef = self_coef = J = None
    field_kind = "dense"
    if low_rank:
        UT = np.ascontiguousarray(c.vectors.T)
        coef = np.ascontiguousarray(c.weights * c.scale)
        self_coef = (UT * UT) @ coef
        # integer path: int8 vectors, int32 overlaps and fields (|S_i| <= K N max|u|^2)
        integer = (
            np.all(UT == np.round(UT))
            and np.abs(UT).max() <= 127
            and UT.shape[1] * c.size * np.abs(UT).max() ** 2 < 2**31
        )
        field_kind = "low_rank_int" if integer and np.all(coef == coef[0]) else "low_rank"
        if field_kind == "low_rank_int":  # c * (exact integer sum), the kernels' order
            self_coef = coef[0] * (UT * UT).sum(axis=1)
    else:
        J = np.ascontiguousarray(c.dense())
    patterns = tuple(
        np.ascontiguousarray(pb.patterns)
        for pb in probes
        if isinstance(pb, OverlapProbe) and pb.spins == sp.name
    )
    record = any(isinstance(pb, StateProbe) and pb.population == sp.name for pb in probes)
    return SpinProgram(
        name=sp.name,
        size=sp.size,
        beta=sp.beta,
        update=sp.update,
        tie=TIE_RULES[sp.tie],
        seed=sp.seed,
        rng=sp.rng,
        initial=np.array(sp.initial),
        field=field_kind,
        UT=UT,
        coef=coef,
        self_coef=self_coef,
        J=J,
        overlap_patterns=patterns,
        record_sigma=record,
    )


def virtual_source(operator: str, port: str) -> str:
    """Name of the spike source that carries an operator's spike output into the network
    (it starts with ``_``, which no spec name may, so it cannot clash)."""
    return f"_{operator}__{port}"


def operator_pre_port(pr: Projection, op) -> str:
    """The spike output port of operator ``op`` that projection ``pr`` reads."""
    if pr.pre_port is not None:
        return pr.pre_port
    return next(p for p, port in op.output_ports().items() if port.kind == "spikes")


def _operator_source(name: str, size: int, disc: Discretization) -> PopulationProgram:
    """A spike source without stimulus, as a ``spike_source()`` population lowers to."""
    return PopulationProgram(
        name=name,
        size=size,
        spike_source=True,
        state={},
        constants={"dt": np.full(size, disc.dt)},
        inputs=(),
        updates={},
        clamped=(),
        threshold=None,
        threshold_margin=None,
        reset=(),
        refractory_steps=np.zeros(size, dtype=np.int64),
        ports={},
        stimulus=None,
        dt=disc.dt,
    )


def _operator_currents(ops: dict) -> dict[tuple[str, str], list[tuple[str, str]]]:
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for name, op in ops.items():
        for port, target in op.drives.items():
            pop, var = target.split(".", 1)
            out.setdefault((pop, var), []).append((name, port))
    return out


def lower(net: Network) -> Program:
    """Lower a validated network to a :class:`Program`."""
    disc = net.discretization
    pops = {p.name: _lower_population(p, disc) for p in net.populations}
    ops = {op.name: op for op in operator_order(list(net.operators))}
    driven = {}  # virtual spike source -> (operator, spike output port)
    projs = {}
    for pr in net.projections:
        pre = pr.pre
        if pre in ops:
            port = operator_pre_port(pr, ops[pre])
            pre = virtual_source(pre, port)
            if pre not in pops:
                size = ops[pr.pre].output_ports()[port].size
                pops[pre] = _operator_source(pre, size, disc)
                driven[pre] = (pr.pre, port)
        projs[pr.name] = _lower_projection(pr, pops[pre].size, net.population(pr.post).size, disc)
        projs[pr.name].pre = pre
    currents: dict[tuple[str, str], np.ndarray] = {}
    for c in net.currents:
        v = c.values if c.values.ndim == 2 else c.values[None, :]
        key = (c.population, c.variable)
        if key in currents:
            raise SpecError(f"current input: two inputs drive {c.population}.{c.variable}")
        currents[key] = v
    max_delay = max([int(pr.delay.max()) for pr in net.projections if pr.delay.size] + [1])
    spins = {sp.name: lower_spins(sp, net.probes) for sp in net.spins}
    state_probes = []
    for pb in net.probes:
        if isinstance(pb, StateProbe) and pb.population not in spins and pb.population not in ops:
            idx = (
                np.arange(pops[pb.population].size)
                if pb.indices is None
                else np.asarray(pb.indices, dtype=np.int64)
            )
            state_probes.append((pb.population, pb.variable, idx))
    return Program(
        name=net.name,
        dt=disc.dt,
        reset_mode=disc.reset_mode,
        populations=pops,
        projections=projs,
        currents=currents,
        # populations read by operators are recorded too: the operators read their spikes
        spike_probes=tuple(
            dict.fromkeys(
                [
                    pb.population
                    for pb in net.probes
                    if isinstance(pb, SpikeProbe) and pb.format == "raster"
                ]
                + [
                    src
                    for op in ops.values()
                    for src, port in op.sources().values()
                    if port is None
                ]
            )
        ),
        state_probes=tuple(state_probes),
        max_delay=max_delay,
        spins=spins,
        operators=ops,
        operator_sources=driven,
        operator_currents=_operator_currents(ops),
        event_probes=tuple(
            dict.fromkeys(
                pb.population
                for pb in net.probes
                if isinstance(pb, SpikeProbe) and pb.format == "events"
            )
        ),
    )
