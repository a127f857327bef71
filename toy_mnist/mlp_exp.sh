#!/bin/sh
# The paper's toy MLP experiment: sh toy_mnist/mlp_exp.sh [N_REPEATS] [key=value ...] [--config FILE]
# e.g. sh toy_mnist/mlp_exp.sh 20 mnist_root=$HOME/data out=outputs/toy_mnist_full
# Keys and defaults (the authors' protocol, 20 repeats): configs/toy_mnist.yaml.
# Outputs (default outputs/toy_mnist, relative to the current folder): results.md/json, accuracy.png.
set -eu
case "${1-}" in
  '' | *=* | -*) ;;                                 # no N_REPEATS: the config's `seeds`
  *) N_REPEATS=$1; shift; set -- "seeds=$N_REPEATS" "$@" ;;
esac
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=python
[ -x "$REPO/.venv/bin/python" ] && PYTHON="$REPO/.venv/bin/python"  # the repo's venv when there is one
# the repo on the module path, so that `-m toy_mnist` resolves from any folder without an install
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m toy_mnist.mlp_exp "$@"
