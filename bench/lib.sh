# Shared by the bench scripts that run skillsd on their own (sourced, not run).

# bench_binary [PROFILE]: SKILLSD as given (a binary built already: a clean checkout
# need not build to measure one), else built here with cargo's PROFILE (`release`
# unless given); an absolute path either way.
bench_binary() {
  local profile=${1:-release}
  if [ -z "${SKILLSD:-}" ]; then
    (cd "$ROOT" && CARGO_INCREMENTAL=0 cargo build -q --profile "$profile" --bin skillsd)
    SKILLSD=$ROOT/target/$profile/skillsd
  fi
  [ -x "$SKILLSD" ] || { echo "no skillsd binary at $SKILLSD" >&2; exit 1; }
  SKILLSD=$(cd "$(dirname "$SKILLSD")" && pwd)/$(basename "$SKILLSD")
}

# bench_client WORK NAME: a fresh WORK directory with a client key, and the git
# client's environment (its SSH command, author and committer).
bench_client() {
  local work=$1 name=$2
  rm -rf "$work"; mkdir -p "$work"
  chmod 755 "$work"  # the private PostgreSQL runs as `postgres` when this runs as root
  ssh-keygen -q -t ed25519 -N '' -f "$work/id" -C "$name"
  export GIT_SSH_COMMAND="ssh -i $work/id -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
  export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
}

# bench_seed DIR N: a repository of N generated skills in one commit (the stock
# anchor's generator, $ANCHOR).
bench_seed() {
  local dir=$1 n=$2
  git init -q -b main "$dir"
  python3 "$ANCHOR/gen_skills.py" gen --out "$dir" --n "$n" --seed 42 >/dev/null
  git -C "$dir" add -A && git -C "$dir" commit -q -m "$n skills"
}

# bench_serve BINARY DATA PORT LOG FILTER KEY: a new repository `bench` in DATA, the
# server on 127.0.0.1:PORT logging at FILTER into LOG (its pid in BENCH_PID), and the
# user `bench` (a writer) with the public key KEY.
bench_serve() {
  local bin=$1 data=$2 port=$3 log=$4 filter=$5 key=$6
  "$bin" init bench --empty --data-dir "$data" >/dev/null
  SKILLSD_LOG=$filter "$bin" serve --listen "127.0.0.1:$port" --http off --data-dir "$data" > "$log" 2>&1 &
  BENCH_PID=$!
  for _ in $(seq 1 300); do grep -q listening "$log" && break; sleep 0.2; done
  grep -q listening "$log" || { cat "$log" >&2; exit 1; }
  "$bin" user add bench --role writer --key "$key" --data-dir "$data" >/dev/null
}

# bench_seeded WORK NAME FILTER: a client (bench_client WORK NAME), a seed of $N skills
# in WORK/seed pushed to a new server on $PORT logging at FILTER (data in WORK/data,
# stopped when the script exits), its URL in URL, the import's full-text vectors
# filled and indexed before it returns.
bench_seeded() {
  local work=$1 name=$2 filter=$3
  bench_client "$work" "$name"
  bench_seed "$work/seed" "$N"
  bench_serve "$SKILLSD" "$work/data" "$PORT" "$work/serve.log" "$filter" "$work/id.pub"
  BENCH_SEEDED_PID=$BENCH_PID
  trap 'kill $BENCH_SEEDED_PID 2>/dev/null || true' EXIT
  URL="ssh://git@127.0.0.1:$PORT/bench.git"
  git -C "$work/seed" push -q "$URL" main
  bench_indexed "postgres://postgres@localhost/skillsd?host=$work/data/postgres/sock"
}

# bench_indexed DB [TRIES]: waits (TRIES × 0.1 s at most, 600 by default) until the
# import's full-text vectors are filled and their index built.
bench_indexed() {
  local db=$1 tries=${2:-600}
  for _ in $(seq 1 "$tries"); do
    [ "$(psql -X -qtA "$db" -c "SELECT search_pending = 0 AND to_regclass('skills_search_idx') IS NOT NULL FROM skill_sync_health")" = "t" ] && return 0
    sleep 0.1
  done
}
