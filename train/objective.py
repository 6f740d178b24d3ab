"""The training objective: joint CE + MS-MPPD on one batch (what the loop differentiates).

Objective per batch (Ding et al. 2024, reference code main_train-v2.py)::

    L = kappa * CE(f(x)) + (1 - kappa) * CE(f(x~)) + rho * mean_layers MS-MPPD(x, x~)

with x~ Gaussian noise, FGSM or PGD (the training perturbation of :mod:`train.attack_kinds`),
both passes in train mode on the same batch. Natural mode is plain CE on clean images.
Shapes: x, x~ [N, 3, H, W] in [0, 1]; y [N] class indices; the loss a scalar.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import attack_kinds, mppd, perturb
from .config import TrainConfig


@dataclass
class BatchLosses:
    """One batch's logged parts: mean CE clean and perturbed, mean MS-MPPD, correct clean
    predictions (NaN parts in natural mode)."""

    ce_clean: float
    ce_pert: float
    mppd: float
    correct: int


def perturbed_input(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    gen: torch.Generator,
    shard: perturb.Shard | None = None,
) -> torch.Tensor:
    """The training perturbation of ``cfg.mode`` (not called in natural mode), through the
    attack-kind table (:mod:`train.attack_kinds`); ``shard``: x is a rank's rows of a global
    batch (:mod:`train.distributed`). Returns x~, the shape of x."""
    spec = attack_kinds.training_spec(cfg)
    return attack_kinds.kind(spec.kind).for_training(model, x, y, spec, gen, shard)


class JointObjective(nn.Module):
    """The differentiable part of a training step as one call: both passes (clean and
    perturbed), MS-MPPD and the weighted sum. One module call per step is what
    DistributedDataParallel allows (one forward per backward); a plain run calls it directly.

    ``forward(x, x_pert, y)`` -> (loss, parts): parts = [CE clean, CE perturbed, MS-MPPD,
    correct clean predictions], a detached [4] tensor; ``x_pert`` None in natural mode.
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, layers: list):
        super().__init__()
        self.model, self.cfg, self.mppd_layers = model, cfg, layers

    def forward(self, x: torch.Tensor, x_pert: torch.Tensor | None, y: torch.Tensor):
        model, cfg, layers = self.model, self.cfg, self.mppd_layers
        nan = x.new_tensor(float("nan"))
        if x_pert is None:
            logits = model(x)
            ce = nn.functional.cross_entropy(logits, y)
            correct = (logits.argmax(1) == y).sum().to(x.dtype)
            return ce, torch.stack([ce.detach(), nan, nan, correct])
        rho = cfg.rho
        with mppd.recording(layers if rho > 0 else []):
            logits_c = model(x)
            clean = [m.recorded_current for _, m in layers] if rho > 0 else []
            logits_p = model(x_pert)
            reg = x.new_zeros(())
            if rho > 0:
                leak_mode, units = cfg.mppd_leak, cfg.mppd_units
                terms = [
                    mppd.ms_mppd(c, m.recorded_current, *mppd.recursion_params(m, leak_mode, units))
                    for c, (_, m) in zip(clean, layers)
                ]
                reg = torch.stack(terms).mean()
        ce_c = nn.functional.cross_entropy(logits_c, y)
        ce_p = nn.functional.cross_entropy(logits_p, y)
        kappa = cfg.kappa
        loss = kappa * ce_c + (1 - kappa) * ce_p + rho * reg
        correct = (logits_c.argmax(1) == y).sum().to(x.dtype)
        return loss, torch.stack([ce_c, ce_p, reg, correct]).detach()


def joint_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    layers: list,
    gen: torch.Generator,
    objective: nn.Module | None = None,
    shard: perturb.Shard | None = None,
) -> tuple[torch.Tensor, BatchLosses]:
    """The training objective on one batch, and its parts for logging. ``objective``: the
    (DDP-wrapped) :class:`JointObjective` of ``model``; the perturbation is crafted on
    ``model`` itself (attack gradients are per image and need no synchronisation)."""
    x_pert = None if cfg.mode == "natural" else perturbed_input(model, x, y, cfg, gen, shard)
    loss, parts = (objective or JointObjective(model, cfg, layers))(x, x_pert, y)
    ce_c, ce_p, reg, correct = parts.tolist()
    return loss, BatchLosses(ce_c, ce_p, reg, int(correct))
