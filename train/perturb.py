"""Training-time input perturbations in [0, 1] pixel space: Gaussian noise, FGSM, PGD.

These follow the reference code's training recipe exactly (method.md §7), which no library
attack reproduces: Gaussian noise is *not* clamped, FGSM starts from a 0.001-sigma Gaussian
jitter and is not projected back to the eps-ball, and the adversarial example is crafted with
the model in eval mode (BatchNorm running statistics) through the surrogate gradient (BPTT).
Each attack kind reaches these through its class in :mod:`train.attack_kinds` (``for_training``);
the attack grammar is :mod:`rssnn.perturbation`'s, and the evaluation attacks are crafted by
:func:`train.attacks.craft`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rssnn.perturbation import PGD_ALPHA_AT_8, default_pgd_alpha, parse_fraction  # noqa: F401

Shard = tuple[int, int]  # (start, total): x is rows start.. of a global batch of ``total`` rows


def _draw(sample, x: torch.Tensor, generator: torch.Generator | None, shard: Shard | None) -> torch.Tensor:
    """``sample(shape, generator=..., device="cpu")`` shaped like ``x``. With ``shard`` the draw
    is for the whole global batch and ``x``'s rows are cut from it, so every rank of a
    distributed run draws what one process would (and the generators stay in step)."""
    if shard is None:
        return sample(x.shape, generator=generator, device="cpu").to(x.device)
    start, total = shard
    whole = sample((total, *x.shape[1:]), generator=generator, device="cpu")
    return whole[start : start + len(x)].to(x.device)


def gaussian(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None = None, shard: Shard | None = None
) -> torch.Tensor:
    """x + sigma * N(0, I), unclamped (the reference's training noise)."""
    return x + sigma * _draw(torch.randn, x, generator, shard)


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


@contextmanager
def _in_eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    generator: torch.Generator | None = None,
    jitter: float = 0.001,
    shard: Shard | None = None,
) -> torch.Tensor:
    """RFGSM as in the reference: x0 = x + jitter * N(0, I); x~ = clip(x0 + eps * sign(grad))."""
    with _in_eval_mode(model):
        x0 = gaussian(x, jitter, generator, shard)
        adv = x0 + eps * _input_grad(model, x0, y).sign()
    return adv.clamp(0, 1).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    alpha: float,
    generator: torch.Generator | None = None,
    random_start: bool = True,
    shard: Shard | None = None,
) -> torch.Tensor:
    """L-inf PGD (uniform random start by default), projected onto the eps-ball and [0, 1]."""
    with _in_eval_mode(model):
        adv = x
        if random_start:
            start = _draw(torch.rand, x, generator, shard)
            adv = (x + (start * 2 - 1) * eps).clamp(0, 1)
        for _ in range(steps):
            adv = adv + alpha * _input_grad(model, adv, y).sign()
            adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()
