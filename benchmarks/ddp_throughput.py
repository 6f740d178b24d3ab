"""Training images/s with 1 process and with N torchrun ranks (DDP, gloo on CPU, nccl on CUDA).

    python benchmarks/ddp_throughput.py [--ranks 2] [--images 1280] [--preset cpu|paper]

Each configuration is the real command (``python train/cifar.py``, ``torchrun ...
train/cifar.py``) on the same global batches; images/s is the run's own figure (images / summed
training seconds of the epoch, ``metrics.json``), so start-up and validation are left out. The
runs are interleaved A B A B ... and the ratio is taken pair by pair. On this 2-core machine
2 ranks cannot be faster than 1 process with 2 threads: the figure says by how much they are
slower (the price of the per-batch all-reduces and of splitting 2 cores between 2 processes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(ranks: int, args: argparse.Namespace, out: Path) -> float:
    """One epoch on ``args.images`` images; returns its images per second."""
    flags = ["--preset", args.preset, "--train-limit", str(args.images), "--epochs", "1", "--val-size", "100",
             "--quiet", "--checkpoint-every", "0", "--out", str(out), "--device", args.device]  # fmt: skip
    if args.timesteps:
        flags += ["--timesteps", str(args.timesteps)]
    if ranks == 1:
        cmd = [sys.executable, "train/cifar.py", *flags]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               "train/cifar.py", *flags]  # fmt: skip
    env = dict(os.environ)
    if ranks > 1 and args.device == "cpu":  # share the cores: one thread set per rank
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // ranks))
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=env)
    epoch = json.loads((out / "metrics.json").read_text())["epochs"][-1]
    return epoch["images"] / epoch["epoch_train_s"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--images", type=int, default=1280, help="training images per run (default 1280)")
    ap.add_argument("--preset", choices=("cpu", "paper"), default="cpu")
    ap.add_argument("--timesteps", type=int, default=None, help="override the preset's T")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ddp_throughput.json"))
    args = ap.parse_args(argv)
    single, multi = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            single.append(run_once(1, args, Path(tmp) / f"one{i}"))
            multi.append(run_once(args.ranks, args, Path(tmp) / f"ddp{i}"))
    ratios = [m / s for m, s in zip(multi, single)]
    result = dict(
        preset=args.preset,
        device=args.device,
        images_per_run=args.images,
        cpu_count=os.cpu_count(),
        ranks=args.ranks,
        images_per_s_1_process=statistics.median(single),
        images_per_s_ranks=statistics.median(multi),
        ratio_ranks_over_1=statistics.median(ratios),
        runs=dict(single=single, ranks=multi),
        note="median over interleaved repeats; nothing else should run beside it",
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        f"{args.preset} preset, {args.device}: 1 process {result['images_per_s_1_process']:.1f} images/s, "
        f"{args.ranks} ranks {result['images_per_s_ranks']:.1f} images/s "
        f"(ratio {result['ratio_ranks_over_1']:.2f})"
    )
    return result


if __name__ == "__main__":
    main()
