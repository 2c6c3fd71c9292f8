#!/usr/bin/env bash
# Kestrel on EventLoop's transport (libuv and managed loops; application on the thread pool or on the loop) against
# Kestrel's own Sockets transport: the web demo's /plaintext and /json, keep-alive, measured with wrk (Debian `wrk`).
# For each server core set (default: core 0, then cores 0,1) every server runs in turn, pinned with taskset, wrk pinned
# to core 1; each server is warmed up on both routes before either is measured (a route measured first would otherwise
# pay for the JIT's tiering of the whole stack). For each run: requests/s, p99 latency, the server's CPU time per request
# (utime+stime from /proc/PID/stat across the measured run) and the CPU the server got (cores' worth).
#
#   bash benchmarks/web/run.sh [seconds per run, default 10] [connections, default 64]
#   SERVER_CORE_SETS="0 0,1" CLIENT_CORE=1 WARMUP=8 CSV=benchmarks/results/aspnet.csv CHART=benchmarks/results/aspnet
#
# Writes the Markdown table to stdout, the figures to $CSV, and the charts ($CHART.png, $CHART-cpu.png) with the echo
# benchmark's chart role (ScottPlot). With 2 cores on the machine, a 2-core server shares core 1 with wrk.
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
duration=${1:-10}
connections=${2:-64}
core_sets=${SERVER_CORE_SETS:-"0 0,1"}
client_core=${CLIENT_CORE:-1}
warmup=${WARMUP:-8}
csv=${CSV:-$root/benchmarks/results/aspnet.csv}
chart=${CHART:-$root/benchmarks/results/aspnet}
cd "$root"
dotnet build samples/EventLoop.Samples -c Release -v q >/dev/null
dotnet build benchmarks/EventLoop.EchoBenchmark -c Release -v q >/dev/null
demo=samples/EventLoop.Samples/bin/Release/net10.0/EventLoop.Samples
clk=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }

run_one() { # $1 cores, $2 label, $3.. demo arguments
  local cores=$1 label=$2; shift 2
  local out; out=$(mktemp)
  taskset -c "$cores" "$demo" web --port 0 "$@" >"$out" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q "web on" "$out" && break; sleep 0.1; done
  local url; url=$(grep -o 'http://[^ ]*' "$out")
  for path in plaintext json; do
    taskset -c "$client_core" wrk -t1 -c"$connections" -d"${warmup}s" "$url/$path" >/dev/null # warm-up (JIT, tiering)
  done
  local ncores; ncores=$(echo "$cores" | tr ',' '\n' | wc -l)
  for path in plaintext json; do
    local before; before=$(cpu_ticks "$pid")
    local result; result=$(taskset -c "$client_core" wrk -t1 -c"$connections" -d"${duration}s" --latency "$url/$path")
    local after; after=$(cpu_ticks "$pid")
    local requests; requests=$(echo "$result" | awk '/requests in/ {print $1}')
    local rps; rps=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
    local p99; p99=$(to_ms "$(echo "$result" | awk '$1 == "99%" {print $2}')")
    local errors; errors=$(echo "$result" | awk '/Socket errors|Non-2xx/ {printf "%s ", $0}')
    local cpu_us; cpu_us=$(awk -v t=$((after - before)) -v hz="$clk" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    local share; share=$(awk -v t=$((after - before)) -v hz="$clk" -v d="$duration" 'BEGIN { printf "%.2f", t / hz / d }')
    printf "| %s | %s | /%s | %.0f | %s | %s | %s | %s |\n" "$ncores" "$label" "$path" "$rps" "$p99" "$cpu_us" "$share" "${errors:-none}"
    echo "$ncores,$label,$path,$rps,$p99,$cpu_us,$share" >>"$csv"
  done
  kill -TERM "$pid"; wait "$pid" || true
  rm -f "$out"
}

echo "server core sets: $core_sets; wrk on core $client_core; $connections connections; ${warmup} s warm-up per route, then ${duration} s measured per route; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server cores | server | route | requests/s | p99 (ms) | server CPU per request (µs) | server CPU (cores) | errors |"
echo "| ---: | --- | --- | ---: | ---: | ---: | ---: | --- |"
echo "cores,server,route,requests_per_second,p99_ms,cpu_us_per_request,cpu_cores" >"$csv"
for cores in $core_sets; do
  loops=$(echo "$cores" | tr ',' '\n' | wc -l)
  run_one "$cores" "Kestrel Sockets" --transport sockets
  run_one "$cores" "libuv (app on loop)" --loop libuv --loops "$loops" --app-on-loop
  run_one "$cores" "libuv (app on thread pool)" --loop libuv --loops "$loops"
  run_one "$cores" "managed (app on loop)" --loop managed --loops "$loops" --app-on-loop
  run_one "$cores" "managed (app on thread pool)" --loop managed --loops "$loops"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
dotnet benchmarks/EventLoop.EchoBenchmark/bin/Release/net10.0/EventLoop.EchoBenchmark.dll chart --csv "$csv" --out "$chart"
