#!/usr/bin/env bash
# Runs every benchmark of docs/performance.md in release and regenerates its results
# table (between the `results:begin` / `results:end` markers). One command:
#
#   scripts/bench.sh
#   scripts/bench.sh --table-only   # rebuild the table from the last run's raw outputs
#
# Takes a few minutes on the 2-core reference machine (step 6, the cluster, is
# scripts/cluster_bench.sh: it installs redis-server when missing). Environment:
#   CARGO_TARGET_DIR   where to build (default: target)
#   BENCH_E2E_RUNS     loopback runs per server, interleaved (default 3; medians kept)
#   BENCH_CLIENTS      load generator clients (default 100)
#   BENCH_MESSAGES     `say` messages per client (default 300)
#   BENCH_PORT         first of the two loopback ports used (default 18080)
# Raw outputs go to $CARGO_TARGET_DIR/bench-results/.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
export CARGO_TARGET_DIR=$target
out=$target/bench-results
mkdir -p "$out"
runs=${BENCH_E2E_RUNS:-3}
clients=${BENCH_CLIENTS:-100}
messages=${BENCH_MESSAGES:-300}
port=${BENCH_PORT:-18080}
# Short criterion runs: the whole script stays within a few minutes.
quick=(--warm-up-time 1 --measurement-time 3 --noplot)

step() { echo "==> $*"; }

table_only=false
[ "${1:-}" = --table-only ] && table_only=true

if ! $table_only; then
step "build (release): benches and examples"
cargo build --release --benches --examples --features axum --quiet

# What was measured: the commit, and whether src/ differed from it.
{
    git rev-parse --short HEAD 2>/dev/null || echo unknown
    if git diff --quiet HEAD -- src 2>/dev/null; then echo clean; else echo modified; fi
} >"$out/revision.txt"

step "1 send gate"
cargo bench --quiet --bench send_gate -- "${quick[@]}" | tee "$out/send_gate.txt"
step "2 lifecycle (time)"
cargo bench --quiet --bench lifecycle -- "${quick[@]}" | tee "$out/lifecycle.txt"
step "2, 3 allocations and memory per connection"
cargo bench --quiet --bench footprint | tee "$out/footprint.txt"
step "4 fan-out"
cargo bench --quiet --bench fanout -- --warm-up-time 1 --measurement-time 5 --noplot |
    tee "$out/fanout.txt"
step "4b the cluster heartbeat's presence copy against the registry's lock"
cargo bench --quiet --bench presence_lock | tee "$out/presence_lock.txt"

step "5 end to end on loopback"
bin=$target/release/examples
chat_port=$port
base_port=$((port + 1))
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
"$bin/chat" --addr "127.0.0.1:$chat_port" >"$out/chat-server.log" 2>&1 &
pids+=($!)
"$bin/axum_baseline" --addr "127.0.0.1:$base_port" >"$out/baseline-server.log" 2>&1 &
pids+=($!)
for p in "$chat_port" "$base_port"; do
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        sleep 0.1
    done
done
for run in $(seq "$runs"); do
    for server in chat baseline; do
        p=$chat_port
        [ "$server" = baseline ] && p=$base_port
        # Throughput: every client sends and receives at once.
        "$bin/loadgen" --url "ws://127.0.0.1:$p/ws" --clients "$clients" \
            --messages "$messages" --payload 32 --window 4 --duration 60 --timeout 10 \
            --label "$server-load-$run" --json "$out/$server-load-$run.json" |
            tail -n 8
        # Connect-to-ready: one connection at a time on an idle server.
        "$bin/loadgen" --url "ws://127.0.0.1:$p/ws" --clients 200 --messages 0 \
            --connect-concurrency 1 --timeout 10 \
            --label "$server-connect-$run" --json "$out/$server-connect-$run.json" |
            tail -n 8
    done
done
cleanup
pids=()

# 6: the cluster layer against raw Redis pub/sub, in its own script (it installs
# redis-server when missing, starts its own, and rewrites its own section of
# docs/performance.md).
step "6 cluster: cross-node fan-out against raw Redis pub/sub"
scripts/cluster_bench.sh
fi

step "results table → docs/performance.md"
python3 - "$target" "$out" "$runs" "$clients" "$messages" <<'EOF'
import json, re, statistics, sys, pathlib

target, out, runs, clients, messages = sys.argv[1:6]
runs = int(runs)
crit = pathlib.Path(target) / "criterion"
out = pathlib.Path(out)

def median_ns(group, function, param):
    path = crit / group / function / param / "new" / "estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]

footprint = {}
for line in (out / "footprint.txt").read_text().splitlines():
    if line.startswith("RESULT "):
        _, name, value, _unit = line.split(maxsplit=3)
        footprint[name] = float(value)

def e2e(server, kind, key):
    values = []
    for run in range(1, runs + 1):
        data = json.loads((out / f"{server}-{kind}-{run}.json").read_text())
        value = data
        for k in key:
            value = value[k]
        values.append(value)
    return statistics.median(values)

def errors(server):
    total = {}
    for kind in ("load", "connect"):
        for run in range(1, runs + 1):
            data = json.loads((out / f"{server}-{kind}-{run}.json").read_text())
            for k, n in data["errors"].items():
                total[k] = total.get(k, 0) + n
            if data["missing_deliveries"]:
                total["missing deliveries"] = total.get("missing deliveries", 0) + data["missing_deliveries"]
    return ", ".join(f"{n} × {k}" for k, n in sorted(total.items())) or "none"

def verdict(ok):
    return "**met**" if ok else "**missed**"

rows = []
def row(*cells):
    rows.append("| " + " | ".join(cells) + " |")

ours = median_ns("send_gate", "ws_lifecycle", "1_thread")
mpsc = median_ns("send_gate", "tokio_mpsc_unbounded", "1_thread")
bare = median_ns("send_gate", "mutex_vecdeque", "1_thread")
row("1 send gate, 1 thread", f"{ours:.1f} ns", f"mpsc {mpsc:.1f} ns", f"{ours / mpsc:.2f}× mpsc", "≤ 0.5× mpsc", verdict(ours / mpsc <= 0.5))
row("1 send gate, 1 thread", f"{ours:.1f} ns", f"bare push {bare:.1f} ns", f"{ours / bare:.2f}× bare", "≤ 1.5× bare", verdict(ours / bare <= 1.5))
ours2 = median_ns("send_gate", "ws_lifecycle", "2_threads")
mpsc2 = median_ns("send_gate", "tokio_mpsc_unbounded", "2_threads")
bare2 = median_ns("send_gate", "mutex_vecdeque", "2_threads")
row("1 send gate, 2 threads", f"{ours2:.1f} ns", f"mpsc {mpsc2:.1f} ns; bare {bare2:.1f} ns", f"{ours2 / mpsc2:.2f}× mpsc; {ours2 / bare2:.2f}× bare", "(no target)", "—")
bare_lc = median_ns("lifecycle", "ws_lifecycle", "bare")
reg_lc = median_ns("lifecycle", "ws_lifecycle", "registered")
hand = median_ns("lifecycle", "hand_rolled", "mutex_vecdeque")
row("2 lifecycle, bare", f"{bare_lc:.0f} ns", f"hand-rolled {hand:.0f} ns", f"{bare_lc / hand:.1f}× hand-rolled", "< 1 µs", verdict(bare_lc < 1000))
row("2 lifecycle, registered", f"{reg_lc:.0f} ns", f"hand-rolled {hand:.0f} ns", f"{reg_lc / hand:.1f}× hand-rolled", "< 1 µs", verdict(reg_lc < 1000))
a_bare = footprint["allocs_per_connection_bare"]
a_reg = footprint["allocs_per_connection_registered"]
row("2 allocations / connection, bare", f"{a_bare:.0f} ({footprint['alloc_bytes_per_connection_bare']:.0f} B)", "—", "—", "only the connection's own state", "see notes")
row("2 allocations / connection, registered", f"{a_reg:.0f} ({footprint['alloc_bytes_per_connection_registered']:.0f} B)", "—", "—", "only the connection's own state", "see notes")
for key, label in [("ready_registered", "registered"), ("ready_identified", "registered + user"), ("ready_identified_after_traffic", "registered + user, after traffic")]:
    b = footprint[f"bytes_per_connection_{key}"]
    row(f"3 memory / idle Ready connection, {label}", f"{b:.0f} B", "—", f"{b / 512:.2f}× target", "≤ 512 B", verdict(b <= 512))
for mode in ("parked", "polled"):
    o = median_ns("fanout", "ws_lifecycle", mode) / 10_000
    t = median_ns("fanout", "tokio_broadcast", mode) / 10_000
    row(f"4 fan-out to 10 000, {mode}", f"{o:.1f} ns/delivery", f"tokio broadcast {t:.1f} ns", f"{t / o:.2f}× (speed)", "≥ 1.0×", verdict(t / o >= 1.0))
naive = median_ns("fanout", "naive_queues", "polled") / 10_000
t = median_ns("fanout", "tokio_broadcast", "polled") / 10_000
row("4 fan-out, naive per-queue push (reference)", "—", f"{naive:.1f} ns/delivery", f"{t / naive:.2f}× tokio's speed", "(calibration)", "—")
presence = {}
for line in (out / "presence_lock.txt").read_text().splitlines():
    if line.startswith("RESULT "):
        _, name, value, _unit = line.split(maxsplit=3)
        presence[name] = float(value)
row("4b presence() at 100 000 users: longest lock wait", f"{presence['presence_lock_wait_ms']:.2f} ms", f"the call itself {presence['presence_call_ms']:.1f} ms", "—", "(no target)", "—")
c_tp = e2e("chat", "load", ["deliveries_per_second"])
b_tp = e2e("baseline", "load", ["deliveries_per_second"])
row(f"5 loopback throughput ({clients} clients × {messages} says)", f"{c_tp:,.0f} msg/s", f"axum baseline {b_tp:,.0f} msg/s", f"{c_tp / b_tp:.2f}×", "≥ 0.95×", verdict(c_tp / b_tp >= 0.95))
c50 = e2e("chat", "connect", ["connect_to_ready_us", "p50"])
b50 = e2e("baseline", "connect", ["connect_to_ready_us", "p50"])
c99 = e2e("chat", "connect", ["connect_to_ready_us", "p99"])
b99 = e2e("baseline", "connect", ["connect_to_ready_us", "p99"])
row("5 connect-to-ready p50 (idle server)", f"{c50:.0f} µs", f"axum baseline {b50:.0f} µs", f"{c50 - b50:+.0f} µs", "< +50 µs", verdict(c50 - b50 < 50))
row("5 connect-to-ready p99 (idle server)", f"{c99:.0f} µs", f"axum baseline {b99:.0f} µs", f"{c99 - b99:+.0f} µs", "(no target)", "—")
l50 = e2e("chat", "load", ["connect_to_ready_us", "p50"])
lb50 = e2e("baseline", "load", ["connect_to_ready_us", "p50"])
l99 = e2e("chat", "load", ["connect_to_ready_us", "p99"])
lb99 = e2e("baseline", "load", ["connect_to_ready_us", "p99"])
row("5 connect-to-ready p50 / p99 (4 at a time)", f"{l50:.0f} / {l99:.0f} µs", f"axum baseline {lb50:.0f} / {lb99:.0f} µs", f"{l50 - lb50:+.0f} / {l99 - lb99:+.0f} µs", "(no target)", "—")
e50 = e2e("chat", "load", ["echo_us", "p50"])
eb50 = e2e("baseline", "load", ["echo_us", "p50"])
row("5 echo say → own said, p50 (under load)", f"{e50:,.0f} µs", f"axum baseline {eb50:,.0f} µs", f"{e50 / eb50:.2f}×", "(no target)", "—")
row("5 errors (all runs)", errors("chat"), errors("baseline"), "—", "none", verdict(errors("chat") == "none"))

revision, tree = (out / "revision.txt").read_text().split()[:2]
note = f"\n\nMeasured at commit `{revision}`" + (" (src/ as committed)." if tree == "clean" else " with uncommitted changes in src/.")
table = "\n".join(
    ["| benchmark | ws-lifecycle | baseline (same run) | ratio | target | result |",
     "|---|---|---|---|---|---|"] + rows)
doc = pathlib.Path("docs/performance.md")
text = doc.read_text()
begin, end = "<!-- results:begin -->", "<!-- results:end -->"
new = f"{begin}\n{table}{note}\n{end}"
text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: new, text, flags=re.S)
doc.write_text(text)
print(table)
EOF
echo "==> docs/performance.md updated"
if $table_only && ls "$out"/cluster/run*.json >/dev/null 2>&1; then
    scripts/cluster_bench.sh --table-only >/dev/null
    echo "==> docs/performance.md: cluster figures rebuilt from $out/cluster"
fi
