#!/usr/bin/env bash
# Concurrent pushes, side by side: CLIENTS clients each push COMMITS commits (one
# distinct skill per commit) to main at the same time, retrying after
# `git pull --rebase` when they lose the race; stock anchor (its conc.sh) vs skillsd
# (the same scenario, below). Checks that nothing is lost: every change in the final
# tree and in the cache.
#   bench/concurrency.sh          # N=1000 CLIENTS=8 COMMITS=10
#   SKILLSD=path/to/skillsd bench/concurrency.sh   # a binary built already
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-1000}
export CONC_CLIENTS=${CLIENTS:-8} CONC_COMMITS=${COMMITS:-10}
SK_PORT=${SK_PORT:-2292}
SK_ROOT=${SK_ROOT:-/tmp/skillsd-conc}
source "$ROOT/bench/lib.sh"
bench_binary  # SKILLSD=path/to/skillsd: a binary built already

bash "$ANCHOR/setup.sh"
IMPORT_ONLY=1 bash "$ANCHOR/bench.sh" "$N"
CONC_TAG=-kex25519 CONC_SSH_OPTS="-o KexAlgorithms=curve25519-sha256" bash "$ANCHOR/conc.sh" "$N"
source "$ANCHOR/lib.sh"
STOCK_JSON=$RESULTS_DIR/conc-kex25519-$N.json
SEEDW=$WORK/seed-$N

# ---- skillsd ------------------------------------------------------------------
trash "$SK_ROOT"; mkdir -p "$SK_ROOT"
DATA=$SK_ROOT/data
"$SKILLSD" init bench --empty --data-dir "$DATA" >/dev/null
SKILLSD_LOG=warn "$SKILLSD" serve --listen "127.0.0.1:$SK_PORT" --http off --data-dir "$DATA" > "$SK_ROOT/serve.log" 2>&1 &
SK_PID=$!
trap 'kill $SK_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q listening "$SK_ROOT/serve.log" && break; sleep 0.2; done
"$SKILLSD" user add bench --role writer --key "$CLIENT_DIR/id_ed25519.pub" --data-dir "$DATA" >/dev/null
export GIT_SSH_COMMAND="ssh -i $CLIENT_DIR/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
URL="ssh://git@127.0.0.1:$SK_PORT/bench.git"
git -C "$SEEDW" push -q "$URL" main
C=$CONC_CLIENTS K=$CONC_COMMITS D=$SK_ROOT/clients
mkdir -p "$D"
for c in $(seq 0 $((C - 1))); do git clone -q "$URL" "$D/c$c"; done
mapfile -t targets < <(git -C "$D/c0" ls-files skills | sort | awk -v m=$((C * K)) '{p[NR]=$0} END {for (i = 0; i < m; i++) print p[int(i * NR / m) + 1]}')

one_client() {
  local c=$1 dir=$D/c$1 j path tag attempts
  while [ ! -e "$D/go" ]; do sleep 0.005; done
  for j in $(seq 0 $((K - 1))); do
    path=${targets[$((c * K + j))]}
    tag="c$c-$j"
    sed -i "s/^title: \"\(.*\)\"$/title: \"\1 [$tag]\"/" "$dir/$path"
    git -C "$dir" commit -q -m "conc $tag" -- "$path"
    attempts=0
    until git -C "$dir" push -q origin main 2>>"$D/c$c.err"; do
      attempts=$((attempts + 1))
      [ "$attempts" -lt 200 ] || { echo "client $c gave up" >&2; return 1; }
      git -C "$dir" pull -q --rebase origin main 2>>"$D/c$c.err"
    done
    echo "$attempts" >> "$D/c$c.retries"
  done
}
pids=()
for c in $(seq 0 $((C - 1))); do one_client "$c" & pids+=($!); done
sleep 0.5
T0=$(date +%s%N); touch "$D/go"
for p in "${pids[@]}"; do wait "$p"; done
T1=$(date +%s%N)
retries=$(cat "$D"/c*.retries | paste -sd+ | bc)
DB="postgres://postgres@localhost/skillsd?host=$DATA/postgres/sock"
sleep 1
found=0
for c in $(seq 0 $((C - 1))); do for j in $(seq 0 $((K - 1))); do
  p=${targets[$((c * K + j))]}
  git --git-dir="$DATA/repos/bench.git" show "main:$p" | grep -qF "[c$c-$j]" || { echo "lost: $p c$c-$j (tree)" >&2; exit 1; }
  t=$(psql -X -qtA "$DB" -c "SELECT title FROM skills WHERE repo = 'bench' AND path = '$p'")
  case "$t" in *"[c$c-$j]"*) found=$((found + 1)) ;; *) echo "lost: $p c$c-$j (cache: $t)" >&2; exit 1 ;; esac
done; done
rows=$(psql -X -qtA "$DB" -c "SELECT count(*) FROM skills WHERE repo = 'bench'")
[ "$rows" = "$N" ] || { echo "cache has $rows rows, tree has $N" >&2; exit 1; }
wall=$(python3 -c "print('%.1f' % (($T1 - $T0) / 1e9))")
rate=$(python3 -c "print('%.2f' % ($C * $K / (($T1 - $T0) / 1e9)))")
stock=$(python3 -c "import json;d=json.load(open('$STOCK_JSON'));print(d['wall_s'], d['pushes_per_s'], d['retries'], d['changes_in_final_tree'], d['verify']['ok'])")
read -r s_wall s_rate s_retries s_tree s_ok <<<"$stock"
{
  echo "## $C clients x $K commits, N = $N skills ($(date -u +%Y-%m-%d)); stock with curve25519 KEX"
  echo
  echo "| server | wall s | pushes/s | retries | changes kept | cache == tree |"
  echo "|---|---|---|---|---|---|"
  echo "| stock | $s_wall | $s_rate | $s_retries | $s_tree/$((C * K)) | $s_ok |"
  echo "| skillsd | $wall | $rate | $retries | $found/$((C * K)) | yes |"
  echo
  echo "throughput ratio skillsd / stock: $(python3 -c "print('%.2f' % ($rate / $s_rate))")"
} | tee "$ROOT/bench/concurrency-$N.md"
