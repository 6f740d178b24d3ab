"""Export a trained rssnn-lava checkpoint, or import a NIR graph, to a NetX HDF5 file,
optionally verified bit-exact.

    python export/to_netx.py --checkpoint runs/cifar/best.pt --out model.net \
        --verify 100 --data-root DIR --split val --verify-report report.json
    python export/to_netx.py --nir model.nir --out model.net --verify 100 \
        [--num-steps T --dt 1e-4 --input-range 0 1]    (files that lack them in their metadata)

A NIR graph (ours from export/to_nir.py, or one snnTorch or Norse wrote) goes through the same
lowering as a checkpoint (docs/nir.md says what maps); the float model that --verify compares
against is then the graph itself, run by our float reference.

The file loads with stock ``lava.lib.dl.netx.hdf5.Network(path, input_message_bits=8)``
whenever the model is a chain with per-layer neuron parameters; per-channel leaks or thresholds
make it an rssnn extension file (same layout, (C,) parameter arrays), and residual models
(cpu-res, wrn16) one with skip synapses that stock NetX refuses with a clear message; both are
read by ``lava_procs`` (docs/netx-schema.md).
With ``--verify N`` the exporter runs N images through the integer reference (numpy) and through
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

# Run as a file (python export/to_netx.py) or as -m export.to_netx: this module's relative imports
# resolve inside one package, rssnn.export (PEP 366), never in a second copy of it.
if __name__ == "__main__":
    __package__ = "rssnn.export"

import argparse
import json
import time
from pathlib import Path
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    from rssnn.cli_support import OneLineParser, add_data_flags

    ap = OneLineParser(
        prog="python export/to_netx.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint from train/cifar.py")
    source.add_argument("--nir", help="NIR graph to import (export/to_nir.py, snnTorch, Norse)")
    ap.add_argument(
        "--num-steps", type=int, default=None, help="with --nir: T, if the file's metadata lacks it"
    )
    ap.add_argument(
        "--dt", type=float, default=None, help="with --nir: the neurons' time step, if the file lacks it"
    )
    ap.add_argument(
        "--input-range",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=None,
        help="with --nir: the graph's input value for pixel 0 and pixel 255 (default 0 1, the file's "
        "metadata wins)",
    )
    ap.add_argument(
        "--dataset",
        default="cifar10",
        choices=("cifar10", "cifar100"),
        help="with --nir: dataset of the classes and of --verify (default cifar10)",
    )
    ap.add_argument("--out", required=True, help="NetX HDF5 file to write (e.g. model.net)")
    ap.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="N",
        help="verify on N images in Lava (default 0: no verification)",
    )
    add_data_flags(ap)  # the images of --verify
    ap.add_argument("--verify-report", default=None, help="JSON report of the verification")
    ap.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="keep the file even if Lava and the integer reference disagree",
    )
    ap.add_argument("--force", action="store_true", help="replace an existing --out file")
    ap.add_argument(
        "--accuracy-images",
        type=int,
        default=1000,
        metavar="M",
        help="with --verify: float vs fixed-point accuracy on M images, without Lava (the float "
        "model and the numpy integer reference; default 1000; Lava equals the reference, checked "
        "on the N images)",
    )
    return ap


def export(args: argparse.Namespace) -> dict[str, Any]:
    from rssnn.atomic import check_export_targets, claim
    from rssnn.errors import UserError

    out = Path(args.out)
    if args.verify < 0:
        raise UserError(f"--verify must be >= 0 images, got {args.verify}")
    if args.accuracy_images < 0:
        raise UserError(f"--accuracy-images must be >= 0, got {args.accuracy_images}")
    if args.checkpoint and (args.num_steps, args.dt, args.input_range) != (None, None, None):
        raise UserError("--num-steps, --dt and --input-range apply to --nir only")
    if args.nir:
        from .nir_read import check_flags

        check_flags(args.num_steps, args.dt, args.input_range)
        if not Path(args.nir).is_file():
            raise UserError(f"NIR file '{args.nir}' does not exist or is not a regular file")
    check_export_targets(out, args.force, args.verify_report)
    with claim(out):
        return _claimed_export(args, out)


def _checkpoint_source(args: argparse.Namespace) -> dict[str, Any]:
    """The lowered network, metadata and float predictor of a checkpoint."""
    from rssnn.errors import UserError

    from ..train import checkpoint
    from . import lowering
    from .verify import model_predictor

    ckpt_path = Path(args.checkpoint)
    ckpt = checkpoint.load(ckpt_path)
    if int(ckpt["model"].get("num_steps", 0)) < 1:
        raise UserError(
            f"checkpoint '{ckpt_path}' has num_steps={ckpt['model'].get('num_steps')}; T must be >= 1"
        )
    model = checkpoint.restore_model(ckpt, ckpt_path).eval()
    cfg = ckpt.get("config", {})
    net = lowering.lower(model, ckpt.get("class_names") or [str(i) for i in range(10)])
    meta = dict(
        dataset=ckpt["model"]["dataset"],
        training_config=cfg,
        model=ckpt["model"],
        source_checkpoint=str(ckpt_path),
        source_checkpoint_sha256=checkpoint.file_sha256(ckpt_path),
    )
    return dict(net=net, meta=meta, float_predict=model_predictor(model), config=cfg, what=str(ckpt_path))


def _nir_source(args: argparse.Namespace) -> dict[str, Any]:
    """The lowered network, metadata and float predictor (our float reference of the graph)
    of a NIR file."""
    from rssnn import cifar
    from rssnn.atomic import file_sha256
    from rssnn.errors import UserError

    from . import folded, lowering, nir_read

    graph = nir_read.read(args.nir)
    fnet, used = nir_read.from_nir(graph, args.num_steps, args.dt, args.input_range)
    names = graph.metadata.get("class_names")
    if names is not None:  # ours: stored as a string array
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    else:
        try:
            names = cifar.class_names(args.data_root or cifar.DEFAULT_DATA_ROOT, args.dataset)
        except UserError:  # no local copy: the class indices name them
            names = [str(i) for i in range(cifar.DATASETS[args.dataset]["num_classes"])]
    if used["class_count"] != len(names):
        raise UserError(
            f"'{args.nir}' has {used['class_count']} outputs; {args.dataset} has {len(names)} classes"
        )
    if fnet.image.shape != (3, 32, 32):
        raise UserError(f"'{args.nir}' takes input {fnet.image.shape}; {args.dataset} images are (3, 32, 32)")
    for key in ("num_steps", "dt", "input_range"):
        print(f"{key} = {used[key]} (from the {used[key + '_from']})")
    meta = dict(
        dataset=args.dataset,
        source_nir=str(args.nir),
        source_nir_sha256=file_sha256(args.nir),
        nir_import={k: used[k] for k in used},
        producer=str(graph.metadata.get("producer", "unknown")),
    )
    net = lowering.lower_folded(fnet, names)
    return dict(
        net=net, meta=meta, float_predict=lambda px: folded.predictions(fnet, px), config={}, what=args.nir
    )


def _claimed_export(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The export once this process holds the claim on ``out``."""
    from rssnn.atomic import export_partial, install_export
    from rssnn.lava_guard import cleanup_on_exit

    source = _nir_source(args) if args.nir else _checkpoint_source(args)
    partial = export_partial(out)
    try:
        with cleanup_on_exit():
            result = _export_to(partial, out, args, source)
        install_export(partial, out, args.force)
    finally:
        partial.unlink(missing_ok=True)
    return result


def _export_to(partial: Path, out: Path, args, source: dict[str, Any]) -> dict[str, Any]:
    """Write (and verify) the file at ``partial``; the caller renames it to ``out``."""
    from rssnn import netx_file
    from rssnn.errors import UserError

    net, cfg = source["net"], source["config"]
    meta = dict(source["meta"], verified=False, verification="not verified (--verify 0)")
    # the images first: a missing split is one line before anything is written or printed
    split = None
    if args.verify > 0:  # torch's data only for a verification: --nir alone needs no torch
        from ..train import data

        split = data.load_run_split(args.data_root, meta["dataset"], args.split, cfg)
    t0 = time.perf_counter()
    kind = netx_file.write(partial, net, meta)
    export_s = time.perf_counter() - t0
    print(
        f"wrote {out} ({kind} NetX file: {len(net.layers)} synapse layers, "
        f"T={net.num_steps}) in {export_s:.1f} s"
    )
    result: dict[str, Any] = dict(file=str(out), kind=kind, export_seconds=export_s, verified=False)
    if split is not None:
        from .verify import fixed_point_accuracy, verify

        n = min(args.verify, len(split))
        predict = source["float_predict"]
        report = verify(partial, net, predict, split.images[:n], split.labels[:n])
        m = min(max(args.accuracy_images, n), len(split))
        report["quantisation"] = fixed_point_accuracy(net, predict, split.images[:m], split.labels[:m])
        report.update(file=str(out), kind=kind, split=args.split, source=source["what"])
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
                f"Lava and the integer reference disagree "
                f"({report['spike_mismatches']} spike mismatches); '{out}' not written; "
                "see the report, or keep it with --allow-mismatch"
            )
        detail = (
            f"Lava Loihi2SimCfg fixed_pt vs integer reference on {n} {args.split} images: "
            f"{report['spike_mismatches']} spike mismatches, agreement {report['prediction_agreement']:.4f}"
        )
        netx_file.mark_verified(partial, exact, detail)
        result["verified"] = exact
    return result


def main(argv: list[str] | None = None) -> int:
    import sys

    from rssnn.cli_support import run_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--format" in argv:  # rssnn export --format nir: the NIR writer takes the command
        i = argv.index("--format")
        fmt = argv[i + 1] if i + 1 < len(argv) else ""
        del argv[i : i + 2]
        if fmt == "nir":
            from .to_nir import main as nir_main

            return nir_main(argv)
        if fmt != "netx":
            print(f"error: --format must be netx or nir, got {fmt!r}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    return run_cli(lambda: export(args))


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
