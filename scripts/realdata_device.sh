#!/usr/bin/env bash
# The paper-width real-data rows (and the variant rows) rerun on one GPU in calls of a few minutes,
# resumable across calls and machines: scripts/realdata_paper_width.sh, driven detached.
#
#   bash scripts/realdata_device.sh start          # returns at once; the rows train in the background
#   bash scripts/realdata_device.sh poll SECONDS   # waits until they finish or SECONDS pass, then packs $OUT
#
# start (again on a warm machine: nothing new is started) installs the carried wheels, restores
# a carried state, builds the mamba-ssm and causal-conv1d kernels for this GPU
# (scripts/gpu-setup.sh) beside the first rows, starts NVIDIA's MPS and runs ROWS, P rows at once,
# each with its five folds in their own processes, all detached (setsid) so that the call may end.
# poll writes into $OUT:
#   results.tgz   finished rows: out/<row>/runs/*.json, out/<row>/predictions/*, commands.jsonl, cohorts.json
#   state.tgz     every finished fold (checkpoints left out) and finished row, for a later call on
#                 another machine: put it at $CARRY/state/state.tgz and run start again
#   progress.txt  rows finished, folds finished per row, kernels, time since the first start
#   logs.tgz      the logs
# Environment:
#   CARRY   folder with deps/*.whl (lifelines, autograd, autograd-gamma), sdist/ (mamba_ssm-2.3.2.post1.tar.gz,
#           causal_conv1d-1.7.0.tar.gz), realdata/ (tcga/ and kegg/ of the data root) and, optionally,
#           state/state.tgz (default: .carry beside scripts/)
#   W       scratch folder (default /tmp/rdw);  DEADLINE  seconds from the first start after which no
#           row starts and running rows are stopped (finished folds are kept; on the same machine a
#           fold cut short resumes from its last epoch's checkpoint, on another it starts again) (default 3000)
#   P, FOLD_WORKERS, EPOCHS, DEVICE, GRAPHS, EXTRA, PY: as in scripts/realdata_paper_width.sh (P=3, 5)
#   KERNELS_BUILD  1 (default): build the kernels when they do not import; SurvMamba-RNA rows wait for
#           them and are skipped if the build fails. 0: no build, no wait (a CPU test).
#   ROWS    "cohort:model ..." in priority order (default below: SNN, BRCA's SNNTrans with its variant,
#           the other SNNTrans rows, then SurvMamba-RNA bidirectional and forward-only)
set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY=${CARRY:-$REPO/.carry}
W=${W:-/tmp/rdw}
PY=${PY:-python3}
KERNELS_BUILD=${KERNELS_BUILD:-1}
# the rows with a paper number first (SNN, SNNTrans: the comparison with the paper and its optimism gap),
# BRCA's SNNTrans beside its variant, then SurvMamba-RNA (which waits for the kernels anyway)
DEFAULT_ROWS="brca:snn luad:snn blca-porpoise:snn blca:snn coadread:snn brca:snntrans-radam-decoupled brca:snntrans"
DEFAULT_ROWS="$DEFAULT_ROWS luad:snntrans blca-porpoise:snntrans blca:snntrans coadread:snntrans"
for m in survmamba-rna survmamba-rna-uni; do for c in brca luad blca-porpoise blca coadread; do
    DEFAULT_ROWS="$DEFAULT_ROWS $c:$m"; done; done
ROWS=${ROWS:-$DEFAULT_ROWS}
export PYTHONPATH=/tmp/site:$REPO${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1

progress() {
    local now; now=$(date +%s)
    echo "time since the first start: $(( now - $(cat "$W/first_start" 2>/dev/null || echo "$now") )) s"
    echo "kernels: $(ls "$W"/kernels.* 2>/dev/null | sed 's/.*kernels\.//' | tr '\n' ' ')"
    for r in $ROWS; do
        local c=${r%%:*} m=${r#*:} row
        row="${c}__$m"
        if [ -f "$W/out/$row/runs/$row.json" ]; then echo "$row: done"
        else echo "$row: $(ls "$W"/runs/"$c"/"$m"/fold_*/DONE 2>/dev/null | wc -l) of 5 folds"; fi
    done
    echo "cox: $(ls "$W"/out/cox/runs/*.json 2>/dev/null | wc -l) cohorts"
    [ -f "$W/finished" ] && echo "runner finished: $(cat "$W/finished")"
    tail -n 3 "$W/gpu.txt" 2>/dev/null
}

case "${1:-}" in
start)
    mkdir -p "$W/logs"
    if [ -f "$W/runner.pid" ] && kill -0 "$(cat "$W/runner.pid")" 2>/dev/null; then
        echo "the rerun is running (pid $(cat "$W/runner.pid")); poll it"; exit 0
    fi
    [ -f "$W/first_start" ] || date +%s > "$W/first_start"
    if ls "$CARRY"/deps/*.whl > /dev/null 2>&1; then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$CARRY"/deps/*.whl || { echo "could not install $CARRY/deps/*.whl"; exit 2; }
    fi
    $PY -c "import survmamba_lite.realdata" || { echo "survmamba_lite does not import; see above"; exit 2; }
    if [ -f "$CARRY/state/state.tgz" ] && [ ! -f "$W/restored" ]; then
        tar -xzf "$CARRY/state/state.tgz" -C "$W" && touch "$W/restored" && echo "state restored from $CARRY/state"
    fi
    rm -f "$W/finished"
    setsid nohup bash "$REPO/scripts/realdata_device.sh" _run > "$W/logs/runner.txt" 2>&1 < /dev/null &
    echo $! > "$W/runner.pid"
    echo "started (pid $!); rows: $ROWS"
    ;;
_run)
    rm -f "$W"/kernels.*
    if [ "$KERNELS_BUILD" = 1 ]; then
        if $PY -c "import mamba_ssm, causal_conv1d" 2> /dev/null; then touch "$W/kernels.ok"
        else
            ( cd "$W" && SDIST_DIR="$CARRY/sdist" PYTHON=$PY bash "$REPO/scripts/gpu-setup.sh" \
                  > "$W/logs/kernels.txt" 2>&1 && touch "$W/kernels.ok" || touch "$W/kernels.failed" ) &
        fi
        KERNELS="$W/kernels"
    else
        KERNELS=""
    fi
    logger=""
    if command -v nvidia-smi > /dev/null; then
        ( while sleep 30; do echo "$(date +%T) $(nvidia-smi --query-gpu=utilization.gpu,memory.used \
              --format=csv,noheader 2>/dev/null)"; done >> "$W/gpu.txt" 2>&1 ) &
        logger=$!
    fi
    FIRST=$(cat "$W/first_start")
    DEADLINE_LEFT=$(( ${DEADLINE:-3000} - ($(date +%s) - FIRST) ))
    DATA="$CARRY/realdata" W="$W" DEADLINE=$DEADLINE_LEFT P=${P:-3} FOLD_WORKERS=${FOLD_WORKERS:-5} MPS=${MPS:-1} \
        ROWS="$ROWS" KERNELS="$KERNELS" PY=$PY bash "$REPO/scripts/realdata_paper_width.sh" > "$W/logs/rows.txt" 2>&1
    [ -n "$logger" ] && kill "$logger" 2> /dev/null
    date +"%F %T" > "$W/finished"
    ;;
poll)
    limit=${2:?poll SECONDS}
    out=${OUT:?OUT: the folder that comes back}
    t0=$(date +%s)
    while [ $(( $(date +%s) - t0 )) -lt "$limit" ] && [ ! -f "$W/finished" ]; do sleep 5; done
    progress | tee "$out/progress.txt"
    files=$(cd "$W" && ls -d out/*/runs out/*/predictions out/*/commands.jsonl out/*/cohorts.json 2>/dev/null)
    if [ -n "$files" ]; then (cd "$W" && tar -czf "$out/results.tgz" $files); else echo "no finished row yet"; fi
    files=$(cd "$W" && ls -d runs out eager 2>/dev/null)
    [ -n "$files" ] && (cd "$W" && tar -czf "$out/state.tgz" --exclude='*.pt' --exclude='*.tmp' $files)
    (cd "$W" && tar -czf "$out/logs.tgz" $(ls -d logs gpu.txt 2>/dev/null))
    ls -la "$out"
    ;;
*)
    echo "usage: bash scripts/realdata_device.sh start | poll SECONDS"; exit 2
    ;;
esac
