#!/usr/bin/env bash
# The Autobahn TestSuite (`wstest -m fuzzingclient`) against the echo example
# (examples/echo.rs), on each adapter; results in docs/conformance.md.
#
#   scripts/autobahn.sh                    # cases 1-7 and 9.1-9.4, both adapters (~35 s)
#   scripts/autobahn.sh --quick            # the CI subset, both adapters (~35 s)
#   scripts/autobahn.sh --adapter axum     # one adapter (axum or tungstenite)
#   scripts/autobahn.sh --out DIR          # where the specs, reports and logs go
#                                          # (default target/autobahn)
#   scripts/autobahn.sh --install          # only check Python 2.7 and install the suite
#
# Needs Python 2.7.18 through pyenv (the suite runs on Python 2 only); installs the
# suite with pip --user if `wstest` is missing. Builds the echo example in release,
# starts it on a free loopback port per adapter, runs the cases, and prints a table
# of behaviors per case group and every failing case with the suite's reason.
# Exits non-zero if any case's `behavior` is not OK, NON-STRICT or INFORMATIONAL, or
# its `behaviorClose` is not OK or INFORMATIONAL, or if the server failed a
# connection with a Close that has no status code where the suite expects 1002/1007
# (the close-code check, below). Times are after the build, on 2 cores; the full
# HTML report is in DIR/<adapter>/reports/index.html, the server's close records in
# DIR/<adapter>/server.log.
set -euo pipefail
cd "$(dirname "$0")/.."

# The suite's release that installs on Python 2.7.18 with pip's resolver as it is
# (no dependency needed a pin): autobahntestsuite 25.10.1, with autobahn 0.10.9,
# Twisted 19.10.0, cryptography 3.3.2, pyOpenSSL 19.1.0 and wsaccel 0.6.6.
AUTOBAHN_VERSION=${AUTOBAHN_VERSION:-25.10.1}
PYTHON2_VERSION=2.7.18

# Cases the suite grades as failed today, left out of the --quick run only (never
# out of the full run, which reports them) so that scripts/check.sh stays green; each
# is listed with its cause in docs/conformance.md (issue 14, `issues show 14`). When
# a fix lands, delete its cases here: they run again, and must pass. Empty today:
# the suite grades no case of 1-7 and 9.1-9.4 as failed (docs/conformance.md).
KNOWN_FAILURES=(
)

# The close-code check, stricter than the suite's grades. Where the suite expects the
# server to fail the connection (its expected close codes do not include 1000: 1002
# for a protocol error, 1007 for invalid UTF-8), it grades a server Close without a
# status code OK (RFC 6455 makes the code optional), so the suite alone never saw the
# "RFC close codes" finding of issue 14: until commit 2db6ca2 the crate (through
# tungstenite) answered every protocol error with an empty Close. This script fails
# on such a case unless it matches a pattern below (fnmatch: "6.*", "7.3.2"); a
# listed case still runs and is still graded, and is reported as known. Empty since
# that fix; docs/conformance.md lists the patterns and cases it took before. Add a
# pattern only for a known, tracked regression, and delete it once fixed.
KNOWN_CODELESS=(
)

QUICK_CASES=("1.*" "2.*" "3.*" "4.*" "5.*" "6.1.*" "6.2.*" "6.3.*" "6.4.*"
    "7.1.*" "7.2.*" "7.3.*" "9.1.1" "9.1.2" "9.1.3")
FULL_CASES=("1.*" "2.*" "3.*" "4.*" "5.*" "6.*" "7.*" "9.1.*" "9.2.*" "9.3.*" "9.4.*")
# 12.* and 13.* are permessage-deflate, which the crate does not negotiate.
EXCLUDED_CASES=("12.*" "13.*")

quick=0
install_only=0
adapters=(axum tungstenite)
out=target/autobahn
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --install) install_only=1 ;;
    --adapter)
        case ${2:-} in
        axum | tungstenite) adapters=("$2") ;;
        *) echo "autobahn: --adapter takes axum or tungstenite" >&2; exit 2 ;;
        esac
        shift
        ;;
    --out)
        out=${2:?--out takes a directory}
        shift
        ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
    *) echo "autobahn: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ $quick -eq 1 ]; then
    cases=("${QUICK_CASES[@]}")
    excluded=("${EXCLUDED_CASES[@]}" ${KNOWN_FAILURES[@]+"${KNOWN_FAILURES[@]}"})
    wstest_limit=600 # seconds, per adapter
else
    cases=("${FULL_CASES[@]}")
    excluded=("${EXCLUDED_CASES[@]}")
    wstest_limit=3600
fi

# Python 2.7 through pyenv: present on these machines; say so clearly if not.
if ! command -v pyenv >/dev/null 2>&1; then
    echo "autobahn: pyenv not found; the Autobahn TestSuite needs Python $PYTHON2_VERSION through pyenv" >&2
    exit 1
fi
if ! PYENV_VERSION=$PYTHON2_VERSION pyenv exec python --version >/dev/null 2>&1; then
    echo "autobahn: Python $PYTHON2_VERSION is not installed in pyenv (pyenv install $PYTHON2_VERSION)" >&2
    exit 1
fi
python2() { PYENV_VERSION=$PYTHON2_VERSION pyenv exec python "$@"; }

# wstest: on PATH, or in pip's user scripts directory; installed there if missing.
user_bin="$(python2 -m site --user-base)/bin"
wstest=$(command -v wstest || true)
if [ -z "$wstest" ] && [ -x "$user_bin/wstest" ]; then
    wstest=$user_bin/wstest
fi
if [ -z "$wstest" ]; then
    echo "==> autobahn: installing autobahntestsuite $AUTOBAHN_VERSION (pip --user, Python $PYTHON2_VERSION)"
    timeout 600 env PYENV_VERSION=$PYTHON2_VERSION pyenv exec python -m pip install \
        --user --quiet --disable-pip-version-check --no-warn-script-location \
        "autobahntestsuite==$AUTOBAHN_VERSION"
    wstest=$user_bin/wstest
    [ -x "$wstest" ] || { echo "autobahn: wstest not found in $user_bin after install" >&2; exit 1; }
fi
echo "==> autobahn: $("$wstest" --autobahnversion 2>&1 | head -1) ($wstest)"
[ $install_only -eq 0 ] || exit 0

echo "==> autobahn: building the echo example (release)"
cargo build --release --quiet --example echo --features axum,tungstenite
echo_bin=${CARGO_TARGET_DIR:-target}/release/examples/echo

mkdir -p "$out"
out=$(cd "$out" && pwd)

server_pid=
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        # Bounded: SIGTERM drains within 5 s; SIGKILL after 10.
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

free_port() {
    python2 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A JSON array of the arguments.
json_list() {
    local first=1
    printf '['
    for item in "$@"; do
        [ $first -eq 1 ] || printf ', '
        first=0
        printf '"%s"' "$item"
    done
    printf ']'
}

status=0
for adapter in "${adapters[@]}"; do
    dir=$out/$adapter
    rm -rf "$dir"
    mkdir -p "$dir"
    port=$(free_port)
    "$echo_bin" --adapter "$adapter" --addr "127.0.0.1:$port" --log-closes \
        >"$dir/server.log" 2>&1 &
    server_pid=$!
    up=0
    for _ in $(seq 1 100); do # 10 s
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            up=1
            break
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ $up -eq 0 ]; then
        echo "autobahn: the echo server ($adapter) did not start on port $port:" >&2
        cat "$dir/server.log" >&2
        exit 1
    fi

    cat >"$dir/spec.json" <<EOF
{
    "outdir": "$dir/reports",
    "servers": [{"agent": "ws-lifecycle-$adapter", "url": "ws://127.0.0.1:$port"}],
    "cases": $(json_list "${cases[@]}"),
    "exclude-cases": $(json_list "${excluded[@]}"),
    "exclude-agent-cases": {}
}
EOF
    echo "==> autobahn: $adapter on 127.0.0.1:$port, cases $(json_list "${cases[@]}"), excluded $(json_list "${excluded[@]}")"
    start=$SECONDS
    if ! (cd "$dir" && timeout --kill-after=10 "$wstest_limit" "$wstest" -m fuzzingclient -s spec.json \
        >"$dir/wstest.log" 2>&1); then
        echo "autobahn: wstest failed or timed out after $((SECONDS - start)) s ($adapter); last lines of $dir/wstest.log:" >&2
        tail -20 "$dir/wstest.log" >&2
        exit 1
    fi
    stop_server
    echo "==> autobahn: $adapter: wstest took $((SECONDS - start)) s"

    python2 - "$dir/reports" "ws-lifecycle-$adapter" "$adapter" \
        "${KNOWN_FAILURES[*]+${KNOWN_FAILURES[*]}}" "${KNOWN_CODELESS[*]+${KNOWN_CODELESS[*]}}" \
        <<'EOF' || status=1
import fnmatch, io, json, os, sys

reports, agent, adapter = sys.argv[1], sys.argv[2], sys.argv[3]
known, known_codeless = sys.argv[4].split(), sys.argv[5].split()
with io.open(os.path.join(reports, "index.json"), encoding="utf-8") as f:
    index = json.load(f)[agent]

def key(case):
    return [int(part) for part in case.split(".")]

def group(case):
    parts = case.split(".")
    return ".".join(parts[:2]) if parts[0] == "9" else parts[0]

BEHAVIOR_OK = ("OK", "NON-STRICT", "INFORMATIONAL")
CLOSE_OK = ("OK", "INFORMATIONAL")
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "no close code")
groups, failing, codeless, coded = {}, [], [], []
for case in sorted(index, key=key):
    result = index[case]
    counts = groups.setdefault(group(case), dict((c, 0) for c in COLUMNS))
    with io.open(os.path.join(reports, result["reportfile"]), encoding="utf-8") as f:
        detail = json.load(f)
    expected = detail["expectedClose"]["closeCode"]
    is_known_codeless = any(fnmatch.fnmatchcase(case, p) for p in known_codeless)
    if 1000 not in expected:
        if detail.get("remoteCloseCode") is None:
            counts["no close code"] += 1
            codeless.append((case, expected, is_known_codeless))
        elif is_known_codeless:
            coded.append((case, detail["remoteCloseCode"]))
    if result["behavior"] not in BEHAVIOR_OK or result["behaviorClose"] not in CLOSE_OK:
        counts["FAILED"] += 1
        failing.append((case, result, detail))
    else:
        counts[result["behavior"]] += 1

def line(cells):
    return "| " + " | ".join(cells) + " |"

print("")
print("%s: %d cases (no close code: the suite expected the connection failed with one of"
      " the codes it lists, and the server's Close had no status code)" % (adapter, len(index)))
print("")
print(line(("group",) + COLUMNS))
print(line(("---",) + ("---:",) * len(COLUMNS)))
total = dict((c, 0) for c in COLUMNS)
for g in sorted(groups, key=key):
    print(line([g] + [str(groups[g][c]) for c in COLUMNS]))
    for c in COLUMNS:
        total[c] += groups[g][c]
print(line(["**all**"] + ["**%d**" % total[c] for c in COLUMNS]))
failed = False
if failing:
    failed = True
    print("")
    print("%s: %d cases graded failed (behavior / behaviorClose: the suite's reason):" % (adapter, len(failing)))
    for case, result, detail in failing:
        mark = " (known, issue 14)" if case in known else ""
        print("- %s%s: %s / %s: %s | %s" % (
            case, mark, result["behavior"], result["behaviorClose"],
            detail.get("result", "").strip(), detail.get("resultClose", "").strip()))
        print("    %s" % " ".join(detail.get("description", "").split()))
if codeless:
    listed = [c for c, _, k in codeless if k]
    unlisted = [(c, e) for c, e, k in codeless if not k]
    print("")
    print("%s: %d cases closed without a status code where the suite expects one"
          " (%d known: KNOWN_CODELESS, issue 14):" % (adapter, len(codeless), len(listed)))
    by_code = {}
    for case, expected, _ in codeless:
        by_code.setdefault("/".join(str(c) for c in expected), []).append(case)
    for code in sorted(by_code):
        print("- expected %s: %s" % (code, " ".join(by_code[code])))
    if unlisted:
        failed = True
        print("%s: not in KNOWN_CODELESS (a regression): %s" % (
            adapter, " ".join("%s (expected %s)" % (c, "/".join(str(x) for x in e)) for c, e in unlisted)))
if coded:
    print("")
    print("%s: known codeless cases that now carry a code (remove their pattern from"
          " KNOWN_CODELESS once the whole pattern does): %s" % (
              adapter, " ".join("%s (%s)" % (c, code) for c, code in coded)))
if failed:
    sys.exit(1)
EOF
done
exit $status
