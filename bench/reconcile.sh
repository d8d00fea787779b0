#!/usr/bin/env bash
# Reconcile of N skills (default 100,000) into an empty cache: the time of
# `skillsd reconcile` after the skills table of the repository is emptied, until the
# rows are committed (with the full-text vectors skillsd computes itself), then the
# vectors left to PostgreSQL (text that is not plain, see cache/vector.rs) filled and
# the full-text index built after them (cache/index_builds.rs), until the command
# exits, and skillsd's own CPU time for the command (user + system: steadier than the
# wall clock on a shared machine). Then checks every vector against PostgreSQL's own.
#   bench/reconcile.sh            # N=100000 RUNS=3
#   SKILLSD=path/to/skillsd bench/reconcile.sh   # a binary built already
#   AB="old/skillsd new/skillsd" bench/reconcile.sh
#                                 # A/B: RUNS runs of each binary, alternating on the
#                                 # same data (the first one serves and imports)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-100000}
RUNS=${RUNS:-3}
BASE=${BASE:-/tmp/skillsd-reconcile}
PORT=${PORT:-2294}
# PROFILE=profiling: the same optimized code with line tables (bench/profile.sh's build).
PROFILE=${PROFILE:-release}
if [ -n "${AB:-}" ]; then
  read -r -a BINS <<< "$AB"
  SKILLSD=${BINS[0]}
else
  source "$ROOT/bench/lib.sh"
  bench_binary "$PROFILE"  # SKILLSD=path/to/skillsd: a binary built already
  BINS=("$SKILLSD")
fi
# The last run's data goes before this one starts (a run leaves ~3 GB).
rm -rf "$BASE" "$BASE".trash-*
mkdir -p "$BASE"
DATA=$BASE/data
"$SKILLSD" init bench --empty --data-dir "$DATA" >/dev/null
# One push of all N skills: over the default per-push limit (20,000).
export SKILLSD_MAX_FILES_PER_PUSH=$((N + 1))
# The server holds the private PostgreSQL for the whole run: a command started alone
# stops the cluster it started when it ends, and the database is the store of record
# (a node's repository is a copy, so skills go in by a push, never into the copy).
SKILLSD_LOG=warn "$SKILLSD" serve --listen "127.0.0.1:$PORT" --http off --data-dir "$DATA" > "$BASE/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do grep -q "listening" "$BASE/serve.log" && break; sleep 0.2; done
grep -q "listening" "$BASE/serve.log" || { cat "$BASE/serve.log" >&2; exit 1; }
W=$BASE/work
mkdir -p "$W"
echo "generating $N skills" >&2
python3 "$ANCHOR/gen_skills.py" gen --out "$W" --n "$N" --seed 42
# `skillsd import DIR` is a push of the folder, by the same path as `git push`.
SKILLSD_LOG=warn "$SKILLSD" import "$W" bench --data-dir "$DATA" >&2
DB="postgres://postgres@localhost/skillsd?host=$DATA/postgres/sock"
# Each run: empty the cache (as a new or restored database has it: TRUNCATE, not
# DELETE, which would leave the old pages to reuse), let the kernel write out what the
# generator and the previous run left dirty and PostgreSQL checkpoint, so that no run
# pays for another's writes; then time `skillsd reconcile`. It prints when the rows
# are committed and when the full-text vectors are all filled after them.
: > "$BASE/runs.txt"
for run in $(seq 1 "$RUNS"); do
 for bin in "${BINS[@]}"; do
  psql -X -q "$DB" -c "TRUNCATE skills; DELETE FROM sync_state WHERE repo = 'bench'"
  sync
  psql -X -q "$DB" -c "CHECKPOINT"
  t0=$(date +%s%N)
  # skillsd's own CPU time (user + system, both cores), less noisy than the wall
  # clock on a shared machine: what a change to skillsd's side saves shows here.
  cpu=$( { TIMEFORMAT='%U %S'; time "$bin" reconcile bench --data-dir "$DATA" > "$BASE/out.txt" 2> "$BASE/err.txt"; } 2>&1 )
  t1=$(date +%s%N)
  out=$(cat "$BASE/out.txt")
  cpu=$(echo "$cpu" | awk '{print $1 + $2}')
  cat "$BASE/err.txt" >&2
  echo "$out" >&2
  rows=$(echo "$out" | sed -n 's/.*(\([0-9.]*\) s)$/\1/p' | head -1)
  search=$(echo "$out" | sed -n 's/^search vectors: all filled (\([0-9.]*\) s after the rows)$/\1/p')
  index=$(echo "$out" | sed -n 's/^indexes: built after the commit (\([0-9.]*\) s)$/\1/p')
  total=$(python3 -c "print(($t1 - $t0) / 1e9)")
  echo "$rows ${search:-0} $total ${index:-0} $cpu $bin" >> "$BASE/runs.txt"
 done
done
rows=$(psql -X -qtA "$DB" -c "SELECT count(*) FROM skills WHERE repo = 'bench' AND search IS NOT NULL")
[ "$rows" = "$N" ] || { echo "cache has $rows searchable rows, expected $N" >&2; exit 1; }
# Every vector (most computed by skillsd, cache/vector.rs) equals PostgreSQL's own.
wrong=$(psql -X -qtA "$DB" -c "SELECT count(*) FROM skills WHERE repo = 'bench' AND search IS DISTINCT FROM skills_search_vector(title, description, tags, body)")
[ "$wrong" = "0" ] || { echo "$wrong vectors differ from skills_search_vector" >&2; exit 1; }
python3 - "$BASE/runs.txt" "$N" "$RUNS" <<'PY'
import statistics, sys
lines = [l.split() for l in open(sys.argv[1]) if l.strip()]
for binary in dict.fromkeys(l[5] for l in lines):
    runs = [list(map(float, l[:5])) for l in lines if l[5] == binary]
    med = lambda i: statistics.median(r[i] for r in runs)
    spread = lambda i: " / ".join("%.2f" % r[i] for r in runs)
    print("reconcile of %s skills into an empty cache, median of %s runs, %s:" % (sys.argv[2], sys.argv[3], binary))
    print("  rows committed (with the vectors skillsd computes):  %.2f s  (%s)" % (med(0), spread(0)))
    print("  vectors PostgreSQL filled after the rows:            %.2f s" % med(1))
    print("  full-text index built after the commit:              %.2f s  (%s)" % (med(3), spread(3)))
    print("  whole command, process start to exit:                %.2f s  (%s)" % (med(2), spread(2)))
    print("  skillsd's CPU time (user + system), whole command:   %.2f s  (%s)" % (med(4), spread(4)))
PY
# The server (the trap) stops the private PostgreSQL it holds.
