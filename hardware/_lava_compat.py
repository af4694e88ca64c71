"""Make lava-nc 0.10.0 importable on Python 3.11 without editing site-packages.

lava-nc 0.10.0 declares ``Requires-Python <3.11``. The one thing that breaks on 3.11 is in
``lava/magma/compiler/var_model.py``: dataclass fields such as ``x: ByteEncoder =
ByteEncoder()`` use an instance of an (unhashable, since ``eq=True``) dataclass as a default.
Python 3.11 rejects every unhashable default (``ValueError: mutable default ... use
default_factory``), so ``import lava.magma.compiler.compiler`` fails and nothing can run.

:func:`install` puts a meta-path finder in front of ``sys.meta_path`` that, for that one
module only, loads the installed source, replaces ``= ByteEncoder()`` by
``= _dc_field(default_factory=ByteEncoder)`` (each field then gets its own instance, which is
what the default meant) and compiles the result. Bytecode caching is bypassed for that module so
a cached ``.pyc`` of the unpatched source is never used. Every other module loads normally.

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

_TARGET = "lava.magma.compiler.var_model"
_OLD = "= ByteEncoder()"
_NEW = "= _dc_field(default_factory=ByteEncoder)"
_HEADER = "from dataclasses import field as _dc_field  # neuromem _lava_compat\n"


class _PatchedSourceLoader(importlib.abc.Loader):
    """Loads ``var_model`` from its file with the dataclass defaults rewritten."""

    def __init__(self, path: str) -> None:
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # default module creation

    def exec_module(self, module: ModuleType) -> None:
        with open(self.path, encoding="utf-8") as fh:
            source = fh.read()
        if _OLD not in source:
            # A Lava version without the bug (or changed source): load it unmodified.
            patched = source
        else:
            # Insert the import after ``from __future__`` (which must stay first).
            future = "from __future__ import annotations\n"
            body = source.replace(_OLD, _NEW)
            if future in body:
                patched = body.replace(future, future + _HEADER, 1)
            else:
                patched = _HEADER + body
        code = compile(patched, self.path, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - installed library source, patched above


class _LavaCompatFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that intercepts exactly ``lava.magma.compiler.var_model``."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - importlib protocol
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return spec
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_PatchedSourceLoader(spec.origin)
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
