"""Run every benchmark and collect the figures in benchmarks/results.json and results.md.

    python benchmarks/run_all.py [--quick]

Figures (ratios are measured side by side in one run; absolute times are noisy here):
  training throughput and DLIF neuron overhead vs an ANN    (train_throughput.py)
  PGD-10 seconds per image, default model, T = 4           (pgd_speed.py)
  export verification time (100 images in Lava)            (export_speed.py)
  Lava seconds per image and per step, monitor overhead    (lava_throughput.py)
  training images/s, 1 process vs 2 torchrun ranks         (ddp_throughput.py)
  rssnn certify seconds per image, float and integer        (certify_speed.py)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv: list[str] | None = None) -> dict:
    import certify_speed
    import ddp_throughput
    import export_speed
    import lava_throughput
    import pgd_speed
    import train_throughput

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and images")
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated benchmarks to rerun; the others are read from " "benchmarks/results/*.json",
    )
    args = ap.parse_args(argv)
    out = HERE / "results"
    q = args.quick
    t0 = time.time()
    runners = {
        "train_throughput": lambda: train_throughput.main(
            ["--repeats", "3" if q else "8", "--out", str(out / "train_throughput.json")]
        ),
        "pgd_speed": lambda: pgd_speed.main(
            ["--images", "20" if q else "100", "--out", str(out / "pgd_speed.json")]
        ),
        "export_speed": lambda: export_speed.main(
            ["--images", "20" if q else "100", "--out", str(out / "export_speed.json")]
        ),
        "lava_throughput": lambda: lava_throughput.main(
            [
                "--images",
                "4" if q else "12",
                "--repeats",
                "1" if q else "3",
                "--out",
                str(out / "lava_throughput.json"),
            ]
        ),
        "ddp_throughput": lambda: ddp_throughput.main(
            ["--images", "640" if q else "1280", "--out", str(out / "ddp_throughput.json")]
        ),
        "certify_speed": lambda: certify_speed.main(
            ["--n", "200" if q else "500", "--out", str(out / "certify_speed.json")]
        ),
    }
    only = set(args.only.split(",")) if args.only else set(runners)
    figures = {
        name: run() if name in only else json.loads((out / f"{name}.json").read_text())
        for name, run in runners.items()
        if name in only or (out / f"{name}.json").exists()
    }
    summary = dict(
        machine=f"{platform.machine()} {platform.processor()}".strip(),
        python=platform.python_version(),
        seconds=time.time() - t0,
        **figures,
    )
    (HERE / "results.json").write_text(json.dumps(summary, indent=2))
    (HERE / "results.md").write_text(render(summary))
    print(render(summary))
    return summary


def render(s: dict) -> str:
    tt, pgd, ex, lv = (s["train_throughput"], s["pgd_speed"], s["export_speed"], s["lava_throughput"])
    lines = [
        f"# Benchmark figures ({s['machine']}, Python {s['python']})",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for row in tt["rows"]:
        lines.append(
            f"| training, T={row['T']}, batch {row['batch_size']}: DLIF images/s | "
            f"{row['dlif_images_per_s']:.0f} |"
        )
        lines.append(
            f"| neuron overhead T={row['T']}: DLIF step / (T x ANN step) (goal <= 1.2) "
            f"| {row['dlif_neuron_overhead']:.2f} |"
        )
        if "slayer_cuba_neuron_overhead" in row:
            lines.append(
                f"| neuron overhead T={row['T']}: stock SLAYER cuba, same harness | "
                f"{row['slayer_cuba_neuron_overhead']:.2f} |"
            )
    lines += [
        f"| PGD-10 seconds per image (T={pgd['num_steps']}, batch {pgd['batch_size']}) | "
        f"{pgd['seconds_per_image']:.3f} |",
        f"| export + Lava verification, {ex['images']} images: seconds (Lava part) | "
        f"{ex['total_s']:.1f} ({ex['lava_run_s']:.1f}) |",
        f"| Lava sim, clean + perturbed pair, stock synapse models: s/image (s/step) | "
        f"{lv['seconds_per_image_pair']['stock']:.3f} ({lv['seconds_per_step']['stock']:.4f}) |",
        f"| Lava sim, pair, fast synapse models + monitors: s/image (s/step) | "
        f"{lv['seconds_per_image_pair']['fast+mon']:.3f} ({lv['seconds_per_step']['fast+mon']:.4f}) |",
        f"| Lava speed-up stock / fast, without (with) monitors (goal >= 10) | "
        f"{lv['speedup_stock_over_fast']:.1f} ({lv['speedup_stock_over_fast_with_monitor']:.1f}) |",
        f"| monitor overhead: with / without (goal < 1.25) | {lv['monitor_overhead_ratio']:.3f} |",
        "| Lava peak PSS of the process tree, MiB (stock / fast / fast+mon) | "
        + " / ".join(f"{lv['peak_pss_mib'][k]:.0f}" for k in ("stock", "fast", "fast+mon"))
        + " |",
        f"| integer reference, batch 1: s per image pair | "
        f"{lv['integer_reference_batch1_seconds_per_image_pair']:.3f} |",
    ]
    if "ddp_throughput" in s:
        d = s["ddp_throughput"]
        lines.append(
            f"| training images/s, {d['preset']} preset on {d['device']} ({d['cpu_count']} cores): "
            f"1 process / {d['ranks']} torchrun ranks (ratio) | {d['images_per_s_1_process']:.1f} / "
            f"{d['images_per_s_ranks']:.1f} ({d['ratio_ranks_over_1']:.2f}) |"
        )
    if "certify_speed" in s:
        c = s["certify_speed"]
        lines.append(
            f"| rssnn certify, s per image at n0 {c['n0']} + n {c['n']} (float / integer; integer at n0 100 "
            f"+ n 1,000) | {c['float']['seconds_per_image']:.2f} / {c['integer']['seconds_per_image']:.2f}; "
            f"{c['integer']['seconds_per_image_n1000']:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
