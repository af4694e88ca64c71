"""Packaging: the wheel holds every module and the hardware profiles, no committed results, and
its build prints no setuptools warnings (issue 17: a new user's install was ~40 lines of them).

One wheel is built (a few seconds) from a copy of the sources, with the setuptools already
installed (no isolation, no download); .ci/wheel_smoke.sh builds the sdist and wheel the way a
user does and installs the wheel into a fresh venv.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS_CFG = PYPROJECT["tool"]["setuptools"]
PACKAGES: list[str] = SETUPTOOLS_CFG["packages"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS_CFG["package-dir"]

# A Python warning as printed on stderr ("path/setuptools/x.py:215: SomeWarning: ...") raised from
# setuptools' (or its vendored distutils') own code, and setuptools' package-discovery complaint.
SETUPTOOLS_WARNING = re.compile(r"^\S*(setuptools|distutils)\S*:\d+: \w+: .*$", re.MULTILINE)
ABSENT_PACKAGE = re.compile(r"^.*is absent from the `packages` configuration.*$", re.MULTILINE)


def _version(dist: str) -> tuple[int, ...] | None:
    try:
        text = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def _build_tooling_missing() -> str | None:
    """Why the wheel cannot be built here without downloading anything (None: it can)."""
    setuptools = _version("setuptools")
    if setuptools is None or setuptools < (68, 0):
        return f"setuptools >= 68 (pyproject's build requirement) is not installed: {setuptools}"
    if setuptools < (70, 1) and _version("wheel") is None:
        return "setuptools < 70.1 needs the `wheel` package to build a wheel"
    return None


def source_dir(package: str) -> Path:
    """The folder that holds ``package`` under pyproject's package-dir mapping."""
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in PACKAGE_DIR:
            return ROOT / PACKAGE_DIR[prefix] / Path(*parts[n:])
    return ROOT / Path(*parts)


def wheel_path(package: str) -> str:
    return "/".join(package.split("."))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[list[str], str]:
    """(the wheel's member names, the build's stderr + stdout)."""
    reason = _build_tooling_missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("wheel")
    src, out = tmp / "src", tmp / "dist"
    # a copy, so no build/ or egg-info is written into the checkout (and no stale build/lib
    # from an earlier build can leak into this wheel); results stay in, to prove the exclusion
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in sorted(set(PACKAGE_DIR.values())):
        shutil.copytree(
            ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # default filters
    code = (
        "import sys; from setuptools import build_meta; "
        "print('WHEEL=' + build_meta.build_wheel(sys.argv[1]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stderr + proc.stdout
    assert proc.returncode == 0, f"the wheel build failed:\n{log[-4000:]}"
    name = re.search(r"^WHEEL=(.+)$", proc.stdout, re.MULTILINE).group(1).strip()
    with zipfile.ZipFile(out / name) as whl:
        return whl.namelist(), log


def test_every_package_with_an_init_is_listed():
    """A new subpackage (a folder with ``__init__.py``) missing from ``packages`` would be
    left out of the wheel silently."""
    listed = set(PACKAGES)
    for top, folder in PACKAGE_DIR.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            package = ".".join((top, *rel.parts))
            owner = source_dir(package)
            if owner != init.parent:  # a folder that another package-dir entry maps
                continue
            assert package in listed, f"{init.parent} holds a package absent from pyproject"
    assert "neuromem.experiments" in listed and PACKAGE_DIR["neuromem.experiments"] == "experiments"


def test_wheel_has_every_module(built):
    names = set(built[0])
    for package in PACKAGES:
        for module in sorted(source_dir(package).glob("*.py")):
            assert f"{wheel_path(package)}/{module.name}" in names, f"{module} not in the wheel"
    assert "neuromem/experiments/__init__.py" in names


def test_wheel_has_the_hardware_profiles(built):
    names = set(built[0])
    profiles = sorted((ROOT / "hardware" / "profiles").glob("*.json"))
    assert profiles, "no hardware/profiles/*.json in the checkout"
    for p in profiles:
        assert f"neuromem/hardware/profiles/{p.name}" in names, f"{p.name} not in the wheel"


def test_wheel_has_no_results_and_no_stray_data(built):
    names = built[0]
    assert (ROOT / "experiments" / "results").is_dir()  # they exist in the source copy
    assert not [n for n in names if "/results/" in n], "experiments/results went into the wheel"
    data = [
        n
        for n in names
        if not n.endswith(".py") and not n.startswith("neuromem-") and not n.endswith("/")
    ]
    stray = [n for n in data if not re.fullmatch(r"neuromem/hardware/profiles/[^/]+\.json", n)]
    assert not stray, f"data files in the wheel that pyproject does not mean to ship: {stray}"


def test_build_prints_no_setuptools_warnings(built):
    log = built[1]
    found = [m.group(0) for rx in (SETUPTOOLS_WARNING, ABSENT_PACKAGE) for m in rx.finditer(log)]
    found = list(dict.fromkeys(found))  # one line can match both
    assert not found, "setuptools warned during the wheel build:\n" + "\n".join(found)
