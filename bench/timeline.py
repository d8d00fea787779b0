#!/usr/bin/env python3
"""bench/timeline.sh's helper.

  timeline.py run FLOOR_MS SKILLSD_MS FLOOR_TRACE SKILLSD_TRACE SERVE_LOG
      one push pair as a line of `key=value` fields (tab-separated)
  timeline.py table RUNS_TSV N
      the medians of those lines as a Markdown table
"""
import re
import statistics
import sys


def clock(stamp):
    h, m, s = stamp.split(":")
    return (int(h) * 3600 + int(m) * 60 + float(s)) * 1000


def client(trace, prefix):
    """The client's timeline from GIT_TRACE2_PERF, in ms from `git push`'s start:
    pack-objects' start and end; for a local push, index-pack's start (the first
    byte it read) and end."""
    out, t0 = {}, None
    for line in open(trace):
        stamp = clock(line.split()[0])
        if t0 is None:
            if "cmd_name" in line and "push (push)" in line:
                t0 = stamp
            continue
        at = round(stamp - t0)
        if "child_start" in line and "pack-objects" in line and "| d0 |" in line:
            out["pack_objects_start"] = at
        elif "child_start" in line and "index-pack" in line:
            out["index_pack_start"] = at
        elif "child_exit" in line and "| d0 |" in line and "pack_objects_start" in out \
                and "pack_objects_end" not in out:
            out["pack_objects_end"] = at
        elif "child_exit" in line and "| d1 |" in line and "index_pack_start" in out \
                and "index_pack_end" not in out:
            out["index_pack_end"] = at
    return {f"{prefix}_{k}": v for k, v in out.items()}


def server(log):
    """The last push's log line and lock release, as fields."""
    push = [l for l in open(log) if "pack_ms=" in l][-1]
    lock = [l for l in open(log) if "lock_ms=" in l][-1]
    out = {}
    for key in ["pack_first_byte_ms", "pack_last_byte_ms", "pack_ms", "check_ms",
                "store_ms", "duration_ms"]:
        out["server_" + key] = int(re.search(key + r"=(\d+)", push).group(1))
    out["server_lock_ms"] = int(re.search(r"lock_ms=(\d+)", lock).group(1))
    return out


ROWS = [
    ("wall time of `git push`", "floor_ms", "skillsd_ms"),
    ("client: pack-objects starts", "floor_pack_objects_start", "skillsd_pack_objects_start"),
    ("server: the pack's first byte", "floor_index_pack_start", None),
    ("client: pack-objects ends (the pack's last byte sent)", "floor_pack_objects_end",
     "skillsd_pack_objects_end"),
    ("server: pack indexed", "floor_index_pack_end", None),
    ("server, from its receive stage's start: first byte", None, "server_pack_first_byte_ms"),
    ("server, same clock: last byte", None, "server_pack_last_byte_ms"),
    ("server, same clock: pack indexed (`pack_ms`)", None, "server_pack_ms"),
    ("server: the checks (`check_ms`)", None, "server_check_ms"),
    ("server: the store (`store_ms`)", None, "server_store_ms"),
    ("… of which the repository's lock, the transaction's writes (`lock_ms`)", None,
     "server_lock_ms"),
    ("server: the whole session from its advertisement (`duration_ms`)", None,
     "server_duration_ms"),
]


def main():
    if sys.argv[1] == "run":
        floor_ms, skillsd_ms = int(sys.argv[2]), int(sys.argv[3])
        fields = {"floor_ms": floor_ms, "skillsd_ms": skillsd_ms,
                  "ratio": round(skillsd_ms / floor_ms, 2)}
        fields.update(client(sys.argv[4], "floor"))
        fields.update(client(sys.argv[5], "skillsd"))
        fields.update(server(sys.argv[6]))
        print("\t".join(f"{k}={v}" for k, v in fields.items()))
        return
    runs = []
    for line in open(sys.argv[2]):
        if line.strip():
            runs.append({k: float(v) for k, v in (f.split("=") for f in line.split("\t"))})
    med = lambda k: statistics.median(r[k] for r in runs if k in r)
    cell = lambda k: "–" if k is None else "%.0f" % med(k)
    ratios = sorted(r["ratio"] for r in runs)
    print(f"Push of 1,000 new skills onto {int(sys.argv[3]):,}, {len(runs)} pairs (ms, medians)\n")
    print("| | floor (local, git's receive-pack) | skillsd (SSH) |")
    print("|---|---:|---:|")
    for label, floor, skillsd in ROWS:
        print(f"| {label} | {cell(floor)} | {cell(skillsd)} |")
    print(f"\nRatio skillsd / floor per pair: {', '.join('%.2f' % r for r in ratios)}; "
          f"median **{statistics.median(ratios):.2f}×**")


main()
