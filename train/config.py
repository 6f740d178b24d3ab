"""One training run's configuration, typed: what ``train/cifar.py`` resolves from its flags.

The command line (``train/cifar.py``'s parser) owns the defaults and the help; this class owns
the resolved, validated values: presets applied, ``--pgd-alpha`` and ``--split-seed`` derived,
ranges checked. ``to_dict()`` is the serialised form stored in checkpoints, ``config.json`` and
NetX files (``/rssnn`` ``training_config``), so readers of stored runs keep working with dicts.
Torch-free.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from rssnn.errors import UserError

PRESETS: dict[str, dict[str, Any]] = {
    # Sized for 2 CPU cores: about 13 minutes of Gaussian + MS-MPPD training (2 passes/batch).
    "cpu": dict(
        model="cpu",
        width=32,
        timesteps=2,
        epochs=3,
        batch_size=64,
        train_limit=40000,
        lr=0.1,
        weight_decay=5e-4,
        cutout=0,
    ),
    # The reference configuration (method.md §9).
    "paper": dict(
        model="vgg11",
        width=32,
        timesteps=8,
        epochs=100,
        batch_size=64,
        train_limit=None,
        lr=0.1,
        weight_decay=5e-4,
        cutout=16,
    ),
}

# Flags that may differ on --resume: they change neither the model, the data nor the optimisation
# of the steps already taken (--epochs extends or shortens the cosine schedule from here on).
RESUMABLE_CHANGES = {
    "epochs", "resume", "quiet", "max_minutes", "checkpoint_every", "device", "data_root",
    "download", "eval_batch_size", "out", "no_sync_bn",
}  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """Every flag of ``train/cifar.py``, resolved. Fractions (sigma, eps, alpha) are in [0, 1]
    pixel units; ``mppd_layers`` is ``"last"``, ``"all"`` or a list of module names."""

    # data
    dataset: str
    data_root: str | None
    download: bool
    val_size: int
    train_limit: int | None
    cutout: int
    no_augment: bool
    # model
    preset: str
    model: str
    width: int
    timesteps: int
    neuron: str
    per_channel: bool
    leak: float
    threshold: float
    learn_current_leak: bool
    learn_gain: bool
    surrogate_width: float
    # objective
    mode: str
    sigma: float
    eps: float
    pgd_steps: int
    pgd_alpha: float
    rho: float
    kappa: float
    mppd_layers: str | list[str]
    mppd_leak: str
    mppd_units: str
    # optimisation
    epochs: int
    batch_size: int
    eval_batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    neuron_lr_scale: float
    max_minutes: float | None
    time_budget: float | None
    # run
    out: str
    resume: str | None
    seed: int
    split_seed: int
    device: str
    checkpoint_every: int
    quiet: bool
    no_sync_bn: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        """Apply the preset to flags not given, derive the rest, validate (UserError)."""
        values = vars(args).copy()
        for key, value in PRESETS[values["preset"]].items():
            if values.get(key) is None:
                values[key] = value
        if values["pgd_alpha"] is None:
            values["pgd_alpha"] = values["eps"] / 2
        if values["split_seed"] is None:
            values["split_seed"] = values["seed"]
        if values["mppd_layers"] not in ("last", "all"):
            values["mppd_layers"] = [s.strip() for s in values["mppd_layers"].split(",") if s.strip()]
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for f in dataclasses.fields(self):  # inf and nan pass every comparison below wrongly
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
        checks = [
            (0 <= self.sigma <= 1, f"--sigma must be in [0, 1] (pixel units), got {self.sigma:g}"),
            (0 <= self.eps <= 1, f"--eps must be in [0, 1] (pixel units), got {self.eps:g}"),
            (0 < self.leak <= 1, f"--leak must be in (0, 1], got {self.leak:g}"),
            (self.threshold > 0, f"--threshold must be > 0, got {self.threshold:g}"),
            (self.timesteps >= 1, f"--timesteps must be >= 1, got {self.timesteps}"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.rho >= 0, f"--rho must be >= 0, got {self.rho:g}"),
            (0 <= self.kappa <= 1, f"--kappa must be in [0, 1], got {self.kappa:g}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr:g}"),
            (self.surrogate_width > 0, "--surrogate-width must be > 0"),
            (self.width >= 1, f"--width must be >= 1, got {self.width}"),
            (self.pgd_steps >= 1, f"--pgd-steps must be >= 1, got {self.pgd_steps}"),
            (0 < self.pgd_alpha <= 1, f"--pgd-alpha must be in (0, 1], got {self.pgd_alpha:g}"),
            (0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum:g}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay:g}"),
            (self.neuron_lr_scale >= 0, f"--neuron-lr-scale must be >= 0, got {self.neuron_lr_scale:g}"),
            (self.eval_batch_size >= 1, f"--eval-batch-size must be >= 1, got {self.eval_batch_size}"),
            (self.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, got {self.checkpoint_every}"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be > 0"),
            (self.time_budget is None or self.time_budget > 0, "--time-budget must be > 0 minutes"),
            (self.cutout >= 0, f"--cutout must be >= 0, got {self.cutout}"),
            (
                self.train_limit is None or self.train_limit >= 1,
                f"--train-limit must be >= 1, got {self.train_limit}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)

    def to_dict(self) -> dict[str, Any]:
        """The serialised form (checkpoints, config.json, NetX files)."""
        return dataclasses.asdict(self)

    def changed_flags(self, stored: dict[str, Any]) -> list[str]:
        """Flags (names) whose stored value differs and may not change on --resume."""
        mine = self.to_dict()
        return sorted(k for k in stored if k not in RESUMABLE_CHANGES and k in mine and mine[k] != stored[k])
