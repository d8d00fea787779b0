#!/usr/bin/env bash
# Three nodes on one PostgreSQL, HAProxy (deploy/haproxy.cfg as shipped) in front:
#  * clones per second through HAProxy vs straight to one node (CLIENTS parallel
#    `git clone --no-checkout` loops for SECS seconds each);
#  * the time from `git push` returning through node 1 to node 2 serving the new tip
#    (`git ls-remote` through node 2, started the moment the push returns), ROUNDS times.
#
#   bench/nodes.sh                    # N=10000 skills, CLIENTS=4, SECS=20, ROUNDS=20
#   SKILLSD=path/to/skillsd bench/nodes.sh   # a binary built already
#
# Prints a Markdown table and writes it to bench/nodes-N.md. Needs haproxy
# (scripts/deps) and PostgreSQL's server programs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-10000}
CLIENTS=${CLIENTS:-4}
SECS=${SECS:-20}
ROUNDS=${ROUNDS:-20}
WORK=${WORK:-/tmp/skillsd-nodes-bench}
BASE_PORT=${BASE_PORT:-2400}
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

source "$ROOT/bench/lib.sh"
bench_binary  # or a binary given as SKILLSD=...

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"
chmod 755 "$WORK"  # the private PostgreSQL runs as `postgres` when this runs as root
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id" -C bench
# deploy/haproxy.cfg sends a PROXY header (send-proxy-v2) from 127.0.0.1, which the
# nodes then require from that address (SKILLSD_PROXY_PROTOCOL): the clients connect
# from 127.0.0.2, so that they can also reach a node straight, without a header.
export SKILLSD_PROXY_PROTOCOL=127.0.0.1
export GIT_SSH_COMMAND="ssh -i $WORK/id -o BindAddress=127.0.0.2 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

wait_for() { for _ in $(seq 1 300); do grep -q listening "$1" && return 0; sleep 0.2; done; echo "node did not start: $1" >&2; cat "$1" >&2; exit 1; }

# Node 1 runs the private PostgreSQL under its data dir; nodes 2 and 3 use its socket.
SKILLSD_LOG=warn "$SKILLSD" serve --listen "127.0.0.1:$((BASE_PORT + 1))" --http "127.0.0.1:$((BASE_PORT + 11))" \
  --data-dir "$WORK/n1" > "$WORK/n1.log" 2>&1 &
pids+=($!)
wait_for "$WORK/n1.log"
DB="postgres://postgres@localhost/skillsd?host=$WORK/n1/postgres/sock"
for i in 2 3; do
  SKILLSD_LOG=warn "$SKILLSD" serve --listen "127.0.0.1:$((BASE_PORT + i))" --http "127.0.0.1:$((BASE_PORT + 10 + i))" \
    --data-dir "$WORK/n$i" --database-url "$DB" > "$WORK/n$i.log" 2>&1 &
  pids+=($!)
  wait_for "$WORK/n$i.log"
done
"$SKILLSD" user add bench --role writer --key "$WORK/id.pub" --database-url "$DB" --data-dir "$WORK/n1" >/dev/null
SKILLSD_LB_LISTEN=127.0.0.1:$BASE_PORT \
SKILLSD_NODE1=127.0.0.1:$((BASE_PORT + 1)) SKILLSD_NODE1_HTTP_PORT=$((BASE_PORT + 11)) \
SKILLSD_NODE2=127.0.0.1:$((BASE_PORT + 2)) SKILLSD_NODE2_HTTP_PORT=$((BASE_PORT + 12)) \
SKILLSD_NODE3=127.0.0.1:$((BASE_PORT + 3)) SKILLSD_NODE3_HTTP_PORT=$((BASE_PORT + 13)) \
  "$HAPROXY" -db -f "$ROOT/deploy/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
pids+=($!)
url() { echo "ssh://git@127.0.0.1:$1/skills.git"; }
LB=$(url "$BASE_PORT")
for _ in $(seq 1 100); do git ls-remote "$LB" >/dev/null 2>&1 && break; sleep 0.2; done

# N skills in one push, through node 1.
git clone -q "$(url $((BASE_PORT + 1)))" "$WORK/seed"
python3 - "$WORK/seed" "$N" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
body = "Steps to follow, with enough text to look like a real skill. " * 40
for i in range(n):
    d = os.path.join(root, "skills", f"area-{i % 50}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"skill-{i}.md"), "w") as f:
        f.write(f"---\ntitle: Skill number {i}\ndescription: generated skill {i}\ntags: [bench, area-{i % 50}]\n---\n{body}\n")
EOF
git -C "$WORK/seed" add -A && git -C "$WORK/seed" commit -q -m "$N skills"
git -C "$WORK/seed" push -q origin HEAD:main
sleep 2

clones_per_sec() {  # url label
  local target=$1 label=$2 c cpids=()
  rm -rf "$WORK/cl-$label"; mkdir -p "$WORK/cl-$label"
  local t0; t0=$(date +%s%N)
  for c in $(seq 1 "$CLIENTS"); do
    ( n=0; end=$(( $(date +%s) + SECS ))
      while [ "$(date +%s)" -lt "$end" ]; do
        git clone -q --no-checkout "$target" "$WORK/cl-$label/$c" && n=$((n + 1))
        rm -rf "$WORK/cl-$label/$c"
      done
      echo "$n" > "$WORK/cl-$label/count-$c" ) &
    cpids+=($!)
  done
  for c in "${cpids[@]}"; do wait "$c"; done
  local t1; t1=$(date +%s%N)
  local total; total=$(cat "$WORK/cl-$label"/count-* | paste -sd+ | bc)
  python3 -c "print('%.2f' % ($total / (($t1 - $t0) / 1e9)))"
}
ONE=$(clones_per_sec "$(url $((BASE_PORT + 1)))" one)
THREE=$(clones_per_sec "$LB" lb)

# Push through node 1, then node 2 serves the tip: how long after the push returns?
git clone -q "$(url $((BASE_PORT + 1)))" "$WORK/pusher"
lat=()
for r in $(seq 1 "$ROUNDS"); do
  sed -i "s/^title: .*/title: Round $r/" "$WORK/pusher/skills/area-0/skill-0.md"
  git -C "$WORK/pusher" commit -q -am "round $r"
  tip=$(git -C "$WORK/pusher" rev-parse HEAD)
  git -C "$WORK/pusher" push -q origin HEAD:main
  t0=$(date +%s%N)
  until [ "$(git ls-remote "$(url $((BASE_PORT + 2)))" refs/heads/main | cut -f1)" = "$tip" ]; do :; done
  t1=$(date +%s%N)
  lat+=($(( (t1 - t0) / 1000 )))
done
MED=$(printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}')
MAX=$(printf '%s\n' "${lat[@]}" | sort -n | tail -1 | awk '{printf "%.1f", $1/1000}')

OUT=$ROOT/bench/nodes-$N.md
{
  echo "Three nodes on one PostgreSQL, HAProxy in front ($(date -u +%Y-%m-%d), N=$N, $CLIENTS clone loops x ${SECS}s, $(nproc) cores)"
  echo
  echo "| measurement | result |"
  echo "|---|---|"
  echo "| clones/s straight to one node | $ONE |"
  echo "| clones/s through HAProxy to three nodes | $THREE |"
  echo "| push through node 1 returns → node 2's ls-remote shows the tip (median of $ROUNDS, incl. the ls-remote itself) | $MED ms (max $MAX ms) |"
} | tee "$OUT"
