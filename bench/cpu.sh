#!/usr/bin/env bash
# What every core of the machine does during a push of 1,000 new skills onto N: RUNS
# pushes, each under `perf record -a` (the whole machine, no call graphs), then per
# push a table of CPU samples by 20 ms and by who took them — the client's `git`
# (push, pack-objects) and `ssh`, skillsd's threads, PostgreSQL's processes, idle — on
# a clock starting 20 ms before the client's `ssh` first runs. With C cores and F
# samples a second, a bucket of 20 ms holds C × F / 50 samples: all busy, or idle.
#
#   bench/cpu.sh                     # N=10000 RUNS=3 FREQ=2000, the release build
#   SKILLSD=/path/to/skillsd bench/cpu.sh
#
# Needs root (or perf_event_paranoid ≤ 0) and Debian's `linux-perf`. Prints the tables
# (also in $WORK/cpu.md); bench/cpu-timeline-session31.md is one run's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-10000}
RUNS=${RUNS:-3}
FREQ=${FREQ:-2000}
WORK=${WORK:-/var/tmp/skillsd-cpu}
PORT=${PORT:-2394}
command -v perf >/dev/null || { echo "needs perf: apt-get install linux-perf" >&2; exit 1; }
source "$ROOT/bench/lib.sh"
bench_binary  # or a binary given as SKILLSD=...

bench_seeded "$WORK" cpu warn,skillsd::receive=info
git clone -q "$URL" "$WORK/clone"

: > "$WORK/cpu.md"
for c in $(seq 1 "$RUNS"); do
  python3 "$ANCHOR/gen_skills.py" gen --out "$WORK/clone" --n 1000 --start $(( 6000000 + c * 1000 )) --seed 42 >/dev/null
  git -C "$WORK/clone" add skills
  git -C "$WORK/clone" -c gc.auto=0 commit -q -m "add 1000 ($c)"
  sync; sleep 1
  perf record -a -F "$FREQ" -o "$WORK/perf.data" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
  t0=$(date +%s%N)
  git -C "$WORK/clone" push -q origin main 2>/dev/null
  t1=$(date +%s%N)
  sleep 0.2
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  sleep 0.3
  {
    echo "## push $c: wall $(( (t1 - t0) / 1000000 )) ms; server: $(grep -o 'pack_last_byte_ms=[0-9]* check_ms=[0-9]*.*store_ms=[0-9]* duration_ms=[0-9]*' "$WORK/serve.log" | tail -1 | sed 's/ early_checked=[0-9]*//')"
    echo
    perf script -i "$WORK/perf.data" -F comm,tid,cpu,time 2>/dev/null | python3 -c '
import collections, sys
def group(comm):
    if comm.startswith(("tokio-rt", "skillsd", "gix-")):
        return "skillsd"
    return {"git": "client git", "ssh": "client ssh", "swapper": "idle", "postgres": "postgres"}.get(comm, "other")
samples = []
for line in sys.stdin:
    p = line.split()
    samples.append((float(p[-1].rstrip(":")), group(" ".join(p[:-3]))))
t0 = min(t for t, _ in samples)
buckets = collections.defaultdict(collections.Counter)
for t, g in samples:
    buckets[int((t - t0) * 1000) // 20][g] += 1
cols = ["client git", "client ssh", "skillsd", "postgres", "idle", "other"]
print("| ms | " + " | ".join(cols) + " |")
print("|---:|" + "---:|" * len(cols))
# From the bucket before the ssh of the client starts (perf starts some time after it is
# run, so the start of the push is found, not assumed).
start = min((k for k in buckets if buckets[k]["client ssh"]), default=0) - 1
for k in sorted(buckets):
    if k >= start:
        print(f"| {(k - start) * 20} | " + " | ".join(str(buckets[k][c]) for c in cols) + " |")
'
    echo
  } | tee -a "$WORK/cpu.md"
  rm -f "$WORK/perf.data"
done
