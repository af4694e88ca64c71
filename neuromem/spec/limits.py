"""Resource budgets a spec must fit before anything is allocated for it.

A small file can describe a huge network (``"size": 1e12``, a delay of a billion steps). Spec
constructors and the lowering compare what a network would take against these budgets and
refuse, with a :class:`~neuromem.errors.SpecError` that says how much it would take, before
allocating. Raise them for a big machine with :func:`set_limits` or, for one block of code,
``with limits(max_state_bytes=64 * 2**30): ...``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import SpecError


@dataclass(frozen=True)
class Limits:
    """Budgets.

    Attributes
    ----------
    max_state_bytes : int
        Bytes of per-neuron state, parameters and per-synapse arrays a network may need
        (default 8 GiB); also bounds the uncompressed arrays of an ``arrays.npz`` that
        :func:`~neuromem.spec.io.load` decompresses.
    max_ring_slots : int
        Slots of the spike-delivery delay rings: (longest delay + 1) times the neurons that
        receive through a delay (default 2**24).
    max_expression_length : int
        Characters of one equation, threshold, reset or rule statement (default 10,000).
    max_expression_depth : int
        Nesting depth of one parsed expression (default 100).
    max_json_bytes : int
        Size of a ``network.json`` that :func:`~neuromem.spec.io.load` reads and
        :func:`~neuromem.spec.io.save` writes (default 64 MiB); a larger file is refused before
        it is read. Parsing needs up to ~30x this in memory.
    max_json_depth : int
        Nesting depth of lists and objects in a ``network.json`` (default 100; saves need
        about 5).
    """

    max_state_bytes: int = 8 * 2**30
    max_ring_slots: int = 2**24
    max_expression_length: int = 10_000
    max_expression_depth: int = 100
    max_json_bytes: int = 64 * 2**20
    max_json_depth: int = 100


_current = Limits()


def current() -> Limits:
    """The budgets in force."""
    return _current


def set_limits(**changes: int) -> Limits:
    """Change budgets (keyword names as in :class:`Limits`); returns the previous ones."""
    global _current
    previous = _current
    try:
        _current = dataclasses.replace(_current, **changes)
    except TypeError:
        known = ", ".join(f.name for f in dataclasses.fields(Limits))
        raise SpecError(
            f"set_limits: unknown budget in {sorted(changes)}; known: {known}"
        ) from None
    return previous


@contextlib.contextmanager
def limits(**changes: int) -> Iterator[Limits]:
    """Budgets changed for the duration of a ``with`` block."""
    previous = set_limits(**changes)
    try:
        yield _current
    finally:
        set_limits(**dataclasses.asdict(previous))


def check_bytes(nbytes: float, where: str, what: str) -> None:
    """Refuse when ``nbytes`` exceeds the state budget."""
    budget = _current.max_state_bytes
    if nbytes > budget:
        raise SpecError(
            f"{where}: {what} would take {_human(nbytes)}, more than the budget of "
            f"{_human(budget)} (neuromem.spec.limits.set_limits(max_state_bytes=...) raises it)"
        )


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover
