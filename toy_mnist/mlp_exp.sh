#!/bin/sh
# The paper's toy MLP experiment: sh toy_mnist/mlp_exp.sh [N_REPEATS] [more toy_mnist.mlp_exp options]
# e.g. sh toy_mnist/mlp_exp.sh 20 --mnist-root ~/data --out outputs/toy_mnist_full
# Outputs (default outputs/toy_mnist, relative to the current folder): results.md/json, accuracy.png.
set -eu
N_REPEATS=${1:-20}
[ $# -gt 0 ] && shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=python
[ -x "$REPO/.venv/bin/python" ] && PYTHON="$REPO/.venv/bin/python"  # the repo's venv when there is one
# the repo on the module path, so that `-m toy_mnist` resolves from any folder without an install
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m toy_mnist.mlp_exp --seeds "$N_REPEATS" "$@"
