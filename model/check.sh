#!/usr/bin/env bash
# Model-checks model/lifecycle.pml with SPIN: every property, exhaustively.
#
#   model/check.sh            every property of the model (what CI runs)
#   model/check.sh --broken   each deliberately broken variant against the property it
#                             must violate; fails unless every one is caught, and
#                             prints the counterexample of each
#
# Needs `spin` (Debian/Ubuntu: apt-get install spin) and gcc; installs nothing itself.
# pan exits 0 even when it finds a violation, so this script reads its output: a
# property fails on an error count other than 0, on a trail file, on a truncated
# search (depth limit, memory limit, out of memory), on missing statistics or on a
# nonzero exit. Everything is built in a temporary directory, never in the repo.
# MODEL_JOBS (default 2) pan searches run at a time. See docs/model.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
jobs=${MODEL_JOBS:-2}
mode=check
case "${1:-}" in
"") ;;
--broken) mode=broken ;;
-h | --help)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "model/check.sh: unknown argument '$1' (use --broken or nothing)" >&2
    exit 2
    ;;
esac

missing=()
command -v spin >/dev/null 2>&1 || missing+=("spin (Debian/Ubuntu: apt-get install spin)")
command -v gcc >/dev/null 2>&1 || missing+=("gcc (Debian/Ubuntu: apt-get install gcc)")
if ((${#missing[@]})); then
    printf 'model/check.sh: missing %s\n' "${missing[@]}" >&2
    echo "model/check.sh: nothing was checked; install the tools above and re-run" >&2
    exit 2
fi

# pan's limits: a depth bound far above the model's longest path (each search must
# stay below it: "max search depth too small" fails the run) and a memory bound (MB).
depth=${MODEL_DEPTH:-10000}
memlim=${MODEL_MEMLIM:-4096}
# COLLAPSE: lossless state compression. NFAIR: weak fairness over the model's 10
# processes (pan's default, 2, takes fewer).
cflags=(-O2 -DCOLLAPSE -DNFAIR=4 "-DMEMLIM=$memlim")

work=$(mktemp -d "${TMPDIR:-/tmp}/ws-lifecycle-model.XXXXXX")
trap 'rm -rf "$work"' EXIT

# build DIR KINDS [spin -D flags...]: generates pan.c for the model in DIR and
# compiles the verifiers KINDS (a comma list): safety (-DSAFETY: never claims of
# safety properties), liveness (acceptance cycles, -a -f), deadlock (-DSAFETY
# -DNOCLAIM: invalid end states and assertions), and bfs / bfs_deadlock
# (breadth-first, for the shortest counterexamples).
build() {
    local dir=$1 kinds=$2
    shift 2
    mkdir -p "$dir"
    cp "$here/lifecycle.pml" "$dir/"
    cp -r "$here/generated" "$dir/"
    (
        cd "$dir"
        spin -a "$@" lifecycle.pml >spin.log 2>&1 || {
            cat spin.log >&2
            exit 1
        }
        pids=()
        for kind in ${kinds//,/ }; do
            case $kind in
            liveness) gcc "${cflags[@]}" -o pan_liveness pan.c & ;;
            safety) gcc "${cflags[@]}" -DSAFETY -o pan_safety pan.c & ;;
            deadlock) gcc "${cflags[@]}" -DSAFETY -DNOCLAIM -o pan_deadlock pan.c & ;;
            bfs) gcc "${cflags[@]}" -DSAFETY -DBFS -o pan_bfs pan.c & ;;
            bfs_deadlock) gcc "${cflags[@]}" -DSAFETY -DBFS -DNOCLAIM -o pan_bfs_deadlock pan.c & ;;
            *)
                echo "unknown verifier kind $kind" >&2
                exit 1
                ;;
            esac
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid"; done
    ) || {
        echo "model/check.sh: building the model in $dir failed" >&2
        return 1
    }
}

# pan_args KIND NAME: the search's command line.
pan_args() {
    case $1 in
    safety) echo "./pan_safety -m$depth -N $2" ;;
    liveness) echo "./pan_liveness -a -f -m$depth -N $2" ;;
    deadlock) echo "./pan_deadlock -m$depth" ;;
    bfs) echo "./pan_bfs -N $2" ;;
    bfs_deadlock) echo "./pan_bfs_deadlock" ;;
    esac
}

# search BUILD KIND NAME RUN: one pan search of the verifier built in BUILD, run in
# its own directory RUN (so that a trail file belongs to exactly one search); its
# output goes to RUN/out.
search() {
    local build=$1 kind=$2 name=$3 run=$4 status=0 start=$SECONDS
    mkdir -p "$run"
    cp "$build"/pan_* "$run/"
    # shellcheck disable=SC2046
    (cd "$run" && $(pan_args "$kind" "$name")) >"$run/out" 2>&1 || status=$?
    echo "exit status: $status" >>"$run/out"
    echo "seconds: $((SECONDS - start))" >>"$run/out"
}

# verdict RUN: "ok", or why the search does not prove the property.
verdict() {
    local run=$1 out=$1/out errors
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | tail -1)
    if [[ -z $errors ]]; then
        echo "no error count in pan's output"
    elif ((errors != 0)); then
        echo "$errors error(s)"
    elif compgen -G "$run/*.trail" >/dev/null; then
        echo "a trail file was written"
    elif grep -qE "max search depth too small|depth limit reached" "$out"; then
        echo "search truncated: depth limit $depth reached (raise MODEL_DEPTH)"
    elif grep -qiE "out of memory|MEMLIM|memory limit" "$out"; then
        echo "search truncated: memory limit (MODEL_MEMLIM=$memlim MB)"
    elif grep -q "Search not completed" "$out"; then
        echo "search not completed"
    elif ! grep -q "^exit status: 0$" "$out"; then
        echo "pan $(grep '^exit status' "$out")"
    elif ! grep -qE "^ *[0-9.e+]+ states, stored" "$out"; then
        echo "no state count in pan's output"
    else
        echo ok
    fi
}

# summary RUN: states stored, transitions, depth, seconds.
summary() {
    local out=$1/out states transitions depth_reached secs
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out" | tail -1)
    transitions=$(sed -n 's/^ *\([0-9.e+]*\) transitions.*/\1/p' "$out" | tail -1)
    depth_reached=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$out" | tail -1)
    secs=$(sed -n 's/^seconds: //p' "$out")
    printf '%10s states stored  %10s transitions  depth %4s  %3s s' \
        "${states:-?}" "${transitions:-?}" "${depth_reached:-?}" "${secs:-?}"
}

# The properties: name, kind. The names are the ltl names in lifecycle.pml, except
# g1_g3_no_invalid_end_state, a search without a claim (deadlocks and the monitor's
# assertion). The slowest first, so that two runners finish together.
properties=(
    "g3_g5_close_terminates liveness"
    "g3_no_data_after_close safety"
    "g5_deadline_one_winner safety"
    "g5_readiness_deadline liveness"
    "g3_accounting safety"
    "g4_single_close safety"
    "g2_ready_gating safety"
    "no_invalid_end_state deadlock"
)

# The broken variants: -D flag, the property it must violate, its kind.
breaks=(
    "BREAK_G3_SEND_WHILE_CLOSING g3_no_data_after_close safety"
    "BREAK_G3_DROP_UNSENT g3_accounting safety"
    "BREAK_G4_SECOND_CLOSE g4_single_close safety"
    "BREAK_G4_OVERWRITE g4_single_close safety"
    "BREAK_G2_LATE_FLUSH g2_ready_gating safety"
    "BREAK_G5_RACE g5_deadline_one_winner safety"
    "BREAK_G3G5_IGNORED_CLOSE_TIMER g3_g5_close_terminates liveness"
    "BREAK_G5_IGNORED_TIMER g5_readiness_deadline liveness"
    "BREAK_DEADLOCK no_invalid_end_state deadlock"
)

# run_pool ITEM...: runs the searches "build kind name run", $jobs at a time.
run_pool() {
    local running=0 item
    for item in "$@"; do
        # shellcheck disable=SC2086
        search $item &
        running=$((running + 1))
        if ((running >= jobs)); then
            wait -n
            running=$((running - 1))
        fi
    done
    wait
}

start=$SECONDS
if [[ $mode == check ]]; then
    echo "==> model: building $here/lifecycle.pml (spin $(spin -V | sed -n 's/Spin Version \([0-9.]*\).*/\1/p'))"
    build "$work/model" safety,liveness,deadlock
    queue=()
    for p in "${properties[@]}"; do
        read -r name kind <<<"$p"
        queue+=("$work/model $kind $name $work/run/$name")
    done
    run_pool "${queue[@]}"
    failed=0
    for p in "${properties[@]}"; do
        read -r name kind <<<"$p"
        v=$(verdict "$work/run/$name")
        printf '%-24s %-8s %s  %s\n' "$name" "$kind" "$(summary "$work/run/$name")" "$v"
        if [[ $v != ok ]]; then
            failed=1
            echo "---- pan output for $name ----" >&2
            cat "$work/run/$name/out" >&2
        fi
    done
    if ((failed)); then
        echo "==> model: FAILED ($((SECONDS - start)) s)" >&2
        exit 1
    fi
    echo "==> model: every property holds ($((SECONDS - start)) s)"
    exit 0
fi

# --broken: each variant must violate its property, with a trail. Safety properties
# and deadlocks are searched breadth-first, so their counterexamples are the
# shortest there are; liveness ones depth-first with -a -f (a lasso).
kind_of() {
    case $1 in
    safety) echo bfs ;;
    deadlock) echo bfs_deadlock ;;
    *) echo "$1" ;;
    esac
}
echo "==> model --broken: building ${#breaks[@]} broken variants"
for b in "${breaks[@]}"; do
    read -r flag _ kind <<<"$b"
    build "$work/$flag" "$(kind_of "$kind")" "-D$flag" &
    if (($(jobs -rp | wc -l) >= jobs)); then wait -n; fi
done
wait
queue=()
for b in "${breaks[@]}"; do
    read -r flag name kind <<<"$b"
    queue+=("$work/$flag $(kind_of "$kind") $name $work/run/$flag")
done
run_pool "${queue[@]}"
failed=0
for b in "${breaks[@]}"; do
    read -r flag name kind <<<"$b"
    run=$work/run/$flag
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$run/out" | tail -1)
    if [[ ${errors:-0} -ge 1 ]] && compgen -G "$run/*.trail" >/dev/null; then
        echo "==> $flag violates $name ($kind): $(sed -n 's/^pan:[0-9]*: \(.*\)$/\1/p' "$run/out" | head -1)"
        echo "    counterexample (connection steps; $(summary "$run" | sed 's/  */ /g')):"
        # shellcheck disable=SC2046
        (cd "$run" && $(pan_args "$(kind_of "$kind")" "$name") -r -n 2>&1) |
            sed -n -e 's/^@ /      /p' -e 's/^.*START OF CYCLE.*$/      -- the cycle repeats from here --/p'
    else
        failed=1
        echo "==> $flag: NOT caught by $name: $(verdict "$run")" >&2
    fi
done
if ((failed)); then
    echo "==> model --broken: FAILED: some broken variant went unnoticed" >&2
    exit 1
fi
echo "==> model --broken: every broken variant is caught ($((SECONDS - start)) s)"
