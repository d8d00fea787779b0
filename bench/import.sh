#!/usr/bin/env bash
# The import push into a new server, binaries alternating: what a change to the
# import costs. Each run is a new data dir and private PostgreSQL (`skillsd init
# bench --empty`, as compare.sh does), one push of N generated skills, then the
# server's own log line for the push (pack_ms, check_ms, store_ms, duration_ms), the
# client's time, and the server's RSS 2 s after the push (`AFTER` seconds; all, and its
# anonymous part: the heaps, not the binary's mapped pages).
#
#   bench/import.sh BINARY [BINARY ...]     # N=10000 RUNS=3
#   STATEMENTS=1 bench/import.sh BINARY     # and PostgreSQL's statements, summed
#                                           # (on stderr; logging slows them)
#
# Writes nothing in the repository; prints one line per run and a table of medians.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-10000}
RUNS=${RUNS:-3}
WORK=${WORK:-/var/tmp/skillsd-import}
PORT=${PORT:-2396}
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY ...]" >&2; exit 2; }
source "$ROOT/bench/lib.sh"
bench_client "$WORK" import
SEED=$WORK/seed
bench_seed "$SEED" "$N"

run() {  # binary -> one line of key=value
  local bin=$1 d=$WORK/run pid t0 t1
  rm -rf "$d"; mkdir -p "$d"; chmod 755 "$d"
  bench_serve "$bin" "$d/data" "$PORT" "$d/serve.log" info "$WORK/id.pub"
  pid=$BENCH_PID
  local db="postgres://postgres@localhost/skillsd?host=$d/data/postgres/sock"
  if [ -n "${STATEMENTS:-}" ]; then
    psql -X -q "$db" -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
  fi
  sleep 1
  t0=$(date +%s%N)
  git -C "$SEED" push -q "ssh://git@127.0.0.1:$PORT/bench.git" main 2>/dev/null
  t1=$(date +%s%N)
  sleep "${AFTER:-2}"
  echo "client_ms=$(( (t1 - t0) / 1000000 )) $(grep ' push ' "$d/serve.log" | grep -o '[a-z_]*_ms=[0-9]*' | tr '\n' ' ')rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status") anon_kib=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status")"
  if [ -n "${STATEMENTS:-}" ]; then
    python3 - "$d/data/postgres/data/server.log" >&2 <<'PY'
import re, sys, collections
total = collections.Counter(); count = collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"duration: ([\d.]+) ms\s+(?:statement|execute [^:]*): (.*)", line)
    if m:
        key = re.sub(r"\s+", " ", m.group(2))[:80]
        total[key] += float(m.group(1)); count[key] += 1
for key, ms in total.most_common(12):
    print(f"    {ms:8.1f} ms {count[key]:4d}x {key}")
PY
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for i in $(seq 1 "$RUNS"); do
  for bin in "$@"; do
    echo "$(basename "$bin") run $i: $(run "$bin")" | tee -a "$WORK/lines"
  done
done
python3 - "$WORK/lines" <<'PY'
import re, sys, statistics, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if " run " not in line:
        continue
    name = line.split(" run ")[0]
    runs[name].append(dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line)))
keys = ["client_ms", "pack_ms", "check_ms", "store_ms", "duration_ms", "rss_kib", "anon_kib"]
print("| binary | " + " | ".join(keys) + " |")
print("|---|" + "---:|" * len(keys))
for name, rows in runs.items():
    print(f"| {name} | " + " | ".join(str(int(statistics.median(r[k] for r in rows if k in r))) for k in keys) + " |")
PY
