#!/usr/bin/env bash
# Two skillsd binaries side by side on the same generated skills, in one run: what a
# change costs. Each binary gets its own data dir and private PostgreSQL; the
# measurements are compare.sh's skillsd rows (hyperfine medians).
#
#   bench/ab.sh OLD_BINARY NEW_BINARY          # N=10000 RUNS=10
#   ONLY="push-one ls-remote" bench/ab.sh ...   # some of the measurements
#   INTERLEAVE=1 bench/ab.sh ...                # one run of each in turn, not hyperfine's
#                                               # runs of one, then of the other: the
#                                               # machine's drift falls on both alike
#
# Writes bench/ab-N.md. Uses the anchor's skill generator
# (../shared/anchors/stock-git-ssh/gen_skills.py); needs hyperfine.
set -euo pipefail
command -v hyperfine >/dev/null || { echo "needs hyperfine: apt-get install hyperfine" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
OLD=$1 NEW=$2
N=${N:-10000}
RUNS=${RUNS:-10}
WORK=${WORK:-/var/tmp/skillsd-ab}
PORT=${PORT:-2380}
source "$ROOT/bench/lib.sh"
bench_client "$WORK" ab
SEED=$WORK/seed
bench_seed "$SEED" "$N"
TARGET=$(git -C "$SEED" ls-files skills | sed -n '1p')
cat > "$WORK/modify-one.sh" <<'PREP'
#!/usr/bin/env bash
set -euo pipefail
clone=$1 path=$2 anchor=$3
c=$(( $(cat "$clone/.git/ab-counter" 2>/dev/null || echo 0) + 1 )); echo "$c" > "$clone/.git/ab-counter"
python3 "$anchor/gen_skills.py" modify --out "$clone" --path "$path" --rev "$c"
git -C "$clone" commit -q -m "modify $c" -- "$path"
PREP
cat > "$WORK/add-1000.sh" <<'PREP'
#!/usr/bin/env bash
set -euo pipefail
clone=$1 anchor=$2
c=$(( $(cat "$clone/.git/ab-counter" 2>/dev/null || echo 0) + 1 )); echo "$c" > "$clone/.git/ab-counter"
python3 "$anchor/gen_skills.py" gen --out "$clone" --n 1000 --start $(( 5000000 + c * 1000 )) --seed 42
git -C "$clone" add skills
git -C "$clone" commit -q -m "add 1000 ($c)"
PREP

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
med() { python3 -c "import json;print('%.0f' % (1000*json.load(open('$1'))['results'][0]['median']))"; }
declare -A R URLS
# Both servers run side by side, each with its own data dir and PostgreSQL, on PORT
# and PORT + 1.
port=$PORT
for label in old new; do
  bin=$OLD; [ "$label" = new ] && bin=$NEW
  D=$WORK/$label; mkdir -p "$D"
  bench_serve "$bin" "$D/data" "$port" "$D/serve.log" warn "$WORK/id.pub"
  pids+=("$BENCH_PID")
  URLS[$label]="ssh://git@127.0.0.1:$port/bench.git"
  git -C "$SEED" push -q "${URLS[$label]}" main
  DB="postgres://postgres@localhost/skillsd?host=$D/data/postgres/sock"
  bench_indexed "$DB"
  git clone -q "${URLS[$label]}" "$D/p"
  port=$((port + 1))
done
ONLY=${ONLY:-push-one push-1000 ls-remote clone-nc}
# Each measurement's command and its preparation (untimed), for one binary.
cmd() {
  local D=$WORK/$2 URL=${URLS[$2]}
  case $1 in
    ls-remote) echo "git ls-remote $URL" ;;
    clone-nc) echo "git clone -q --no-checkout $URL $D/c" ;;
    push-one|push-1000) echo "git -C $D/p push -q origin main" ;;
  esac
}
prep() {
  local D=$WORK/$2
  case $1 in
    ls-remote) echo "" ;;
    clone-nc) echo "rm -rf $D/c" ;;
    push-one) echo "bash $WORK/modify-one.sh $D/p $TARGET $ANCHOR" ;;
    push-1000) echo "bash $WORK/add-1000.sh $D/p $ANCHOR" ;;
  esac
}
for m in ls-remote clone-nc push-one push-1000; do
  case " $ONLY " in *" $m "*) ;; *) continue ;; esac
  if [ -n "${INTERLEAVE:-}" ]; then
    # One run of each binary in turn, the order swapped every run: what the machine
    # does meanwhile falls on both alike. A warm-up run each first.
    for run in $(seq 0 "$RUNS"); do
      order="old new"; [ $((run % 2)) = 1 ] && order="new old"
      for label in $order; do
        p=$(prep "$m" "$label"); [ -n "$p" ] && eval "$p" >/dev/null
        c=$(cmd "$m" "$label")
        t0=$(date +%s%N); eval "$c" >/dev/null 2>&1; t1=$(date +%s%N)
        [ "$run" -gt 0 ] && echo $(( (t1 - t0) / 1000 )) >> "$WORK/$label/$m.us"
      done
    done
    for label in old new; do
      R[$label-$m]=$(python3 -c "import statistics,sys;print('%.0f' % (statistics.median(int(l) for l in open(sys.argv[1])) / 1000))" "$WORK/$label/$m.us")
    done
  else
    for label in old new; do
      D=$WORK/$label p=$(prep "$m" "$label")
      hyperfine -N --runs "$RUNS" --warmup 1 --style basic --export-json "$D/$m.json" ${p:+--prepare "$p"} "$(cmd "$m" "$label")" >> "$D/hyperfine.log" 2>&1
      R[$label-$m]=$(med "$D/$m.json")
    done
  fi
done
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
{
  echo "## A/B, N = $N skills, $(date -u +%Y-%m-%d), $(nproc) cores; medians of $RUNS runs (ms)${INTERLEAVE:+, interleaved}"
  echo
  echo "| measurement | old | new | new / old |"
  echo "|---|---|---|---|"
  for m in $ONLY; do
    echo "| $m | ${R[old-$m]} | ${R[new-$m]} | $(ratio "${R[new-$m]}" "${R[old-$m]}") |"
  done
} | tee "$ROOT/bench/ab-$N.md"
