#!/bin/sh
# The embedded default experiment end to end: the three scripts on configs/experiments/demo.yaml,
# then one table (linear probe, kNN, mini-retrieval mAP for the four methods) and the figures.
#   sh exps/demo.sh [EXPERIMENT.yaml]
set -eu
CALLER_DIR=$(pwd)  # experiment paths may be relative to where the script was called from
cd "$(dirname "$0")/.."
. exps/common.sh
EXP=$(resolve_exp "${1:-configs/experiments/demo.yaml}")
REPORT=0 sh exps/linear_probe.sh "$EXP"
REPORT=0 sh exps/linear_probe_nct.sh "$EXP"
REPORT=0 sh exps/instance_recog.sh "$EXP"
run_stages "$EXP" report
