#!/usr/bin/env bash
# Side-by-side benchmark: skillsd vs the stock anchor (OpenSSH + git-receive-pack /
# git-upload-pack + Python hooks + psql, ../shared/anchors/stock-git-ssh), on this
# machine, in one run, with the same generated skills.
#
#   bench/compare.sh                 # N=10000 skills, RUNS=10 hyperfine runs
#   N=1000 RUNS=15 bench/compare.sh
#   SKILLSD=path/to/skillsd bench/compare.sh   # a binary built already
#
# Prints a Markdown table (medians in ms, ratio skillsd/stock) and writes it to
# bench/results-N.md. The push of 1,000 is also measured against its floor (the same
# push to a local bare repository) in alternating pairs: issue 33's ratio. Needs root (the anchor creates a `git` user and its own sshd).
set -euo pipefail
command -v hyperfine >/dev/null || { echo "needs hyperfine: apt-get install hyperfine" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-10000}
export RUNS=${RUNS:-10}
SK_PORT=${SK_PORT:-2290}
# The latency chart needs Debian's matplotlib.
/usr/bin/python3 -c "import matplotlib" 2>/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-matplotlib >/dev/null
SK_ROOT=${SK_ROOT:-/tmp/skillsd-bench}

source "$ROOT/bench/lib.sh"
bench_binary  # SKILLSD=path/to/skillsd: a binary built already

bash "$ANCHOR/setup.sh"
IMPORT_ONLY=1 bash "$ANCHOR/bench.sh" "$N" 2> >(tee /tmp/skillsd-bench-import.log >&2)
source "$ANCHOR/lib.sh"
SEEDW=$WORK/seed-$N
OUT=$RESULTS_DIR/skillsd-$N
mkdir -p "$OUT"

# ---- skillsd on its own port, data dir and private PostgreSQL (durable) ----------
if [ -f "$SK_ROOT/pid" ] && alive "$(cat "$SK_ROOT/pid")"; then kill "$(cat "$SK_ROOT/pid")"; sleep 1; fi
trash "$SK_ROOT"
mkdir -p "$SK_ROOT"
SK_DATA=$SK_ROOT/data
"$SKILLSD" init bench --empty --data-dir "$SK_DATA" >/dev/null
SKILLSD_LOG=warn "$SKILLSD" serve --listen "127.0.0.1:$SK_PORT" --http off --data-dir "$SK_DATA" > "$SK_ROOT/serve.log" 2>&1 &
echo $! > "$SK_ROOT/pid"
SK_PID=$(cat "$SK_ROOT/pid")
for _ in $(seq 1 100); do grep -q "listening" "$SK_ROOT/serve.log" && break; sleep 0.2; done
"$SKILLSD" user add bench --role writer --key "$CLIENT_DIR/id_ed25519.pub" --data-dir "$SK_DATA" >/dev/null
SK_URL="ssh://git@127.0.0.1:$SK_PORT/bench.git"
SK_SSH="ssh -i $CLIENT_DIR/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
sk() { env "GIT_SSH_COMMAND=$SK_SSH" "$@"; }

log "skillsd: import push of $N skills"
t0=$(date +%s%N)
sk git -C "$SEEDW" push -q "$SK_URL" main
t1=$(date +%s%N)
SK_IMPORT_MS=$(( (t1 - t0) / 1000000 ))
STOCK_IMPORT_MS=$(sed -n 's/.*initial import push of [0-9]* skills: \([0-9]*\) ms.*/\1/p' /tmp/skillsd-bench-import.log | tail -1)
# The import's full-text index is built right after it (cache::index_builds), and
# vectors skillsd could not compute filled (cache::search): wait for both, so that the
# measurements below do not share the machine with that work.
SK_DB="postgres://postgres@localhost/skillsd?host=$SK_DATA/postgres/sock"
bench_indexed "$SK_DB"
sleep 1
SK_IDLE_KB=$(awk '/VmRSS/ {print $2}' "/proc/$SK_PID/status")
SK_IMPORT_PEAK_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SK_PID/status")
echo 5 > "/proc/$SK_PID/clear_refs"  # reset the peak: measure the clones alone

hfx() {  # name prepare command
  local name=$1 prep=$2 cmd=$3 args
  args=(-N --runs "$RUNS" --warmup 1 --style basic --export-json "$OUT/$name.json")
  [ -n "$prep" ] && args+=(--prepare "$prep")
  log "hyperfine $name"
  hyperfine "${args[@]}" "$cmd" >> "$OUT/hyperfine.log" 2>&1 || { tail -20 "$OUT/hyperfine.log"; exit 1; }
}
med() { python3 -c "import json;print('%.0f' % (1000*json.load(open('$OUT/$1.json'))['results'][0]['median']))"; }

STOCK_SSH25519="$GIT_SSH_COMMAND -o KexAlgorithms=curve25519-sha256"
hfx stock-ls-remote "" "git ls-remote $REMOTE_URL"
hfx stock-ls-remote-25519 "" "env \"GIT_SSH_COMMAND=$STOCK_SSH25519\" git ls-remote $REMOTE_URL"
hfx skillsd-ls-remote "" "env \"GIT_SSH_COMMAND=$SK_SSH\" git ls-remote $SK_URL"
hfx stock-clone "bash $ANCHOR/prep.sh trash $WORK/c1" "git clone -q $REMOTE_URL $WORK/c1"
hfx skillsd-clone "bash $ANCHOR/prep.sh trash $WORK/c2" "env \"GIT_SSH_COMMAND=$SK_SSH\" git clone -q $SK_URL $WORK/c2"
hfx stock-clone-nc "bash $ANCHOR/prep.sh trash $WORK/c3" "git clone -q --no-checkout $REMOTE_URL $WORK/c3"
hfx stock-clone-nc-25519 "bash $ANCHOR/prep.sh trash $WORK/c3" "env \"GIT_SSH_COMMAND=$STOCK_SSH25519\" git clone -q --no-checkout $REMOTE_URL $WORK/c3"
hfx skillsd-clone-nc "bash $ANCHOR/prep.sh trash $WORK/c4" "env \"GIT_SSH_COMMAND=$SK_SSH\" git clone -q --no-checkout $SK_URL $WORK/c4"
SK_PEAK_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SK_PID/status")

# Bytes: the pack each server sends for a full clone.
trash "$WORK/b1" "$WORK/b2"
git clone -q --bare "$REMOTE_URL" "$WORK/b1"
sk git clone -q --bare "$SK_URL" "$WORK/b2"
STOCK_BYTES=$(cat "$WORK"/b1/objects/pack/*.pack | wc -c)
SK_BYTES=$(cat "$WORK"/b2/objects/pack/*.pack | wc -c)

# Push of one modified skill, end to end (cache updated before push returns).
TARGET=$(cd "$SEEDW" && git ls-files skills | sed -n '1p')
trash "$WORK/p1" "$WORK/p2"
git clone -q "$REMOTE_URL" "$WORK/p1"
sk git clone -q "$SK_URL" "$WORK/p2"
hfx stock-push-one "bash $ANCHOR/prep.sh modify-one $WORK/p1 $TARGET" "git -C $WORK/p1 push -q origin main"
hfx stock-push-one-25519 "bash $ANCHOR/prep.sh modify-one $WORK/p1 $TARGET" "env \"GIT_SSH_COMMAND=$STOCK_SSH25519\" git -C $WORK/p1 push -q origin main"
hfx skillsd-push-one "bash $ANCHOR/prep.sh modify-one $WORK/p2 $TARGET" "env \"GIT_SSH_COMMAND=$SK_SSH\" git -C $WORK/p2 push -q origin main"
hfx stock-push-100 "bash $ANCHOR/prep.sh add-100 $WORK/p1" "git -C $WORK/p1 push -q origin main"
hfx skillsd-push-100 "bash $ANCHOR/prep.sh add-100 $WORK/p2" "env \"GIT_SSH_COMMAND=$SK_SSH\" git -C $WORK/p2 push -q origin main"
# 1,000 new skills per run (indices far above anything else, distinct per run).
cat > "$OUT/add-1000.sh" <<PREP
#!/usr/bin/env bash
set -euo pipefail
clone=\$1
c=\$(( \$(cat "\$clone/.git/add1000-counter" 2>/dev/null || echo 0) + 1 ))
echo "\$c" > "\$clone/.git/add1000-counter"
python3 "$ANCHOR/gen_skills.py" gen --out "\$clone" --n 1000 --start \$(( 5000000 + c * 1000 )) --seed 42
git -C "\$clone" add skills
git -C "\$clone" commit -q -m "bench: add 1000 skills (\$c)"
PREP
hfx stock-push-1000 "bash $OUT/add-1000.sh $WORK/p1" "git -C $WORK/p1 push -q origin main"
hfx skillsd-push-1000 "bash $OUT/add-1000.sh $WORK/p2" "env \"GIT_SSH_COMMAND=$SK_SSH\" git -C $WORK/p2 push -q origin main"
# The floor any server can reach with this client: the same push to a bare repository
# on the local disk (git's own receive-pack, no SSH, no hooks, no database). Most of it
# is the client's own pack-objects (delta search over the new blobs).
trash "$WORK/floor.git" "$WORK/p3"
git clone -q --bare "$SEEDW" "$WORK/floor.git"
git clone -q "$WORK/floor.git" "$WORK/p3"
hfx floor-push-1000 "bash $OUT/add-1000.sh $WORK/p3" "git -C $WORK/p3 push -q origin main"
# The two again, alternating pair by pair: each block of runs above takes the
# machine's mood of its own minutes with it, a pair shares it. The goal's ratio is the
# median of the pairs' ratios.
log "push 1,000: skillsd and the floor alternating, $RUNS pairs"
: > "$OUT/pairs-1000.txt"
for _ in $(seq 1 "$RUNS"); do
  bash "$OUT/add-1000.sh" "$WORK/p3" >/dev/null
  bash "$OUT/add-1000.sh" "$WORK/p2" >/dev/null
  sync; sleep 1
  t0=$(date +%s%N); git -C "$WORK/p3" push -q origin main; t1=$(date +%s%N)
  sleep 1
  t2=$(date +%s%N); sk git -C "$WORK/p2" push -q origin main; t3=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000000 )) $(( (t3 - t2) / 1000000 ))" >> "$OUT/pairs-1000.txt"
  sleep 1
done
read -r PAIR_FLOOR PAIR_SK PAIR_RATIO PAIR_SPREAD < <(python3 - "$OUT/pairs-1000.txt" <<'EOF'
import statistics, sys
pairs = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
ratios = sorted(s / f for f, s in pairs)
print("%.0f %.0f %.2f %.2f–%.2f" % (statistics.median(f for f, _ in pairs),
      statistics.median(s for _, s in pairs), statistics.median(ratios), ratios[0], ratios[-1]))
EOF
)

# The cache must equal the tree after all that.
SK_DB="postgres://postgres@localhost/skillsd?host=$SK_DATA/postgres/sock"
rows=$(psql -X -qtA "$SK_DB" -c "SELECT count(*) FROM skills WHERE repo = 'bench'")
files=$(sk git -C "$WORK/p2" ls-tree -r --name-only HEAD skills | grep -c '\.md$')
[ "$rows" = "$files" ] || { echo "cache ($rows rows) != tree ($files files)" >&2; exit 1; }

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
{
  echo "## N = $N skills, $(date -u +%Y-%m-%d), $(nproc) cores; medians of $RUNS runs (ms)"
  echo
  echo "| measurement | stock (default KEX) | stock (curve25519) | skillsd | skillsd / stock (curve25519) |"
  echo "|---|---|---|---|---|"
  echo "| git ls-remote | $(med stock-ls-remote) | $(med stock-ls-remote-25519) | $(med skillsd-ls-remote) | $(ratio "$(med skillsd-ls-remote)" "$(med stock-ls-remote-25519)") |"
  echo "| git clone (with checkout) | $(med stock-clone) | – | $(med skillsd-clone) | (vs default) $(ratio "$(med skillsd-clone)" "$(med stock-clone)") |"
  echo "| git clone --no-checkout | $(med stock-clone-nc) | $(med stock-clone-nc-25519) | $(med skillsd-clone-nc) | $(ratio "$(med skillsd-clone-nc)" "$(med stock-clone-nc-25519)") |"
  echo "| push 1 modified skill (cache updated) | $(med stock-push-one) | $(med stock-push-one-25519) | $(med skillsd-push-one) | $(ratio "$(med skillsd-push-one)" "$(med stock-push-one-25519)") |"
  echo "| push 100 new skills | $(med stock-push-100) | – | $(med skillsd-push-100) | (vs default) $(ratio "$(med skillsd-push-100)" "$(med stock-push-100)") |"
  echo "| push 1,000 new skills | $(med stock-push-1000) | – | $(med skillsd-push-1000) | (vs default) $(ratio "$(med skillsd-push-1000)" "$(med stock-push-1000)") |"
  echo "| push 1,000 new skills: floor (local push, no SSH, no hooks, no database) | – | – | $(med floor-push-1000) | (vs default) $(ratio "$(med floor-push-1000)" "$(med stock-push-1000)") |"
  echo "| push 1,000 new skills, alternating with the floor ($RUNS pairs) | – | – | $PAIR_SK (floor $PAIR_FLOOR) | **$PAIR_RATIO× the floor** (median of the pairs' ratios, $PAIR_SPREAD) |"
  echo "| import push of $N skills (1 run) | $STOCK_IMPORT_MS | – | $SK_IMPORT_MS | (vs default) $(ratio "$SK_IMPORT_MS" "$STOCK_IMPORT_MS") |"
  echo "| clone pack bytes | $STOCK_BYTES | – | $SK_BYTES | $(ratio "$SK_BYTES" "$STOCK_BYTES") |"
  echo
  mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
  echo "skillsd server RSS (MiB): idle after import $(mib "$SK_IDLE_KB"); peak during the import push $(mib "$SK_IMPORT_PEAK_KB"); peak during the ls-remote and clone runs $(mib "$SK_PEAK_KB")."
} | tee "$ROOT/bench/results-$N.md"

/usr/bin/python3 "$ROOT/bench/chart.py" "$OUT/stock-push-one.json" "$OUT/stock-push-one-25519.json" "$OUT/skillsd-push-one.json" "$ROOT/bench/push-latency.png" || echo "chart skipped (python3-matplotlib missing?)" >&2
kill "$SK_PID" 2>/dev/null || true
