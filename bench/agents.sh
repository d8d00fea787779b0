#!/usr/bin/env bash
# The agents' read paths under load, at N agent skills (one push):
#  * requests/s for the discovery index (`/.well-known/agent-skills/index.json`) and
#    one skill's SKILL.md, from skillsd (release build) and from nginx serving the
#    same bytes as static files, on the same machine, measured by wrk with the same
#    threads, connections and duration (HTTP/1.1 keep-alive). The bytes are checked
#    equal (sha256) before anything is measured. Each pair is measured ROUNDS times,
#    skillsd and nginx alternating; the table gives the median.
#  * the latency of MCP's `search_skills` (`tools/call` over Streamable HTTP, one
#    initialized session, one keep-alive connection): CALLS sequential calls with
#    varied queries, p50/p95/p99.
#
#   bench/agents.sh                              # N=10000 ROUNDS=3 SECS=15 CONNS=32
#   SKILLSD=target/release/skillsd bench/agents.sh   # a binary built already
#
# Writes bench/agents-N.md. Needs wrk and nginx (Debian: apt-get install wrk
# nginx-light), PostgreSQL's server programs, python3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-10000}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-15}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
CALLS=${CALLS:-500}
WORK=${WORK:-/var/tmp/skillsd-agents-bench}
PORT=${PORT:-2480}
HPORT=${HPORT:-5480}
NPORT=${NPORT:-5481}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in wrk "$NGINX" python3 curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk nginx-light)" >&2; exit 1; }
done

source "$ROOT/bench/lib.sh"
bench_binary  # or a binary given as SKILLSD=...

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
bench_client "$WORK" bench  # (nginx, too, runs unprivileged in WORK)

# N agent skills, each skills/<name>/SKILL.md, in one commit. Words from a fixed
# vocabulary so that the search has something to rank; 1-3 KB each.
SEED=$WORK/seed
git init -q -b main "$SEED"
python3 - "$SEED" "$N" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
vocab = """deploy release rollback canary kubernetes helm terraform ansible docker image
registry cache redis postgres migration schema index query vacuum backup restore
snapshot replica failover latency throughput benchmark profile flamegraph trace
metrics alert dashboard grafana prometheus logging audit security secret token
certificate rotation firewall network dns proxy nginx haproxy load balancer queue
kafka rabbitmq worker cron schedule retry timeout circuit breaker feature flag
experiment review commit branch merge rebase conflict changelog version semver
package dependency vulnerability scan lint format test fixture mock coverage
integration contract api graphql rest grpc protobuf json yaml markdown template
render component react svelte css accessibility translation locale timezone
invoice payment refund subscription billing tax report export import csv parquet
pipeline airflow spark pandas notebook model training evaluation prompt embedding
vector search ranking incident postmortem oncall runbook escalation capacity
storage bucket upload download compression archive checksum signature""".split()
os.makedirs(os.path.join(root, "skills"), exist_ok=True)
with open(os.path.join(root, "skillsd.toml"), "w") as f:
    f.write('layout = "agent-skills"\nroots = ["skills"]\n')
def sentence(k):
    return " ".join(rng.choice(vocab) for _ in range(k)).capitalize() + "."
for i in range(n):
    name = f"skill-{i:05d}"
    topic = rng.sample(vocab, 3)
    description = f"Use when working on {topic[0]} {topic[1]} and {topic[2]}. {sentence(8)}"
    body = "\n\n".join(" ".join(sentence(rng.randint(6, 14)) for _ in range(rng.randint(2, 5)))
                       for _ in range(rng.randint(4, 10)))
    d = os.path.join(root, "skills", name)
    os.makedirs(d)
    with open(os.path.join(d, "SKILL.md"), "w") as f:
        f.write(f"---\nname: {name}\ndescription: {description}\n---\n\n# {name}\n\n{body}\n")
EOF
git -C "$SEED" add -A && git -C "$SEED" commit -q -m "$N agent skills"

"$SKILLSD" init --empty --data-dir "$WORK/data" >/dev/null
SKILLSD_LOG=warn "$SKILLSD" serve --listen "127.0.0.1:$PORT" --http "127.0.0.1:$HPORT" \
  --data-dir "$WORK/data" > "$WORK/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q listening "$WORK/serve.log" && break; sleep 0.2; done
grep -q listening "$WORK/serve.log" || { echo "skillsd did not start" >&2; cat "$WORK/serve.log" >&2; exit 1; }
"$SKILLSD" user add bench --role writer --key "$WORK/id.pub" --data-dir "$WORK/data" >/dev/null
t0=$(date +%s%N)
git -C "$SEED" push -q "ssh://git@127.0.0.1:$PORT/skills.git" main
PUSH_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
DB="postgres://postgres@localhost/skillsd?host=$WORK/data/postgres/sock"
bench_indexed "$DB" 1200
PUBLISHED=$(psql -X -qtA "$DB" -c "SELECT count(*) FROM skills WHERE repo = 'skills' AND status = 'PUBLISHED'")

S=http://127.0.0.1:$HPORT
NG=http://127.0.0.1:$NPORT
INDEX=/.well-known/agent-skills/index.json
SKILL=$(printf 'skill-%05d' $(( N / 2 )))
FILE=/.well-known/agent-skills/$SKILL/SKILL.md
# The first request builds the index in memory (timed: what a node pays once per push).
t0=$(date +%s%N)
curl -sf -o /dev/null "$S$INDEX"
BUILD_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
ENTRIES=$(curl -sf "$S$INDEX" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["skills"]))')

# nginx: the same bytes under the same paths, a minimal config, in the foreground as
# `nobody` (when run as root), on its own port.
STATIC=$WORK/static
mkdir -p "$STATIC/.well-known/agent-skills/$SKILL" "$WORK/nginx/tmp"
curl -sf -o "$STATIC$INDEX" "$S$INDEX"
curl -sf -o "$STATIC$FILE" "$S$FILE"
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  types { application/json json; text/markdown md; }
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$NPORT;
    root $STATIC;
  }
}
CONF
chmod -R a+rX "$WORK/static" "$WORK/nginx"
chmod a+w "$WORK/nginx" "$WORK/nginx/tmp"
if [ "$(id -u)" = 0 ]; then AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups); else AS=(); fi
"${AS[@]}" "$NGINX" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" > "$WORK/nginx/out.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -sf -o /dev/null "$NG$INDEX" && break; sleep 0.1; done

# Same bytes from both, or nothing is measured.
digest() { curl -sf "$1" | sha256sum | cut -d' ' -f1; }
for p in "$INDEX" "$FILE"; do
  a=$(digest "$S$p"); b=$(digest "$NG$p")
  [ "$a" = "$b" ] || { echo "skillsd and nginx serve different bytes for $p: $a vs $b" >&2; exit 1; }
done
INDEX_BYTES=$(stat -c %s "$STATIC$INDEX")
FILE_BYTES=$(stat -c %s "$STATIC$FILE")
INDEX_SHA=$(digest "$S$INDEX")
FILE_SHA=$(digest "$S$FILE")

# wrk, ROUNDS times per URL, skillsd and nginx alternating.
RAW=$WORK/wrk.log
: > "$RAW"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RPS
measure() {  # label url
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "$2")
  { echo "### $1 ($2)"; echo '```'; echo "$out"; echo '```'; echo; } >> "$RAW"
  if grep -q 'Non-2xx' <<<"$out"; then echo "$1: non-2xx answers:" >&2; echo "$out" >&2; exit 1; fi
  RPS[$1]+="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out") "
}
for r in $(seq 1 "$ROUNDS"); do
  measure skillsd-index "$S$INDEX"
  measure nginx-index "$NG$INDEX"
  measure skillsd-file "$S$FILE"
  measure nginx-file "$NG$FILE"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
declare -A MED
for k in "${!RPS[@]}"; do MED[$k]=$(median <<<"${RPS[$k]}"); done
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

# search_skills over MCP: one session (initialize, initialized), then CALLS calls.
python3 - "$S/mcp" "$CALLS" "$WORK/search.json" <<'EOF'
import http.client, json, random, sys, time, urllib.parse
url, calls, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port)
session = None
def rpc(body):
    headers = {"Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    if session:
        headers["Mcp-Session-Id"] = session
        headers["MCP-Protocol-Version"] = "2025-11-25"
    conn.request("POST", u.path, json.dumps(body), headers)
    r = conn.getresponse()
    data = r.read().decode()
    if r.status not in (200, 202):
        raise SystemExit(f"{body.get('method')}: HTTP {r.status}: {data[:500]}")
    msgs = []
    if r.getheader("Content-Type", "").startswith("text/event-stream"):
        for line in data.splitlines():
            if line.startswith("data:") and line[5:].strip():
                msgs.append(json.loads(line[5:]))
    elif data.strip():
        msgs.append(json.loads(data))
    return r, [m for m in msgs if "id" in m and m.get("id") == body.get("id")]
r, _ = rpc({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1"}}})
session = r.getheader("Mcp-Session-Id")
assert session, "no session id"
rpc({"jsonrpc": "2.0", "method": "notifications/initialized"})
words = """deploy release rollback canary kubernetes terraform docker registry cache redis
postgres migration backup replica failover latency benchmark flamegraph metrics alert
prometheus secret token certificate firewall proxy queue kafka retry timeout rebase
changelog dependency vulnerability coverage graphql protobuf markdown accessibility
invoice refund parquet airflow embedding ranking incident runbook compression checksum""".split()
rng = random.Random(7)
queries = []
for i in range(calls):
    k = rng.choice([1, 1, 2, 2, 3])
    queries.append(" ".join(rng.sample(words, k)))
def call(i, q):
    _, msgs = rpc({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                   "params": {"name": "search_skills", "arguments": {"query": q, "limit": 10}}})
    assert msgs and "result" in msgs[0], (q, msgs)
    res = msgs[0]["result"]
    assert not res.get("isError"), (q, res)
    return len(res["structuredContent"]["hits"]) if res.get("structuredContent") else None
for i in range(20):  # warm-up, not counted
    call(100000 + i, queries[i % len(queries)])
lat, hits = [], []
for i, q in enumerate(queries, 1):
    t0 = time.perf_counter()
    hits.append(call(i, q))
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(round(p / 100 * len(lat) + 0.5)) - 1)]
json.dump({"calls": len(lat), "p50": pct(50), "p95": pct(95), "p99": pct(99), "max": lat[-1],
           "mean": sum(lat) / len(lat),
           "with_hits": sum(1 for h in hits if h), "sample": queries[:5]}, open(out, "w"))
EOF
sq() { python3 -c "import json; print(json.load(open('$WORK/search.json'))$1)"; }

OUT=$ROOT/bench/agents-$N.md
{
  echo "## Agents' read paths, N = $N agent skills ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, skillsd at $(git -C "$ROOT" rev-parse --short HEAD), $("$NGINX" -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2))"
  echo
  echo "One push of $N skills took $PUSH_MS ms; $PUBLISHED published, $ENTRIES in the index."
  echo "The first index request after it (the build in memory) took $BUILD_MS ms."
  echo "index.json: $INDEX_BYTES bytes (sha256 $INDEX_SHA); $FILE: $FILE_BYTES bytes (sha256 $FILE_SHA); the same from skillsd and nginx."
  echo "Load average (other work on the machine) before and after the wrk runs: $LOAD_BEFORE / $LOAD_AFTER."
  echo "wrk -t$THREADS -c$CONNS -d${SECS}s (keep-alive), $ROUNDS rounds alternating; requests/s, median (all rounds):"
  echo
  echo "| what | skillsd req/s | nginx req/s | skillsd / nginx |"
  echo "|---|---|---|---|"
  echo "| index.json | ${MED[skillsd-index]} (${RPS[skillsd-index]% }) | ${MED[nginx-index]} (${RPS[nginx-index]% }) | $(ratio "${MED[skillsd-index]}" "${MED[nginx-index]}") |"
  echo "| SKILL.md | ${MED[skillsd-file]} (${RPS[skillsd-file]% }) | ${MED[nginx-file]} (${RPS[nginx-file]% }) | $(ratio "${MED[skillsd-file]}" "${MED[nginx-file]}") |"
  echo
  echo "MCP search_skills (tools/call, limit 10, one session, one connection), $(sq "['calls']") sequential calls with varied 1-3 word queries, $(sq "['with_hits']") with hits:"
  echo
  echo "| p50 ms | p95 ms | p99 ms | max ms | mean ms |"
  echo "|---|---|---|---|---|"
  echo "| $(sq "['p50']" | xargs printf '%.1f') | $(sq "['p95']" | xargs printf '%.1f') | $(sq "['p99']" | xargs printf '%.1f') | $(sq "['max']" | xargs printf '%.1f') | $(sq "['mean']" | xargs printf '%.1f') |"
  echo
  echo "Raw wrk output:"
  echo
  cat "$RAW"
} | tee "$OUT"
