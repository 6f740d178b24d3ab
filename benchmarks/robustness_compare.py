"""The robustness experiment: the effect of MS-MPPD (rho) and of the neuron, one factor at a time.

A 2x2 design, {LIF, DLIF} x {rho 0, rho 1}, for Gaussian-noise training (sigma 8/255) and for
FGSM adversarial training (eps 4/255), every cell with the same budget, data and seeds; then a
rho sweep (0, 0.3, 1, 3, 10) on one cell. Each cell is trained with ``train/cifar.py`` and
evaluated with ``train/evaluate.py`` on the same validation images (clean, GN, FGSM and PGD-7
at eps 1, 2, 4, 8 /255, and the worst-case ensemble at 2 and 8 /255). The report pairs cells
per seed and per image (:mod:`rssnn.stats`): bootstrap intervals, McNemar p-values, seed spread.

Resumable and cached per cell: checkpoints live under ``--out`` (not committed); each finished
cell writes one small JSON into ``benchmarks/results/compare/`` (committed), so the design can run
for hours, stop anywhere and go on in another session or on another machine. The report
(``--report-only``, also written after every cell) rewrites the tables between markers in
docs/results.md and the plot benchmarks/results/compare/rho_sweep.png.

    python benchmarks/robustness_compare.py                     # everything, in a useful order
    python benchmarks/robustness_compare.py --only gaussian      # one training mode's 2x2
    python benchmarks/robustness_compare.py --report-only        # tables from the finished cells
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
sys.path.insert(0, str(ROOT))
from benchmarks import compare_report  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "compare"
EPS = ("1/255", "2/255", "4/255", "8/255")
ENSEMBLE_EPS = ("2/255", "8/255")
ATTACKS = ",".join(
    ["clean", "gn:8/255"]
    + [f"fgsm:{e}" for e in EPS]
    + [f"pgd:{e}:7" for e in EPS]
    + [f"ensemble:{e}" for e in ENSEMBLE_EPS]
)
MODE_FLAGS = {"gaussian": ["--mode", "gaussian"], "fgsm": ["--mode", "fgsm", "--eps", "4/255"]}
SWEEP_RHOS = (0.0, 0.3, 1.0, 3.0, 10.0)


def cell_name(neuron: str, mode: str, rho: float, timesteps: int, seed: int) -> str:
    return f"{neuron}-{mode}-rho{rho:g}-T{timesteps}-s{seed}"


def plan(args: argparse.Namespace) -> list[tuple[str, str, float, int]]:
    """(neuron, mode, rho, seed) in the order that completes paired comparisons earliest."""
    seeds = {"gaussian": args.seeds_gaussian, "fgsm": args.seeds_fgsm}
    modes = [m for m in ("gaussian", "fgsm") if args.only in (None, m)]
    cells = []
    for i in range(max(len(seeds[m]) for m in modes)):
        for mode in modes:
            if i < len(seeds[mode]):
                cells += [(n, mode, r, seeds[mode][i]) for n in ("lif", "dlif") for r in (0.0, 1.0)]
    if args.only in (None, "sweep"):
        neuron, mode = args.sweep_cell.split("-")
        cells += [(neuron, mode, r, s) for s in args.sweep_seeds for r in SWEEP_RHOS]
    seen, ordered = set(), []
    for c in cells:
        if c not in seen:
            seen.add(c)
            ordered.append(c)
    return ordered


def sh(args: list[str]) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def run_cell(args: argparse.Namespace, neuron: str, mode: str, rho: float, seed: int) -> Path:
    """Train (or resume) and evaluate one cell; returns its committed result file."""
    name = cell_name(neuron, mode, rho, args.timesteps, seed)
    result = Path(args.results) / f"{name}.json"
    if result.exists():
        return result
    run = ROOT / args.out / name
    budget = ["--train-limit", str(args.train_limit), "--epochs", str(args.epochs)]
    if not (run / "done.json").exists():
        t0 = time.time()
        train = ["train/cifar.py", "--out", str(run), "--seed", str(seed), "--split-seed", "0", "--quiet"]
        train += ["--neuron", neuron, "--rho", f"{rho:g}", "--timesteps", str(args.timesteps), *budget]
        train += MODE_FLAGS[mode]
        sh(train + (["--resume"] if (run / "last.pt").exists() else []))
        (run / "done.json").write_text(json.dumps(dict(wall_s=time.time() - t0)))
    ev = run / "eval" / "results.json"
    if not ev.exists():
        sh(
            ["train/evaluate.py", "--checkpoint", str(run / "last.pt"), "--limit", str(args.limit)]
            + ["--attacks", ATTACKS, "--out", str(ev), "--quiet", "--seed", "0"]
        )
    evaluation = json.loads(ev.read_text())
    metrics = json.loads((run / "metrics.json").read_text())["epochs"]
    payload = dict(
        cell=name,
        neuron=neuron,
        mode=mode,
        rho=rho,
        seed=seed,
        timesteps=args.timesteps,
        train_limit=args.train_limit,
        epochs=args.epochs,
        eval_images=evaluation["n"],
        machine=f"{platform.machine()}, {platform.node()}",
        train_minutes=metrics[-1]["elapsed_train_s"] / 60,
        final_epoch=metrics[-1],
        rows=evaluation["rows"],
        checks=evaluation["checks"],
    )
    result.parent.mkdir(parents=True, exist_ok=True)
    tmp = result.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(result)  # a cell file exists only once it is complete
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train-limit", type=int, default=10000, help="training images per cell")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--limit", type=int, default=2000, help="validation images evaluated")
    ap.add_argument("--seeds-gaussian", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--seeds-fgsm", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    ap.add_argument("--sweep-cell", default="dlif-gaussian", help="NEURON-MODE of the rho sweep")
    ap.add_argument("--sweep-seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0])
    ap.add_argument("--only", choices=("gaussian", "fgsm", "sweep"), default=None)
    ap.add_argument("--out", default="runs/compare", help="checkpoints (not committed)")
    ap.add_argument("--results", default=str(RESULTS), help="per-cell result files (committed)")
    ap.add_argument("--report-only", action="store_true", help="tabulate the finished cells only")
    args = ap.parse_args(argv)
    if not args.report_only:
        for neuron, mode, rho, seed in plan(args):
            run_cell(args, neuron, mode, rho, seed)
            compare_report.write_report(Path(args.results), args.sweep_cell, args.timesteps)
    print(compare_report.write_report(Path(args.results), args.sweep_cell, args.timesteps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
