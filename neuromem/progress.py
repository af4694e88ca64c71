"""Progress bars for long runs (tqdm), silent when disabled or not wanted."""

from __future__ import annotations

import contextlib
import os

from tqdm.auto import tqdm


@contextlib.contextmanager
def progress_bar(total: int, desc: str, disable: bool = False):
    """A tqdm bar; ``NEUROMEM_PROGRESS=0`` turns all bars off."""
    off = disable or os.environ.get("NEUROMEM_PROGRESS", "1") == "0"
    with tqdm(total=total, desc=desc, disable=off, unit="step", leave=False) as bar:
        yield bar
