#!/usr/bin/env bash
# A push of 1,000 new skills against its floor, on one clock: RUNS times, the same
# 1,000 new skills are committed to two clones of one seed of N skills, pushed first
# to a bare repository on local disk with git's own receive-pack (the floor: no SSH,
# no hooks, no database), then to skillsd over SSH. For each push it prints
#   - both wall times and their ratio;
#   - the client's timeline (GIT_TRACE2_PERF, ms from the push's start): when its
#     `pack-objects` started and ended, and for the floor when `index-pack` started
#     (its first byte) and ended;
#   - the server's push log line: `pack_first_byte_ms`, `pack_last_byte_ms`,
#     `pack_ms` (the bytes and their indexing), `check_ms`, `store_ms`, and the
#     repository lock's `lock_ms` (receive/arrival.rs, receive/publish.rs);
# then the medians, as a Markdown table (also in $WORK/timeline.md), and as a chart
# of both pushes phase by phase on the client's clock ($WORK/timeline.png, with
# Debian's python3-matplotlib; docs/timeline-push-1000.png is one).
#
#   bench/timeline.sh                # N=10000 RUNS=8, the release build
#   SKILLSD=/path/to/skillsd bench/timeline.sh
set -euo pipefail
export SKILLSD_LOG=${SKILLSD_LOG:-warn}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-10000}
RUNS=${RUNS:-8}
WORK=${WORK:-/var/tmp/skillsd-timeline}
PORT=${PORT:-2391}
source "$ROOT/bench/lib.sh"
bench_binary  # or a binary given as SKILLSD=...

bench_seeded "$WORK" timeline warn,skillsd::receive=debug
SEED=$WORK/seed
git clone -q --bare "$SEED" "$WORK/floor.git"
git clone -q "$WORK/floor.git" "$WORK/floor"
git clone -q "$URL" "$WORK/skillsd"

: > "$WORK/runs.tsv"
for c in $(seq 1 "$RUNS"); do
  for clone in floor skillsd; do
    python3 "$ANCHOR/gen_skills.py" gen --out "$WORK/$clone" --n 1000 --start $(( 5000000 + c * 1000 )) --seed 42 >/dev/null
    git -C "$WORK/$clone" add skills
    # No `gc --auto` in a clone: after it, pack-objects reuses deltas and sends sooner.
    git -C "$WORK/$clone" -c gc.auto=0 commit -q -m "add 1000 ($c)"
  done
  sync; sleep 1
  t0=$(date +%s%N)
  GIT_TRACE2_PERF=$WORK/floor.trace git -C "$WORK/floor" push -q origin main
  t1=$(date +%s%N)
  sleep 1
  t2=$(date +%s%N)
  GIT_TRACE2_PERF=$WORK/skillsd.trace git -C "$WORK/skillsd" push -q origin main 2>/dev/null
  t3=$(date +%s%N)
  sleep 0.5
  python3 "$ROOT/bench/timeline.py" run $(( (t1 - t0) / 1000000 )) $(( (t3 - t2) / 1000000 )) \
    "$WORK/floor.trace" "$WORK/skillsd.trace" "$WORK/serve.log" | tee -a "$WORK/runs.tsv"
  rm -f "$WORK/floor.trace" "$WORK/skillsd.trace"
  sleep 1
done
python3 "$ROOT/bench/timeline.py" table "$WORK/runs.tsv" "$N" | tee "$WORK/timeline.md"
/usr/bin/python3 -c "import matplotlib" 2>/dev/null \
  || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-matplotlib >/dev/null \
  || true
/usr/bin/python3 "$ROOT/bench/timeline.py" chart "$WORK/runs.tsv" "$N" "$WORK/timeline.png" \
  || echo "chart skipped (python3-matplotlib missing?)" >&2
