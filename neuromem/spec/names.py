"""The one rule for every name a spec carries.

Names reach generated source code (numba kernels, torch step functions, Brian2 equations, PyNN
scripts) and file paths (reports, emitted scripts). They are checked here, on construction of
the spec element that holds them, so that a loaded ``network.json`` is covered too: a name is a
plain ASCII Python identifier, not a keyword, not starting with ``_`` (reserved for names the
lowering makes), at most :data:`MAX_NAME_LENGTH` characters. Anything else is a
:class:`~neuromem.errors.SpecError` naming the element and the field.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable

from ..errors import SpecError

#: Longest name accepted (characters).
MAX_NAME_LENGTH = 64


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid spec name, or None when it is."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long (at most {MAX_NAME_LENGTH})"
    if not name.isascii() or not name.isidentifier():
        return "must be a plain ASCII identifier (letters, digits, '_'; not starting with a digit)"
    if name.startswith("_"):
        return "must not start with '_' (reserved for names neuromem generates)"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "is a Python keyword"
    return None


def check_name(name: object, element: str, field: str) -> str:
    """Return ``name`` if it is a valid spec name, else raise :class:`SpecError`.

    Parameters
    ----------
    name : object
        The candidate.
    element : str
        The element that holds it, e.g. ``"plasticity rule 'stdp'"``.
    field : str
        Which of its fields, e.g. ``"pre trace name"``.
    """
    problem = name_problem(name)
    if problem is not None:
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80])
        raise SpecError(f"{element}: {field} {shown} {problem}")
    return name  # type: ignore[return-value]


def check_names(names: Iterable[object], element: str, field: str) -> None:
    """:func:`check_name` for each of ``names``."""
    for n in names:
        check_name(n, element, field)


def element(kind: str, name: object) -> str:
    """``"kind 'name'"`` for an error message, with a long or odd name shortened safely."""
    if isinstance(name, str) and len(name) > 80:
        name = name[:80] + "..."
    return f"{kind} {name!r}"
