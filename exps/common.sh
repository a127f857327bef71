# Shared by the exps/*.sh scripts: the interpreter, stage runner and the per-experiment stages.
# Each stage is idempotent (a finished stage skips itself), so a re-run costs only what is missing.

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

# stage NAME CMD...: run one stage; stop the script at the first failure with its name.
stage() {
    name=$1
    shift
    echo "==> [$EXP_NAME] $name"
    t0=$(date +%s)
    if ! "$@"; then
        echo "error: stage '$name' of $EXP failed (message above); fix it and re-run the script: finished stages are skipped" >&2
        exit 1
    fi
    echo "<== [$EXP_NAME] $name: $(($(date +%s) - t0)) s"
}

# experiments ARGS...: the experiment files to run (default: the embedded demo).
set_experiment() {
    EXP=$1
    [ -f "$EXP" ] || { echo "error: experiment file not found: $EXP" >&2; exit 2; }
    EXP_NAME=$(basename "$EXP" .yaml)
}

# Stages 1-3: noisy dataset, Neighbor2Neighbor denoiser, denoised dataset.
prepare_data() {
    stage "add noise" "$PY" -m utils.generate_noise --experiment "$EXP"
    stage "train Neighbor2Neighbor" "$PY" -m neighbor2neighbor.train --experiment "$EXP"
    stage "denoise" "$PY" -m neighbor2neighbor.denoise --experiment "$EXP"
}

# pretrain METHOD: stage 4 for one method (dinov2 | n2n_dinov2 | nc | nct).
pretrain() {
    stage "pretrain $1" "$PY" -m dinov2.run.pretrain --experiment "$EXP" --method "$1"
}

# evaluate METHOD EVALS...: stage 5 for one method (EVALS: linear knn retrieval).
evaluate() {
    method=$1
    shift
    stage "evaluate $method ($*)" "$PY" -m dinov2.run.evaluate --experiment "$EXP" --method "$method" "$@"
}

# report: the results table and figures (REPORT=0 skips it, e.g. when exps/demo.sh reports once at the end).
report() {
    [ "${REPORT:-1}" = 0 ] && return 0
    stage "report" "$PY" -m dinov2.run.report --experiment "$EXP" "$@"
}
