"""Creating or replacing a save directory atomically, and recovering from interrupted saves.

The protocol (side directories, the swap, recovery and cleanup) is described in the
docstring of :mod:`neuromem.spec.io`. This module knows of a save only the names of its two
files, :data:`FILES`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The files of a save directory.
FILES = ("network.json", "arrays.npz")
#: How the side directories of any target are named (a target may not look like one).
SIDE_NAME = re.compile(r"\..+\.(?:tmp|new|old|del)-[1-9][0-9]*-[0-9a-f]{8}\Z", re.DOTALL)
#: Forces the two-rename fallback swap when false (tests exercise it this way).
USE_RENAMEAT2 = True
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2_fn: Callable[..., int] | None | bool = False  # False: not looked up yet


# ================================================================== saving
def replace_directory(target: Path, write: Callable[[Path], None], overwrite: bool) -> None:
    """Create or replace the save directory ``target`` with what ``write`` puts into a fresh
    directory, so that ``target`` holds the old or the new save at every moment.

    Parameters
    ----------
    target : Path
        The save directory.
    write : callable
        Writes (and fsyncs, with :func:`fsync_file`) the files of :data:`FILES` into the
        directory it is given.
    overwrite : bool
        Whether an existing save may be replaced.

    Raises
    ------
    FileExistsError
        If ``target`` exists and ``overwrite`` is false, or exists and is not a saved network.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    if _existing(target) and not overwrite:
        raise FileExistsError(f"save: {target} exists (pass overwrite=True to replace it)")
    while True:
        tag = secrets.token_hex(4)
        tmp, new = _side(target, "tmp", tag), _side(target, "new", tag)
        try:
            os.mkdir(tmp)
            break
        except FileExistsError:
            continue
    try:
        write(tmp)
        fsync_dir(tmp)
        os.rename(tmp, new)  # marks `new` complete
        fsync_dir(target.parent)
    except BaseException:
        _discard(target, tmp)
        _discard(target, new)
        raise
    try:
        _swap_in(new, target)
    except BaseException:
        if os.path.lexists(target):  # else keep `new`: load and the next save recover from it
            _discard(target, new)
        raise


def _swap_in(new: Path, target: Path) -> None:
    """Put the complete save ``new`` in place of ``target``, then delete what it replaced."""
    if not os.path.lexists(target):
        try:
            _move_into_place(new, target)
        except FileExistsError:
            raise FileExistsError(f"save: {target} was created meanwhile by someone else") from None
        return
    if renameat2(new, target, RENAME_EXCHANGE):
        fsync_dir(target.parent)
        _discard(target, new)  # `new` now holds the old save
        return
    old = _side(target, "old", new.name[-8:])
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    fsync_dir(target.parent)
    _discard(target, old)


def _existing(target: Path) -> bool:
    """Whether ``target`` exists; FileExistsError if it does but is no saved network."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise FileExistsError(f"save: {target} is a symbolic link; refusing to replace it")
    if not stat.S_ISDIR(st.st_mode):
        raise FileExistsError(f"save: {target} exists and is not a directory")
    if _save_files(target) is None:
        raise FileExistsError(
            f"save: {target} holds files other than {' and '.join(FILES)}; refusing to "
            "replace a directory that is not a saved network"
        )
    return True


# ================================================================== recovery
def recover_for_load(target: Path) -> Path | None:
    """Where to read a missing ``target`` from: its recovered self or a side directory
    (``None`` when there is none)."""
    sides = _sides(target)
    source = _candidate(sides)
    if source is None:
        return None
    pid = next(s[2] for s in sides if s[0] == source)
    if not _alive(pid):
        try:
            _move_into_place(source, target)
            return target
        except OSError:
            if os.path.lexists(target):
                return target
    return source


def _recover(target: Path) -> None:
    """Roll an interrupted save of ``target`` forward (when ``target`` is missing) and delete
    the side directories of processes that no longer exist."""
    sides = [s for s in _sides(target) if not _alive(s[2])]
    if not os.path.lexists(target):
        source = _candidate(sides)
        if source is not None:
            with contextlib.suppress(OSError):
                _move_into_place(source, target)
    for p, _, _ in sides:
        if os.path.lexists(p):
            _discard(target, p)


def _candidate(sides: list[tuple[Path, str, int]]) -> Path | None:
    """The newest complete ``new`` or else ``old`` side directory among ``sides``."""
    best, best_key = None, None
    for p, kind, _ in sides:
        if kind in ("new", "old") and _complete(p):
            try:
                key = (kind == "new", os.lstat(p).st_mtime_ns)
            except OSError:
                continue
            if best_key is None or key > best_key:
                best, best_key = p, key
    return best


# ================================================================== side directories
def _side(target: Path, kind: str, tag: str, pid: int | None = None) -> Path:
    return target.parent / f".{target.name}.{kind}-{os.getpid() if pid is None else pid}-{tag}"


def _sides(target: Path) -> list[tuple[Path, str, int]]:
    """The side directories of ``target`` that exist: (path, kind, pid)."""
    pattern = re.compile(
        r"\." + re.escape(target.name) + r"\.(tmp|new|old|del)-([1-9][0-9]*)-[0-9a-f]{8}\Z",
        re.DOTALL,
    )
    found = []
    try:
        with os.scandir(target.parent) as it:
            for entry in it:
                m = pattern.match(entry.name)
                if m:
                    found.append((target.parent / entry.name, m.group(1), int(m.group(2))))
    except (FileNotFoundError, NotADirectoryError):
        pass
    return found


def _alive(pid: int) -> bool:
    """Whether the process ``pid`` (that made a side directory) still exists."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return False  # no safe probe (os.kill would terminate it): one saver at a time
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or a pid no process can have
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def _only_save_files(names: list[str], mode_of: Callable[[str], int]) -> bool:
    """Whether all ``names`` are save files and regular files (``mode_of``: their st_mode,
    not following symlinks)."""
    return all(n in FILES and stat.S_ISREG(mode_of(n)) for n in names)


def _save_files(p: Path) -> list[str] | None:
    """The names in ``p`` if it is a real directory holding only regular save files."""
    try:
        if not stat.S_ISDIR(os.lstat(p).st_mode):
            return None
        names = os.listdir(p)
        if not _only_save_files(names, lambda n: os.lstat(p / n).st_mode):
            return None
    except OSError:
        return None
    return names


def _complete(p: Path) -> bool:
    names = _save_files(p)
    return names is not None and sorted(names) == sorted(FILES)


def _remove(p: Path) -> bool:
    """Delete the side directory ``p`` if it holds only save files; never follows symlinks."""
    dir_fd_ok = (
        os.unlink in os.supports_dir_fd and hasattr(os, "O_DIRECTORY") and hasattr(os, "O_NOFOLLOW")
    )
    try:
        if dir_fd_ok:
            fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                names = os.listdir(fd)

                def mode_of(n: str) -> int:
                    return os.stat(n, dir_fd=fd, follow_symlinks=False).st_mode

                if not _only_save_files(names, mode_of):
                    return False
                for n in names:
                    os.unlink(n, dir_fd=fd)
            finally:
                os.close(fd)
        else:
            names = _save_files(p)
            if names is None:
                return False
            for n in names:
                os.unlink(p / n)
        os.rmdir(p)
    except OSError:
        return False
    return True


def _discard(target: Path, p: Path) -> None:
    """Rename ``p`` to a ``del`` side directory (no longer a recovery candidate), delete it;
    leave it alone unless it is a real directory holding only save files."""
    if _save_files(p) is None:
        return
    d = _side(target, "del", secrets.token_hex(4))
    try:
        os.rename(p, d)
    except OSError:
        d = p
    _remove(d)


# ================================================================== durable renames
def fsync_file(f: Any) -> None:
    """Make what was written to the open file ``f`` durable."""
    f.flush()
    os.fsync(f.fileno())


def fsync_dir(p: Path) -> None:
    """Make renames and creations in directory ``p`` durable (where directories can be
    opened; a no-op elsewhere)."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Linux ``renameat2``: True when done, False when unavailable here (the caller falls
    back); any other failure raises OSError."""
    global _renameat2_fn
    if not USE_RENAMEAT2 or not sys.platform.startswith("linux"):
        return False
    if _renameat2_fn is False:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
            fn.argtypes += [ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2_fn = fn
        except (OSError, AttributeError):
            _renameat2_fn = None
    if _renameat2_fn is None:
        return False
    s, d = os.fsencode(src), os.fsencode(dst)
    if _renameat2_fn(_AT_FDCWD, s, _AT_FDCWD, d, flags) == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(e, os.strerror(e), str(src), None, str(dst))


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError if ``dst`` exists."""
    if renameat2(src, dst, RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "exists", str(dst))
    os.rename(src, dst)


def _move_into_place(src: Path, target: Path) -> None:
    """Rename ``src`` to the missing ``target`` durably; FileExistsError if it exists."""
    _rename_noreplace(src, target)
    fsync_dir(target.parent)
