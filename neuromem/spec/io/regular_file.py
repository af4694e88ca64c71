"""Opening an untrusted path only when it is a regular file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ...errors import SpecError


def open_regular(p: Path) -> int:
    """A read-only descriptor of the regular file ``p`` (never blocks on a FIFO or device).

    Raises
    ------
    SpecError
        If ``p`` is not a regular file.
    OSError
        If ``p`` cannot be opened (e.g. ``FileNotFoundError``).
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SpecError(f"load: {p} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd
