"""Run an exported network as Lava processes on real images, with the on-device MPPD monitor.

    python -m lava_procs.run --net model.net --data-root DIR --split val --limit 50 \
        --perturb gaussian:8/255 --checkpoint best.pt --out report.json [--backend auto]

Two copies of the network (clean and perturbed input) run in one compiled Lava graph; per
spiking layer a monitor process measures the membrane-potential perturbation on the device.
The same images go through the PyTorch fixed-point model for the agreement check and the
PyTorch-side MPPD. Adversarial inputs (fgsm, pgd) are crafted in PyTorch on the float model of
``--checkpoint`` (white-box, through the surrogate) and rounded to 8-bit pixel levels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    from rssnn.cli_support import OneLineParser

    ap = OneLineParser(
        prog="python -m lava_procs.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--net", required=True, help="NetX file from export/to_netx.py")
    ap.add_argument("--data-root", default=None, help="CIFAR folder (default ../shared/data/cifar10)")
    ap.add_argument("--split", choices=("val", "test"), default="val", help="default val")
    ap.add_argument("--limit", type=int, default=20, help="number of images (default 20)")
    ap.add_argument(
        "--perturb",
        default="gaussian:8/255",
        help="none | gaussian:SIGMA | fgsm:EPS | pgd:EPS:STEPS (default gaussian:8/255)",
    )
    ap.add_argument(
        "--checkpoint",
        default=None,
        help="source checkpoint (needed for fgsm/pgd; default: the one named in the file)",
    )
    ap.add_argument("--out", default="report.json", help="JSON report (a PNG plot goes beside it)")
    ap.add_argument(
        "--backend",
        choices=("auto", "sim", "loihi2"),
        default="auto",
        help="auto: Loihi 2 when lava-loihi and a board are present, else CPU simulation",
    )
    ap.add_argument("--no-monitor", action="store_true", help="run without the MPPD monitor")
    ap.add_argument(
        "--watchdog",
        type=float,
        default=120.0,
        help="seconds without progress before a run is stopped (default 120)",
    )
    ap.add_argument("--seed", type=int, default=0, help="noise / attack seed (default 0)")
    return ap


def parse_perturbation(text: str) -> dict[str, Any]:
    """'gaussian:8/255' -> {'kind': 'gaussian', 'size': 0.031}; UserError when malformed."""
    from rssnn.errors import UserError
    from train.perturb import parse_fraction

    parts = text.split(":")
    kind = parts[0]
    shapes = {"none": 1, "gaussian": 2, "fgsm": 2, "pgd": 3}
    if kind not in shapes or len(parts) != shapes[kind]:
        raise UserError(
            f"unknown perturbation '{text}': use none, gaussian:SIGMA, fgsm:EPS or "
            "pgd:EPS:STEPS (e.g. gaussian:8/255, pgd:8/255:7)"
        )
    try:
        size = parse_fraction(parts[1]) if len(parts) > 1 else 0.0
        steps = int(parts[2]) if kind == "pgd" else 0
    except ValueError as exc:
        raise UserError(f"malformed perturbation '{text}': {exc}") from exc
    if size < 0 or (kind == "pgd" and steps < 1):
        raise UserError(f"perturbation '{text}' needs a size >= 0 and at least one PGD step")
    return dict(kind=kind, size=size, steps=steps)


def select_backend(requested: str, fast_synapses: bool = True):
    """(name, run config): Loihi 2 hardware only with lava-loihi and a board, else simulation.

    The simulation uses our exact fast synapse models (:mod:`lava_procs.synapses.models`)
    unless ``fast_synapses`` is False (Lava's stock models, for comparison).
    """
    from lava.magma.core.run_configs import Loihi2SimCfg

    from rssnn.errors import UserError

    hardware = False
    if requested in ("auto", "loihi2"):
        try:  # lava-loihi is closed source; without it this import path does not exist
            from lava.utils import loihi

            hardware = bool(loihi.is_installed())
        except Exception:
            hardware = False
    if requested == "loihi2" and not hardware:
        raise UserError(
            "--backend loihi2 needs Intel's lava-loihi extension and a reachable "
            "Loihi 2 board; neither was found (use --backend sim)"
        )
    if hardware:  # pragma: no cover - needs a Loihi 2 system
        raise UserError(
            "lava-loihi found, but rssnn-lava's processes have CPU models only so "
            "far (see docs/loihi2.md); use --backend sim"
        )
    from lava_procs.synapses.models import fast_synapse_map

    if not fast_synapses:
        return "Loihi2SimCfg(fixed_pt, stock synapse models)", Loihi2SimCfg(select_tag="fixed_pt")
    return "Loihi2SimCfg(fixed_pt)", Loihi2SimCfg(
        select_tag="fixed_pt", exception_proc_model_map=fast_synapse_map()
    )


def perturb_images(spec: dict[str, Any], pixels, labels, checkpoint_path: str | None, seed: int):
    """uint8 [N, 3, H, W] -> perturbed uint8 images (rounded to the 8-bit input grid)."""
    import torch

    from rssnn.errors import UserError
    from train import checkpoint, perturb

    x = pixels.float() / 255
    gen = torch.Generator().manual_seed(seed)
    if spec["kind"] == "none":
        return pixels.clone()
    if spec["kind"] == "gaussian":
        adv = perturb.gaussian(x, spec["size"], gen)
    else:
        if not checkpoint_path or not Path(checkpoint_path).is_file():
            raise UserError(
                f"--perturb {spec['kind']} crafts adversarial examples on the float "
                f"model: pass --checkpoint (not found: {checkpoint_path})"
            )
        ckpt = checkpoint.load(checkpoint_path)
        model = checkpoint.restore_model(ckpt, checkpoint_path).eval()
        if spec["kind"] == "fgsm":
            adv = perturb.fgsm(model, x, labels, spec["size"], gen, jitter=0.0)
        else:
            alpha = perturb.default_pgd_alpha(spec["size"], spec["steps"])  # as train/evaluate.py
            adv = perturb.pgd(model, x, labels, spec["size"], spec["steps"], alpha, gen)
    return torch.round(adv.clamp(0, 1) * 255).to(torch.uint8)


def trusted_source_checkpoint(meta: dict[str, Any], net_path: str) -> str:
    """The checkpoint a .net file names, only if its SHA-256 is the one the file records.

    A file from elsewhere may name any path; loading an unexpected checkpoint is refused.
    """
    from rssnn.errors import UserError
    from train.checkpoint import file_sha256

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


def pytorch_reference(net, clean, pert) -> dict[str, Any]:
    """Predictions and per-layer MPPD of the PyTorch fixed-point model on the same images."""
    import torch

    from export.fixed_point import run_fixed
    from rssnn import dynamics

    a = run_fixed(net, clean, record_state=True)
    b = run_fixed(net, pert, record_state=True)
    per_step, true_per_step = [], []
    spiking = [layer for layer in net.layers if layer.spiking]
    for layer, uc, up, vc, vp in zip(spiking, a["currents"], b["currents"], a["voltages"], b["voltages"]):
        scale = 1.0 / (64.0 * layer.scale)
        leak = (1.0 - torch.from_numpy(layer.v_decay.astype(np.float64)) / 4096.0).view(
            (-1,) + (1,) * (uc.dim() - 3)
        )
        eps = torch.zeros_like(uc[..., 0], dtype=torch.float64)
        steps_mppd, steps_mpp = [], []
        for t in range(uc.shape[-1]):
            eps = dynamics.mppd_step(eps, leak, (uc[..., t] - up[..., t]).double() * scale)
            steps_mppd.append(eps.pow(2).flatten(1).mean(1).mean().item())
            dv = (vc[..., t] - vp[..., t]).double() * scale
            steps_mpp.append(dv.pow(2).flatten(1).mean(1).mean().item())
        per_step.append(steps_mppd)
        true_per_step.append(steps_mpp)
    return dict(
        pred_clean=a["logits"].argmax(1),
        pred_pert=b["logits"].argmax(1),
        mppd_per_step=per_step,
        mpp_per_step=true_per_step,
    )


def plot_mppd(names: list[str], per_step: list[list[float]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in zip(names, per_step):
        ax.plot(range(1, len(values) + 1), values, "o-", label=name)
        ax.set_xticks(range(1, len(values) + 1))
    ax.set(
        xlabel="time step in the image window", ylabel="mean eps[t]^2 (on device)", yscale="log", title=title
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from export import netx_file
    from lava_procs import runtime
    from rssnn.atomic import atomic_write_text
    from rssnn.errors import UserError
    from rssnn.lava_guard import cleanup_on_exit
    from train import data

    spec = parse_perturbation(args.perturb)
    if args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    net, meta = netx_file.read(args.net)
    backend, run_cfg = select_backend(args.backend)
    cfg = json.loads(meta.get("training_config", "{}") or "{}")
    split = data.load_run_split(args.data_root, meta.get("dataset", "cifar10"), args.split, cfg)
    n = min(args.limit, len(split))
    clean, labels = split.images[:n], split.labels[:n]
    source = None
    if spec["kind"] in ("fgsm", "pgd"):
        source = args.checkpoint or trusted_source_checkpoint(meta, args.net)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pert = perturb_images(spec, clean, labels, source, args.seed)
    reference = pytorch_reference(net, clean, pert)
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
    device_steps = [m["mppd"].tolist() for m in result["monitors"]]
    report = dict(
        backend=backend,
        net=str(args.net),
        split=args.split,
        n_images=n,
        perturbation=args.perturb,
        accuracy_clean=float((pred_clean == labels.numpy()).mean()),
        accuracy_perturbed=float((pred_pert == labels.numpy()).mean()),
        agreement_with_pytorch=float(
            np.mean(
                np.concatenate(
                    [
                        pred_clean == reference["pred_clean"].numpy(),
                        pred_pert == reference["pred_pert"].numpy(),
                    ]
                )
            )
        ),
        layers=names,
        mppd_per_layer=[float(np.mean(s)) for s in device_steps],
        mppd_per_layer_pytorch=[float(np.mean(s)) for s in reference["mppd_per_step"]],
        mppd_per_step=device_steps,
        true_mpp_per_layer=[float(np.mean(m["mpp"])) for m in result["monitors"]],
        true_mpp_per_layer_pytorch=[float(np.mean(s)) for s in reference["mpp_per_step"]],
        monitor=not args.no_monitor,
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
        for a, b in zip(report["mppd_per_layer"], report["mppd_per_layer_pytorch"])
    ]
    print(
        f"{backend}: accuracy clean {report['accuracy_clean']:.3f}, perturbed "
        f"{report['accuracy_perturbed']:.3f}; agreement with PyTorch fixed point "
        f"{report['agreement_with_pytorch']:.3f}; MPPD max relative difference to PyTorch "
        f"{max(rel, default=0):.2e}; {report['seconds_per_image']:.2f} s/image; report {out}"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import run_cli

    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
