"""Helpers shared by the code-generating backends."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


class SourceWriter:
    """Collects indented source lines (four spaces per level)."""

    def __init__(self, depth: int = 0) -> None:
        self.lines: list[str] = []
        self.depth = depth

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def indent(self, levels: int) -> None:
        self.depth += levels

    @contextlib.contextmanager
    def block(self) -> Iterator[None]:
        """Lines written inside the ``with`` are indented one more level."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


def cache_dir(kind: str) -> Path:
    """A cache folder for generated or compiled code: ``$NEUROMEM_CACHE/<kind>``, by default
    ``~/.cache/neuromem/<kind>`` (``$XDG_CACHE_HOME`` respected)."""
    root = os.environ.get("NEUROMEM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "neuromem"
    )
    d = Path(root) / kind
    d.mkdir(mode=0o700, parents=True, exist_ok=True)  # only the user may plant code here
    return d
