"""Names and printers shared by the generators of the torch backend.

All code is Python source printed from the checked expression trees (never from user text).
Generated functions read their operands by name: ``P_<pop>__<var>`` (state of a population,
``__spk``/``__spkf`` its hard and float spikes, ``__ref`` its refractory counter),
``R_<pop>__<port>`` (ring buffers), ``Q_<proj>__*`` (plastic weights and traces) from the state
dict ``S``; ``C_<owner>__<name>`` (constants), ``Z_<pop>`` (zeros), ``D_``/``M_``/``F_``
(dense weights, masks, delay factors) from the constants ``K``; ``I_<pop>__<var>`` (inputs).
:class:`_Names` collects what a body reads, so that its header loads only those;
:class:`_HoistPrinter` takes what reads no state out of the time loop.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np

from ...equations import Expression, Printer, Statement
from ...lower import PopulationProgram, ProjectionProgram

_FUNCS = {
    "exp": "_exp",
    "log": "_log",
    "sqrt": "_sqrt",
    "tanh": "_tanh",
    "abs": "_abs",
    "clip": "_clip",
    "minimum": "_minimum",
    "maximum": "_maximum",
    "where": "_where",
}


class _Names:
    """Collects the constants and state entries the generated body reads (to load only those)."""

    def __init__(self) -> None:
        self.constants: set[str] = set()
        self.state: set[str] = set()

    def c(self, key: str) -> str:
        self.constants.add(key)
        return key

    def s(self, key: str) -> str:
        self.state.add(key)
        return key


def _constant_name(nm: _Names, owner: str, constants: Any, dt: float, n: str) -> str:
    """A name that is neither state nor input: ``dt`` (a literal, unless ``owner`` has a
    constant of that name) or the constant ``C_<owner>__<n>``."""
    if n == "dt" and n not in constants:
        return repr(float(dt))
    return nm.c(f"C_{owner}__{n}")


def _refractory(p: PopulationProgram) -> bool:
    """Whether any neuron of ``p`` has a refractory period (else its counter stays 0)."""
    return bool(np.any(p.refractory_steps > 0))


def _pop_printer(p: PopulationProgram, nm: _Names, funcs: dict[str, str] = _FUNCS) -> Printer:
    def name(n: str) -> str:
        if n in p.state:
            return nm.s(f"P_{p.name}__{n}")
        if n in p.inputs:
            return f"I_{p.name}__{n}"
        return _constant_name(nm, p.name, p.constants, p.dt, n)

    return Printer(name, funcs, "array")


def _plastic_printer(
    q: ProjectionProgram, nm: _Names, pre_sel: str, post_sel: str, pre: str, post: str, dt: float
) -> Printer:
    """Names for synaptic statements on ``(B, rows, cols)`` blocks; ``pre_sel``/``post_sel``
    select and shape the per-neuron vectors (e.g. ``.index_select(1, rows)[:, :, None]``)."""
    pl = q.plasticity
    assert pl is not None

    def name(n: str) -> str:
        if n == "w":
            return "w"
        if n in pl.pre_traces:
            return nm.s(f"Q_{q.name}__tr_{n}") + pre_sel
        if n in pl.post_traces:
            return nm.s(f"Q_{q.name}__tr_{n}") + post_sel
        if n == "pre_event":
            return nm.s(f"P_{pre}__spk") + pre_sel
        if n == "post_event":
            return nm.s(f"P_{post}__spk") + post_sel
        return _constant_name(nm, q.name, pl.constants, dt, n)

    return Printer(name, _FUNCS, "array")


def _trace_printer(q: ProjectionProgram, nm: _Names, dt: float) -> Printer:
    pl = q.plasticity
    assert pl is not None

    def name(n: str) -> str:
        if n in pl.pre_traces or n in pl.post_traces:
            return nm.s(f"Q_{q.name}__tr_{n}")
        return _constant_name(nm, q.name, pl.constants, dt, n)

    return Printer(name, _FUNCS, "array")


def _reads(stmts: tuple[Statement, ...] | dict[str, Expression]) -> set[str]:
    exprs = stmts.values() if isinstance(stmts, dict) else [s.value for s in stmts]
    return set().union(*[e.names for e in exprs]) if exprs else set()


class _HoistPrinter(Printer):
    """Prints like ``base`` but replaces every maximal subtree that reads no state variable
    (only constants, inputs and ``dt``) by ``H<i>[k]``: a value computed once for all steps of
    a run chunk (elementwise, so each step sees the same bits as computing it in the step)."""

    def __init__(
        self, base: Printer, dynamic: set[str], timed: set[str], hoisted: dict[str, str]
    ) -> None:
        super().__init__(base.name, base.functions, base.mode)
        self._base, self._dynamic, self._timed, self.hoisted = base, dynamic, timed, hoisted

    def _p(self, n: ast.AST) -> str:
        # inputs (time-indexed) are hoisted even alone; constants and dt are read as they are
        if not isinstance(n, ast.Name | ast.Constant) or (
            isinstance(n, ast.Name) and n.id in self._timed
        ):
            names = {x.id for x in ast.walk(n) if isinstance(x, ast.Name)}
            if not names & self._dynamic:
                text = self._base._p(n)
                return self.hoisted.setdefault(text, f"H{len(self.hoisted)}") + "[k]"
        return super()._p(n)


def _recorded(prog) -> tuple[str, ...]:
    """Populations whose spikes the loops record: raster probes, then events probes."""
    return tuple(dict.fromkeys(prog.spike_probes + prog.event_probes))
