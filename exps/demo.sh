#!/bin/sh
# The embedded default experiment end to end (stages that exist so far).
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m utils.generate_noise --experiment configs/experiments/demo.yaml "$@"
