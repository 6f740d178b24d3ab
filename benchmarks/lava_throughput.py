"""Lava CPU simulation speed of the default model, and the on-device monitor's overhead.

Runs N real CIFAR-10 images through the clean + perturbed network pair in Lava
(Loihi2SimCfg, fixed point), once with the membrane-perturbation monitors and once without,
alternating in the same process; prints seconds per image and per step and the overhead ratio
(with monitor) / (without). Goal for the ratio: below 1.25.

    python benchmarks/lava_throughput.py [--net model.net] [--images 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

import rssnn  # noqa: F401  (Lava's multiprocessing setup first)
from export import lowering, netx_file
from lava_procs import runtime
from lava_procs.run import select_backend
from train import data
from train.models import build_model, calibrate_batchnorm

CHUNK = 4  # steps per Lava run call; the first call's time is excluded


def default_net(split: data.Split):
    """The default CPU architecture with BatchNorm statistics of real images (no training)."""
    torch.manual_seed(0)
    model = calibrate_batchnorm(build_model("cpu", 2), split.images[:256].float() / 255)
    return lowering.lower(model.eval(), split.class_names)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--net", default=None, help="exported file (default: untrained default model)")
    ap.add_argument("--images", type=int, default=10, help="images per run (default 10)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per variant (default 2)")
    ap.add_argument("--out", default="benchmarks/results/lava_throughput.json")
    args = ap.parse_args(argv)
    split = data.load_split(data.DEFAULT_DATA_ROOT, "cifar10", "val", val_size=1000, seed=0)
    net = netx_file.read(args.net)[0] if args.net else default_net(split)
    clean = split.images[: args.images]
    gen = torch.Generator().manual_seed(0)
    pert = (clean.float() + 8 * torch.randn(clean.shape, generator=gen)).clamp(0, 255).round()
    pert = pert.to(torch.uint8)
    _, cfg = select_backend("sim")
    times: dict[str, list[float]] = {"monitor": [], "plain": []}
    steps = 0
    for _ in range(args.repeats):
        for variant in ("plain", "monitor"):
            graph = runtime.build_pair(net, clean, pert, monitor=variant == "monitor")
            result = runtime.run(graph, cfg, chunk=CHUNK)
            # steady state: the first chunk carries compilation and process start-up
            first = result["compile_and_first_chunk_s"]
            times[variant].append((result["run_s"] - first) / (result["steps"] - CHUNK))
            steps = result["steps"]
    per_step = {k: statistics.median(v) for k, v in times.items()}
    out = dict(
        benchmark="lava_throughput",
        images=args.images,
        num_steps=net.num_steps,
        lava_steps=steps,
        copies=2,
        seconds_per_step_with_monitor=per_step["monitor"],
        seconds_per_step_without_monitor=per_step["plain"],
        seconds_per_image_with_monitor=per_step["monitor"] * net.num_steps,
        seconds_per_image_without_monitor=per_step["plain"] * net.num_steps,
        monitor_overhead_ratio=per_step["monitor"] / per_step["plain"],
        raw_seconds_per_step=times,
        model=args.net or "default cpu model (untrained)",
    )
    print(json.dumps({k: v for k, v in out.items() if k != "raw_seconds_per_step"}, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
