#!/usr/bin/env bash
# The paper-width real-data rerun (results/real_data/paper_width) on one GPU host, in time slots.
#
#   DATA=/path/with/tcga+kegg W=/scratch/rw DEADLINE=560 P=20 bash scripts/realdata_paper_width.sh
#
# MPS=1 starts NVIDIA's multi-process service for the run (kernels of different processes
# then share the GPU at once instead of taking turns; it changes no device setting and is
# stopped at the end) when nvidia-cuda-mps-control is present.
#
# FOLD_WORKERS=N trains the folds of each (cohort, model) N at a time, one process each (the
# same results as one after another), so that a large cohort's five folds do not run in series.
#
# One process per (cohort, model), P at a time, longest first, each trained with CUDA graphs
# (the same steps as eager training, fewer kernel launches) and fp32; the Cox reference runs
# on the CPU beside them. Every job stops when DEADLINE seconds have passed since the start
# (`timeout`); the folds it finished stay in W/runs and the same command resumes the rest
# (a fold that was cut short starts again). A job whose graphed run fails for another reason
# than the deadline is run again eagerly in W/eager (logged as such). Finished jobs write
# W/out/<cohort>__<model>/runs/<cohort>__<model>.json and its evidence under predictions/; collect
# them with scripts/realdata_ingest.py (or copy runs/ and predictions/ and rebuild the tables with
# realdata.write_genomic_table('results/real_data/paper_width')).
# Settings are those of realdata.PAPER_MODELS (fixed before any validation fold was seen),
# 20 epochs, the published folds, seed 0; realdata.PAPER_VARIANTS are the variant rows.
#
# ROWS="cohort:model ..." runs those rows in that order instead of every MODELS x COHORTS pair.
# KERNELS=path: a SurvMamba-RNA row waits until path.ok (the mamba-ssm and causal-conv1d kernels
# are installed) and is skipped, logged, when path.failed appears: the committed rows trained with
# those kernels. EXTRA="..." adds options to every row's command (e.g. a smoke test's --dim 16).
set -u
: "${DATA:?DATA: the folder holding tcga/ and kegg/}" "${W:?W: a scratch folder}"
DEADLINE=${DEADLINE:-3600}; P=${P:-20}; EPOCHS=${EPOCHS:-20}; PY=${PY:-python3}; FOLD_WORKERS=${FOLD_WORKERS:-1}
DEVICE=${DEVICE:-cuda}; GRAPHS=${GRAPHS---cuda-graphs}           # GRAPHS= (empty) trains eagerly
COHORTS=${COHORTS:-"brca luad blca-porpoise blca coadread"}           # largest first
KERNELS=${KERNELS:-}; EXTRA=${EXTRA:-}
MODELS=${MODELS:-"survmamba-rna survmamba-rna-uni snntrans snn"}     # slowest first
START=$(date +%s)
mkdir -p "$W/logs" "$W/out"
if [ "${MPS:-0}" = 1 ] && command -v nvidia-cuda-mps-control > /dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY="$W/mps/pipe" CUDA_MPS_LOG_DIRECTORY="$W/mps/log"
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    nvidia-cuda-mps-control -d && echo "MPS started" && trap 'echo quit | nvidia-cuda-mps-control; echo "MPS stopped"' EXIT
    # MPS clients number the daemon's GPUs from 0 (CUDA_VISIBLE_DEVICES=1 would leave the jobs no GPU)
    if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
        n=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
        export CUDA_VISIBLE_DEVICES=$(seq -s, 0 $(( n - 1 ))); echo "MPS: the jobs see GPUs $CUDA_VISIBLE_DEVICES"
    fi
fi
# imports once, before the jobs share them
$PY - "$DATA" "$W" $COHORTS <<'EOF'
import sys
from survmamba_lite.realdata import COHORTS, import_cohort
data, work, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
for k in keys:
    import_cohort(COHORTS[k], data, f"{work}/cohorts")
EOF

job() {  # job COHORT MODEL
    local c=$1 m=$2 left rc
    [ -f "$W/out/${c}__$m/runs/${c}__$m.json" ] && { echo "[$c $m] done before"; return 0; }
    if [ -n "${KERNELS:-}" ] && [ "${m#survmamba}" != "$m" ]; then
        while [ ! -e "$KERNELS.ok" ] && [ ! -e "$KERNELS.failed" ]; do
            [ $(( DEADLINE - ($(date +%s) - START) )) -le 20 ] && break; sleep 5
        done
        [ -e "$KERNELS.ok" ] || { echo "[$c $m] skipped: the mamba-ssm kernels are not installed"; return 0; }
    fi
    left=$(( DEADLINE - ($(date +%s) - START) ))
    [ "$left" -le 20 ] && { echo "[$c $m] no time left"; return 0; }
    local args=(-m survmamba_lite.realdata --data-root "$DATA" --out "$W/out/${c}__$m" --cohorts "$c"
                --models "$m" --paper-dims --epochs "$EPOCHS" --device "$DEVICE" --threads 1 --no-slides --n-boot 1000
                --fold-workers "$FOLD_WORKERS" ${EXTRA:-})
    if [ -f "$W/eager/${c}__$m" ]; then
        timeout "$left" $PY "${args[@]}" --work "$W/eager" >> "$W/logs/${c}__$m.eager.txt" 2>&1; rc=$?
    else
        timeout "$left" $PY "${args[@]}" --work "$W" $GRAPHS >> "$W/logs/${c}__$m.txt" 2>&1; rc=$?
        if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then
            echo "[$c $m] graphed run failed (rc $rc); running it eagerly"; mkdir -p "$W/eager"; touch "$W/eager/${c}__$m"
            left=$(( DEADLINE - ($(date +%s) - START) ))
            timeout "$left" $PY "${args[@]}" --work "$W/eager" >> "$W/logs/${c}__$m.eager.txt" 2>&1; rc=$?
        fi
    fi
    echo "[$c $m] rc $rc after $(( $(date +%s) - START )) s"
}
export -f job; export DATA W DEADLINE START EPOCHS PY DEVICE GRAPHS FOLD_WORKERS KERNELS EXTRA

# the Cox reference on the CPU (skipped when every cohort's row exists)
todo=""; for c in $COHORTS; do [ -f "$W/out/cox/runs/${c}__cox.json" ] || todo="$todo $c"; done
[ -n "$todo" ] && ( left=$(( DEADLINE - ($(date +%s) - START) ))
  timeout "$left" $PY -m survmamba_lite.realdata --data-root "$DATA" --work "$W" --out "$W/out/cox" --paper-dims \
      --no-slides --cohorts $todo --models cox ${EXTRA:-} >> "$W/logs/cox.txt" 2>&1
  echo "[cox] rc $? after $(( $(date +%s) - START )) s" ) &
if [ -n "${ROWS:-}" ]; then
    for r in $ROWS; do echo "${r%%:*} ${r#*:}"; done
else
    for m in $MODELS; do for c in $COHORTS; do echo "$c $m"; done; done
fi | xargs -P "$P" -n 2 bash -c 'job "$0" "$1"'
wait
echo "all jobs stopped after $(( $(date +%s) - START )) s"
