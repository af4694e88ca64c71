"""Reading an untrusted ``network.json`` within the JSON budgets.

A file larger than ``neuromem.spec.limits.current().max_json_bytes`` is refused before it is
read; a document nested deeper than ``max_json_depth`` or with a duplicate key is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ...errors import SpecError
from .. import limits
from .regular_file import open_regular


def read_json(p: Path) -> Any:
    """The parsed content of the JSON file ``p``.

    Raises
    ------
    SpecError
        If ``p`` is not a regular file, exceeds the size or depth budget, holds a duplicate
        key or is not valid JSON.
    OSError
        If ``p`` cannot be opened or read.
    """
    budget = limits.current()
    max_bytes, max_depth = budget.max_json_bytes, budget.max_json_depth
    fd = open_regular(p)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise SpecError(
                f"load: {p} is {size} bytes, more than the limit of {max_bytes} "
                "(neuromem.spec.limits.set_limits(max_json_bytes=...) raises it); "
                "refused without reading it"
            )
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SpecError(f"load: {p} grew beyond MAX_JSON_BYTES = {max_bytes} while read")
    # callers match "MAX_JSON_DEPTH = n" (its old name); the hint names the budget now
    too_deep = (
        f"load: {p} is corrupt: nested deeper than MAX_JSON_DEPTH = {max_depth} "
        "(neuromem.spec.limits.set_limits(max_json_depth=...) raises it)"
    )
    try:
        doc = json.loads(data, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise SpecError(f"load: {p} is corrupt: duplicate key {exc.args[0][:80]!r}") from None
    except RecursionError:
        raise SpecError(too_deep) from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, int digits
        raise SpecError(f"load: {p} is corrupt: not valid JSON ({exc})") from None
    if nesting_depth(doc, max_depth) > max_depth:
        raise SpecError(too_deep)
    return doc


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return d


def nesting_depth(doc: Any, limit: int) -> int:
    """Nesting depth of lists and objects, counted up to the first level beyond ``limit``
    (iterative: bounded stack for any input)."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest
