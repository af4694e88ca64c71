"""MkDocs hook: let mkdocstrings (griffe) read the package as it is installed.

The checkout maps folders onto ``neuromem.*`` (``[tool.setuptools.package-dir]`` in
pyproject.toml: ``models/`` is ``neuromem.models``, ``hardware/`` is ``neuromem.hardware``), which
griffe's static loader cannot follow. Before each build this hook copies the ``.py`` files into
a temporary directory laid out as the installed package and points the mkdocstrings Python
handler at it. Nothing is written into the checkout; nothing is imported.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import tomllib
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]
_TMP = Path(tempfile.mkdtemp(prefix="neuromem-docs-src-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def _layout() -> Path:
    """Copy every mapped folder's ``.py`` files to ``<tmp>/<package path>``; return ``<tmp>``."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dir = pyproject["tool"]["setuptools"]["package-dir"]
    out = _TMP / "src"
    shutil.rmtree(out, ignore_errors=True)
    # shortest names first: a mapped sub-package overwrites what its parent's copy put there
    for name, folder in sorted(package_dir.items(), key=lambda kv: kv[0].count(".")):
        src = ROOT / folder
        dest = out.joinpath(*name.split("."))
        for f in src.rglob("*.py"):
            if "__pycache__" in f.parts:
                continue
            target = dest / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
    return out


@event_priority(100)  # before mkdocstrings reads its handler options
def on_config(config):
    python = config.plugins["mkdocstrings"].config.handlers.setdefault("python", {})
    python["paths"] = [str(_layout())]
    return config
