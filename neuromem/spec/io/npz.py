"""Reading an untrusted ``arrays.npz`` without unpickling, and within the state budget.

A member is read only after its ``.npy`` header has been checked: numbers only, and the size
the header declares equal to the size stored. Before any member is read, the uncompressed
sizes the archive declares are summed and compared with
``neuromem.spec.limits.current().max_state_bytes``, so that a small compressed file (a zip
bomb) cannot make :func:`~neuromem.spec.io.load` decompress more than that. Decompression
never yields more than a member's declared size (``zipfile`` stops there), and a header's
declared size must equal it, so the sum bounds what is decompressed and what is allocated.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from ...errors import SpecError
from .. import limits
from .regular_file import open_regular

#: dtype kinds an array may have: bool, int, uint, float.
NUMERIC_KINDS = "biuf"


class NpzError(Exception):
    """A member of arrays.npz cannot be read."""


class Npz(Mapping):
    """The arrays of an ``.npz`` archive, each read (with checks) when first asked for."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            name = info.filename
            if not name.endswith(".npy") or info.is_dir():
                raise NpzError(f"member {name[:80]!r} is not an .npy array")
            key = name[: -len(".npy")]
            if key in self.members:
                raise NpzError(f"array {key[:80]!r} is stored twice")
            self.members[key] = info

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __contains__(self, key: object) -> bool:
        return key in self.members

    def __getitem__(self, key: str) -> np.ndarray:
        info = self.members[key]
        try:
            with self.zf.open(info) as f:
                version = npy_format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = npy_format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = npy_format.read_array_header_2_0(f)
                else:
                    raise NpzError(f".npy format version {version} is not supported")
                if dtype.hasobject or dtype.kind not in NUMERIC_KINDS:
                    raise NpzError(
                        f"holds dtype {dtype}; expected booleans, integers or floats"
                        + (" (object arrays are never unpickled)" if dtype.hasobject else "")
                    )
                declared = math.prod(shape) * dtype.itemsize
                stored = info.file_size - f.tell()
                if declared != stored:
                    raise NpzError(
                        f"header declares shape {shape} of {dtype} ({declared} bytes), "
                        f"but {stored} bytes are stored"
                    )
            with self.zf.open(info) as f:
                return npy_format.read_array(f, allow_pickle=False)
        except NpzError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, OverflowError) as exc:
            raise NpzError(f"corrupt ({type(exc).__name__}: {exc})") from None

    def check_budget(self, shown: Path) -> None:
        """Refuse, before anything is decompressed, an archive whose members declare more
        uncompressed bytes than the state budget (naming the member that crosses it)."""
        total = 0
        for info in self.members.values():
            total += info.file_size
            limits.check_bytes(
                total,
                f"load: {shown}",
                f"decompressing the arrays up to member {info.filename[:80]!r} "
                f"(declared {info.file_size} bytes)",
            )


@contextlib.contextmanager
def open_npz(path: Path) -> Iterator[Npz]:
    """The arrays of the archive ``path``, open for the duration of a ``with`` block.

    Raises
    ------
    SpecError
        If ``path`` is not a regular file, not a zip archive, holds members that are not
        ``.npy`` arrays, or declares more uncompressed bytes than the state budget.
    """
    with os.fdopen(open_regular(path), "rb") as f:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise SpecError(f"load: {path} is corrupt: not an .npz archive ({exc})") from None
        with zf:
            try:
                arrays = Npz(zf)
            except NpzError as exc:
                raise SpecError(f"load: {path} is corrupt: {exc}") from None
            arrays.check_budget(path)
            yield arrays
