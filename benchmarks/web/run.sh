#!/usr/bin/env bash
# Kestrel on EventLoop's transport (libuv and managed loops; application on the thread pool or on the loop) against
# Kestrel's own Sockets transport: the web demo's /plaintext and /json, keep-alive, measured with wrk.
# The server is pinned to core 0 (taskset), wrk to core 1. For each run: requests/s, p99 latency, and the server's CPU
# time per request (utime+stime from /proc/PID/stat across the measured run).
#
#   bash benchmarks/web/run.sh [seconds per run, default 10] [connections, default 64]
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
duration=${1:-10}
connections=${2:-64}
server_cores=${SERVER_CORES:-0}
client_core=${CLIENT_CORE:-1}
cd "$root"
dotnet build samples/EventLoop.Samples -c Release -v q >/dev/null
demo=samples/EventLoop.Samples/bin/Release/net10.0/EventLoop.Samples
clk=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_one() { # $1 label, $2.. demo arguments
  local label=$1; shift
  local out; out=$(mktemp)
  taskset -c "$server_cores" "$demo" web --port 0 "$@" >"$out" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q "web on" "$out" && break; sleep 0.1; done
  local url; url=$(grep -o 'http://[^ ]*' "$out")
  for path in plaintext json; do
    taskset -c "$client_core" wrk -t1 -c"$connections" -d5s "$url/$path" >/dev/null # warm-up (JIT, tiering)
    local before; before=$(cpu_ticks "$pid")
    local result; result=$(taskset -c "$client_core" wrk -t1 -c"$connections" -d"${duration}s" --latency "$url/$path")
    local after; after=$(cpu_ticks "$pid")
    local requests; requests=$(echo "$result" | awk '/requests in/ {print $1}')
    local rps; rps=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
    local p99; p99=$(echo "$result" | awk '$1 == "99%" {print $2}')
    local errors; errors=$(echo "$result" | awk '/Socket errors|Non-2xx/ {printf "%s ", $0}')
    local cpu_us; cpu_us=$(awk -v t=$((after - before)) -v hz="$clk" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    printf "| %s | /%s | %s | %s | %s | %s |\n" "$label" "$path" "$rps" "$p99" "$cpu_us" "${errors:-none}"
  done
  kill -TERM "$pid"; wait "$pid" || true
  rm -f "$out"
}

echo "server cores: $server_cores, wrk core: $client_core, $connections connections, ${duration} s per run, $(nproc) cores on the machine"
echo
echo "| server | route | requests/s | p99 | server CPU per request (µs) | errors |"
echo "| --- | --- | ---: | ---: | ---: | --- |"
loops=$(( $(echo "$server_cores" | tr ',' '\n' | wc -l) ))
run_one "Kestrel Sockets" --transport sockets
run_one "EventLoop libuv x$loops, app on thread pool" --loop libuv --loops "$loops"
run_one "EventLoop libuv x$loops, app on loop" --loop libuv --loops "$loops" --app-on-loop
run_one "EventLoop managed x$loops, app on thread pool" --loop managed --loops "$loops"
run_one "EventLoop managed x$loops, app on loop" --loop managed --loops "$loops" --app-on-loop
