"""Training by a time budget: measure this machine's training and validation rates at start-up,
then plan how many images per epoch fit (``train/cifar.py --time-budget MINUTES``).

Machines of the same kind differ in speed by about 1.6x, so a fixed image count misses a wall
time on the slower one; a budget keeps the time and lets the image count follow the machine.

An epoch costs ``n / train_rate`` (the training steps, both passes of the objective included)
plus its validation: ``VAL_PASSES`` passes over the validation split (clean and Gaussian) at
``eval_rate``, and a fixed ``EPOCH_OVERHEAD_S`` (the MPPD profile, the gain bounds and the
checkpoint writes). The plan solves ``epochs * (n / train_rate + validation) = budget`` for ``n``.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Any

VAL_PASSES = 2  # engine.Trainer validates clean and under Gaussian noise every epoch
# Gain bounds (30 power iterations per layer), the MPPD profile and the checkpoint writes of one
# epoch end: measured 2-4 s on 2 cores for the cpu model; rounded up.
EPOCH_OVERHEAD_S = 5.0
MIN_IMAGES_PER_EPOCH = 1000  # below this a budget trains nothing worth validating
TIMED_STEPS = 3  # after one warm-up step (numba's cached kernels load, the allocator grows)


@dataclass(frozen=True)
class Rates:
    """Images per second of one training step (``train``) and of a validation forward (``eval``)."""

    train: float
    eval: float


@dataclass(frozen=True)
class Plan:
    """Images per epoch that fit ``budget_s`` at ``rates``; ``seconds``: the planned wall time."""

    budget_s: float
    epochs: int
    images_per_epoch: int
    val_images: int
    rates: Rates
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(
            budget_s=self.budget_s,
            epochs=self.epochs,
            images_per_epoch=self.images_per_epoch,
            val_images=self.val_images,
            train_images_per_s=self.rates.train,
            eval_images_per_s=self.rates.eval,
            planned_s=self.seconds,
        )

    def describe(self) -> str:
        return (
            f"time budget {self.budget_s / 60:.1f} min: {self.rates.train:.0f} training images/s and "
            f"{self.rates.eval:.0f} validation images/s measured here -> {self.epochs} epochs of "
            f"{self.images_per_epoch:,} images (planned {self.seconds / 60:.1f} min)"
        )


def epoch_seconds(images: int, val_images: int, rates: Rates) -> float:
    """Planned wall time of one epoch of ``images`` training images."""
    return images / rates.train + VAL_PASSES * val_images / rates.eval + EPOCH_OVERHEAD_S


def plan(
    budget_s: float, epochs: int, available: int, val_images: int, batch_size: int, rates: Rates
) -> Plan:
    """The most images per epoch (a multiple of ``batch_size``, at most ``available``) such that
    ``epochs`` epochs fit ``budget_s``; UserError (one line) when fewer than
    MIN_IMAGES_PER_EPOCH (or all ``available``) fit."""
    from rssnn.errors import UserError

    per_epoch_s = budget_s / epochs - VAL_PASSES * val_images / rates.eval - EPOCH_OVERHEAD_S
    images = int(per_epoch_s * rates.train) // batch_size * batch_size
    if images < min(MIN_IMAGES_PER_EPOCH, available):
        need = epochs * epoch_seconds(MIN_IMAGES_PER_EPOCH, val_images, rates) / 60
        raise UserError(
            f"--time-budget {budget_s / 60:g} min fits {max(images, 0)} images per epoch at "
            f"{rates.train:.0f} images/s on this machine; give at least {need:.1f} min or fewer --epochs"
        )
    images = min(images, available)
    seconds = epochs * epoch_seconds(images, val_images, rates)
    return Plan(budget_s, epochs, images, val_images, rates, seconds)


def measure(model, cfg, num_classes: int, device) -> Rates:
    """This machine's rates for ``model`` under ``cfg``'s objective (median of TIMED_STEPS).

    Runs on a deep copy (the model to be trained keeps its weights and BatchNorm statistics) with
    random pixels from a private generator (the global RNG, hence the run's randomness, is
    untouched): about 2 s for the cpu model on 2 cores.
    """
    import torch

    from . import mppd
    from .objective import JointObjective, joint_loss

    probe = copy.deepcopy(model).to(device)
    layers = mppd.select_layers(probe, cfg.mppd_layers)
    opt = torch.optim.SGD(probe.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(cfg.batch_size, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, num_classes, (cfg.batch_size,), generator=gen).to(device)
    objective = JointObjective(probe, cfg, layers)

    def train_step() -> None:
        loss, _ = joint_loss(probe, x, y, cfg, layers, gen, objective)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    x_eval = torch.rand(cfg.eval_batch_size, 3, 32, 32, generator=gen).to(device)

    def eval_step() -> None:
        with torch.no_grad():
            probe(x_eval)

    probe.train()
    train_s = _median_seconds(train_step)
    probe.eval()
    eval_s = _median_seconds(eval_step)
    return Rates(train=cfg.batch_size / train_s, eval=cfg.eval_batch_size / eval_s)


def _median_seconds(step) -> float:
    times = []
    for i in range(TIMED_STEPS + 1):
        t0 = time.perf_counter()
        step()
        if i:  # the first is the warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)
