"""Make lava-nc 0.10.0 importable on Python 3.11 without editing site-packages.

lava-nc 0.10.0 declares ``Requires-Python <3.11``. :func:`install` puts a meta-path finder in
front of ``sys.meta_path`` that patches the source of exactly two Lava modules when they are
imported (bytecode caching is bypassed for them, so a cached ``.pyc`` of the unpatched source is
never used; every other module loads normally):

1. ``lava/magma/compiler/var_model.py`` (Python 3.11): dataclass fields such as ``x: ByteEncoder
   = ByteEncoder()`` use an instance of an (unhashable, since ``eq=True``) dataclass as a
   default. Python 3.11 rejects every unhashable default (``ValueError: mutable default ...
   use default_factory``), so ``import lava.magma.compiler.compiler`` fails and nothing runs.
   Patch: ``= ByteEncoder()`` -> ``= _dc_field(default_factory=ByteEncoder)`` (each field gets
   its own instance, which is what the default meant).
2. ``lava/magma/runtime/message_infrastructure/multiprocessing.py`` calls
   ``mp.set_start_method('fork')`` at import, which raises ``RuntimeError: context has already
   been set`` in any process where the default context was already fixed (e.g. after a tqdm
   progress bar or a neuromem numba run created a multiprocessing lock). Patch: set ``'fork'``
   only when no start method is set yet; when one is set and is not ``'fork'`` (Lava's runtime
   needs fork), raise ``RuntimeError`` naming it instead of changing another library's choice.

numpy 2: the parts of Lava that :mod:`neuromem.hardware.lava` uses (LIF, Dense, DelayDense,
RingBuffer source/sink, Monitor, the Python/CPU simulation runtime with both bit-accurate and
floating-point models) run unchanged with numpy 2.3 (checked by the tests of
``tests/test_hardware_lava.py``); no numpy patch is needed. Lava's numpy<2 and scipy<2 pins are
therefore ignored (install with ``--no-deps --ignore-requires-python``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

__all__ = ["install", "lava_available", "LAVA_IMPORT_ERROR"]

_FUTURE = "from __future__ import annotations\n"
#: module -> (header inserted after ``from __future__`` or at the top, [(old, new), ...])
_PATCHES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "lava.magma.compiler.var_model": (
        "from dataclasses import field as _dc_field  # neuromem _lava_compat\n",
        [("= ByteEncoder()", "= _dc_field(default_factory=ByteEncoder)")],
    ),
    "lava.magma.runtime.message_infrastructure.multiprocessing": (
        "",
        [
            (
                "    mp.set_start_method('fork')",
                "    if mp.get_start_method(allow_none=True) is None:  # neuromem _lava_compat\n"
                "        mp.set_start_method('fork')\n"
                "    elif mp.get_start_method() != 'fork':\n"
                "        raise RuntimeError('Lava needs the fork start method; this process '\n"
                "                           f'uses {mp.get_start_method()!r}')",
            )
        ],
    ),
}


class _PatchedSourceLoader(importlib.abc.Loader):
    """Loads one Lava module from its file with the replacements of ``_PATCHES`` applied."""

    def __init__(self, fullname: str, path: str) -> None:
        self.fullname, self.path = fullname, path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # default module creation

    def exec_module(self, module: ModuleType) -> None:
        with open(self.path, encoding="utf-8") as fh:
            source = fh.read()
        header, replacements = _PATCHES[self.fullname]
        patched = source
        if any(old in source for old, _ in replacements):
            for old, new in replacements:
                patched = patched.replace(old, new)
            if header and _FUTURE in patched:  # ``from __future__`` must stay first
                patched = patched.replace(_FUTURE, _FUTURE + header, 1)
            elif header:
                patched = header + patched
        # else: a Lava version without these bugs (or changed source): load it unmodified
        code = compile(patched, self.path, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - installed library source, patched above


class _LavaCompatFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that intercepts exactly the modules of ``_PATCHES``."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - importlib protocol
        if fullname not in _PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return spec
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_PatchedSourceLoader(fullname, spec.origin)
        )


def install() -> None:
    """Install the import hook (idempotent). Call before the first ``import lava...``."""
    if not any(isinstance(f, _LavaCompatFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LavaCompatFinder())


LAVA_IMPORT_ERROR: str | None = None


def lava_available() -> bool:
    """True when lava-nc imports (with the hook) far enough to compile and run a network."""
    global LAVA_IMPORT_ERROR
    install()
    try:
        import lava.magma.compiler.compiler  # noqa: F401
        import lava.proc.dense.process  # noqa: F401
        import lava.proc.lif.process  # noqa: F401
    except Exception as exc:  # ImportError, or another failure at import of lava
        LAVA_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
        return False
    LAVA_IMPORT_ERROR = None
    return True
