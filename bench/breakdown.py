#!/usr/bin/env python3
"""Breaks a whole-machine profile (inferno's folded stacks: `comm;frame;...;leaf N`)
down into a push's stages, as a Markdown table with a bar per row.

    bench/breakdown.py FOLDED LABEL WALL_MS [RUNS]

Each line's count is the CPU time of its samples in nanoseconds (perf's cpu-clock
period); an idle core is `swapper`. A stack of the
server is put in the first stage whose pattern any of its frames contains, in the
order below (more specific first); other processes by their name.
"""
import sys

SKILLSD_STAGES = [
    ("uploading the pack (skillsd side)", ["storage::packs::upload"]),
    ("inspecting the pack", ["incoming::inspect"]),
    ("receiving and indexing the pack", ["incoming::", "gix_pack::index", "gix_pack::data::input"]),
    ("validating (pre-receive)", ["pre_receive", "skills::validate", "skills::rules"]),
    ("writing the cache rows (skillsd side)", ["cache::sync::write", "binary_copy", "sqlx"]),
    ("preparing the cache (diff, files, vectors)", ["cache::"]),
    ("storing refs and the push record", ["storage::", "receive::publish"]),
    ("SSH (server)", ["russh", "skillsd::ssh"]),
    ("packet lines and advertisement", ["skillsd::protocol"]),
]
POSTGRES_STAGES = [
    ("PostgreSQL: WAL and commit", ["XLog", "fsync", "issue_xlog_fsync"]),
    ("PostgreSQL: COPY", ["Copy"]),
    ("PostgreSQL: other statements", [""]),
]


def stage(comm, frames):
    joined = ";".join(frames)
    if comm == "swapper":
        return "idle (a core with nothing to run)"
    if comm.startswith("postgres"):
        return next(name for name, pats in POSTGRES_STAGES if any(p in joined for p in pats))
    if comm in ("ssh",):
        return "SSH (client)"
    if comm.startswith("git") or comm in ("pack-objects",):
        return "git client (pack-objects, the push)"
    if "skillsd" in joined or comm.startswith(("skillsd", "tokio", "gix")):
        for name, pats in SKILLSD_STAGES:
            if any(p in joined for p in pats):
                return name
        return "skillsd: other (runtime, allocator, logs)"
    return "other processes (" + comm + ")"


def main():
    folded, label, wall_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    totals = {}
    for line in open(folded, encoding="utf-8", errors="replace"):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        comm, *frames = stack.split(";")
        name = stage(comm, frames)
        totals[name] = totals.get(name, 0) + int(count)
    samples = sum(totals.values())
    busy = samples - totals.get("idle (a core with nothing to run)", 0)
    ms = lambda n: n / 1e6 / runs
    width = 40
    print(f"### Where the time goes: {label}\n")
    print(
        f"Wall time {wall_ms:.0f} ms per push; sampled CPU time {ms(samples):.0f} ms "
        f"(both cores, {ms(busy):.0f} ms busy), per push.\n"
    )
    print("| stage | CPU ms per push | share of busy | |")
    print("|---|---:|---:|---|")
    top = max((n for k, n in totals.items() if not k.startswith("idle")), default=1)
    for name, n in sorted(totals.items(), key=lambda kv: -kv[1]):
        share = "" if name.startswith("idle") else f"{100 * n / busy:.1f} %"
        bar = "" if name.startswith("idle") else "█" * max(1, round(width * n / top))
        print(f"| {name} | {ms(n):.1f} | {share} | `{bar}` |")


if __name__ == "__main__":
    main()
