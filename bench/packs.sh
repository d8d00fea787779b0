#!/usr/bin/env bash
# Pack maintenance, measured: a repository of N skills receives PUSHES one-skill
# pushes; then a full clone is timed and its pack bytes counted, (a) as left by the
# pushes, (b) right after `skillsd gc`. Run once with automatic gc (the default) and
# once with it off (SKILLSD_GC_PACKS=0) to see what it saves.
#
#   bench/packs.sh                   # N=1000 PUSHES=1000
#   SKILLSD=path/to/skillsd bench/packs.sh   # a binary built already
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-1000}
PUSHES=${PUSHES:-1000}
RUNS=${RUNS:-10}
PORT=${PORT:-2291}
BASE=${BASE:-/tmp/skillsd-packs}
source "$ROOT/bench/lib.sh"
bench_binary  # SKILLSD=path/to/skillsd: a binary built already
command -v hyperfine >/dev/null || apt-get install -y -q hyperfine >/dev/null

run_case() {  # label gc_packs
  local label=$1 gc=$2 dir=$BASE/$1
  rm -rf "$dir" "$BASE"/trash-"$label"-*
  mkdir -p "$dir"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/key"
  "$SKILLSD" init bench --empty --data-dir "$dir/data" >/dev/null
  SKILLSD_GC_PACKS=$gc SKILLSD_LOG=warn "$SKILLSD" serve --listen "127.0.0.1:$PORT" --http off --data-dir "$dir/data" > "$dir/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do grep -q listening "$dir/serve.log" && break; sleep 0.2; done
  "$SKILLSD" user add bench --role writer --key "$dir/key.pub" --data-dir "$dir/data" >/dev/null
  export GIT_SSH_COMMAND="ssh -i $dir/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
  export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.invalid GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.invalid
  local url="ssh://git@127.0.0.1:$PORT/bench.git" w=$dir/work
  git init -q -b main "$w"
  python3 "$ANCHOR/gen_skills.py" gen --out "$w" --n "$N" --seed 42
  git -C "$w" add -A && git -C "$w" commit -q -m "import $N"
  git -C "$w" push -q "$url" main
  local paths
  mapfile -t paths < <(git -C "$w" ls-files skills | head -n 200)
  local t0 t1
  t0=$(date +%s)
  for i in $(seq 1 "$PUSHES"); do
    local p=${paths[$(( i % ${#paths[@]} ))]}
    python3 "$ANCHOR/gen_skills.py" modify --out "$w" --path "$p" --rev "$i"
    git -C "$w" commit -q -m "rev $i" -- "$p"
    git -C "$w" push -q "$url" main
  done
  t1=$(date +%s)
  sleep 2  # let a background gc finish
  local packs_before
  packs_before=$(ls "$dir/data/repos/bench.git/objects/pack/"*.pack | wc -l)
  measure() {
    hyperfine -N --runs "$RUNS" --warmup 1 --style basic --export-json "$dir/$1.json" \
      --prepare "rm -rf $dir/clone" "git clone -q --no-checkout $url $dir/clone" >/dev/null 2>&1
    rm -rf "$dir/bare" && git clone -q --bare "$url" "$dir/bare"
    echo "$(python3 -c "import json;print('%.0f' % (1000*json.load(open('$dir/$1.json'))['results'][0]['median']))") $(cat "$dir"/bare/objects/pack/*.pack | wc -c)"
  }
  read -r ms_before bytes_before < <(measure before)
  SKILLSD_LOG=warn "$SKILLSD" gc bench --data-dir "$dir/data" >/dev/null
  read -r ms_after bytes_after < <(measure after)
  echo "| $label | $PUSHES pushes in $((t1 - t0)) s | $packs_before | $ms_before | $bytes_before | $ms_after | $bytes_after |"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

{
  echo "## Pack maintenance: $N skills, then $PUSHES one-skill pushes ($(date -u +%Y-%m-%d), medians of $RUNS clones)"
  echo
  echo "| automatic gc | pushes | packs left | clone --no-checkout ms | pack bytes | after skillsd gc: ms | bytes |"
  echo "|---|---|---|---|---|---|---|"
  run_case on 16
  run_case off 0
} | tee "$ROOT/bench/packs-$N-$PUSHES.md"
