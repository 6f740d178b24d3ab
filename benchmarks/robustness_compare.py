"""The side-by-side experiment: does DLIF + MS-MPPD make the network more robust, on our budget?

Trains, with the same data budget, seed and data, five models on the real CIFAR-10 copy:
    lif-natural        vanilla LIF, plain CE
    lif-gn-rho0        LIF, Gaussian-noise training (sigma 8/255), no MS-MPPD
    dlif-gn-rho1       DLIF (learned leak and threshold), Gaussian training, MS-MPPD rho 1
    lif-fgsm-rho0      LIF, FGSM adversarial training (eps 4/255), no MS-MPPD
    dlif-fgsm-rho1     DLIF, FGSM training, MS-MPPD rho 1
evaluates each with one protocol on the validation split (clean, GN 8/255, FGSM 8/255, PGD-7,
PGD-20, APGD-CE, plus the masking checks, with a transfer row crafted on another model), and
writes the table to docs/results.md (between markers) and all numbers to
benchmarks/results/robustness_compare.json.

    python benchmarks/robustness_compare.py [--train-limit 10000] [--epochs 3] [--limit 500]
        [--seeds 0] [--out runs/compare]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "lif-natural": ["--neuron", "lif", "--mode", "natural", "--rho", "0"],
    "lif-gn-rho0": ["--neuron", "lif", "--mode", "gaussian", "--rho", "0"],
    "dlif-gn-rho1": ["--neuron", "dlif", "--mode", "gaussian", "--rho", "1"],
    "lif-fgsm-rho0": ["--neuron", "lif", "--mode", "fgsm", "--rho", "0"],
    "dlif-fgsm-rho1": ["--neuron", "dlif", "--mode", "fgsm", "--rho", "1"],
}
ATTACKS = "clean,gn:8/255,fgsm:8/255,pgd:8/255:7,pgd:8/255:20,apgd-ce:8/255:10"
COLUMNS = [
    ("clean", "clean"),
    ("gn:8/255", "GN 8/255"),
    ("fgsm:8/255", "FGSM"),
    ("pgd:8/255:7", "PGD-7"),
    ("pgd:8/255:20", "PGD-20"),
    ("apgd-ce:8/255:10", "APGD-CE"),
]
BEGIN, END = "<!-- robustness_compare:begin -->", "<!-- robustness_compare:end -->"


def sh(args: list[str]) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train-limit", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=500, help="validation images evaluated")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--out", default="runs/compare")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="subset of the five models")
    ap.add_argument(
        "--report-only", action="store_true", help="train and evaluate nothing; tabulate the runs that exist"
    )
    args = ap.parse_args(argv)
    out = ROOT / args.out
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.configs.split(",")
    results: dict[str, dict] = {}
    for seed in seeds:
        for name in names:
            run = out / f"{name}-s{seed}"
            if args.report_only and not (run / "eval" / "results.json").exists():
                continue
            if not (run / "best.pt").exists():
                t0 = time.time()
                sh(
                    [
                        "train/cifar.py",
                        "--out",
                        str(run),
                        "--train-limit",
                        str(args.train_limit),
                        "--epochs",
                        str(args.epochs),
                        "--seed",
                        str(seed),
                        "--quiet",
                        *CONFIGS[name],
                    ]
                )
                (run / "wall_seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
        for name in names:
            run = out / f"{name}-s{seed}"
            if args.report_only and not (run / "eval" / "results.json").exists():
                continue
            source = out / f"{'lif-gn-rho0' if name == 'lif-natural' else 'lif-natural'}-s{seed}"
            ev = run / "eval" / "results.json"
            if not ev.exists():
                extra = (
                    ["--transfer-checkpoint", str(source / "best.pt")]
                    if (source / "best.pt").exists()
                    else []
                )
                sh(
                    [
                        "train/evaluate.py",
                        "--checkpoint",
                        str(run / "best.pt"),
                        "--limit",
                        str(args.limit),
                        "--attacks",
                        ATTACKS,
                        "--out",
                        str(ev),
                        "--quiet",
                        *extra,
                    ]
                )
            res = json.loads(ev.read_text())
            metrics = json.loads((run / "metrics.json").read_text())["epochs"][-1]
            results[f"{name}-s{seed}"] = dict(
                name=name,
                seed=seed,
                rows=res["rows"],
                checks=res["checks"],
                train_minutes=metrics["elapsed_train_s"] / 60,
                val_acc_full=metrics["val_acc"],
            )
    summary = dict(
        machine=f"{platform.machine()}, {platform.processor() or 'cpu'}",
        train_limit=args.train_limit,
        epochs=args.epochs,
        eval_images=args.limit,
        seeds=seeds,
        attacks=ATTACKS,
        models=results,
    )
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "results" / "robustness_compare.json").write_text(json.dumps(summary, indent=2))
    table = render(summary, names)
    print(table)
    docs = ROOT / "docs" / "results.md"
    text = docs.read_text() if docs.exists() else f"# Results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    docs.write_text(head + BEGIN + "\n" + table + rest[rest.index(END) :])
    return summary


def render(summary: dict, names: list[str]) -> str:
    """Markdown table: accuracy per attack (mean over seeds; +- spread with several seeds)."""
    seeds = summary["seeds"]
    lines = [
        f"Budget: {summary['train_limit']} training images x {summary['epochs']} epochs per "
        f"model (CPU model, T=2), seeds {seeds} (a model lists the mean over the seeds it "
        f"was run with, +- half the range); evaluation on {summary['eval_images']} "
        f"validation images, white-box through the surrogate, eps 8/255. Command: "
        f"`python benchmarks/robustness_compare.py --train-limit {summary['train_limit']} "
        f"--epochs {summary['epochs']} --limit {summary['eval_images']} --seeds "
        f"{','.join(map(str, seeds))}`.",
        "",
        "| model | seeds | " + " | ".join(c for _, c in COLUMNS) + " | masking checks | train min* |",
        "|---|---|" + "---|" * (len(COLUMNS) + 2),
    ]
    for name in names:
        runs = [summary["models"][f"{name}-s{s}"] for s in seeds if f"{name}-s{s}" in summary["models"]]
        if not runs:
            continue
        cells = []
        for key, _ in COLUMNS:
            accs = [next(r["accuracy"] for r in run["rows"] if r["attack"] == key) for run in runs]
            mean = 100 * sum(accs) / len(accs)
            spread = 100 * (max(accs) - min(accs)) / 2
            cells.append(f"{mean:.1f}" + (f" +- {spread:.1f}" if len(accs) > 1 else ""))
        checks = [c for run in runs for c in run["checks"]]
        failed = [c["name"] for c in checks if not c["passed"]]
        status = "all pass" if not failed else "FAIL: " + "; ".join(sorted(set(failed)))
        minutes = sum(r["train_minutes"] for r in runs) / len(runs)
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {status} | {minutes:.1f} |")
    lines += [
        "",
        "*training wall minutes; other jobs shared the 2 cores, so they are not " "comparable between rows.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
