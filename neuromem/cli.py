"""``neuromem`` console script.

    neuromem run --list
    neuromem run EXPERIMENT [--quick] [--backend B ...] [--data DIR] [--out DIR] [--json]
    neuromem data list|verify|path [--data DIR]

An experiment is a module of the ``neuromem.experiments`` package (the repository's
``experiments/`` folder) with a ``DESCRIPTION`` and a ``run(quick, backends, data, out_dir)``
function; one that honours ``--backend`` names the backends it can run in
``SUPPORTED_BACKENDS``. Results go to ``--out`` (default ``./neuromem-results``), never into the
installed package; the results committed in the repository are made with
``--out experiments/results``. The printed report lists each acceptance row with our number
beside the reference; the exit status is 1 when a row fails.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

EXPERIMENTS_PACKAGE = "neuromem.experiments"
DEFAULT_OUT = "neuromem-results"


def discover() -> dict[str, str]:
    """Experiment name -> module name (every module of ``neuromem.experiments`` whose name
    does not start with ``_``)."""
    try:
        package = importlib.import_module(EXPERIMENTS_PACKAGE)
    except ImportError as exc:
        raise SystemExit(f"neuromem: the experiments are not installed ({exc})") from None
    return {
        m.name: f"{EXPERIMENTS_PACKAGE}.{m.name}"
        for m in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name)
        if not m.name.startswith("_") and not m.ispkg
    }


def load_experiment(module_name: str) -> ModuleType:
    """Import an experiment module and check that it defines ``DESCRIPTION`` and ``run``."""
    module = importlib.import_module(module_name)
    for attr in ("DESCRIPTION", "run"):
        if not hasattr(module, attr):
            raise SystemExit(f"experiment {module_name!r} defines no {attr}")
    return module


def _short(value: Any) -> str:
    """A compact rendering of one value of an acceptance row."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        shown = ", ".join(_short(v) for v in value[:6])
        return f"[{shown}{', ...' if len(value) > 6 else ''}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in list(value.items())[:4]) + "}"
    return str(value)


def acceptance_rows(summary: dict) -> list[tuple[str, str, bool | None]]:
    """(row, values, passed) for each acceptance row of an experiment's summary."""
    rows = []
    for name, row in (summary.get("acceptance") or {}).items():
        if isinstance(row, dict):
            values = ", ".join(f"{k}={_short(v)}" for k, v in row.items() if k != "pass")
            rows.append((name, values, row.get("pass")))
        else:
            rows.append((name, _short(row), None))
    return rows


def report(name: str, summary: dict, out: Path, written: list[Path]) -> int:
    """Print the acceptance table and where the results went; the exit status."""
    rows = acceptance_rows(summary)
    failed = [r for r in rows if r[2] is False]
    if rows:
        width = max(len(r[0]) for r in rows)
        print(f"{name}: {len(rows) - len(failed)} of {len(rows)} acceptance rows pass")
        for row, values, passed in rows:
            mark = {True: "pass", False: "FAIL", None: "    "}[passed]
            print(f"  {mark}  {row:<{width}}  {values}")
    else:
        print(f"{name}: no acceptance rows (an exploration); summary keys: {', '.join(summary)}")
    if written:
        print(f"results in {out}/: {', '.join(sorted(p.name for p in written))}")
    return 1 if failed else 0


def _written_since(out: Path, t0: float) -> list[Path]:
    return [p for p in out.glob("*") if p.is_file() and p.stat().st_mtime >= t0]


def data_command(action: str, root: str | None) -> int:
    """``neuromem data list|verify|path``: what neuromem knows, whether it is here and sound."""
    from .datasets import catalogue
    from .errors import DataError

    if action == "list":
        for entry in catalogue.entries():
            print(f"{entry.name:34s} {entry.path:38s} {entry.source}")
        return 0
    try:
        where = catalogue.resolved(root)
    except DataError as exc:
        print(f"neuromem: {exc}", file=sys.stderr)
        return 2
    if action == "path":
        print(where)
        return 0
    print(f"data directory {where}")
    bad = 0
    for entry, state in catalogue.status(root):
        bad += state not in ("ok", "missing")
        mark = {"ok": "ok", "missing": "--"}.get(state, "BAD")
        note = {"ok": "", "missing": f"missing (source: {entry.source})"}.get(state, state)
        print(f"  {mark:3s} {entry.name:34s} {note}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neuromem", description="neuromem experiments")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment (see --list)")
    run.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    run.add_argument("--list", action="store_true", help="list the experiments")
    run.add_argument("--quick", action="store_true", help="the quick (CI-sized) setting")
    run.add_argument(
        "--backend",
        action="append",
        help="backend(s) to run, for experiments that take them (repeatable)",
    )
    run.add_argument("--data", help="data directory (default: $NEUROMEM_DATA)")
    run.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default ./{DEFAULT_OUT})")
    run.add_argument("--json", action="store_true", help="print the raw result as JSON")
    data = sub.add_parser("data", help="the data directory: list, verify, path")
    data.add_argument("action", choices=("list", "verify", "path"))
    data.add_argument("--data", help="data directory (default: $NEUROMEM_DATA)")
    args = parser.parse_args(argv)
    if args.command == "data":
        return data_command(args.action, args.data)

    found = discover()
    if args.list or not args.experiment:
        for name, module in found.items():
            print(f"{name:24s} {load_experiment(module).DESCRIPTION}")
        return 0
    if args.experiment not in found:
        print(
            f"neuromem: unknown experiment {args.experiment!r}; available: "
            f"{', '.join(found) or 'none'}",
            file=sys.stderr,
        )
        return 2
    # a command-line run draws into files: no display needed (a library import never does this)
    import matplotlib

    matplotlib.use("Agg")
    module = load_experiment(found[args.experiment])
    supported = getattr(module, "SUPPORTED_BACKENDS", None)
    if args.backend:
        if supported is None:
            print(
                f"neuromem: experiment {args.experiment!r} takes no --backend "
                "(its models run where its docstring says)",
                file=sys.stderr,
            )
            return 2
        unknown = [b for b in args.backend if b not in supported]
        if unknown:
            print(
                f"neuromem: experiment {args.experiment!r} cannot run on {', '.join(unknown)} "
                f"(it runs on {', '.join(supported)})",
                file=sys.stderr,
            )
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time() - 1.0  # file times have a coarse resolution on some file systems
    summary = module.run(quick=args.quick, backends=args.backend, data=args.data, out_dir=out)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    return report(args.experiment, summary, out, _written_since(out, t0))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
