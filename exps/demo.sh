#!/bin/sh
# The embedded default experiment end to end: the three scripts on configs/experiments/demo.yaml,
# then one table (linear probe, kNN, mini-retrieval mAP for the four methods) and the figures.
set -eu
cd "$(dirname "$0")/.."
EXP=${1:-configs/experiments/demo.yaml}
sh exps/linear_probe.sh "$EXP"
sh exps/linear_probe_nct.sh "$EXP"
sh exps/instance_recog.sh "$EXP"
