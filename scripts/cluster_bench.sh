#!/usr/bin/env bash
# The cluster benchmark of docs/performance.md ("Cluster: cross-node fan-out against
# raw Redis pub/sub"): starts a throwaway redis-server on a free loopback port (no
# persistence), builds `examples/cluster_bench.rs` in release, runs it several times
# (raw pub/sub and the cluster alternate inside each run, and the order flips from
# run to run), prints the medians and rewrites the figures in docs/performance.md
# between the `cluster:begin` / `cluster:end` markers. One command:
#
#   scripts/cluster_bench.sh
#   scripts/cluster_bench.sh --table-only   # rebuild the figures from the last run
#
# Needs `redis-server` (and, for the optional reference line, `redis-benchmark` and
# `redis-cli`): installs Debian's `redis-server` with apt when it is missing. Environment:
#   CARGO_TARGET_DIR         where to build (default: target)
#   CLUSTER_RUNS             runs (default 3; medians kept)
#   CLUSTER_MESSAGES         messages per throughput phase (default 100000)
#   CLUSTER_PAYLOAD          payload bytes (default 32)
#   CLUSTER_RECEIVERS        node B's connection counts (default 1,100)
#   CLUSTER_LATENCY_MESSAGES messages per latency phase (default 5000)
#   CLUSTER_RATE             latency phase's rate, msg/s (default 1000)
# Raw outputs go to $CARGO_TARGET_DIR/bench-results/cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
export CARGO_TARGET_DIR=$target
out=$target/bench-results/cluster
mkdir -p "$out"
runs=${CLUSTER_RUNS:-3}
messages=${CLUSTER_MESSAGES:-100000}
payload=${CLUSTER_PAYLOAD:-32}
receivers=${CLUSTER_RECEIVERS:-1,100}
latency_messages=${CLUSTER_LATENCY_MESSAGES:-5000}
rate=${CLUSTER_RATE:-1000}

step() { echo "==> $*"; }

table_only=false
[ "${1:-}" = --table-only ] && table_only=true

if ! $table_only; then
    pids=()
    cleanup() {
        for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
        for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    }
    trap cleanup EXIT INT TERM

    # redis-server (Debian's package brings redis-benchmark and redis-cli along).
    if ! command -v redis-server >/dev/null 2>&1; then
        step "install redis-server (apt)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
    fi

    step "build (release): examples/cluster_bench.rs"
    cargo build --release --quiet --example cluster_bench --features redis

    step "redis-server on a free loopback port"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --protected-mode no >"$out/redis-server.log" 2>&1 &
    pids+=($!)
    ready=false
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'PING\r\n' >&3 &&
            IFS= read -r -t 1 answer <&3 && [ "${answer%$'\r'}" = "+PONG" ]) 2>/dev/null; then
            ready=true
            break
        fi
        sleep 0.1
    done
    if ! $ready; then
        echo "redis-server did not answer on 127.0.0.1:$port within 10 s:" >&2
        cat "$out/redis-server.log" >&2
        exit 1
    fi
    url=redis://127.0.0.1:$port
    echo "$url ($(redis-server --version | head -1))"

    {
        git rev-parse --short HEAD 2>/dev/null || echo unknown
        if git diff --quiet HEAD -- src 2>/dev/null; then echo clean; else echo modified; fi
        uptime
    } >"$out/revision.txt"

    rm -f "$out"/run*.json "$out"/redis-benchmark*.txt
    for i in $(seq "$runs"); do
        step "run $i of $runs ($(uptime | sed 's/.*load average/load average/'))"
        "$target/release/examples/cluster_bench" --redis "$url" --messages "$messages" \
            --payload "$payload" --receivers "$receivers" \
            --latency-messages "$latency_messages" --rate "$rate" \
            --raw-first $((i % 2)) --json "$out/run$i.json" | tee "$out/run$i.txt"
        # A reference from Redis's own tool: PUBLISH pipelined by 256 to a channel
        # with one subscriber (redis-cli, output discarded). It measures the server's
        # publish rate, not delivery through a Rust client.
        if command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null; then
            redis-cli -p "$port" subscribe wslbench:rb >/dev/null &
            sub=$!
            sleep 0.2
            body=$(printf '%*s' "$payload" '' | tr ' ' x)
            redis-benchmark -p "$port" -n "$messages" -P 256 -c 1 -q \
                PUBLISH wslbench:rb "$body" 2>&1 | tr '\r' '\n' | grep -a 'requests per second' |
                tail -1 | tee "$out/redis-benchmark$i.txt"
            kill "$sub" 2>/dev/null || true
            wait "$sub" 2>/dev/null || true
        fi
    done
fi

step "medians of $runs runs; docs/performance.md"
python3 - "$out" "$runs" <<'EOF'
import glob, json, os, re, statistics, sys

out, runs = sys.argv[1], int(sys.argv[2])
data = [json.load(open(p)) for p in sorted(glob.glob(f"{out}/run*.json"))]
if not data:
    sys.exit("no runs in " + out)
revision = open(f"{out}/revision.txt").read().split("\n") if os.path.exists(f"{out}/revision.txt") else ["unknown", "", ""]
med = statistics.median

def fmt(x, nd=0):
    s = f"{x:,.{nd}f}".replace(",", "\u202f")
    return s

pairs = [p["receivers"] for p in data[0]["throughput"]["pairs"]]
lines = []
lines.append(f"Measured {len(data)} runs, {fmt(data[0]['messages'])} messages of {data[0]['payload']} B "
             f"per throughput phase, pipelines of {data[0]['batch']}; commit `{revision[0]}` "
             f"(src/ {revision[1] or 'unknown'}); load at the start: "
             f"{revision[2].split('load average:')[-1].strip() if len(revision) > 2 and 'load' in revision[2] else 'unknown'}.")
lines.append("")
lines.append("| throughput | " + " | ".join(f"run {i+1}" for i in range(len(data))) + " | median |")
lines.append("|---|" + "---:|" * (len(data) + 1))
verdicts = []
for j, k in enumerate(pairs):
    raw = [d["throughput"]["raw"][j]["msgs_per_s"] for d in data]
    clu = [d["throughput"]["pairs"][j]["cluster"]["msgs_per_s"] for d in data]
    dps = [d["throughput"]["pairs"][j]["cluster"]["deliveries_per_s"] for d in data]
    ratio = [d["throughput"]["pairs"][j]["ratio"] for d in data]
    retries = [d["throughput"]["pairs"][j]["cluster"]["retries"] for d in data]
    full = [d["throughput"]["pairs"][j]["cluster"]["full"] for d in data]
    lines.append(f"| raw pub/sub, msg/s (paired with K = {k}) | " + " | ".join(fmt(x) for x in raw) + f" | {fmt(med(raw))} |")
    lines.append(f"| cluster, K = {k}: cross-node msg/s | " + " | ".join(fmt(x) for x in clu) + f" | {fmt(med(clu))} |")
    if k > 1:
        lines.append(f"| cluster, K = {k}: deliveries/s | " + " | ".join(fmt(x) for x in dps) + f" | {fmt(med(dps))} |")
    lines.append(f"| cluster, K = {k}: ratio to raw | " + " | ".join(f"{x:.2f}×" for x in ratio) + f" | **{med(ratio):.2f}×** |")
    lines.append(f"| cluster, K = {k}: queue-full retries / refused deliveries | " + " | ".join(f"{r} / {f}" for r, f in zip(retries, full)) + " | |")
    verdicts.append((f"≥ 0.8× raw rate, K = {k}", med(ratio) >= 0.8, f"{med(ratio):.2f}×"))
rb = []
for i in range(1, len(data) + 1):
    p = f"{out}/redis-benchmark{i}.txt"
    if os.path.exists(p):
        m = re.search(r"([\d.]+) requests per second", open(p).read())
        if m:
            rb.append(float(m.group(1)))
if rb:
    lines.append("| redis-benchmark PUBLISH -P 256, one redis-cli subscriber, req/s | " + " | ".join(fmt(x) for x in rb) + f" | {fmt(med(rb))} |")
lines.append("")
rate = data[0]["latency"]["raw"].get("rate", 1000)
lines.append(f"| latency at {fmt(rate)} msg/s, µs (p50 / p99 / max) | " + " | ".join(f"run {i+1}" for i in range(len(data))) + " | median |")
lines.append("|---|" + "---:|" * (len(data) + 1))
def lat_row(label, vals):
    cells = [f"{v['p50_us']:.0f} / {v['p99_us']:.0f} / {v['max_us']:.0f}" for v in vals]
    m = f"{med(v['p50_us'] for v in vals):.0f} / **{med(v['p99_us'] for v in vals):.0f}** / {med(v['max_us'] for v in vals):.0f}"
    lines.append(f"| {label} | " + " | ".join(cells) + f" | {m} |")
lat_row("raw pub/sub", [d["latency"]["raw"] for d in data])
for j, k in enumerate(pairs):
    vals = [d["latency"]["cluster"][j] for d in data]
    lat_row(f"cluster, K = {k} (every delivery)", vals)
    p99 = med(v["p99_us"] for v in vals)
    verdicts.append((f"p99 < 5 ms at {fmt(rate)} msg/s, K = {k}", p99 < 5000, f"{p99:.0f} µs"))
count = data[0]["latency"]["raw"].get("count", 0)
lines.append("")
lines.append(f"Latency samples per run: {fmt(count)} messages after a warm-up (× K deliveries for the cluster).")
lines.append("")
lines.append("Targets (medians): " + "; ".join(f"{name}: **{'met' if ok else 'missed'}** ({v})" for name, ok, v in verdicts) + ".")
table = "\n".join(lines)
print(table)

doc = "docs/performance.md"
text = open(doc).read()
begin, end = "<!-- cluster:begin -->", "<!-- cluster:end -->"
new = f"{begin}\n{table}\n{end}"
if begin in text and end in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: new, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n## Cluster: cross-node fan-out against raw Redis pub/sub\n\n" \
        "`scripts/cluster_bench.sh` (needs `redis-server`) measures and rewrites this.\n\n" + new + "\n"
open(doc, "w").write(text)
EOF
