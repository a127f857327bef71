#!/bin/sh
# Submit the ImageNet-1k pipeline to slurm as dependent jobs, for each experiment YAML.
#   sh exps/imagenet1k_slurm.sh [EXPERIMENT.yaml ...] -- [launcher flags: --partition P --account A --qos Q --constraint C]
# (default experiments: configs/experiments/imagenet1k/*.yaml). Jobs requeue on preemption/time-out
# and resume from their last checkpoint; a job whose stage is already finished exits at once.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

exps=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do exps="$exps $1"; shift; done
[ $# -gt 0 ] && shift   # what follows "--" goes to every submission
[ -n "$exps" ] || exps=$(ls configs/experiments/imagenet1k/*.yaml)

# submit ENTRY GPUS DEPENDENCY ARGS...: prints the job id
submit() {
    entry=$1; gpus=$2; dep=$3; shift 3
    "$PY" -m dinov2.run.submit "$entry" --ngpus "$gpus" ${dep:+--dependency afterok:$dep} "$@"
}

for exp in $exps; do
    ngpus=$("$PY" -c "import sys; from utils.config import load_experiment; print(load_experiment(sys.argv[1]).pretrain.ngpus)" "$exp")
    noise=$(submit noise 0 "" "$@" --experiment "$exp")
    n2n=$(submit n2n_train 1 "$noise" "$@" --experiment "$exp")
    den=$(submit denoise 1 "$n2n" "$@" --experiment "$exp")
    base=$(submit pretrain "$ngpus" "$noise" "$@" --experiment "$exp" --method dinov2)
    n2nd=$(submit pretrain "$ngpus" "$den" "$@" --experiment "$exp" --method n2n_dinov2)
    # NC and NCT branch off the N2N + DINOv2 run at pretrain.switch_epoch, but NCT's frozen teacher is that
    # run's checkpoint at anchor.epoch (the paper's ImageNet-1k: its final one), so NCT depends on the
    # whole job finishing (afterok), and the pretrain stage refuses to start NCT while that checkpoint is missing.
    nc=$(submit pretrain "$ngpus" "$n2nd" "$@" --experiment "$exp" --method nc)
    nct=$(submit pretrain "$ngpus" "$n2nd" "$@" --experiment "$exp" --method nct)
    for pair in dinov2:$base n2n_dinov2:$n2nd nc:$nc nct:$nct; do
        submit evaluate 1 "${pair#*:}" "$@" --experiment "$exp" --method "${pair%%:*}" linear knn
    done
    echo "submitted $exp: noise $noise, n2n $n2n, denoise $den, pretrain $base $n2nd $nc $nct"
done
