#!/usr/bin/env bash
# Reconcile of N skills (default 100,000) into an empty cache: the time of
# `skillsd reconcile` after the skills table of the repository is emptied.
#   bench/reconcile.sh            # N=100000 RUNS=3
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$(cd "$ROOT/../shared/anchors/stock-git-ssh" && pwd)}
N=${N:-100000}
RUNS=${RUNS:-3}
BASE=${BASE:-/tmp/skillsd-reconcile}
(cd "$ROOT" && cargo build --release -q)
SKILLSD=$ROOT/target/release/skillsd
command -v hyperfine >/dev/null || apt-get install -y -q hyperfine >/dev/null
[ -d "$BASE" ] && mv "$BASE" "$BASE.trash-$(date +%s%N)"
mkdir -p "$BASE"
DATA=$BASE/data
"$SKILLSD" init bench --empty --data-dir "$DATA" >/dev/null
"$SKILLSD" migrate --data-dir "$DATA" >/dev/null  # starts the private PostgreSQL
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=b@example.invalid GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=b@example.invalid
W=$BASE/work
git init -q -b main "$W"
echo "generating $N skills" >&2
python3 "$ANCHOR/gen_skills.py" gen --out "$W" --n "$N" --seed 42
git -C "$W" add -A && git -C "$W" commit -q -m "import $N"
git -C "$W" push -q "$DATA/repos/bench.git" main
DB="postgres://postgres@localhost/skillsd?host=$DATA/postgres/sock"
hyperfine -N --runs "$RUNS" --style basic --export-json "$BASE/reconcile.json" \
  --prepare "psql -X -q $DB -c \"DELETE FROM skills WHERE repo = 'bench'; DELETE FROM sync_state WHERE repo = 'bench'\"" \
  "$SKILLSD reconcile bench --data-dir $DATA"
rows=$(psql -X -qtA "$DB" -c "SELECT count(*) FROM skills WHERE repo = 'bench'")
[ "$rows" = "$N" ] || { echo "cache has $rows rows, expected $N" >&2; exit 1; }
python3 -c "import json;r=json.load(open('$BASE/reconcile.json'))['results'][0];print('reconcile of $N skills into an empty cache: median %.2f s (min %.2f, max %.2f), $RUNS runs' % (r['median'], r['min'], r['max']))"
"$ROOT/target/release/skillsd" --version >/dev/null
psql_stop() { bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); runuser -u postgres -- "$bin/pg_ctl" stop -D "$DATA/postgres/data" -m fast >/dev/null 2>&1 || true; }
psql_stop
