"""Train a robust spiking network on CIFAR-10/100 with DLIF neurons and the MS-MPPD loss.

    python train/cifar.py                               # CPU preset: minutes on 2 cores
    python train/cifar.py --preset paper --device cuda  # VGG-11, T=8, 100 epochs (reference)

Writes into --out: config.json, metrics.csv/metrics.json, last.pt, best.pt and PNG plots.
"""

from __future__ import annotations

# Run as a file (python train/cifar.py) or as -m train.cifar: this module's relative imports
# resolve inside one package, rssnn.train (PEP 366), never in a second copy of it.
if __name__ == "__main__":
    __package__ = "rssnn.train"

import argparse
import contextlib
import dataclasses
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import TrainConfig

MODES = ("natural", "gaussian", "fgsm", "pgd")
# train.models.MODEL_NAMES, written out so that --help needs no torch (a test keeps them equal)
MODEL_CHOICES = ("cpu", "cpu-res", "vgg11", "vgg5", "wrn16")


def _fraction(text: str) -> float:
    from .perturb import parse_fraction

    try:
        return parse_fraction(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _data_arguments(group: argparse._ArgumentGroup) -> None:
    """The data flags."""
    from rssnn.cli_support import add_data_flags

    group.add_argument("--dataset", choices=("cifar10", "cifar100"), default="cifar10")
    add_data_flags(group, split=False)
    group.add_argument("--download", action="store_true", help="download the dataset if missing")
    group.add_argument(
        "--val-size",
        type=int,
        default=5000,
        help="class-balanced validation images held out of the training batches",
    )
    group.add_argument(
        "--train-limit",
        type=int,
        default=None,
        help="class-balanced subset of N training images (preset default)",
    )
    group.add_argument("--cutout", type=int, default=None, help="Cutout hole size in pixels, 0 = off")
    group.add_argument("--no-augment", action="store_true", help="no random crop / flip")


def _model_arguments(group: argparse._ArgumentGroup) -> None:
    """The model flags."""
    from rssnn.neuron import REFERENCE_LEAK

    from .config import PRESETS

    group.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="cpu",
        help="defaults for every flag marked (preset) that is not given",
    )
    group.add_argument("--model", choices=MODEL_CHOICES, default=None, help="architecture (preset)")
    group.add_argument(
        "--width", type=int, default=None, help="base width of the cpu and cpu-res models (preset)"
    )
    group.add_argument("--timesteps", type=int, default=None, help="time steps T (preset)")
    group.add_argument(
        "--neuron",
        choices=("dlif", "lif"),
        default="dlif",
        help="dlif learns leak and threshold; lif is the fixed vanilla baseline",
    )
    group.add_argument(
        "--per-channel", action="store_true", help="one leak and threshold per channel instead of per layer"
    )
    group.add_argument(
        "--leak", type=float, default=REFERENCE_LEAK, help="initial voltage leak lambda, (0, 1]"
    )
    group.add_argument("--threshold", type=float, default=1.0, help="initial threshold, > 0")
    group.add_argument(
        "--learn-current-leak",
        action="store_true",
        help="add a learnable current (synaptic) leak, initialised at 0",
    )
    group.add_argument(
        "--learn-gain",
        action="store_true",
        help="the paper's per-step input gain a[t] (not Loihi-exportable)",
    )
    group.add_argument(
        "--surrogate-width", type=float, default=1.0, help="half-width of the triangle surrogate gradient"
    )


def _objective_arguments(group: argparse._ArgumentGroup) -> None:
    """The objective flags."""
    group.add_argument(
        "--mode",
        choices=MODES,
        default="gaussian",
        help="training perturbation for the second CE term and MS-MPPD",
    )
    group.add_argument(
        "--sigma", type=_fraction, default=8 / 255, help="Gaussian noise std in pixel units, e.g. 8/255"
    )
    group.add_argument("--eps", type=_fraction, default=4 / 255, help="FGSM/PGD L-inf budget, e.g. 4/255")
    group.add_argument("--pgd-steps", type=int, default=3, help="PGD steps in pgd mode")
    group.add_argument("--pgd-alpha", type=_fraction, default=None, help="PGD step (default eps/2)")
    group.add_argument("--rho", type=float, default=1.0, help="MS-MPPD weight (0 disables it)")
    group.add_argument("--kappa", type=float, default=0.5, help="weight of the clean CE term")
    group.add_argument(
        "--mppd-layers",
        default="last",
        help="'last' (reference), 'all', or comma-separated spiking layer names",
    )
    group.add_argument(
        "--mppd-leak",
        choices=("detached", "fixed", "learned"),
        default="detached",
        help="leak of the MS-MPPD recursion: the layer's learned leak as a constant, the "
        "reference's fixed 0.99, or 'learned' (with gradient: the loss can then shrink its own "
        "measure by lowering the leak; only for the ablation)",
    )
    group.add_argument(
        "--mppd-units",
        choices=("threshold", "raw"),
        default="threshold",
        help="measure dI in units of the layer's (detached) threshold, which closes the "
        "current-and-threshold rescaling loophole, or 'raw' as the reference (ablation only)",
    )


def _optimisation_arguments(group: argparse._ArgumentGroup) -> None:
    """The optimisation flags."""
    group.add_argument("--epochs", type=int, default=None, help="epochs (preset)")
    group.add_argument("--batch-size", type=int, default=None, help="batch size (preset)")
    group.add_argument("--eval-batch-size", type=int, default=256)
    group.add_argument("--lr", type=float, default=None, help="SGD learning rate, cosine decay (preset)")
    group.add_argument("--momentum", type=float, default=0.9)
    group.add_argument("--weight-decay", type=float, default=None, help="on weights only (preset)")
    group.add_argument(
        "--neuron-lr-scale", type=float, default=0.1, help="learning-rate factor for leaks and thresholds"
    )
    group.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop training after this wall time (checkpoint kept, resumable)",
    )
    group.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="MINUTES",
        help="train for about this wall time, validation included: the training rate is measured "
        "at start-up and --train-limit (a cap here) becomes the images per epoch that fit "
        "(train/budget.py); a resumed run keeps its plan",
    )


def _run_arguments(group: argparse._ArgumentGroup) -> None:
    """The run flags."""
    group.add_argument("--out", default="runs/cifar", help="run folder")
    group.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="continue a run: from --out/last.pt, or from the given checkpoint",
    )
    group.add_argument("--seed", type=int, default=0)
    group.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="seed of the validation hold-out and the --train-limit subset (default: --seed); fix "
        "it to compare training seeds on the same images",
    )
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    group.add_argument(
        "--checkpoint-every",
        type=int,
        default=100,
        help="also write last.pt every N batches (0: only at epoch ends)",
    )
    group.add_argument("--quiet", action="store_true", help="no progress bars")
    group.add_argument(
        "--no-sync-bn",
        action="store_true",
        help="under torchrun: BatchNorm statistics per rank instead of over the global batch",
    )


def build_parser() -> argparse.ArgumentParser:
    from rssnn.cli_support import OneLineParser

    ap = OneLineParser(
        prog="python train/cifar.py",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _data_arguments(ap.add_argument_group("data"))
    _model_arguments(ap.add_argument_group("model"))
    _objective_arguments(ap.add_argument_group("objective"))
    _optimisation_arguments(ap.add_argument_group("optimisation"))
    _run_arguments(ap.add_argument_group("run"))
    return ap


def given_flags(argv: list[str] | None) -> set[str]:
    """The destinations of the flags written on the command line (not left at their default)."""
    ap = build_parser()
    for action in ap._actions:  # argparse's documented SUPPRESS idiom: unset flags stay absent
        action.default = argparse.SUPPRESS
    return set(vars(ap.parse_args(argv)))


def refuse_changed_flags(
    cfg: TrainConfig, stored: dict[str, Any], path: Path, given: set[str] | None = None
) -> None:
    """One line naming every flag that differs from the run being resumed (a UserError); the
    advice depends on whether the user wrote those flags or they came from this version's
    defaults (``given``: the flags on the command line; None: unknown)."""
    from rssnn.errors import UserError

    changed = cfg.changed_flags(stored)
    if not changed:
        return
    mine = cfg.to_dict()
    detail = ", ".join(f"--{k.replace('_', '-')} {stored[k]!r} -> {mine[k]!r}" for k in changed)
    written = [k for k in changed if given is None or k in given]
    if written:
        advice = "drop those flags or start a new run with another --out"
    else:  # the user wrote none of them: the defaults differ from the stored run's flags
        repeat = " ".join(f"--{k.replace('_', '-')} {stored[k]}" for k in changed)
        advice = f"add the run's own values ({repeat}) or start a new run with another --out"
    raise UserError(
        f"--resume of '{path}' with changed flags ({detail}): a resumed run keeps its "
        f"configuration; {advice}"
    )


def _environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("rssnn-lava", "torch", "lava-nc", "lava-dl", "numpy", "numba"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return dict(
        python=platform.python_version(), machine=platform.machine(), packages=versions, git_commit=commit
    )


def _neuron_config(cfg: TrainConfig):
    from .neurons import NeuronConfig

    return (NeuronConfig.lif if cfg.neuron == "lif" else NeuronConfig)(
        leak=cfg.leak,
        threshold=cfg.threshold,
        per_channel=cfg.per_channel,
        learn_current_leak=cfg.learn_current_leak,
        learn_gain=cfg.learn_gain,
        surrogate_width=cfg.surrogate_width,
    )


def _plan_budget(cfg: TrainConfig, world, device):
    """--time-budget: this machine's rates, measured on a throwaway model of the run's spec, and
    the images per epoch that fit (train/budget.py); printed, and recorded in config.json."""
    import torch

    from rssnn.cifar import DATASETS
    from rssnn.errors import UserError

    from . import budget, checkpoint

    if world.distributed:
        raise UserError("--time-budget plans a one-process run; under torchrun give --train-limit")
    num_classes = DATASETS[cfg.dataset]["num_classes"]
    neuron = _neuron_config(cfg)
    spec = checkpoint.model_spec(cfg.model, cfg.timesteps, num_classes, cfg.dataset, cfg.width, neuron)
    with torch.random.fork_rng():  # the run's own initialisation and noise stay as without a budget
        rates = budget.measure(checkpoint.build_from_spec(spec), cfg, num_classes, device)
    available = cfg.train_limit if cfg.train_limit is not None else DATASETS[cfg.dataset]["train_images"]
    available = min(available, DATASETS[cfg.dataset]["train_images"] - cfg.val_size)
    plan = budget.plan(cfg.time_budget * 60, cfg.epochs, available, cfg.val_size, cfg.batch_size, rates)
    print(plan.describe(), flush=True)
    return plan


def run(cfg: TrainConfig, given: set[str] | None = None) -> dict[str, Any]:
    """Train; ``given`` (the flags on the command line) only shapes a resume refusal's advice."""
    import torch

    from rssnn.atomic import check_output_folder, claim
    from rssnn.errors import UserError

    from . import distributed

    torch.manual_seed(cfg.seed)
    world = distributed.from_environment()  # torchrun's ranks, or one process
    distributed.die_with_launcher(world)
    device = distributed.device_for(world, cfg.device)
    if cfg.batch_size < world.size:
        raise UserError(
            f"--batch-size {cfg.batch_size} (the global batch) is smaller than {world.size} ranks"
        )
    # Everything that can refuse the run is checked before the data is read (4 s, 1 GB).
    out = check_output_folder(cfg.out)
    with contextlib.ExitStack() as held:
        if world.is_main:  # the folder is this run's for its whole life, a resume's included
            held.enter_context(claim(out))
        return _run_claimed(cfg, given, world, device, out)


def _run_claimed(cfg: TrainConfig, given: set[str] | None, world, device, out: Path) -> dict[str, Any]:
    """:func:`run` once rank 0 holds the claim on the run folder."""
    from rssnn.atomic import atomic_write_text
    from rssnn.errors import UserError

    from . import checkpoint, data, distributed, plots
    from .engine import Trainer

    resume_ckpt = None
    if cfg.resume:
        path = out / "last.pt" if cfg.resume == "auto" else Path(cfg.resume)
        resume_ckpt = checkpoint.load(path)
        if cfg.time_budget is not None:  # the plan made when the run started, not a new one
            cfg = dataclasses.replace(cfg, train_limit=resume_ckpt.get("config", {}).get("train_limit"))
        refuse_changed_flags(cfg, resume_ckpt.get("config", {}), path, given)
    elif (out / "last.pt").exists():
        raise UserError(f"'{out}' already holds a run; add --resume to continue it or choose another --out")
    root = cfg.data_root or str(data.DEFAULT_DATA_ROOT)
    if cfg.download:
        data.download(root, cfg.dataset)
    budget_plan = None
    if cfg.time_budget is not None and resume_ckpt is None:
        budget_plan = _plan_budget(cfg, world, device)
        cfg = dataclasses.replace(cfg, train_limit=budget_plan.images_per_epoch)
    train_split = data.load_split(root, cfg.dataset, "train", cfg.val_size, cfg.train_limit, cfg.split_seed)
    val_split = data.load_split(root, cfg.dataset, "val", cfg.val_size, seed=cfg.split_seed)
    if len(val_split) == 0:
        raise UserError("--val-size 0 leaves nothing to validate on; use at least 100")
    neuron = _neuron_config(cfg)
    spec = checkpoint.model_spec(
        cfg.model, cfg.timesteps, len(train_split.class_names), cfg.dataset, cfg.width, neuron
    )
    model = checkpoint.build_from_spec(spec)
    # Every rank has passed the checks above before any of them writes (rank 0's first last.pt
    # would otherwise make a slower rank refuse "already holds a run").
    distributed.init(world, device)
    distributed.barrier(world)
    trainer = Trainer(cfg, model, train_split, val_split, device, spec, world)
    if resume_ckpt is not None:
        trainer.resume_from(resume_ckpt, path)
        if world.is_main:
            print(f"resuming {path}: epoch {trainer.epoch + 1}, batch {trainer.batch_in_epoch}")
    if not world.is_main:
        result = trainer.run()
        distributed.shutdown()
        return result
    per_rank = -(-cfg.batch_size // world.size)
    atomic_write_text(
        out / "config.json",
        json.dumps(
            dict(
                config=cfg.to_dict(),
                model=spec,
                environment=_environment(),
                device=str(device),
                train_images=len(train_split),
                val_images=len(val_split),
                stock_netx_exportable=model.stock_netx_exportable(),
                time_budget_plan=budget_plan.to_dict() if budget_plan else None,
                world_size=world.size,
                global_batch=cfg.batch_size,
                per_rank_batch=per_rank,
                sync_batchnorm=world.distributed and not cfg.no_sync_bn,
                learning_rate_note="--lr applies to the global batch (--batch-size): DDP averages "
                "the ranks' gradients, so the same flags train the same model on any world size",
            ),
            indent=2,
            default=str,
        ),
    )
    ranks = f", {world.size} ranks x {per_rank} images per batch" if world.distributed else ""
    print(
        f"training {cfg.model} ({cfg.neuron}, T={cfg.timesteps}) on "
        f"{len(train_split)} images, {cfg.mode} mode, rho={cfg.rho:g}, device {device}{ranks}"
    )
    t0 = time.monotonic()
    result = trainer.run()
    distributed.shutdown()
    plots.training_curves(trainer.history, out / "curves.png")
    plots.learned_dynamics(trainer.model, dict(leak=cfg.leak, threshold=cfg.threshold), out / "dynamics.png")
    last_profile = trainer.mppd_steps[str(trainer.epoch)]
    plots.mppd_over_time(last_profile, cfg.sigma, out / "mppd_steps.png")
    last = trainer.history[-1]
    print(
        f"done in {(time.monotonic() - t0) / 60:.1f} min: val acc {last['val_acc']:.4f} "
        f"(best {result['best_acc']:.4f}), Gaussian val acc {last['val_acc_gn']:.4f}; "
        f"run folder {out}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import run_cli

    from .config import TrainConfig

    args = build_parser().parse_args(argv)
    return run_cli(
        lambda: run(TrainConfig.from_args(args), given_flags(argv)),
        interrupted="the last checkpoint is kept (resume with --resume)",
    )


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
