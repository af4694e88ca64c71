"""Progress bars for long runs (tqdm), silent when disabled or not wanted."""

from __future__ import annotations

import contextlib
import os

from tqdm.auto import tqdm


@contextlib.contextmanager
def progress_bar(total: int, desc: str, disable: bool = False):
    """A tqdm bar; ``NEUROMEM_PROGRESS=0`` turns all bars off."""
    off = disable or os.environ.get("NEUROMEM_PROGRESS", "1") == "0"
    # leave=True: the bar stays at 100 % when done (a fast run would otherwise vanish at the
    # last redraw, e.g. at 2 % after a compile-heavy first chunk)
    with tqdm(total=total, desc=desc, disable=off, unit="step", leave=True) as bar:
        yield bar
