#!/usr/bin/env python3
"""bench/timeline.sh's helper.

  timeline.py run FLOOR_MS SKILLSD_MS FLOOR_TRACE SKILLSD_TRACE SERVE_LOG
      one push pair as a line of `key=value` fields (tab-separated)
  timeline.py table RUNS_TSV N
      the medians of those lines as a Markdown table
  timeline.py chart RUNS_TSV N OUT.png
      the medians as a chart: both pushes on the client's clock, phase by phase
      (needs matplotlib: Debian's python3-matplotlib)
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


# A colour per kind of phase.
COLOURS = {
    "start": "#bcbddc", "silent": "#d9d9d9", "stream": "#9ecae1", "index": "#fdd0a2",
    "checks": "#fd8d3c", "prepare": "#fdae6b", "transaction": "#d94801",
    "connectivity": "#fdd0a2", "end": "#bcbddc",
}


def phases(med):
    """Each push's phases on the client's clock (ms from `git push`'s start), from
    the medians: (label, start, end, kind). The server's times are put on that clock
    at the pack's last byte, which both sides see at once (the client's pack-objects
    ends as the server reads its last byte)."""
    f_start, f_first = med("floor_pack_objects_start"), med("floor_index_pack_start")
    f_last, f_indexed = med("floor_pack_objects_end"), med("floor_index_pack_end")
    floor = [
        ("git starts receive-pack", 0, f_start, "start"),
        ("pack-objects counts, finds deltas: nothing sent", f_start, f_first, "silent"),
        ("the pack streams in", f_first, f_last, "stream"),
        ("indexing ends (index-pack)", f_last, f_indexed, "index"),
        ("floor: connectivity, the ref", f_indexed, med("floor_ms"), "connectivity"),
    ]
    last = med("skillsd_pack_objects_end")
    at = lambda server_ms: last + server_ms - med("server_pack_last_byte_ms")
    indexed = at(med("server_pack_ms"))
    checked = indexed + med("server_check_ms")
    stored = checked + med("server_store_ms")
    locked = stored - med("server_lock_ms")
    first = at(med("server_pack_first_byte_ms"))
    skillsd = [
        ("SSH, the advertisement", 0, med("skillsd_pack_objects_start"), "start"),
        ("pack-objects counts, finds deltas: nothing sent",
         med("skillsd_pack_objects_start"), first, "silent"),
        ("the pack streams in", first, last, "stream"),
        ("indexing ends (index-pack)", last, indexed, "index"),
        ("skillsd: the checks", indexed, checked, "checks"),
        ("skillsd: the cache's rows prepared", checked, locked, "prepare"),
        ("skillsd: the transaction (rows, sync log, versions, pack, refs)", locked, stored,
         "transaction"),
        ("the report, the client ends", stored, med("skillsd_ms"), "end"),
    ]
    return floor, skillsd


def chart(runs, n, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    med = lambda k: statistics.median(r[k] for r in runs if k in r)
    floor, skillsd = phases(med)
    fig, ax = plt.subplots(figsize=(11, 3.8), dpi=100)
    for y, bars in ((1, floor), (0, skillsd)):
        for label, start, end, kind in bars:
            ax.broken_barh([(start, end - start)], (y - 0.35, 0.7),
                           facecolors=COLOURS[kind], edgecolor="white")
            if end - start >= 18:
                ax.text((start + end) / 2, y, f"{end - start:.0f}", ha="center",
                        va="center", fontsize=8)
    handles, seen = [], set()
    for label, _, _, kind in floor + skillsd:
        if label not in seen:
            seen.add(label)
            handles.append(plt.Rectangle((0, 0), 1, 1, color=COLOURS[kind], label=label))
    ratio = statistics.median(r["ratio"] for r in runs)
    ax.axvline(1.3 * med("floor_ms"), color="black", linestyle="--", linewidth=1)
    ax.text(1.3 * med("floor_ms"), 1.5, " 1.3× the floor", fontsize=8, va="center")
    ax.set_yticks([0, 1], [f"skillsd (SSH) {med('skillsd_ms'):.0f} ms",
                           f"floor (local) {med('floor_ms'):.0f} ms"])
    ax.set_ylim(-0.6, 1.7)
    ax.set_xlabel("ms from `git push`'s start (medians of %d pairs)" % len(runs))
    ax.set_title(f"A push of 1,000 new skills onto {n:,}: skillsd / floor {ratio:.2f}× "
                 "(median of the pairs)", fontsize=10)
    ax.legend(handles=[h for h in handles], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(out)


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
    if sys.argv[1] == "chart":
        chart(runs, int(sys.argv[3]), sys.argv[4])
        return
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
