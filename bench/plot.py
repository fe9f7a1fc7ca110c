"""Draw docs/performance.md's plots from the benchmarks' JSON (matplotlib, PNG).

    .venv/bin/python bench/plot.py --anchors bench/results/.../anchors_sweep.json \
        --watch bench/results/.../watch_500.json bench/results/.../watch_2000.json ... --out docs/img

collect_vs_fleet.png  wall time of each tool's whole command against fleet size (median of
                      the alternated rounds, every round as a dot)
watch_cpu_vs_fleet.png  the watch loop's agent CPU (share of one core over a poll interval)
                      against fleet size, per session mode, with the 0.5-core target; the
                      reconnect poll's CPU spread over 15 minutes is the syslog set-up's backstop
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"collector": "#1f77b4", "nornir": "#d62728", "scrapli": "#2ca02c", "kept": "#1f77b4",
           "reconnect": "#ff7f0e", "reconnect-15min": "#2ca02c"}


def collect_plot(path: Path, out: Path) -> Path:
    data = json.loads(path.read_text())
    sizes = sorted(int(s) for s in data["sizes"])
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    tools = list(data["sizes"][str(sizes[0])]["median_wall"])
    for tool in tools:
        medians = [data["sizes"][str(n)]["median_wall"][tool] for n in sizes]
        ax.plot(sizes, medians, marker="o", label=tool, color=COLOURS.get(tool))
        for n in sizes:
            walls = [r["wall"] for r in data["sizes"][str(n)]["runs"][tool]]
            ax.scatter([n] * len(walls), walls, s=10, alpha=0.4, color=COLOURS.get(tool))
    ax.set_xlabel("routers (3 show commands each, 20 workers)")
    ax.set_ylabel("wall time of the whole command (s)")
    labels = {"collector": "collector collect --json (parsed, bundle)", "nornir": "Nornir + nornir-netmiko (textfsm)",
              "scrapli": f"scrapli {data['versions'].get('scrapli', '')} system ssh (raw)"}
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles, [labels.get(n, n) for n in names], fontsize=8)
    ax.set_title(f"One-shot collection, each tool as a process ({data['machine']['date']}, "
                 f"{data['machine']['nproc']} shared cores)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    target = out / "collect_vs_fleet.png"
    fig.savefig(target)
    return target


def watch_plot(paths: list[Path], out: Path) -> Path:
    points: dict[str, list[tuple[int, float]]] = {}
    for path in paths:
        data = json.loads(path.read_text())
        for mode, figures in data["modes"].items():
            points.setdefault(mode, []).append((figures["routers"], figures["core_fraction"]))
            if mode == "reconnect":  # the same poll as a 15-minute backstop: its CPU spread over 900 s
                points.setdefault("reconnect-15min", []).append((figures["routers"], figures["poll_cpu"] / 900))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for mode, pts in sorted(points.items()):
        pts.sort()
        label = {"kept": "kept-open sessions, poll every 60 s", "reconnect": "reconnect, poll every 60 s",
                 "reconnect-15min": "reconnect, poll every 15 min (backstop)"}.get(mode, mode)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label, color=COLOURS.get(mode))
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="target: 0.5 core")
    ax.set_xlabel("routers watched (one log poll per interval)")
    ax.set_ylabel("agent CPU over the interval (cores)")
    ax.set_title("Watch loop: agent CPU against fleet size", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    target = out / "watch_cpu_vs_fleet.png"
    fig.savefig(target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchors", type=Path, help="anchors.py --sizes ... --json output")
    parser.add_argument("--watch", type=Path, nargs="*", default=[], help="watch_loop.py --json outputs")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.anchors:
        print(collect_plot(args.anchors, args.out))
    if args.watch:
        print(watch_plot(args.watch, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
