#!/usr/bin/env bash
# Where a push's time goes: the whole machine sampled by `perf` (the server, its
# PostgreSQL, the ssh and git clients) during
#   push-1000    a push of 1,000 new skills to a repository of 10,000 (repeated RUNS times)
#   import       the first push of N skills (default 10,000) into an empty repository
# then the samples folded (inferno) into flame graphs (docs/profile-<case>.svg) and
# into a breakdown by stage (docs/profile-<case>.md, bench/breakdown.py): SSH,
# receiving and indexing the pack, inspecting it, validating, writing the cache,
# uploading the pack, PostgreSQL, the git client, the rest.
#
#   bench/profile.sh                 # N=10000 RUNS=5
#   SKILLSD=target/profiling/skillsd bench/profile.sh   # built already (profile `profiling`)
#
# Needs perf (Debian's linux-perf; cpu-clock sampling, hardware counters are not
# needed) and inferno (cargo install inferno). Builds with the `profiling` profile:
# the release build with line tables, so that inlined frames keep their names.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-10000}
RUNS=${RUNS:-5}
FREQ=${FREQ:-1999}
WORK=${WORK:-/var/tmp/skillsd-profile}
PORT=${PORT:-2390}
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null
command -v inferno-flamegraph >/dev/null || cargo install -q --locked inferno
source "$ROOT/bench/lib.sh"
bench_binary profiling  # SKILLSD=path/to/skillsd: one built already (with line tables)

rm -rf "$WORK"; mkdir -p "$WORK"
chmod 755 "$WORK"  # the private PostgreSQL runs as `postgres` when this runs as root
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id" -C profile
export GIT_SSH_COMMAND="ssh -i $WORK/id -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

SEED=$WORK/seed
git init -q -b main "$SEED"
python3 "$ANCHOR/gen_skills.py" gen --out "$SEED" --n "$N" --seed 42
git -C "$SEED" add -A && git -C "$SEED" commit -q -m "$N skills"

pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT
serve() {  # a fresh data dir and server; sets URL and DB
  local d=$WORK/$1
  [ -n "$pid" ] && { kill "$pid"; wait "$pid" 2>/dev/null || true; }
  "$SKILLSD" init bench --empty --data-dir "$d" >/dev/null
  SKILLSD_LOG=warn "$SKILLSD" serve --listen "127.0.0.1:$PORT" --http off --data-dir "$d" > "$WORK/$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do grep -q listening "$WORK/$1.log" && break; sleep 0.2; done
  "$SKILLSD" user add bench --role writer --key "$WORK/id.pub" --data-dir "$d" >/dev/null
  URL="ssh://git@127.0.0.1:$PORT/bench.git"
  DB="postgres://postgres@localhost/skillsd?host=$d/postgres/sock"
}
settle() {  # the full-text vectors filled and indexed, the machine quiet
  bench_indexed "$DB"
  sync; sleep 1
}
record() {  # case command...: perf over the whole machine while the command runs,
  # only while it says so (`enable`/`disable` on $WORK/ctl) when PERF_DELAY=-1
  local case=$1; shift
  rm -f "$WORK/ctl" "$WORK/ack"; mkfifo "$WORK/ctl" "$WORK/ack"
  perf record -q -e cpu-clock -F "$FREQ" -a -g --call-graph dwarf,32768 ${PERF_DELAY:+-D "$PERF_DELAY"} \
    --control "fifo:$WORK/ctl,$WORK/ack" -o "$WORK/$case.perf" -- "$@" 2>>"$WORK/perf.log"
}
fold() {  # case label: flame graph and breakdown
  local case=$1 label=$2 ms=$3
  perf script -i "$WORK/$case.perf" 2>/dev/null | inferno-collapse-perf > "$WORK/$case.folded"
  inferno-flamegraph --title "skillsd: $label (whole machine, cpu-clock)" --width 1600 --minwidth 1 \
    < "$WORK/$case.folded" > "$ROOT/docs/profile-$case.svg"
  python3 "$ROOT/bench/breakdown.py" "$WORK/$case.folded" "$label" "$ms" "${4:-1}" > "$ROOT/docs/profile-$case.md"
  cat "$ROOT/docs/profile-$case.md"
}
mkdir -p "$ROOT/docs"

# The first push of N skills.
serve import
t0=$(date +%s%N)
record import git -C "$SEED" push -q "$URL" main
t1=$(date +%s%N)
fold import "first push of $N skills" $(( (t1 - t0) / 1000000 ))
settle

# RUNS pushes of 1,000 new skills each, onto the N: one recording over all of them.
git clone -q "$URL" "$WORK/p"
cat > "$WORK/pushes.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
exec {ctl}<>"$WORK/ctl" {ack}<>"$WORK/ack"
perf_on() { echo "\$1" >&\$ctl; read -r -u \$ack _; }
for c in \$(seq 1 $RUNS); do
  python3 "$ANCHOR/gen_skills.py" gen --out "$WORK/p" --n 1000 --start \$(( 5000000 + c * 1000 )) --seed 42
  git -C "$WORK/p" add skills
  git -C "$WORK/p" commit -q -m "add 1000 (\$c)"
  s=\$(date +%s%N)
  perf_on enable
  git -C "$WORK/p" push -q origin main
  perf_on disable
  echo \$(( (\$(date +%s%N) - s) / 1000000 )) >> "$WORK/push-ms"
done
EOF
: > "$WORK/push-ms"
# Only the pushes are recorded: the generator and the commits run between them.
PERF_DELAY=-1 record push-1000 bash "$WORK/pushes.sh"
ms=$(python3 -c "import statistics;print(int(statistics.median(int(l) for l in open('$WORK/push-ms'))))")
fold push-1000 "push of 1,000 new skills onto $N (median $ms ms, $RUNS pushes)" "$ms" "$RUNS"
