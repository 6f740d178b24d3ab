"""Export a trained rssnn-lava checkpoint to a NetX HDF5 file, optionally verified bit-exact.

    python export/to_netx.py --checkpoint runs/cifar/best.pt --out model.net \
        --verify 100 --data-root DIR --split val --verify-report report.json

The file loads with stock ``lava.lib.dl.netx.hdf5.Network(path, input_message_bits=8)``
whenever the model is a chain with per-layer neuron parameters; per-channel leaks or thresholds
make it an rssnn extension file (same layout, (C,) parameter arrays), and residual models
(cpu-res, wrn16) one with skip synapses that stock NetX refuses with a clear message; both are
read by ``lava_procs`` (docs/netx-schema.md).
With ``--verify N`` the exporter runs N images through the PyTorch fixed-point mode and through
the file in Lava (Loihi2SimCfg, fixed point), compares every spike of every layer and the
predicted classes, and fails (exit 2, no file written) on any mismatch unless --allow-mismatch.

The file is written under a hidden temporary name beside --out and renamed only once it is
complete (and verified, with --verify): an interrupted export leaves no --out. The file records
``verified`` (true/false) and ``verification`` (how, or why not) in its /rssnn attributes.
An existing --out is replaced only with --force, and only if it is a regular file (never a
device node or a FIFO, whatever the flags); two exports to one --out at once are refused (the
first holds a claim on it until it ends).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    from rssnn.cli_support import OneLineParser

    ap = OneLineParser(
        prog="python export/to_netx.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--checkpoint", required=True, help="checkpoint from train/cifar.py")
    ap.add_argument("--out", required=True, help="NetX HDF5 file to write (e.g. model.net)")
    ap.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="N",
        help="verify on N images in Lava (default 0: no verification)",
    )
    ap.add_argument(
        "--data-root", default=None, help="CIFAR folder for --verify (default ../shared/data/cifar10)"
    )
    ap.add_argument(
        "--split", choices=("val", "test", "train"), default="val", help="split for --verify (default val)"
    )
    ap.add_argument("--verify-report", default=None, help="JSON report of the verification")
    ap.add_argument(
        "--allow-mismatch", action="store_true", help="keep the file even if Lava and PyTorch disagree"
    )
    ap.add_argument("--force", action="store_true", help="replace an existing --out file")
    ap.add_argument(
        "--accuracy-images",
        type=int,
        default=1000,
        metavar="M",
        help="with --verify: float vs fixed-point accuracy on M images, PyTorch only "
        "(default 1000; Lava equals the fixed point, checked on the N images)",
    )
    return ap


def export(args: argparse.Namespace) -> dict[str, Any]:
    from rssnn.atomic import check_output_file, claim
    from rssnn.errors import UserError

    out = Path(args.out)
    if args.verify < 0:
        raise UserError(f"--verify must be >= 0 images, got {args.verify}")
    if args.accuracy_images < 0:
        raise UserError(f"--accuracy-images must be >= 0, got {args.accuracy_images}")
    check_output_file(out)
    if args.verify_report:
        check_output_file(args.verify_report, "--verify-report")
    if out.exists() and not args.force:
        raise UserError(f"'{out}' exists; add --force to replace it or choose another --out")
    with claim(out):
        return _claimed_export(args, out)


def _claimed_export(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The export once this process holds the claim on ``out``."""
    from rssnn.atomic import install_no_clobber
    from rssnn.errors import UserError
    from rssnn.lava_guard import cleanup_on_exit
    from rssnn.train import checkpoint

    ckpt_path = Path(args.checkpoint)
    ckpt = checkpoint.load(ckpt_path)
    if int(ckpt["model"].get("num_steps", 0)) < 1:
        raise UserError(
            f"checkpoint '{ckpt_path}' has num_steps={ckpt['model'].get('num_steps')}; T must be >= 1"
        )
    model = checkpoint.restore_model(ckpt, ckpt_path).eval()
    # Every export to ``out`` holds its claim, so any partial file beside it is a killed one's.
    for stale in out.parent.glob(f".{out.name}.*.partial"):
        stale.unlink(missing_ok=True)
    partial = out.parent / f".{out.name}.{os.getpid()}.partial"
    try:
        with cleanup_on_exit():
            result = _export_to(partial, out, args, ckpt, ckpt_path, model)
        if args.force:
            os.replace(partial, out)
        else:  # a file that appeared meanwhile (not an export: those wait on the claim) stays
            install_no_clobber(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return result


def _export_to(partial: Path, out: Path, args, ckpt, ckpt_path: Path, model) -> dict[str, Any]:
    """Write (and verify) the file at ``partial``; the caller renames it to ``out``."""
    from rssnn import netx_file
    from rssnn.errors import UserError
    from rssnn.export import lowering
    from rssnn.train import checkpoint, data

    t0 = time.perf_counter()
    net = lowering.lower(model, ckpt.get("class_names") or [str(i) for i in range(10)])
    cfg = ckpt.get("config", {})
    meta = dict(
        dataset=ckpt["model"]["dataset"],
        training_config=cfg,
        model=ckpt["model"],
        source_checkpoint=str(ckpt_path),
        source_checkpoint_sha256=checkpoint.file_sha256(ckpt_path),
        verified=False,
        verification="not verified (--verify 0)",
    )
    kind = netx_file.write(partial, net, meta)
    export_s = time.perf_counter() - t0
    print(
        f"wrote {out} ({kind} NetX file: {len(net.layers)} synapse layers, "
        f"T={net.num_steps}) in {export_s:.1f} s"
    )
    result: dict[str, Any] = dict(file=str(out), kind=kind, export_seconds=export_s, verified=False)
    if args.verify > 0:
        from rssnn.export.verify import fixed_point_accuracy, verify

        split = data.load_run_split(args.data_root, ckpt["model"]["dataset"], args.split, cfg)
        n = min(args.verify, len(split))
        report = verify(partial, net, model, split.images[:n], split.labels[:n])
        m = min(max(args.accuracy_images, n), len(split))
        report["quantisation"] = fixed_point_accuracy(net, model, split.images[:m], split.labels[:m])
        report.update(file=str(out), kind=kind, split=args.split, checkpoint=str(ckpt_path))
        result["verification"] = report
        if args.verify_report:
            from rssnn.atomic import atomic_write_text

            atomic_write_text(args.verify_report, json.dumps(report, indent=2))
        print(
            f"verified on {n} {args.split} images in Lava: {report['spike_mismatches']} "
            f"spike mismatches, prediction agreement {report['prediction_agreement']:.3f}; "
            f"accuracy float {report['float_accuracy']:.3f}, fixed point "
            f"{report['fixed_point_accuracy']:.3f}, Lava {report['lava_accuracy']:.3f}; on "
            f"{report['quantisation']['images']} images float "
            f"{report['quantisation']['float_accuracy']:.4f} vs fixed point "
            f"{report['quantisation']['fixed_point_accuracy']:.4f}"
        )
        exact = not report["spike_mismatches"] and report["prediction_agreement"] == 1
        if not exact and not args.allow_mismatch:
            raise UserError(
                f"Lava and the PyTorch fixed-point model disagree "
                f"({report['spike_mismatches']} spike mismatches); '{out}' not written; "
                "see the report, or keep it with --allow-mismatch"
            )
        detail = (
            f"Lava Loihi2SimCfg fixed_pt vs PyTorch fixed point on {n} {args.split} images: "
            f"{report['spike_mismatches']} spike mismatches, agreement {report['prediction_agreement']:.4f}"
        )
        netx_file.mark_verified(partial, exact, detail)
        result["verified"] = exact
    return result


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import run_cli

    args = build_parser().parse_args(argv)
    return run_cli(lambda: export(args))


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
