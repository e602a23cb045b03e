#!/usr/bin/env bash
# Run a long command across several short calls on a machine that stays up between them
# (a GPU host reached through calls of at most a few minutes each).
#
#   bash scripts/background.sh start NAME -- COMMAND [ARGS...]   # start it detached (setsid), return at once
#   bash scripts/background.sh wait NAME SECONDS                 # follow its log until it ends or SECONDS pass
#   bash scripts/background.sh status NAME                       # running / exit status, and the log's tail
#
# The command runs in its own session, so it survives the end of the call that started it;
# its output goes to $BG_DIR/NAME.log (default /tmp/bg) and its exit status to NAME.rc when it
# ends. `wait` prints the log lines written since the last `wait` and exits 0 when the command
# has ended with status 0, 1 when it ended with another status (printed), and 3 while it still
# runs ("call again"). Example, a paper-scale run that outlasts one 10-minute call:
#
#   bash scripts/background.sh start blca -- python benchmarks/fullscale.py --mode survmamba-blca ...
#   bash scripts/background.sh wait blca 560     # this call
#   bash scripts/background.sh wait blca 560     # the next call, while the machine is still up
set -u
BG_DIR=${BG_DIR:-/tmp/bg}
mkdir -p "$BG_DIR"
action=${1:-}; name=${2:-}
[ -n "$action" ] && [ -n "$name" ] || { sed -n '2,9p' "$0" >&2; exit 2; }
case "$name" in *[!A-Za-z0-9_.-]*) echo "background.sh: NAME may hold letters, digits, '_', '.', '-' only: $name" >&2; exit 2;; esac
log="$BG_DIR/$name.log"; rcf="$BG_DIR/$name.rc"; pidf="$BG_DIR/$name.pid"; seen="$BG_DIR/$name.seen"

running() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2> /dev/null && [ ! -f "$rcf" ]; }

case "$action" in
start)
    shift 2; [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || { echo "background.sh start: give the command after --" >&2; exit 2; }
    if running; then echo "background.sh: $name is already running (pid $(cat "$pidf")); use wait" >&2; exit 2; fi
    rm -f "$rcf" "$seen"; : > "$log"
    # the wrapper writes the exit status when the command ends, whatever ends the calling shell
    setsid bash -c '"$@" >> "$0" 2>&1; echo $? > "$0.rc.tmp" && mv "$0.rc.tmp" "${0%.log}.rc"' "$log" "$@" < /dev/null &
    echo $! > "$pidf"
    echo "started $name (pid $!), log $log"
    ;;
wait|status)
    [ -f "$pidf" ] || { echo "background.sh: no job named $name in $BG_DIR" >&2; exit 2; }
    limit=${3:-0}; start=$(date +%s)
    while running && [ $(( $(date +%s) - start )) -lt "$limit" ]; do sleep 5; done
    if [ "$action" = wait ]; then
        from=$(( $(cat "$seen" 2> /dev/null || echo 0) + 1 )); total=$(wc -l < "$log")
        tail -n +"$from" "$log" | head -n "$(( total - from + 1 ))"; echo "$total" > "$seen"
    else
        tail -n 20 "$log"
    fi
    if [ -f "$rcf" ]; then
        rc=$(cat "$rcf"); echo "[$name ended with status $rc after the log above]"
        [ "$rc" = 0 ] && exit 0 || exit 1
    fi
    if running; then echo "[$name still running: call wait again]"; exit 3; fi
    echo "[$name is gone without an exit status (killed with its machine?)]"; exit 1
    ;;
*) echo "background.sh: unknown action $action (start, wait, status)" >&2; exit 2 ;;
esac
