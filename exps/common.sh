# Shared by the exps/*.sh scripts: the interpreter and the stage runner.
# Each stage is idempotent (a finished stage skips itself, an interrupted one resumes), so a re-run
# costs only what is missing. The stages of one experiment run in one Python process
# (dinov2/run/pipeline.py), which stops at the first failing stage with its message.

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

# run_stages EXPERIMENT STEP...: e.g. run_stages demo.yaml noise n2n denoise pretrain:dinov2 report
# (steps: noise n2n denoise pretrain:METHOD evaluate:METHOD:EVAL[,EVAL] report).
# resolve_exp PATH: a relative experiment path is looked up from the caller's folder first (the
# scripts cd to the repository root), then from the repository root (configs/experiments/...).
resolve_exp() {
    case $1 in
        /*) echo "$1" ;;
        *) if [ -f "${CALLER_DIR:-.}/$1" ]; then echo "${CALLER_DIR:-.}/$1"; else echo "$1"; fi ;;
    esac
}

run_stages() {
    exp=$(resolve_exp "$1")
    shift
    [ -f "$exp" ] || { echo "error: experiment file not found: $exp" >&2; exit 2; }
    # REPORT=0 drops the report step (exps/demo.sh reports once, at the end).
    if [ "${REPORT:-1}" = 0 ]; then
        steps=""
        for s in "$@"; do [ "$s" = report ] || steps="$steps $s"; done
        # shellcheck disable=SC2086
        set -- $steps
    fi
    "$PY" -m dinov2.run.pipeline --experiment "$exp" "$@" || exit 1
}

# Stages 1-3: noisy dataset, Neighbor2Neighbor denoiser, denoised dataset.
PREPARE="noise n2n denoise"

# Reference rows of every table (DESIGN.md principle 10): the same backbone untrained, and raw pixels (small
# images only), each evaluated on the noisy and on the denoised data.
REFERENCES="reference evaluate:random_init:linear,knn evaluate:random_init_denoised:linear,knn \
evaluate:pixels:linear,knn evaluate:pixels_denoised:linear,knn"
