"""Seconds per image of a PGD-10 attack (torchattacks, through the surrogate) on the default
CPU model at T = 4.

    python benchmarks/pgd_speed.py [--images 100] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import rssnn  # noqa: F401
from rssnn.train import data
from rssnn.train.attacks import AttackWrapper, craft, parse_attacks
from rssnn.train.models import build_model


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/results/pgd_speed.json")
    args = ap.parse_args(argv)
    split = data.load_split(data.DEFAULT_DATA_ROOT, "cifar10", "val", val_size=1000, seed=0)
    x = split.images[: args.images].float() / 255
    y = split.labels[: args.images]
    torch.manual_seed(0)
    model = build_model("cpu", args.timesteps).eval()
    wrapper = AttackWrapper(model)
    spec = parse_attacks("pgd:8/255:10")[0]
    craft(spec, wrapper, x[:8], y[:8], torch.Generator())  # warm-up (kernel compilation)
    t0 = time.perf_counter()
    for start in range(0, len(y), args.batch_size):
        craft(
            spec,
            wrapper,
            x[start : start + args.batch_size],
            y[start : start + args.batch_size],
            torch.Generator().manual_seed(start),
        )
    seconds = time.perf_counter() - t0
    out = dict(
        benchmark="pgd_speed",
        attack="pgd:8/255:10",
        num_steps=args.timesteps,
        images=len(y),
        batch_size=args.batch_size,
        seconds=seconds,
        seconds_per_image=seconds / len(y),
    )
    print(json.dumps(out))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
