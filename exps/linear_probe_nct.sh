#!/bin/sh
# DINOv2 w/ NCT (noise curriculum + teacher-anchored regularizer), reusing every finished stage.
#   sh exps/linear_probe_nct.sh [EXPERIMENT.yaml ...]  (default: configs/experiments/demo.yaml)
set -eu
cd "$(dirname "$0")/.."
. exps/common.sh
[ $# -gt 0 ] || set -- configs/experiments/demo.yaml
for exp in "$@"; do
    set_experiment "$exp"
    prepare_data
    pretrain n2n_dinov2   # NCT branches off its switch-epoch checkpoint
    pretrain nct
    evaluate nct linear knn
    report
done
