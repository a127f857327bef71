#!/bin/sh
# DINOv2 w/ NCT (noise curriculum + teacher-anchored regularizer), reusing every finished stage.
#   sh exps/linear_probe_nct.sh [EXPERIMENT.yaml ...]  (default: configs/experiments/demo.yaml)
set -eu
CALLER_DIR=$(pwd)  # experiment paths may be relative to where the script was called from
cd "$(dirname "$0")/.."
. exps/common.sh
[ $# -gt 0 ] || set -- configs/experiments/demo.yaml
for exp in "$@"; do
    # NCT branches off the N2N + DINOv2 run's switch-epoch checkpoint.
    # shellcheck disable=SC2086
    run_stages "$exp" $PREPARE $REFERENCES pretrain:n2n_dinov2 pretrain:nct evaluate:nct:linear,knn sweep report
done
