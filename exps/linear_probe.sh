#!/bin/sh
# Linear probe comparison: DINOv2, N2N + DINOv2 and DINOv2 w/ NC, for each experiment YAML.
#   sh exps/linear_probe.sh [EXPERIMENT.yaml ...]     (default: configs/experiments/demo.yaml)
set -eu
cd "$(dirname "$0")/.."
. exps/common.sh
[ $# -gt 0 ] || set -- configs/experiments/demo.yaml
for exp in "$@"; do
    set_experiment "$exp"
    prepare_data
    for method in dinov2 n2n_dinov2 nc; do pretrain $method; done
    for method in dinov2 n2n_dinov2 nc; do evaluate $method linear knn; done
    report
done
