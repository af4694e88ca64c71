"""``neuromem`` console script: ``neuromem run <experiment> [--quick] [--backend ...]``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from .backends import REGISTRY


def experiments_dir() -> Path:
    """The repository's ``experiments/`` folder (neuromem is installed editable from it)."""
    return Path(__file__).resolve().parent.parent / "experiments"


def discover() -> dict[str, Path]:
    """Experiment name -> script path (every ``experiments/*.py`` not starting with ``_``)."""
    d = experiments_dir()
    return {p.stem: p for p in sorted(d.glob("*.py")) if not p.stem.startswith("_")}


def load_experiment(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"neuromem_experiment_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    for attr in ("DESCRIPTION", "run"):
        if not hasattr(module, attr):
            raise SystemExit(f"experiment {path.stem!r} defines no {attr}")
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neuromem", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment from experiments/")
    run.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    run.add_argument("--list", action="store_true", help="list the experiments")
    run.add_argument("--quick", action="store_true", help="the quick (CI-sized) setting")
    run.add_argument(
        "--backend",
        action="append",
        choices=sorted(REGISTRY),
        help="backend(s) to run (repeatable; default: all the model supports)",
    )
    run.add_argument("--data", help="data directory (default: $NEUROMEM_DATA)")
    args = parser.parse_args(argv)

    found = discover()
    if args.list or not args.experiment:
        for name, path in found.items():
            print(f"{name:24s} {load_experiment(path).DESCRIPTION}")
        return 0
    if args.experiment not in found:
        print(
            f"neuromem: unknown experiment {args.experiment!r}; available: "
            f"{', '.join(found) or 'none'}",
            file=sys.stderr,
        )
        return 2
    module = load_experiment(found[args.experiment])
    summary = module.run(quick=args.quick, backends=args.backend, data=args.data)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
