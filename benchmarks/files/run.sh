#!/usr/bin/env bash
# File-read benchmark: the loop's file reads (loop.Files, managed and libuv) beside uvloop reading as aiofiles does
# (os.pread in loop.run_in_executor: uvloop has no file API), in the same run, rotating the order each round.
# Each reader runs pinned to one core (taskset -c 0), reads a SIZE MiB file (page cache warm: a memory-bandwidth and
# per-call-overhead test, not a disk test) in CHUNK-byte reads, IN_FLIGHT at once, PASSES times after a warm-up pass.
# Prints one line per measurement and the medians: MiB/s and CPU ms per MiB (process CPU time, every thread).
#
#   bash benchmarks/files/run.sh [SIZE_MIB=256] [ROUNDS=3] [CHUNK=1048576] [IN_FLIGHT=1] [PASSES=16]
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
size=${1:-256}; rounds=${2:-3}; chunk=${3:-1048576}; inflight=${4:-1}; passes=${5:-16}
python=/usr/bin/python3
harness="$root/benchmarks/EventLoop.EchoBenchmark/bin/Release/net10.0/EventLoop.EchoBenchmark.dll"
[[ -f "$harness" ]] || dotnet build "$root/benchmarks/EventLoop.EchoBenchmark" -c Release -v q >/dev/null
file=$(mktemp /tmp/evl-file-read-XXXXXX.bin)
trap 'rm -f "$file"' EXIT
head -c "$((size * 1024 * 1024))" /dev/urandom >"$file"

declare -A results
readers=(managed libuv uvloop)
echo "file read: $size MiB, chunk $chunk, $inflight in flight, $passes passes, $rounds rounds, nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 0; round < rounds; round++)); do
  for ((k = 0; k < ${#readers[@]}; k++)); do
    reader=${readers[$(((k + round) % ${#readers[@]}))]}
    if [[ $reader == uvloop ]]; then
      line=$(taskset -c 0 "$python" "$root/benchmarks/files/uvloop_file_read.py" --file "$file" --chunk "$chunk" --in-flight "$inflight" --passes "$passes" | grep '^RESULT')
    else
      line=$(taskset -c 0 dotnet "$harness" file-read --loop "$reader" --file "$file" --chunk "$chunk" --in-flight "$inflight" --passes "$passes" | grep '^RESULT')
    fi
    metrics=$(echo "$line" | awk '{split($2,b,"=");split($3,s,"=");split($4,c,"="); mib=b[2]/1048576; printf "%.0f %.3f", mib/s[2], c[2]*1000/mib}')
    echo "round $((round + 1)) $reader: $metrics (MiB/s, CPU ms/MiB)  [$line]"
    results[$reader]+="$metrics"$'\n'
  done
done
echo "medians over $rounds rounds:"
for reader in "${readers[@]}"; do
  throughput=$(printf '%s' "${results[$reader]}" | awk '{print $1}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  cpu=$(printf '%s' "${results[$reader]}" | awk '{print $2}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  printf '  %-8s %8s MiB/s  %7s CPU ms/MiB\n' "$reader" "$throughput" "$cpu"
done

