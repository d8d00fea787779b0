#!/usr/bin/env python3
"""Push-latency distribution of both servers, from hyperfine JSON exports.

usage: chart.py STOCK.json STOCK_25519.json SKILLSD.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def times(path):
    return [t * 1000 for t in json.load(open(path))["results"][0]["times"]]


def main():
    stock, stock25519, skillsd, out = sys.argv[1:5]
    series = [
        ("stock git + hooks (default KEX)", times(stock)),
        ("stock git + hooks (curve25519)", times(stock25519)),
        ("skillsd", times(skillsd)),
    ]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.boxplot([s for _, s in series], vert=False, widths=0.5, showfliers=True)
    for i, (_, s) in enumerate(series, start=1):
        ax.scatter(s, [i] * len(s), s=12, alpha=0.5)
    ax.set_yticks(range(1, len(series) + 1), [name for name, _ in series])
    ax.set_xlabel("push of one modified skill, until git push returns (ms)")
    ax.set_xlim(left=0)
    ax.set_title("Push latency, 10,000-skill repository, same machine, same run")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
