"""Deploy trained runs side by side: float / fixed point / Lava accuracy, spike agreement, speed.

    python benchmarks/residual_deploy.py cpu=runs/cpu cpu-res=runs/cpu-res \
        [--verify 100] [--accuracy-images 1000] [--lava-images 20]

For every ``NAME=RUN_FOLDER`` it runs the user's commands, unchanged: ``export/to_netx.py
--verify N`` (the file in Lava against the integer reference, every spike of every layer, plus
the float vs fixed-point accuracy on ``--accuracy-images``) and ``python -m lava_procs.run``
(clean + Gaussian 8/255 copies with the MPPD monitor). The NetX files go to a temporary folder;
the commands' JSON reports and ``summary.json`` (one row per NAME, rows of other NAMEs kept) go
to ``--out``, and the table is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rssnn.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return time.perf_counter() - t0


def deploy(name: str, run: Path, out: Path, tmp: Path, args: argparse.Namespace) -> dict:
    net = tmp / f"{name}.net"
    verify_json, lava_json = out / f"{name}-verify.json", out / f"{name}-lava.json"
    ckpt = run / "best.pt"
    export_s = _run(
        ["export/to_netx.py", "--checkpoint", str(ckpt), "--out", str(net), "--verify", str(args.verify),
         "--verify-report", str(verify_json), "--accuracy-images", str(args.accuracy_images)]
    )  # fmt: skip
    lava_s = _run(
        ["-m", "lava_procs.run", "--net", str(net), "--limit", str(args.lava_images), "--perturb",
         "gn:8/255", "--checkpoint", str(ckpt), "--out", str(lava_json)]
    )  # fmt: skip
    verify, lava = json.loads(verify_json.read_text()), json.loads(lava_json.read_text())
    metrics = json.loads((run / "metrics.json").read_text())["epochs"]
    config = json.loads((run / "config.json").read_text())["config"]
    return dict(
        name=name,
        run=str(run),
        model=config["model"],
        train_images=metrics[-1]["images"],
        epochs=len(metrics),
        train_s=metrics[-1]["elapsed_train_s"],
        best_val_acc=max(e["val_acc"] for e in metrics),
        verify_images=verify["n_images"],
        float_accuracy=verify["float_accuracy"],
        fixed_point_accuracy=verify["fixed_point_accuracy"],
        lava_accuracy=verify["lava_accuracy"],
        spike_mismatches=verify["spike_mismatches"],
        prediction_agreement=verify["prediction_agreement"],
        quantisation=verify["quantisation"],
        lava_verify_s_per_image=verify["seconds"]["lava_per_image"],
        export_and_verify_s=export_s,
        runner=dict(
            images=lava["n_images"],
            wall_s=lava_s,
            seconds_per_image=lava["seconds_per_image"],
            agreement_with_reference=lava["agreement_with_reference"],
            accuracy_clean=lava["accuracy_clean"],
            accuracy_gn8=lava["accuracy_perturbed"],
            monitored_layers=len(lava["mppd_per_layer"]),
            mppd_max_relative_difference=max(
                abs(a - b) / max(abs(b), 1e-30)
                for a, b in zip(lava["mppd_per_layer"], lava["mppd_per_layer_reference"])
            ),
        ),
    )


def table(rows: list[dict]) -> str:
    lines = [
        "| model | training | val acc | float | fixed point | Lava | mismatches | float (M) | fixed (M) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        q = r["quantisation"]
        lines.append(
            f"| {r['name']} | {r['epochs']} x {r['train_images']} imgs, {r['train_s'] / 60:.0f} min "
            f"| {100 * r['best_val_acc']:.1f} | {100 * r['float_accuracy']:.1f} "
            f"| {100 * r['fixed_point_accuracy']:.1f} | {100 * r['lava_accuracy']:.1f} "
            f"| {r['spike_mismatches']} | {100 * q['float_accuracy']:.1f} ({q['images']}) "
            f"| {100 * q['fixed_point_accuracy']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+", help="NAME=RUN_FOLDER (a train/cifar.py --out folder)")
    ap.add_argument("--verify", type=int, default=100, help="images verified spike for spike in Lava")
    ap.add_argument("--accuracy-images", type=int, default=1000, help="float vs fixed point images")
    ap.add_argument("--lava-images", type=int, default=20, help="images through python -m lava_procs.run")
    ap.add_argument("--out", default="benchmarks/results/residual", help="folder for the reports")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = [r.split("=", 1) for r in args.runs]
    for _, run in pairs:
        if not (Path(run) / "best.pt").is_file():
            ap.error(f"{run} has no best.pt: give NAME=RUN_FOLDER of a finished train/cifar.py run")
    summary = out / "summary.json"
    rows = json.loads(summary.read_text()) if summary.is_file() else []  # other runs' rows stay
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in pairs:
            row = deploy(name, Path(run), out, Path(tmp), args)
            rows = [r for r in rows if r["name"] != name] + [row]
            atomic_write_text(summary, json.dumps(rows, indent=2))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
