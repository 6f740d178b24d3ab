"""Evaluation attacks on spiking models: the attack-ready wrapper, the attack grammar, runners.

The wrapper turns a spiking model into what attack libraries expect: pixels in [0, 1] in,
logits (mean over T) out, fresh neuron state on every call (our neurons keep none), gradients
by BPTT through the surrogate. The surrogate used by the attack can differ from training's
(``surrogate_width``): attacking through a sharper or wider surrogate is the standard check for
gradient masking. FGSM, PGD and APGD (CE and DLR) come from torchattacks 3.5.1; Gaussian noise
is one line and needs no library.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rssnn.perturbation import DEFAULT_ATTACKS, KINDS, SQUARE_QUERIES, AttackSpec, parse_attacks  # noqa: F401
from rssnn.train.models import spiking_layers

# Attacker surrogate half-widths of the ensemble: an adaptive attacker tries sharper and
# wider surrogates than the model trained with (1.0), and keeps the worst case per image.
ENSEMBLE_WIDTHS = (0.5, 1.0, 2.0)


class AttackWrapper(nn.Module):
    """[N, 3, H, W] pixels in [0, 1] -> logits [N, classes], model in eval mode."""

    def __init__(self, model: nn.Module, surrogate_width: float | None = None):
        super().__init__()
        self.model = model.eval()
        self.surrogate_width = surrogate_width

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        with attack_surrogate(self.model, self.surrogate_width):
            return self.model(pixels)

    def train(self, mode: bool = True) -> AttackWrapper:
        # torchattacks toggles train/eval around its calls; the wrapped model stays in eval
        # (BatchNorm running statistics), as in the reference protocol.
        super().train(mode)
        self.model.eval()
        return self


@contextmanager
def attack_surrogate(model: nn.Module, width: float | None) -> Iterator[None]:
    """Temporarily use another surrogate half-width in every spiking layer."""
    if width is None:
        yield
        return
    saved = [(n, n.config.surrogate_width) for _, n in spiking_layers(model)]
    for n, _ in saved:
        n.config.surrogate_width = width
    try:
        yield
    finally:
        for n, w in saved:
            n.config.surrogate_width = w


def craft(
    spec: AttackSpec, wrapper: AttackWrapper, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Adversarial (or noisy) pixels for one batch; the same seed gives the same result."""
    import torchattacks

    if spec.kind == "clean":
        return x
    if spec.kind == "gn":  # test-time Gaussian noise, clamped (reference "GN" attack)
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        return (x + spec.eps * noise).clamp(0, 1)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    torch.manual_seed(seed)
    if spec.kind == "fgsm":
        attack = torchattacks.FGSM(wrapper, eps=spec.eps)
    elif spec.kind == "pgd":
        attack = torchattacks.PGD(
            wrapper, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True
        )
    elif spec.kind == "square":  # gradient-free: immune to masked or obfuscated gradients
        attack = torchattacks.Square(
            wrapper, norm="Linf", eps=spec.eps, n_queries=spec.steps, n_restarts=1, seed=seed % 2**31
        )
    elif spec.kind == "ensemble":
        raise ValueError("an ensemble is run by worst_case(), not craft()")
    else:
        attack = torchattacks.APGD(
            wrapper,
            norm="Linf",
            eps=spec.eps,
            steps=spec.steps,
            n_restarts=1,
            seed=0,
            loss=spec.kind.split("-")[1],
            rho=0.75,
        )
    return attack(x, y).detach()


def ensemble_members(
    eps: float, square_queries: int = SQUARE_QUERIES
) -> list[tuple[str, AttackSpec, float | None]]:
    """The worst-case ensemble at budget ``eps``: (label, attack, attacker surrogate width).

    FGSM; PGD-10 (step eps/4) through each surrogate width of :data:`ENSEMBLE_WIDTHS`, plus a
    second random restart through the model's own surrogate; APGD-CE and APGD-DLR (10 steps);
    the gradient-free Square attack. Gradient attacks come first, Square last, so that what
    Square still breaks measures what the gradient attacks missed. Width None = the model's own.
    """
    e = f"{eps * 255:g}/255"
    pgd = parse_attacks(f"pgd:{e}:10:{eps * 255 / 4:g}/255")[0]
    members = [("fgsm", parse_attacks(f"fgsm:{e}")[0], None)]
    members += [(f"pgd-10@w{w:g}", pgd, w) for w in ENSEMBLE_WIDTHS]
    members += [("pgd-10 restart", pgd, None)]
    members += [(k, parse_attacks(f"{k}:{e}:10")[0], None) for k in ("apgd-ce", "apgd-dlr")]
    members += [("square", parse_attacks(f"square:{e}:{square_queries}")[0], None)]
    return members


def worst_case(
    model: nn.Module,
    eps: float,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    square_queries: int = SQUARE_QUERIES,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """Per-image worst case over :func:`ensemble_members` (AutoAttack's sequential scheme).

    Each member attacks only the images that every earlier member left correctly classified, so
    the cost falls as the ensemble proceeds. torchattacks' MultiAttack does the same but does not
    say which member broke which image; that record is what the masking checks read.

    Args:
        x: pixels [N, 3, H, W] in [0, 1]; y: labels [N].
    Returns:
        robust [N] bool (correct under every member), the adversarial pixels [N, 3, H, W]
        (the breaking example where one was found), and per member the images it broke first.
    """
    target = AttackWrapper(model)
    x_adv = x.clone()
    with torch.no_grad():
        robust = target(x).argmax(1) == y
    broke: dict[str, int] = {}
    for label, spec, width in ensemble_members(eps, square_queries):
        idx = robust.nonzero().flatten()
        if len(idx) == 0:
            broke[label] = 0
            continue
        adv = craft(spec, AttackWrapper(model, width), x[idx], y[idx], generator)
        with torch.no_grad():
            fooled = target(adv).argmax(1) != y[idx]
        x_adv[idx[fooled]] = adv[fooled]
        robust[idx[fooled]] = False
        broke[label] = int(fooled.sum())
    return robust, x_adv, broke
