"""Time to lower, write and verify the default model in Lava (integer reference vs Lava,
every spike of every layer) on N real CIFAR-10 validation images.

    python benchmarks/export_speed.py [--images 100] [--checkpoint best.pt]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import rssnn  # noqa: F401
from rssnn import netx_file
from rssnn.export import lowering
from rssnn.export.verify import model_predictor, verify
from rssnn.train import checkpoint, data
from rssnn.train.models import build_model, calibrate_batchnorm


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--checkpoint", default=None, help="default: untrained default model")
    ap.add_argument("--out", default="benchmarks/results/export_speed.json")
    args = ap.parse_args(argv)
    split = data.load_split(data.DEFAULT_DATA_ROOT, "cifar10", "val", val_size=1000, seed=0)
    if args.checkpoint:
        model = checkpoint.restore_model(checkpoint.load(args.checkpoint))
    else:
        torch.manual_seed(0)
        model = calibrate_batchnorm(build_model("cpu", 2), split.images[:256].float() / 255)
    model.eval()
    t0 = time.perf_counter()
    net = lowering.lower(model, split.class_names)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.net"
        netx_file.write(path, net, {})
        t_write = time.perf_counter() - t0
        report = verify(
            path, net, model_predictor(model), split.images[: args.images], split.labels[: args.images]
        )
    total = time.perf_counter() - t0
    out = dict(
        benchmark="export_speed",
        images=args.images,
        lower_and_write_s=t_write,
        total_s=total,
        lava_run_s=report["seconds"]["lava_run"],
        integer_reference_s=report["seconds"]["integer_reference"],
        spike_mismatches=report["spike_mismatches"],
    )
    print(json.dumps(out))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
