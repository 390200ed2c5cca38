#!/bin/bash
# The metrics listener's overhead (issue 17) measured in alternated pairs:
# a fresh chatws-bench-server per run, without a listener and with one
# scraped every second, in turn. run.py keeps one server for a cell's runs and
# measures the cells one after the other, so the machine's drift lands on
# one cell; pairs spread it over both. One JSON line per run on stdout,
# prefixed with the workload and the case; medians at the end.
#
#   bench/metrics_pairs.sh [BUILD_DIR] [echo|broadcast] [PAIRS]
set -euo pipefail
B=${1:-build}/bench
wl=${2:-echo}
pairs=${3:-7}
case $wl in
  echo) args=(--mode echo --connections 100 --size 32 --window 16); key=msgs_per_server_cpu_s ;;
  broadcast) args=(--mode broadcast --connections 1000 --size 64 --window 16); key=deliveries_per_server_cpu_s ;;
  *) echo "workload: echo or broadcast" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
free_port() { python3 -c "import sys; sys.path.insert(0, '$here'); from local_server import free_port; print(free_port())"; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq 1 "$pairs"); do
  for cfg in none scraped; do
    port=$(free_port); mport=$(free_port)
    extra=(); [ "$cfg" = scraped ] && extra=(--metrics-port "$mport")
    taskset -c 0 "$B/chatws-bench-server" --mode "$wl" --port "$port" "${extra[@]}" >/dev/null 2>&1 &
    sp=$!
    for _ in $(seq 1 100); do  # readiness, bounded (5 s)
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.05
    done
    scraper=
    if [ "$cfg" = scraped ]; then  # as Prometheus would: one GET a second
      (for _ in $(seq 1 12); do curl -s -o /dev/null "http://127.0.0.1:$mport/metrics" || true; sleep 1; done) &
      scraper=$!
    fi
    line=$(taskset -c 1 "$B/chatws-loadgen" --port "$port" "${args[@]}" --duration 3 --warmup 1 \
             --server-pid "$sp" --json | tail -1)
    [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
    kill "$sp"; wait "$sp" 2>/dev/null || true
    echo "$wl $cfg $line" | tee -a "$out"
  done
done
python3 - "$out" "$key" <<'PY'
import json, statistics, sys
runs = {"none": [], "scraped": []}
p99 = {"none": [], "scraped": []}
for line in open(sys.argv[1]):
    _, cfg, js = line.split(" ", 2)
    j = json.loads(js)
    runs[cfg].append(j[sys.argv[2]])
    p99[cfg].append(j["p99_us"])
m = {k: statistics.median(v) for k, v in runs.items()}
p = {k: statistics.median(v) for k, v in p99.items()}
print(f"{sys.argv[2]}: none {m['none']:,.0f}, scraped {m['scraped']:,.0f} "
      f"({m['scraped'] / m['none']:.3f}x); p99 {p['scraped']:.0f} / {p['none']:.0f} us "
      f"({p['scraped'] / p['none']:.2f}x)")
PY
