#!/usr/bin/env python3
"""report.py - tables from siltfs-sim --json output.

  report.py EVAL_DIR        the evaluation table (markdown) of run.sh's output
  report.py --tune TUNE_DIR the tuning settings ranked (first 80% only)

Gap closed = (LRU - X) / (LRU - Belady): the share of the distance between
LRU and the offline optimum that policy X covers.
"""
import glob
import json
import os
import sys

TRACES = ["cloudphysics_vm_io", "msn_fs_30s", "aux_cloudphysics_w106_keyonly"]
CLASSICAL = ["lru", "arc", "s3fifo", "lirs", "lfu"]
COLS = CLASSICAL + ["gru", "gru+prefetch", "belady"]


def load(path):
    with open(path) as f:
        return json.load(f)


def index(rows):
    return {(r["trace"].replace(".csv.gz", ""), round(r["fast_fraction"], 4),
             r["policy"]): r for r in rows}


def gap(lru, x, opt):
    return (lru - x) / (lru - opt) if lru > opt else 0.0


def tune(d):
    base = {}
    for f in glob.glob(os.path.join(d, "classical.*.json")):
        base.update(index(load(f)))
    settings = {}
    for f in glob.glob(os.path.join(d, "gru_*.json")):
        name = os.path.basename(f).rsplit(".", 2)[0]
        settings.setdefault(name, {}).update(index(load(f)))
    print("| setting | mean miss (9 points) | beats best classical | mean gap closed |")
    print("|---|---|---|---|")
    ranked = []
    for name, rows in settings.items():
        miss, wins, gaps = [], 0, []
        for (t, fr, _), r in rows.items():
            m = r["miss_ratio"]
            miss.append(m)
            best = min(base[(t, fr, p)]["miss_ratio"] for p in CLASSICAL)
            wins += m < best
            gaps.append(gap(base[(t, fr, "lru")]["miss_ratio"], m,
                            base[(t, fr, "belady")]["miss_ratio"]))
        ranked.append((sum(miss) / len(miss), name, wins, sum(gaps) / len(gaps), len(miss)))
    for mm, name, wins, g, n in sorted(ranked):
        print(f"| {name} | {mm:.4f} | {wins}/{n} | {g:.1%} |")
    print(f"\nbest on the first 80%: {sorted(ranked)[0][1]}")
    pf = {}
    for f in glob.glob(os.path.join(d, "pf_*.json")):
        name = os.path.basename(f).rsplit(".", 2)[0]
        pf.setdefault(name, {}).update(index(load(f)))
    ref = settings.get("gru_m2.0_t1024")
    if not pf or not ref:
        return
    print("\n| prefetch setting | mean miss | fewer misses than GRU alone | "
          "mean accuracy | min accuracy | mean coverage |")
    print("|---|---|---|---|---|---|")
    for name, rows in sorted(pf.items()):
        miss, red, acc, cov = [], [], [], []
        for (t, fr, _), r in rows.items():
            g = ref[(t, fr, "gru")]["miss_ratio"]
            miss.append(r["miss_ratio"])
            red.append(1 - r["miss_ratio"] / g if g else 0)
            acc.append(r["prefetch_accuracy"])
            cov.append(r["prefetch_coverage"])
        n = len(miss)
        print(f"| {name} | {sum(miss)/n:.4f} | {sum(red)/n:.1%} | {sum(acc)/n:.3f} | "
              f"{min(acc):.3f} | {sum(cov)/n:.3f} |")


def evaluate(d):
    rows = {}
    for f in glob.glob(os.path.join(d, "*.json")):
        rows.update(index(load(f)))
    fracs = sorted({k[1] for k in rows})
    hdr = ["trace", "fast"] + ["LRU", "ARC", "S3-FIFO", "LIRS", "LFU", "GRU",
                               "GRU+pf", "Belady", "GRU gap", "GRU+pf gap",
                               "pf acc", "pf cov", "GRU ns/acc (train)"]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    wins, gaps, gaps_pf, pf_red, accs, ns, tns, sizes = 0, [], [], [], [], [], [], []
    n = 0
    for t in TRACES:
        for fr in fracs:
            if (t, fr, "lru") not in rows:
                continue
            m = {p: rows[(t, fr, p)]["miss_ratio"] for p in COLS if (t, fr, p) in rows}
            g = rows.get((t, fr, "gru"))
            gp = rows.get((t, fr, "gru+prefetch"))
            best = min(m[p] for p in CLASSICAL)
            cells = [t, f"{fr:.0%}"] + [f"{m.get(p, float('nan')):.4f}" for p in COLS]
            cells.append(f"{gap(m['lru'], m['gru'], m['belady']):.1%}")
            cells.append(f"{gap(m['lru'], m['gru+prefetch'], m['belady']):.1%}")
            cells.append(f"{gp['prefetch_accuracy']:.3f}")
            cells.append(f"{gp['prefetch_coverage']:.3f}")
            cells.append(f"{g['ns_per_access']:.0f} ({g['train_ns_per_access']:.0f})")
            print("| " + " | ".join(cells) + " |")
            n += 1
            wins += m["gru"] < best
            gaps.append(gap(m["lru"], m["gru"], m["belady"]))
            gaps_pf.append(gap(m["lru"], m["gru+prefetch"], m["belady"]))
            pf_red.append(1 - m["gru+prefetch"] / m["gru"] if m["gru"] else 0)
            accs.append(gp["prefetch_accuracy"])
            ns.append(g["ns_per_access"])
            tns.append(g["train_ns_per_access"])
            sizes.append(g["model_bytes"])
    if not n:
        print("no results")
        return
    print()
    print("Share of the LRU-to-Belady gap closed (negative: worse than LRU):")
    print()
    names = ["ARC", "S3-FIFO", "LIRS", "LFU", "GRU", "GRU+pf"]
    print("| trace | fast | LRU - Belady | " + " | ".join(names) + " |")
    print("|" + "---|" * (3 + len(names)))
    for t in TRACES:
        for fr in fracs:
            if (t, fr, "lru") not in rows:
                continue
            m = {p: rows[(t, fr, p)]["miss_ratio"] for p in COLS if (t, fr, p) in rows}
            cells = [t, f"{fr:.0%}", f"{m['lru'] - m['belady']:.4f}"]
            for p in ["arc", "s3fifo", "lirs", "lfu", "gru", "gru+prefetch"]:
                cells.append(f"{gap(m['lru'], m[p], m['belady']):.1%}")
            print("| " + " | ".join(cells) + " |")
    print()
    print(f"- GRU below the best classical policy on {wins} of {n} points")
    print(f"- mean share of the LRU-to-Belady gap closed: GRU {sum(gaps)/n:.1%}, "
          f"GRU+prefetch {sum(gaps_pf)/n:.1%}")
    print(f"- prefetch: {sum(pf_red)/n:.1%} fewer misses than GRU alone on average, "
          f"accuracy {sum(accs)/n:.3f} on average (min {min(accs):.3f})")
    print(f"- GRU cost: {sum(ns)/n:.0f} ns per access on average (of which training "
          f"{sum(tns)/n:.0f}), max {max(ns):.0f}; models {max(sizes)} bytes")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--tune":
        tune(sys.argv[2])
    elif len(sys.argv) == 2:
        evaluate(sys.argv[1])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
