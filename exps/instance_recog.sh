#!/bin/sh
# Instance retrieval (revisited Oxford/Paris, or the mini set of the demo) for every method.
#   sh exps/instance_recog.sh [EXPERIMENT.yaml ...]    (default: configs/experiments/demo.yaml)
set -eu
cd "$(dirname "$0")/.."
. exps/common.sh
[ $# -gt 0 ] || set -- configs/experiments/demo.yaml
for exp in "$@"; do
    set_experiment "$exp"
    prepare_data
    for method in dinov2 n2n_dinov2 nc nct; do pretrain $method; done
    for method in dinov2 n2n_dinov2 nc nct; do evaluate $method retrieval; done
    report
done
