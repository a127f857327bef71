#!/bin/sh
# Instance retrieval (revisited Oxford/Paris, or the mini set of the demo) for every method.
#   sh exps/instance_recog.sh [EXPERIMENT.yaml ...]    (default: configs/experiments/demo.yaml)
set -eu
CALLER_DIR=$(pwd)  # experiment paths may be relative to where the script was called from
cd "$(dirname "$0")/.."
. exps/common.sh
[ $# -gt 0 ] || set -- configs/experiments/demo.yaml
for exp in "$@"; do
    # shellcheck disable=SC2086
    run_stages "$exp" $PREPARE reference evaluate:random_init:retrieval \
        pretrain:dinov2 pretrain:n2n_dinov2 pretrain:nc pretrain:nct \
        evaluate:dinov2:retrieval evaluate:n2n_dinov2:retrieval evaluate:nc:retrieval evaluate:nct:retrieval \
        report
done
