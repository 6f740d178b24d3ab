"""Export a trained rssnn-lava checkpoint as a NIR graph (``nir`` 1.0.8), optionally verified.

    python export/to_nir.py --checkpoint runs/cifar/best.pt --out model.nir \
        --verify 1000 --frameworks snntorch,norse --verify-report nir.json
    rssnn export --format nir --checkpoint runs/cifar/best.pt --out model.nir

The graph holds the float network with BatchNorm and pooling folded in, under the contract of
docs/nir.md (image in [0, 1] at each of num_steps steps, class = argmax of the output summed
over the steps, forward-Euler neurons with metadata dt). With ``--verify N`` the written file
is read back and run on N held-out images by our float reference and by each of
``--frameworks`` through its own NIR importer; the agreement with the checkpoint's own
predictions and the spikes per layer are printed and written to ``--verify-report``.

The file is written under a hidden temporary name and renamed once complete (and verified):
an interrupted export leaves no --out. An existing --out is replaced only with --force.
"""

from __future__ import annotations

# Run as a file (python export/to_nir.py) or as -m export.to_nir: this module's relative imports
# resolve inside one package, rssnn.export (PEP 366), never in a second copy of it.
if __name__ == "__main__":
    __package__ = "rssnn.export"

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    from rssnn.cli_support import OneLineParser, add_data_flags

    ap = OneLineParser(
        prog="python export/to_nir.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--checkpoint", required=True, help="checkpoint from train/cifar.py")
    ap.add_argument("--out", required=True, help="NIR file to write (e.g. model.nir)")
    ap.add_argument(
        "--dt",
        type=float,
        default=1e-4,
        help="time step of the neurons' forward-Euler step (default 1e-4, snnTorch's assumption)",
    )
    ap.add_argument("--verify", type=int, default=0, metavar="N", help="verify on N images (default 0)")
    ap.add_argument(
        "--frameworks",
        default="snntorch,norse",
        help="with --verify: importers to run the file in (comma list of snntorch, norse, "
        "norse-fx; empty: our float reference only; default snntorch,norse)",
    )
    add_data_flags(ap)  # the images of --verify
    ap.add_argument("--verify-report", default=None, help="JSON report of the verification")
    ap.add_argument("--force", action="store_true", help="replace an existing --out file")
    return ap


def _frameworks(text: str) -> list[str]:
    from rssnn.errors import UserError

    from .nir_runtimes import FRAMEWORKS

    names = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in names if f not in FRAMEWORKS]
    if bad:
        raise UserError(f"--frameworks: unknown {bad[0]!r}; choose from {', '.join(FRAMEWORKS)}")
    return names


def export(args: argparse.Namespace) -> dict[str, Any]:
    from rssnn.atomic import check_export_targets, claim
    from rssnn.errors import UserError

    from .nir_format import nir_package

    out = Path(args.out)
    if not (math.isfinite(args.dt) and args.dt > 0):
        raise UserError(f"--dt must be a finite time step > 0, got {args.dt}")
    if args.verify < 0:
        raise UserError(f"--verify must be >= 0 images, got {args.verify}")
    frameworks = _frameworks(args.frameworks)
    nir_package()  # the extra is installed, before any work
    check_export_targets(out, args.force, args.verify_report)
    with claim(out):
        return _claimed_export(args, out, frameworks)


def _claimed_export(args, out: Path, frameworks: list[str]) -> dict[str, Any]:
    from rssnn.atomic import export_partial, install_export

    from ..train import checkpoint
    from .fold_torch import fold
    from .nir_format import nir_package
    from .nir_write import to_nir

    ckpt_path = Path(args.checkpoint)
    ckpt = checkpoint.load(ckpt_path)
    model = checkpoint.restore_model(ckpt, ckpt_path).eval()
    class_names = ckpt.get("class_names") or [str(i) for i in range(10)]
    split = None
    if args.verify > 0:  # the images first: a missing split is one line before anything is written
        from ..train import data

        run_config = ckpt.get("config", {})
        split = data.load_run_split(args.data_root, ckpt["model"]["dataset"], args.split, run_config)
    t0 = time.perf_counter()
    net = fold(model)
    graph = to_nir(net, args.dt, class_names)
    graph.metadata.update(
        dataset=ckpt["model"]["dataset"],
        source_checkpoint=str(ckpt_path),
        source_checkpoint_sha256=checkpoint.file_sha256(ckpt_path),
    )
    partial = export_partial(out)
    try:
        nir_package().write(str(partial), graph)
        print(
            f"wrote {out} (NIR graph: {len(graph.nodes)} nodes, {len(net.layers)} synapse layers, "
            f"T={net.num_steps}, dt={args.dt:g}) in {time.perf_counter() - t0:.1f} s"
        )
        result: dict[str, Any] = dict(file=str(out), nodes=len(graph.nodes), dt=args.dt)
        if split is not None:
            result["verification"] = _verify(args, partial, model, split, frameworks)
        install_export(partial, out, args.force)
    finally:
        partial.unlink(missing_ok=True)
    return result


def _verify(args, path: Path, model, split, frameworks: list[str]) -> dict[str, Any]:
    """The written file, read back, against the checkpoint's predictions on N images of ``split``
    (the run's held-out images, a ``train.data.Split``)."""
    import numpy as np

    from rssnn.atomic import atomic_write_text

    from . import folded, nir_read, nir_runtimes
    from .verify import model_predictor

    n = min(args.verify, len(split))
    pixels, labels = split.images[:n], split.labels[:n].numpy()
    graph = nir_read.read(path)
    net, used = nir_read.from_nir(graph, None, None, None)
    model_pred = model_predictor(model)(pixels)
    ref = {"logits": [], "spikes": None}
    for i in range(0, n, 250):
        r = folded.forward(net, pixels[i : i + 250])
        ref["logits"].append(r["logits"].argmax(1).numpy())
        counts = [s.reshape(s.shape[0], -1).sum(1).numpy() for s in r["spikes"]]
        ref["spikes"] = counts if ref["spikes"] is None else [a + b for a, b in zip(ref["spikes"], counts)]
    ref_pred = np.concatenate(ref["logits"])
    report: dict[str, Any] = dict(
        images=n,
        split=args.split,
        model_accuracy=float(np.mean(model_pred == labels)),
        reference=dict(
            agreement_with_model=float(np.mean(ref_pred == model_pred)),
            accuracy=float(np.mean(ref_pred == labels)),
            spikes_per_layer=[int(s.sum()) for s in ref["spikes"]],
        ),
    )
    print(
        f"verified on {n} {args.split} images: the file read back agrees with the checkpoint on "
        f"{report['reference']['agreement_with_model']:.4f} (accuracy {report['model_accuracy']:.3f})"
    )
    for fw in frameworks:
        module = nir_runtimes.load(graph, fw, used["dt"])
        preds, spikes = [], None
        for i in range(0, n, 250):
            r = nir_runtimes.run(module, fw, pixels[i : i + 250], used["num_steps"])
            preds.append(r["logits"].argmax(1).numpy())
            spikes = r["spikes"] if spikes is None else [a + b for a, b in zip(spikes, r["spikes"])]
        pred = np.concatenate(preds)
        report[fw] = dict(
            agreement_with_model=float(np.mean(pred == model_pred)),
            accuracy=float(np.mean(pred == labels)),
            spikes_per_layer=[int(s.sum()) for s in spikes],
        )
        diff = [
            abs(a - b)
            for a, b in zip(report[fw]["spikes_per_layer"], report["reference"]["spikes_per_layer"])
        ]
        report[fw]["spike_difference_per_layer"] = diff
        print(
            f"  {fw}: agreement {report[fw]['agreement_with_model']:.4f}, accuracy "
            f"{report[fw]['accuracy']:.3f}, spikes per layer differ from ours by {diff}"
        )
    if args.verify_report:
        atomic_write_text(args.verify_report, json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import run_cli

    args = build_parser().parse_args(argv)
    return run_cli(lambda: export(args))


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
