"""Seconds per image of ``rssnn certify`` (randomized smoothing) on the default CPU model at T = 2
(the main job's architecture): the float model (PyTorch) and the deployed integer model (numpy
integer forward with the 8-bit input rounding) as base classifiers, on the same noise.

    python benchmarks/certify_speed.py [--images 3] [--n0 10] [--n 200] [--checkpoint best.pt]

Both costs are linear in the samples per image (n0 + n): the report gives seconds per sample
and the extrapolation to n0 100 + n 1,000 (a 2-core budget) and to Cohen et al.'s protocol
(n0 100 + n 100,000).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import rssnn  # noqa: F401
from rssnn import smoothing
from rssnn.export import lowering
from rssnn.train import base_classifier, checkpoint, data
from rssnn.train.models import build_model, calibrate_batchnorm


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--n0", type=int, default=10)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--batch-size", type=int, default=200, help="certify's default")
    ap.add_argument("--checkpoint", default=None, help="default: untrained default model (T = 2)")
    ap.add_argument("--out", default="benchmarks/results/certify_speed.json")
    args = ap.parse_args(argv)
    split = data.load_split(data.DEFAULT_DATA_ROOT, "cifar10", "val", val_size=1000, seed=0)
    if args.checkpoint:
        model = checkpoint.restore_model(checkpoint.load(args.checkpoint))
    else:
        torch.manual_seed(0)
        model = calibrate_batchnorm(build_model("cpu", 2), split.images[:256].float() / 255)
    model.eval()
    net = lowering.lower(model, split.class_names)
    classifiers = {
        "float": base_classifier.from_model(model),
        "integer": smoothing.integer_classifier(net),
    }
    images = split.images[: args.images].numpy().astype(np.float32) / 255
    per_image = args.n0 + args.n
    rows = {}
    for name, classify in classifiers.items():
        classify(images[:1])  # warm-up (kernel compilation, allocations)
        t0 = time.perf_counter()
        for i, x in enumerate(images):
            rng = smoothing.image_rng(0, i)
            smoothing.certify(classify, x, args.sigma, args.n0, args.n, 0.001, 10, rng, args.batch_size)
        seconds = (time.perf_counter() - t0) / len(images)
        rows[name] = dict(
            seconds_per_image=seconds,
            seconds_per_sample=seconds / per_image,
            seconds_per_image_n1000=seconds / per_image * 1100,
            seconds_per_image_cohen_protocol=seconds / per_image * 100_100,
        )
    out = dict(
        benchmark="certify_speed",
        model=args.checkpoint or "untrained default cpu model, T = 2",
        images=args.images,
        n0=args.n0,
        n=args.n,
        batch_size=args.batch_size,
        torch_threads=torch.get_num_threads(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        **rows,
        integer_over_float=rows["integer"]["seconds_per_image"] / rows["float"]["seconds_per_image"],
    )
    print(json.dumps(out))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
