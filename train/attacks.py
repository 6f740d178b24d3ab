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
from dataclasses import dataclass

import torch
from torch import nn

from train.models import spiking_layers
from train.perturb import parse_fraction

KINDS = ("clean", "gn", "fgsm", "pgd", "apgd-ce", "apgd-dlr")
# The reference protocol (method.md §10): eps 8/255; PGD step sizes per step count.
PGD_ALPHA = {7: 2.55 / 255, 10: 2 / 255, 20: 1 / 255, 40: 0.5 / 255}
DEFAULT_ATTACKS = (
    "clean,fgsm:8/255,pgd:8/255:7,pgd:8/255:10,pgd:8/255:20,pgd:8/255:40,"
    "apgd-ce:8/255:10,apgd-dlr:8/255:10,gn:4/255,gn:8/255,gn:16/255,gn:32/255"
)


@dataclass(frozen=True)
class AttackSpec:
    """One row of the protocol: ``kind``, budget ``eps`` (sigma for gn), ``steps``, ``alpha``."""

    kind: str
    eps: float = 0.0
    steps: int = 0
    alpha: float = 0.0
    text: str = "clean"


def parse_attacks(text: str) -> list[AttackSpec]:
    """Parse 'clean,gn:8/255,fgsm:8/255,pgd:8/255:7[:ALPHA],apgd-ce:8/255[:STEPS]'.

    Raises ValueError with the offending item on malformed input.
    """
    specs = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        parts = item.split(":")
        kind = parts[0].lower()
        if kind not in KINDS:
            raise ValueError(f"unknown attack '{parts[0]}' in '{item}': use one of " f"{', '.join(KINDS)}")
        try:
            if kind == "clean":
                if len(parts) != 1:
                    raise ValueError("clean takes no parameters")
                specs.append(AttackSpec("clean", text=item))
                continue
            eps = parse_fraction(parts[1]) if len(parts) > 1 else None
            if eps is None or eps < 0:
                raise ValueError("a budget >= 0 is required, e.g. 8/255")
            if kind in ("gn", "fgsm"):
                if len(parts) != 2:
                    raise ValueError(f"{kind} takes one parameter")
                specs.append(AttackSpec(kind, eps, 1 if kind == "fgsm" else 0, text=item))
            elif kind == "pgd":
                if len(parts) not in (3, 4):
                    raise ValueError("pgd takes EPS:STEPS[:ALPHA]")
                steps = int(parts[2])
                if steps < 1:
                    raise ValueError("steps must be >= 1")
                # Reference step sizes at eps 8/255, scaled with eps; else 2.5 eps / steps.
                default = PGD_ALPHA[steps] * eps / (8 / 255) if steps in PGD_ALPHA else 2.5 * eps / steps
                alpha = parse_fraction(parts[3]) if len(parts) == 4 else default
                specs.append(AttackSpec("pgd", eps, steps, alpha, text=item))
            else:
                if len(parts) not in (2, 3):
                    raise ValueError(f"{kind} takes EPS[:STEPS]")
                steps = int(parts[2]) if len(parts) == 3 else 10
                if steps < 1:
                    raise ValueError("steps must be >= 1")
                specs.append(AttackSpec(kind, eps, steps, text=item))
        except ValueError as exc:
            raise ValueError(f"malformed attack '{item}': {exc}") from exc
    if not specs:
        raise ValueError("no attack given")
    return specs


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
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    if spec.kind == "fgsm":
        attack = torchattacks.FGSM(wrapper, eps=spec.eps)
    elif spec.kind == "pgd":
        attack = torchattacks.PGD(
            wrapper, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True
        )
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
