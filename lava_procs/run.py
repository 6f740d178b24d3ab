"""Run an exported network as Lava processes on real images, with the on-device MPPD monitor.

    python -m lava_procs.run --net model.net --data-root DIR --split val --limit 50 \
        --perturb gaussian:8/255 --checkpoint best.pt --out report.json [--backend auto]

Two copies of the network (clean and perturbed input) run in one compiled Lava graph; per
spiking layer a monitor process measures the membrane-potential perturbation on the device.
The same images go through the integer reference forward (:mod:`rssnn.integer_forward`) for the
agreement check and the reference MPPD. Clean and Gaussian runs need Lava and the numpy core
only, not torch; adversarial inputs (any single attack of :mod:`rssnn.perturbation`, e.g. fgsm,
pgd, apgd-ce, sapgd@assg, square) are crafted in PyTorch on the float model of ``--checkpoint``
by the same code as ``train/evaluate.py`` (:func:`train.attacks.craft`) and rounded to 8-bit
pixel levels.
"""

from __future__ import annotations

# Run as a file (python lava_procs/run.py) or as -m lava_procs.run: this module's relative imports
# resolve inside one package, rssnn.lava_procs (PEP 366), never in a second copy of it.
if __name__ == "__main__":
    __package__ = "rssnn.lava_procs"

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    from rssnn.cli_support import OneLineParser, add_data_flags

    ap = OneLineParser(
        prog="python -m lava_procs.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--net", required=True, help="NetX file (export/to_netx.py; lava-dl's with --inputs)")
    add_data_flags(ap)
    ap.add_argument("--limit", type=int, default=20, help="number of images (default 20)")
    ap.add_argument(
        "--perturb",
        default="gaussian:8/255",
        help="clean | gn:SIGMA | fgsm:EPS | pgd:EPS:STEPS[:ALPHA] | any other single attack of the "
        "grammar of rssnn/perturbation.py (train/evaluate.py --attacks), e.g. apgd-ce:8/255:20@tri0.25 "
        "(none and gaussian:SIGMA are accepted too; default gaussian:8/255)",
    )
    ap.add_argument(
        "--checkpoint",
        default=None,
        help="source checkpoint (needed for adversarial attacks; default: the one named in the file)",
    )
    ap.add_argument("--out", default="report.json", help="JSON report (a PNG plot goes beside it)")
    from . import backends

    ap.add_argument("--backend", choices=backends.CHOICES, default="auto", help=backends.help_text())
    ap.add_argument("--no-monitor", action="store_true", help="run without the MPPD monitor")
    ap.add_argument(
        "--watchdog",
        type=float,
        default=120.0,
        help="seconds without progress before a run is stopped (default 120)",
    )
    ap.add_argument("--seed", type=int, default=0, help="noise / attack seed (default 0)")
    from .lavadl_command import add_arguments

    add_arguments(ap)  # --inputs etc.: stock lava-dl files (lava_procs/lavadl_command.py)
    return ap


def parse_perturbation(text: str):
    """One attack string of :mod:`rssnn.perturbation` that the runner can apply (any single
    attack, not an ensemble); UserError if not."""
    from rssnn.errors import UserError
    from rssnn.perturbation import parse_one

    try:
        return parse_one(text)
    except ValueError as exc:
        raise UserError(
            f"--perturb: {exc} (use clean, gn:SIGMA, fgsm:EPS, pgd:EPS:STEPS[:ALPHA] or another "
            "single attack, e.g. gn:8/255 or pgd:8/255:7)"
        ) from exc


def perturb_images(spec, pixels: np.ndarray, labels: np.ndarray, checkpoint_path: str | None, seed: int):
    """uint8 [N, 3, H, W] -> perturbed uint8 images (rounded to the 8-bit input grid).

    Gaussian noise is numpy; only attacks import torch (to attack the float model).
    """
    from rssnn.errors import UserError
    from rssnn.perturbation import KINDS, gaussian_pixels

    if spec.kind == "clean":
        return pixels.copy()
    if spec.kind == "gn":
        return gaussian_pixels(pixels, spec.eps, seed)
    if not checkpoint_path or not Path(checkpoint_path).is_file():
        raise UserError(
            f"--perturb {spec.kind} crafts adversarial examples on the float "
            f"model: pass --checkpoint (not found: {checkpoint_path})"
        )
    try:
        import torch

        from ..train import checkpoint
        from ..train.attacks import AttackWrapper, craft
    except ImportError as exc:
        raise UserError(
            f"--perturb {spec.kind} crafts adversarial examples on the float model, which needs torch "
            f"and SLAYER ({exc}); install the training stack, or run clean or gn:SIGMA here"
        ) from exc
    x, y = torch.from_numpy(pixels).float() / 255, torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(seed)
    ckpt = checkpoint.load(checkpoint_path)
    model = checkpoint.restore_model(ckpt, checkpoint_path).eval()
    assert KINDS[spec.kind].needs_model
    adv = craft(spec, AttackWrapper(model), x, y, gen)  # the attack train/evaluate.py runs
    return torch.round(adv.clamp(0, 1) * 255).to(torch.uint8).numpy()


def trusted_source_checkpoint(meta: dict[str, Any], net_path: str) -> str:
    """The checkpoint a .net file names, only if its SHA-256 is the one the file records.

    A file from elsewhere may name any path; loading an unexpected checkpoint is refused.
    """
    from rssnn.atomic import file_sha256
    from rssnn.errors import UserError

    path, recorded = meta.get("source_checkpoint"), meta.get("source_checkpoint_sha256")
    if not path or not Path(path).is_file():
        raise UserError(
            f"adversarial inputs are crafted on the float model: pass --checkpoint (the file "
            f"'{net_path}' names '{path}', which does not exist here)"
        )
    if not recorded or file_sha256(path) != recorded:
        raise UserError(
            f"'{path}', named by '{net_path}', is not the checkpoint it was exported from "
            "(SHA-256 differs); pass the right one with --checkpoint"
        )
    return path


def plot_mppd(names: list[str], per_step: list[list[float]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rssnn.atomic import atomic_save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in zip(names, per_step):
        ax.plot(range(1, len(values) + 1), values, "o-", label=name)
        ax.set_xticks(range(1, len(values) + 1))
    ax.set(
        xlabel="time step in the image window", ylabel="mean eps[t]^2 (on device)", yscale="log", title=title
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from rssnn import activity, cifar, lavadl, netx_file
    from rssnn.atomic import atomic_write_text, check_output_file
    from rssnn.errors import UserError
    from rssnn.integer_forward import mppd_reference
    from rssnn.lava_guard import cleanup_on_exit
    from rssnn.perturbation import KINDS

    from . import backends, runtime

    spec = parse_perturbation(args.perturb)
    if args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if not (math.isfinite(args.watchdog) and args.watchdog > 0):
        raise UserError(f"--watchdog must be a number of seconds > 0, got {args.watchdog}")
    out = check_output_file(args.out)
    chosen = backends.choose(args.backend)  # an unavailable back end stops here, before any work
    if args.inputs is not None or lavadl.is_lavadl_file(args.net):  # a stock lava-dl file
        from . import lavadl_command

        return lavadl_command.run(args, spec, out, chosen)
    check_output_file(out.with_suffix(".png"), "--out's plot")
    net, meta = netx_file.read(args.net)
    backend, run_cfg = chosen.label(), chosen.run_config()
    images, all_labels, _ = cifar.load_run_split(
        args.data_root, meta["dataset"], args.split, meta["training_config"]
    )
    n = min(args.limit, len(all_labels))
    clean, labels = images[:n], all_labels[:n]
    source = None
    if KINDS[spec.kind].needs_model:
        source = args.checkpoint or trusted_source_checkpoint(meta, args.net)
    pert = perturb_images(spec, clean, labels, source, args.seed)
    reference = mppd_reference(net, clean, pert)
    graph = runtime.build_pair(net, clean, pert, monitor=not args.no_monitor)
    print(f"running {n} images x 2 copies on {backend}: {graph.total_steps} steps")
    with tqdm(
        total=n,
        desc="lava (clean + perturbed)",
        unit="image",
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
    ) as bar:
        with cleanup_on_exit():
            result = runtime.run(
                graph, run_cfg, watchdog_s=args.watchdog, progress=lambda done: bar.update(done - bar.n)
            )
    pred_clean, pred_pert = result["predictions"]
    names = graph.clean.layer_names
    mon = result["monitor"]
    device_steps = mon["mppd"].tolist() if mon is not None else []
    report = dict(
        backend=backend,
        net=str(args.net),
        split=args.split,
        n_images=n,
        perturbation=args.perturb,
        accuracy_clean=float((pred_clean == labels).mean()),
        accuracy_perturbed=float((pred_pert == labels).mean()),
        agreement_with_reference=float(
            np.mean(
                np.concatenate(
                    [
                        pred_clean == reference["pred_clean"],
                        pred_pert == reference["pred_pert"],
                    ]
                )
            )
        ),
        layers=names,
        mppd_per_layer=[float(np.mean(s)) for s in device_steps],
        mppd_per_layer_reference=[float(np.mean(s)) for s in reference["mppd_per_step"]],
        mppd_per_step=device_steps,
        true_mpp_per_layer=[float(np.mean(m)) for m in mon["mpp"]] if mon is not None else [],
        true_mpp_per_layer_reference=[float(np.mean(s)) for s in reference["mpp_per_step"]],
        monitor=not args.no_monitor,
        activity=activity.summarise(net, mon, n) if mon is not None else None,
        steps=result["steps"],
        seconds_per_image=result["run_s"] / n,
        seconds_per_step=result["run_s"] / result["steps"],
        compile_and_first_chunk_s=result.get("compile_and_first_chunk_s"),
    )
    atomic_write_text(out, json.dumps(report, indent=2))
    if device_steps:
        plot_mppd(names, device_steps, f"on-device MPPD, {args.perturb}", out.with_suffix(".png"))
    rel = [
        abs(a - b) / max(abs(b), 1e-30)
        for a, b in zip(report["mppd_per_layer"], report["mppd_per_layer_reference"])
    ]
    print(
        f"{backend}: accuracy clean {report['accuracy_clean']:.3f}, perturbed "
        f"{report['accuracy_perturbed']:.3f}; agreement with the integer reference "
        f"{report['agreement_with_reference']:.3f}; MPPD max relative difference to the reference "
        f"{max(rel, default=0):.2e}; {report['seconds_per_image']:.2f} s/image; report {out}"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import run_cli

    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
