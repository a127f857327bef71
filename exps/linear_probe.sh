#!/bin/sh
# Linear probe comparison: DINOv2, N2N + DINOv2 and DINOv2 w/ NC, for each experiment YAML.
#   sh exps/linear_probe.sh [EXPERIMENT.yaml ...]     (default: configs/experiments/demo.yaml)
set -eu
CALLER_DIR=$(pwd)  # experiment paths may be relative to where the script was called from
cd "$(dirname "$0")/.."
. exps/common.sh
[ $# -gt 0 ] || set -- configs/experiments/demo.yaml
for exp in "$@"; do
    # shellcheck disable=SC2086
    run_stages "$exp" $PREPARE $REFERENCES \
        pretrain:dinov2 pretrain:n2n_dinov2 pretrain:nc \
        evaluate:dinov2:linear,knn evaluate:n2n_dinov2:linear,knn evaluate:nc:linear,knn sweep \
        report
done
