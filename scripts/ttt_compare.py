#!/usr/bin/env python3
"""Time to target across `dots bench ttt` runs: compares methods from different --out folders (e.g. the same
method at two batch sizes), with the target taken from one of them, the way `bench ttt` computes it.

    python3 scripts/ttt_compare.py runs/ttt7-grpo32:grpo runs/ttt7-grpo64:grpo [--window 5]

The first RUN:METHOD is the baseline: target = its final smoothed accuracy (trailing mean over `--window`
checkpoints of each seed's curve, averaged over seeds). For every RUN:METHOD and seed, the reach is the
first checkpoint whose smoothed accuracy is at the target; steps and training seconds are averaged over the
seeds that reached it; time saved = 1 − time to target / the baseline's. Reads RUN/summary.json only.
"""

import argparse
import json
import statistics


def smoothed(curve, window):
    out = []
    for i, point in enumerate(curve):
        xs = [p["accuracy"] for p in curve[max(0, i - window + 1):i + 1]]
        out.append((point["step"], point["seconds"], sum(xs) / len(xs)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="RUN_DIR:METHOD, the baseline first")
    ap.add_argument("--window", type=int, default=5)
    args = ap.parse_args()

    loaded = []
    for spec in args.runs:
        run, method = spec.rsplit(":", 1)
        summary = json.load(open(f"{run}/summary.json"))
        seeds = [smoothed(c, args.window) for c in summary["curves"][method]]
        loaded.append((spec, seeds))

    base_seeds = loaded[0][1]
    target = statistics.mean(s[-1][2] for s in base_seeds)
    print(f"target: {100 * target:.1f}% ({loaded[0][0]}'s final smoothed accuracy, mean of {len(base_seeds)} seeds)")
    print("| run:method | reached (seeds) | steps to target | s / step | time to target | time saved | "
          "smoothed accuracy at 20 / 40 / 60 / 80 / 100 |")
    print("|---|---:|---:|---:|---:|---:|---|")
    base_time = None
    for spec, seeds in loaded:
        reach = []
        for s in seeds:
            hit = next(((step, sec) for step, sec, acc in s if acc >= target - 1e-9), None)
            if hit:
                reach.append(hit)
        per_step = statistics.mean(s[-1][1] / s[-1][0] for s in seeds)
        n = min(len(s) for s in seeds)
        mean_curve = {seeds[0][i][0]: statistics.mean(s[i][2] for s in seeds) for i in range(n)}
        marks = " / ".join(f"{100 * mean_curve[k]:.1f}" for k in (20, 40, 60, 80, 100) if k in mean_curve)
        if reach:
            steps = statistics.mean(r[0] for r in reach)
            secs = statistics.mean(r[1] for r in reach)
            if base_time is None:
                base_time = secs
            saved = f"{100 * (1 - secs / base_time):.1f}%"
            print(f"| {spec} | {len(reach)}/{len(seeds)} | {steps:.0f} | {per_step:.2f} | {secs:.0f} s | {saved} | {marks} |")
        else:
            print(f"| {spec} | 0/{len(seeds)} | — | {per_step:.2f} | — | — | {marks} |")


if __name__ == "__main__":
    main()
