#!/usr/bin/env bash
# One entry point for set-up and the two everyday jobs.
#   bash run.sh demo   create .venv, install neuromem, replay the CA3 stress testbench (results + figure)
#   bash run.sh test   create .venv, install neuromem, run the default (fast) test suite
# NEUROMEM_DATA must name the data directory (e.g. ../shared/data).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch==2.13.0 in constraints.txt resolves to the local CPU wheel; an unpinned torch would pull CUDA builds.
stamp=.venv/.neuromem-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  touch "$stamp"
fi
job=${1:-test}
shift || true
case "$job" in
  demo) exec .venv/bin/neuromem run ca3_cam "$@" ;;
  test) exec .venv/bin/python -m pytest "$@" ;;
  *) echo "usage: bash run.sh demo|test [args]" >&2; exit 2 ;;
esac
