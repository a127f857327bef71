#!/bin/sh
# The paper's claim at CPU scale, over several seeds: the demo experiment (MNIST-5k, gauss_100) run for
# seeds 0 1 2 (every stage per seed), then mean ± std of linear and kNN top-1 on the noisy val digits for
# the reference rows, DINOv2, N2N + DINOv2, NC and NCT, and a bar plot with error bars.
#   sh exps/reproduce_cpu.sh [EXPERIMENT.yaml] [SEED ...]
# Output: <output_root>/runs/<name>_seeds/<noise spec>/{results.md,accuracy_seeds.png}. Re-running resumes.
set -eu
CALLER_DIR=$(pwd)
cd "$(dirname "$0")/.."
. exps/common.sh
exp=$(resolve_exp "${1:-configs/experiments/demo.yaml}")
[ $# -gt 0 ] && shift
[ -f "$exp" ] || { echo "error: experiment file not found: $exp" >&2; exit 2; }
# shellcheck disable=SC2086
"$PY" -m dinov2.run.multiseed --experiment "$exp" --seeds ${*:-0 1 2}
