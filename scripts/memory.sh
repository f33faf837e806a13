#!/usr/bin/env bash
# The whole server's memory per idle Ready connection, as an operator pays it: the
# example chat server (release) holds N authenticated, idle WebSocket clients (a
# separate loadgen process); we sample the server's resident set (VmRSS) and the
# kernel's TCP buffer pages (/proc/net/sockstat `mem`) before and while they are held.
#
#   scripts/memory.sh [N]            # default N = 10000
#   CHAT=path/to/chat scripts/memory.sh   # measure another build of the server
#   MEMORY_NO_BUILD=1 scripts/memory.sh   # use the binaries already built
#
# Prints one line per figure; the kernel figure counts both ends of each loopback
# connection (client and server sockets), so it is an upper bound for the server's.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
port=${MEMORY_PORT:-18300}
target=${CARGO_TARGET_DIR:-target}
[ -n "${MEMORY_NO_BUILD:-}" ] || cargo build --release --features axum --example chat --example loadgen --quiet
chat=${CHAT:-$target/release/examples/chat}
loadgen=$target/release/examples/loadgen
ulimit -n "$(ulimit -Hn)"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
tcp_pages() { awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }

"$chat" --addr "127.0.0.1:$port" >/tmp/memory-chat.log 2>&1 &
server=$!
out=$(mktemp)
trap 'kill $server 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
sleep 0.5
rss0=$(rss_kb $server)
tcp0=$(tcp_pages)
"$loadgen" --url "ws://127.0.0.1:$port/ws" --clients "$n" --messages 0 \
    --connect-concurrency 64 --timeout 30 --hold 20 --label memory >"$out" 2>&1 &
client=$!
for _ in $(seq 600); do
    grep -q '^holding' "$out" && break
    sleep 0.1
done
grep '^holding' "$out" || { echo "clients never all connected"; tail "$out"; exit 1; }
sleep 3 # settle: the welcome messages written, the buffers back to idle
ready=$(sed -n 's/^holding \([0-9]*\) ready.*/\1/p' "$out")
rss1=$(rss_kb $server)
tcp1=$(tcp_pages)
kill $client 2>/dev/null || true
echo "idle Ready connections:        $ready"
echo "server RSS before / holding:   ${rss0} kB / ${rss1} kB"
awk -v a="$rss0" -v b="$rss1" -v n="$ready" 'BEGIN { printf "server RSS per connection:     %.1f kB\n", (b - a) / n }'
awk -v a="$tcp0" -v b="$tcp1" -v n="$ready" 'BEGIN { printf "kernel TCP memory per conn:    %.2f kB (both ends, %d pages)\n", (b - a) * 4096 / 1024 / n, b - a }'
