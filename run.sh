#!/usr/bin/env bash
# One entry point for set-up and the two everyday jobs.
#   bash run.sh demo   create .venv, install neuromem, run the CA3 memory demo (no data needed;
#                      with the authors' recordings in $NEUROMEM_DATA it also replays them);
#                      results + figure in ./neuromem-results
#   bash run.sh test   create .venv, install neuromem, run the default (fast) test suite
#   bash run.sh extras install the optional peers: Lava, PyNN + NEST + sPyNNaker, NIR + Norse,
#                      snnTorch + SpikingJelly (their tests are skipped, with a reason, without them)
#   bash run.sh bench  run every benchmark in benchmarks/ (results in benchmarks/results/)
# NEUROMEM_DATA names the data directory (datasets, the authors' recordings) where one is needed.
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
  # the editable-install notice about folder names is not a packaging warning: keep it quiet
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  touch "$stamp"
fi
job=${1:-test}
shift || true
case "$job" in
  demo) exec .venv/bin/neuromem run demo "$@" ;;
  test) exec .venv/bin/python -m pytest "$@" ;;
  extras)
    pip=(.venv/bin/python -m pip install -q -c constraints.txt)
    "${pip[@]}" -e '.[dev,hardware,bench]'
    # spikingjelly 2.0 declares torchaudio and tensorboard, which its torch backend does not use
    # (and torchaudio would replace the CPU torch); lava-nc 0.10 declares Python < 3.11 and
    # numpy < 2: neuromem.hardware._lava_compat makes it import on 3.11, and the parts
    # neuromem uses run with numpy 2.3 (tests/test_hardware_lava.py).
    "${pip[@]}" --no-deps spikingjelly==2.0.0
    "${pip[@]}" --no-deps --ignore-requires-python lava-nc==0.10.0
    ;;
  bench)
    for b in cuba snn_training hopfield_retrieval glauber_spins elm_forward_backward sparsey; do
      echo "== benchmarks/$b.py $*"
      .venv/bin/python "benchmarks/$b.py" "$@"
    done
    ;;
  *) echo "usage: bash run.sh demo|test|extras|bench [args]" >&2; exit 2 ;;
esac
