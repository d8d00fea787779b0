#!/usr/bin/env bash
# Partial clone, measured in bytes: a repository of N agent skills (a folder each:
# SKILL.md, two references, a script, every tenth an incompressible 40 KiB asset)
# with HISTORY more commits that each rewrite six SKILL.md files. Each way of getting
# one skill is run against a fresh server process's counters:
#   * bytes: skillsd's `skillsd_sent_bytes_total` (everything upload-pack wrote to the
#     SSH channel: pkt-lines, side-band framing and pack; before SSH's own framing and
#     encryption), read from /metrics before and after;
#   * sessions: `skillsd_fetches_total` (one per upload-pack: the clone and each lazy
#     fetch);
#   * pack bytes: the sizes of the client's .git/objects/pack/*.pack afterwards.
#   * ms: wall time of the client's commands (this one depends on the build).
# Bytes do not depend on the build, so a debug binary gives the same bytes:
#
#   bench/partial-clone.sh                            # N=300 HISTORY=50, release build
#   SKILLSD=target/debug/skillsd bench/partial-clone.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-300}
HISTORY=${HISTORY:-50}
PORT=${PORT:-2293}
HPORT=${HPORT:-5093}
BASE=${BASE:-/tmp/skillsd-partial}
GIT=${GIT:-git}
source "$ROOT/bench/lib.sh"
bench_binary  # or a binary given as SKILLSD=...

[ -d "$BASE" ] && mv "$BASE" "$BASE.old-$(date +%s%N)"
mkdir -p "$BASE"
ssh-keygen -q -t ed25519 -N '' -f "$BASE/key"
"$SKILLSD" init bench --empty --data-dir "$BASE/data" >/dev/null
SKILLSD_LOG=warn "$SKILLSD" serve --listen "127.0.0.1:$PORT" --http "127.0.0.1:$HPORT" \
  --data-dir "$BASE/data" > "$BASE/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do grep -q listening "$BASE/serve.log" && break; sleep 0.2; done
"$SKILLSD" user add bench --role writer --key "$BASE/key.pub" --data-dir "$BASE/data" >/dev/null
export GIT_SSH_COMMAND="ssh -i $BASE/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.invalid GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.invalid
URL="ssh://git@127.0.0.1:$PORT/bench.git"
W=$BASE/work

# The repository.
$GIT init -q -b main "$W"
python3 - "$W" "$N" "$HISTORY" <<'EOF'
import os, random, subprocess, sys
w, n, history = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
         for _ in range(3000)]
def prose(words):
    out, line = [], []
    for i in range(words):
        line.append(rng.choice(vocab))
        if len(line) > 12:
            out.append(" ".join(line)); line = []
    out.append(" ".join(line))
    return "\n".join(out) + "\n"
def write(path, data):
    p = os.path.join(w, path)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
names = [f"skill-{i:04d}" for i in range(n)]
def skill_md(name, rev):
    description = " ".join(prose(18).split())
    head = f"---\nname: {name}\ndescription: {description}\n---\n\n# {name} (rev {rev})\n\n"
    return head + prose(rng.randint(300, 600))
write("skillsd.toml", 'layout = "agent-skills"\nroots = ["skills"]\n')
for i, name in enumerate(names):
    write(f"skills/{name}/SKILL.md", skill_md(name, 0))
    write(f"skills/{name}/references/guide.md", prose(rng.randint(600, 1000)))
    write(f"skills/{name}/references/examples.md", prose(rng.randint(300, 600)))
    write(f"skills/{name}/scripts/helper.py",
          "".join(f"def step_{k}():\n    return {k!r}  # {prose(8).strip()}\n\n" for k in range(20)))
    if i % 10 == 0:
        write(f"skills/{name}/assets/diagram.bin", rng.randbytes(40 * 1024))
def git(*args):
    subprocess.run(["git", "-C", w, *args], check=True)
git("add", "-A"); git("commit", "-q", "-m", f"import {n} skills")
for rev in range(1, history + 1):
    for name in rng.sample(names, 6):
        write(f"skills/{name}/SKILL.md", skill_md(name, rev))
    git("commit", "-q", "-am", f"rev {rev}")
EOF
$GIT -C "$W" push -q "$URL" main
ONE=skill-0010   # a skill with an asset
OTHER=skill-0020

metric() {
  curl -sf "http://127.0.0.1:$HPORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
pack_bytes() {
  cat "$1"/.git/objects/pack/*.pack 2>/dev/null | wc -c
}
# row LABEL DIR COMMAND...: runs the command, prints bytes sent and sessions.
row() {
  local label=$1 dir=$2; shift 2
  local b0 f0 b1 f1 t0 t1
  b0=$(metric skillsd_sent_bytes_total); f0=$(metric skillsd_fetches_total)
  t0=$(date +%s%N)
  "$@"
  t1=$(date +%s%N)
  b1=$(metric skillsd_sent_bytes_total); f1=$(metric skillsd_fetches_total)
  local files
  files=$(cd "$dir" && $GIT ls-files -t | grep -vc '^S' || true)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$(( b1 - b0 ))" "$(( f1 - f0 ))" "$(pack_bytes "$dir")" "$files" "$(( (t1 - t0) / 1000000 ))"
}

C=$BASE/clones
mkdir -p "$C"
full() { $GIT clone -q "$URL" "$C/full"; }
shallow() { $GIT clone -q --depth=1 "$URL" "$C/shallow"; }
partial() {
  $GIT clone -q --filter=blob:none --sparse "$URL" "$C/partial"
  $GIT -C "$C/partial" sparse-checkout set "skills/$ONE"
}
partial_shallow() {
  $GIT clone -q --depth=1 --filter=blob:none --sparse "$URL" "$C/partial-shallow"
  $GIT -C "$C/partial-shallow" sparse-checkout set "skills/$ONE"
}
treeless() {
  $GIT clone -q --depth=1 --filter=tree:0 --sparse "$URL" "$C/treeless"
  $GIT -C "$C/treeless" sparse-checkout set "skills/$ONE"
}
everything() { $GIT -C "$C/partial" sparse-checkout disable; }
lazy() { $GIT -C "$C/partial" show "HEAD:skills/$OTHER/SKILL.md" >/dev/null; }

{
  echo "N=$N skills, HISTORY=$HISTORY commits, client $($GIT --version), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "repository: $($GIT -C "$W" rev-list --objects --all | wc -l) objects," \
    "$($GIT -C "$W" ls-files | wc -l) files at the tip," \
    "the server's packs $(cat "$BASE"/data/repos/bench.git/objects/pack/*.pack | wc -c) bytes"
  echo
  echo "| way | bytes sent by skillsd | upload-pack sessions | client pack bytes | files checked out | ms |"
  echo "|---|---|---|---|---|---|"
  row "full clone" "$C/full" full
  row "full clone --depth=1" "$C/shallow" shallow
  row "--filter=blob:none --sparse + set skills/$ONE" "$C/partial" partial
  row "--depth=1 --filter=blob:none --sparse + set skills/$ONE" "$C/partial-shallow" partial_shallow
  row "--depth=1 --filter=tree:0 --sparse + set skills/$ONE" "$C/treeless" treeless
  row "then: show HEAD:skills/$OTHER/SKILL.md (a lazy fetch)" "$C/partial" lazy
  row "then: sparse-checkout disable (the other blobs in one lazy fetch)" "$C/partial" everything
} | tee "$ROOT/bench/partial-clone-$N.md"
