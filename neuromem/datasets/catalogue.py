"""Every data file neuromem knows: where it lives in the data directory, where it comes from,
and how it is verified (``neuromem data list|verify|path``).

Each entry's ``verify(root)`` raises :class:`~neuromem.errors.DataError` (missing, wrong
checksum, unreadable) and never downloads; the loaders themselves download where a file has
an official source and the machine is online.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data import CHECKSUMS, data_dir, verified_path
from ..errors import DataError


@dataclass(frozen=True)
class Entry:
    """One dataset (or one file of it) in the data directory.

    Attributes
    ----------
    name : str
        What it is, in a few words.
    path : str
        Its place relative to the data directory.
    source : str
        Where it is downloaded from, or why it is not downloadable.
    verify : callable
        ``verify(root)`` -> None; raises DataError.
    globs : tuple of str
        Patterns (relative to the data directory) of its files: it is present when one matches.
    """

    name: str
    path: str
    source: str
    verify: Callable[[str | os.PathLike | None], None]
    globs: tuple[str, ...] = ()

    def present(self, root: str | os.PathLike | None = None) -> bool:
        """Whether any of its files is in the data directory."""
        base = data_dir(root)
        return any(next(base.glob(g), None) is not None for g in self.globs)


def _checksummed(relative: str) -> Callable[[str | os.PathLike | None], None]:
    return lambda root: (verified_path(relative, root), None)[1]


def _mnist(split: str) -> Callable[[str | os.PathLike | None], None]:
    def verify(root):
        from .mnist import load_mnist

        load_mnist(split, root, download=False)

    return verify


def _shd(split: str) -> Callable[[str | os.PathLike | None], None]:
    def verify(root):
        from .shd import shd_path

        shd_path(split, root, download=False)

    return verify


def entries() -> list[Entry]:
    """The catalogue, in a stable order."""
    from .mnist import MNIST_URLS
    from .shd import SHD_URL

    derived = (
        "not downloadable: the authors' {what}, converted to plain {fmt} for neuromem, come "
        "with the project's data directory"
    )
    out = [
        Entry(
            f"CA3 recording {p.split('/')[1].removesuffix('.json')}",
            p,
            derived.format(what="SpiNNaker recordings", fmt="JSON"),
            _checksummed(p),
            (p,),
        )
        for p in CHECKSUMS
        if p.startswith("ca3/")
    ]
    out += [
        Entry(
            f"ELM {p.split('/')[1].rsplit('_', 1)[0]} ({p.rsplit('_', 1)[1].split('.')[0]})",
            p,
            derived.format(what="trained ELM weights and golden outputs", fmt="npz/JSON"),
            _checksummed(p),
            (p,),
        )
        for p in CHECKSUMS
        if p.startswith("elm/")
    ]
    out += [
        Entry(
            f"MNIST {split}",
            f"mnist/{prefix}-*-idx?-ubyte.gz",
            MNIST_URLS[0],
            _mnist(split),
            (f"mnist/{prefix}-*-idx?-ubyte*",),
        )
        for split, prefix in (("train", "train"), ("test", "t10k"))
    ]
    out += [
        Entry(
            f"SHD {split}",
            f"shd/shd_{split}.h5.gz",
            SHD_URL,
            _shd(split),
            (f"shd/shd_{split}.h5*",),
        )
        for split in ("train", "test")
    ]
    return out


def status(root: str | os.PathLike | None = None) -> list[tuple[Entry, str]]:
    """(entry, ``"ok"``, ``"missing"`` or the one-line reason it is not sound) per entry."""
    out = []
    for entry in entries():
        if not entry.present(root):
            out.append((entry, "missing"))
            continue
        try:
            entry.verify(root)
            out.append((entry, "ok"))
        except DataError as exc:
            out.append((entry, str(exc).splitlines()[0]))
    return out


def resolved(root: str | os.PathLike | None = None) -> Path:
    """The data directory in use (argument or ``$NEUROMEM_DATA``)."""
    return data_dir(root)
