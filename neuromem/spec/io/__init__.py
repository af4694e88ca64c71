"""Versioned save/load of a Network: ``<dir>/network.json`` plus ``<dir>/arrays.npz``.

Atomic saves
------------
A save never leaves a moment in which ``<dir>`` is missing or partial, also with
``overwrite=True`` and also when the process is killed at any point. It works in side
directories beside the target whose names derive from the target's:
``.<name>.<kind>-<pid>-<tag>`` (``pid`` of the saving process, ``tag`` 8 random hex digits):

- ``tmp``: being written, maybe partial; never read.
- ``new``: complete. Both files are written and fsynced, then ``tmp`` is renamed to ``new``
  (the rename marks completion) and the parent directory is fsynced.
- ``old``: the previous target, moved aside (only by the fallback swap below).
- ``del``: being deleted; never read.

A save (1) recovers from interrupted saves of the same target (below), (2) writes ``tmp`` and
turns it into ``new``, (3) swaps ``new`` in: on Linux ``renameat2(RENAME_EXCHANGE)`` exchanges
``new`` and the target in one atomic step (``RENAME_NOREPLACE`` when there is no target yet);
where the call or the filesystem lacks it, the target is renamed to ``old`` and ``new`` to the
target, and on failure ``old`` is renamed back. (4) It fsyncs the parent, renames the displaced
old save to ``del`` and deletes it.

Only the fallback swap has a window, between its two renames, in which the target is missing;
the complete ``new`` and ``old`` exist then. :func:`load` of a missing target therefore reads
the newest complete side directory of that target, ``new`` before ``old``, and when the
process that made it no longer exists, renames it into place (rolling the interrupted save
forward). So ``load`` returns the old or the new network however a save is interrupted. Each
save begins with the same roll-forward and then deletes the side directories left by
processes that no longer exist.

Cleanup deletes only directories whose names match this target's pattern exactly, that are
real directories (never symlinks, opened with ``O_NOFOLLOW``), that hold nothing but
``network.json`` and ``arrays.npz`` as regular files, and whose process is gone (POSIX
``kill(pid, 0)``; elsewhere only the own process counts as alive). Everything else is left
alone, so concurrent saves by processes of one machine never delete each other's files (the
last swap wins); processes of several machines saving to one shared directory are not
supported. Overwriting refuses (``FileExistsError``) a target that is not a saved network: a
file, a symlink, or a directory holding anything besides the two files.

Loading untrusted files
-----------------------
The budgets are those of :mod:`neuromem.spec.limits` (``set_limits`` and ``limits`` change
them). ``network.json`` larger than ``max_json_bytes`` (64 MiB) is refused before it is read,
nesting deeper than ``max_json_depth`` (100) and duplicate keys are refused, and its structure
is checked element by element: required keys present, no unknown keys, JSON types as written
by :func:`save`. ``arrays.npz`` is refused before anything is decompressed when its members
declare more uncompressed bytes than ``max_state_bytes`` (8 GiB; a zip bomb), and is read
member by member with ``allow_pickle=False``; each header is checked (numbers only: bool,
int, uint, float; declared size equal to the stored size) before its data is allocated; every
referenced array must exist and every stored array must be referenced. Values are validated
by the spec constructors; whatever they raise (``SpecError`` or a stray ``TypeError``,
``KeyError``, ...) is re-raised as :class:`~neuromem.errors.SpecError` naming the file and the
element, e.g. ``load: run/network.json: populations[2] ('exc'): missing key 'size'``.

Modules
-------
- :mod:`.document`: network <-> JSON document and arrays (:func:`to_dict`, :func:`from_dict`).
- :mod:`.schema`: the structure of the document and the located checks of an untrusted one.
- :mod:`.json_file`, :mod:`.npz`, :mod:`.regular_file`: reading the untrusted files.
- :mod:`.atomic`: side directories, fsync, the swap, recovery and cleanup.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ...errors import SpecError
from .. import limits
from ..network import Network
from . import atomic
from .document import FORMAT, VERSION, ArrayGetter, from_dict, rebuild, to_dict
from .json_file import nesting_depth, read_json
from .npz import open_npz

__all__ = [
    "FORMAT",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "VERSION",
    "from_dict",
    "load",
    "save",
    "to_dict",
]

#: Default of ``neuromem.spec.limits.current().max_json_bytes``, the largest ``network.json``
#: that :func:`load` reads and :func:`save` writes; change the budget with ``set_limits``.
MAX_JSON_BYTES = limits.Limits.max_json_bytes
#: Default of ``neuromem.spec.limits.current().max_json_depth``, the deepest nesting of lists
#: and objects accepted in ``network.json``.
MAX_JSON_DEPTH = limits.Limits.max_json_depth


def save(net: Network, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save ``net`` to the directory ``path``, atomically (see the module docstring).

    Parameters
    ----------
    net : Network
        The network to save.
    path : str or os.PathLike
        The save directory; its parent is created if missing.
    overwrite : bool
        Whether an existing save at ``path`` may be replaced.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false, or ``path`` exists and is not a saved
        network (a file, a symlink or a directory with other files), whatever ``overwrite``.
    SpecError
        If the network cannot be saved (e.g. ``network.json`` would exceed the
        ``max_json_bytes`` budget).
    ValueError
        If ``path`` is named like a side directory (or is ``..``).
    """
    path = Path(path)
    if path.name in ("", "..") or atomic.SIDE_NAME.match(path.name):
        raise ValueError(f"save: {str(path)!r} cannot be the directory of a save")
    doc, arrays = to_dict(net)
    max_depth = limits.current().max_json_depth
    if nesting_depth(doc, max_depth) > max_depth:
        raise SpecError(f"save: network.json would nest deeper than {max_depth} levels")
    atomic.replace_directory(path, lambda d: _write_files(d, doc, arrays), overwrite)
    return path


def _write_files(directory: Path, doc: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write and fsync ``network.json`` (within the size budget) and ``arrays.npz``."""
    with open(directory / "network.json", "w") as f:
        json.dump(doc, f, indent=1)
        max_bytes = limits.current().max_json_bytes
        if f.tell() > max_bytes:
            raise SpecError(
                f"save: network.json would be {f.tell()} bytes, more than load accepts "
                f"(MAX_JSON_BYTES = {max_bytes})"
            )
        atomic.fsync_file(f)
    with open(directory / "arrays.npz", "wb") as f:
        np.savez(f, **arrays)
        atomic.fsync_file(f)


def load(path: str | os.PathLike) -> Network:
    """Load a network saved by :func:`save`.

    If ``path`` is missing because a save was interrupted between its two renames (possible
    only where ``renameat2`` is unavailable), the save it was replaced with is loaded and,
    when its process is gone, renamed into place.

    Parameters
    ----------
    path : str or os.PathLike
        The save directory.

    Returns
    -------
    Network
        The network, validated as when it was constructed.

    Raises
    ------
    SpecError
        For every refusal, naming the file and the element.
    """
    path = Path(path)
    for _ in range(3):
        source = path
        if not os.path.lexists(path):
            source = atomic.recover_for_load(path) or path
        try:
            return _load_dir(source, path)
        except SpecError:
            if source != path and not os.path.lexists(source):
                continue  # the side directory was renamed (into place) while being read
            raise
    return _load_dir(path, path)


def _load_dir(path: Path, shown: Path) -> Network:
    """Load the save in directory ``path`` (errors name the files under ``path``)."""
    source = path / "network.json"
    try:
        doc = read_json(source)
        npz = path / "arrays.npz"
        with open_npz(npz) as arrays:
            getter = ArrayGetter(arrays)
            net = rebuild(doc, getter, str(source))
            unused = [k for k in arrays if k not in getter.used]
            if unused:
                raise SpecError(
                    f"load: {npz}: array {unused[0][:80]!r} is not referenced by "
                    f"network.json ({len(unused)} unreferenced)"
                )
            return net
    except FileNotFoundError as exc:
        raise SpecError(f"load: {exc.filename} not found") from None
    except NotADirectoryError:
        raise SpecError(f"load: {shown} is not a directory") from None
    except OSError as exc:
        raise SpecError(f"load: cannot read {exc.filename or path}: {exc.strerror}") from None
