#!/usr/bin/env bash
# Binaries side by side on the push of 1,000 new skills onto N: what a change to the
# push path costs or saves. One data dir is seeded once (N skills, the import, the
# full-text index built) and copied; then ROUNDS times, for each binary in turn, the
# copy is restored, the server started on it, PUSHES pushes of 1,000 new skills made
# (the first after the start is dropped: cold caches), the server stopped. Each kept
# push gives the client's wall time and the server's push log line (pack_ms,
# pack_last_byte_ms, check_ms, store_ms, duration_ms).
#
#   bench/ab-push1000.sh OLD_BINARY NEW_BINARY [MORE ...]   # N=10000 ROUNDS=6 PUSHES=3
#
# Prints one line per push and a table of medians (also in $WORK/ab.md). Writes
# nothing in the repository. bench/ab-early-session29.md is one run's raw lines.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-10000}
ROUNDS=${ROUNDS:-6}
PUSHES=${PUSHES:-3}
WORK=${WORK:-/var/tmp/skillsd-ab-push1000}
PORT=${PORT:-2393}
[ $# -ge 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY [MORE ...]" >&2; exit 2; }
source "$ROOT/bench/lib.sh"
bench_client "$WORK" ab1000
URL="ssh://git@127.0.0.1:$PORT/bench.git"

# The seeded data dir and a clone of it, kept as they are after the import.
bench_seed "$WORK/seed" "$N"
bench_serve "$1" "$WORK/seeded/data" "$PORT" "$WORK/seed.log" warn "$WORK/id.pub"
pid=$BENCH_PID
git -C "$WORK/seed" push -q "$URL" main
DB="postgres://postgres@localhost/skillsd?host=$WORK/seeded/data/postgres/sock"
bench_indexed "$DB"  # the import's vectors filled and indexed
git clone -q "$URL" "$WORK/seeded/clone"
stop() {  # the server, and its private PostgreSQL with it
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do [ -e "$2/postgres/data/postmaster.pid" ] || break; sleep 0.1; done
}
stop "$pid" "$WORK/seeded/data"

: > "$WORK/runs.tsv"
c=0
for r in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    rm -rf "$WORK/run" && cp -a "$WORK/seeded" "$WORK/run"
    SKILLSD_LOG=warn,skillsd::receive=info "$bin" serve --listen "127.0.0.1:$PORT" --http off \
      --data-dir "$WORK/run/data" > "$WORK/run/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do grep -q listening "$WORK/run/serve.log" && break; sleep 0.2; done
    for p in $(seq 1 "$PUSHES"); do
      c=$((c + 1))
      python3 "$ANCHOR/gen_skills.py" gen --out "$WORK/run/clone" --n 1000 \
        --start $(( 7000000 + c * 1000 )) --seed 42 >/dev/null
      git -C "$WORK/run/clone" add skills
      git -C "$WORK/run/clone" -c gc.auto=0 commit -q -m "add 1000 ($c)"
      sync; sleep 1
      t0=$(date +%s%N)
      git -C "$WORK/run/clone" push -q origin main 2>/dev/null
      t1=$(date +%s%N)
      sleep 0.3
      line=$(grep -o 'pack_ms=.*' "$WORK/run/serve.log" | tail -1)
      [ "$p" -gt 1 ] && printf '%s\twall_ms=%s\t%s\n' "$(basename "$bin")" $(( (t1 - t0) / 1000000 )) "$line" \
        | tee -a "$WORK/runs.tsv"
    done
    stop "$pid" "$WORK/run/data"
  done
done
python3 - "$WORK/runs.tsv" "$N" <<'PY' | tee "$WORK/ab.md"
import collections, re, statistics, sys
keys = ["wall_ms", "pack_last_byte_ms", "pack_ms", "check_ms", "store_ms", "duration_ms"]
runs = collections.OrderedDict()
for line in open(sys.argv[1]):
    name = line.split("\t")[0]
    values = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
    runs.setdefault(name, []).append(values)
print(f"Push of 1,000 new skills onto {sys.argv[2]}, medians (ms)\n")
print("| binary | pushes | " + " | ".join(keys) + " |")
print("|---|---:|" + "---:|" * len(keys))
for name, rows in runs.items():
    cells = [f"{statistics.median(r[k] for r in rows if k in r):.0f}" for k in keys]
    print(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
PY
