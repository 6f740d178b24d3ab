"""Evaluation attacks on spiking models: the attack-ready wrapper, the dispatch, the ensembles.

The wrapper turns a spiking model into what attack libraries expect: pixels in [0, 1] in,
logits (mean over T) out, fresh neuron state on every call (our neurons keep none), gradients
by BPTT through a surrogate. The attacker's surrogate can differ from training's
(:mod:`train.surrogates`: triangle, SLAYER's exponential, rectangular, arctan, ASSG, PDSG, rate
gradients): attacking through other surrogates is the standard check for gradient masking. What
each kind does is its class in :mod:`train.attack_kinds`, found through one table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from rssnn.perturbation import DEFAULT_ATTACKS, KINDS, SQUARE_QUERIES, AttackSpec, parse_attacks  # noqa: F401

from . import attack_kinds, surrogates


class AttackWrapper(nn.Module):
    """[N, 3, H, W] pixels in [0, 1] -> logits [N, classes], model in eval mode, gradients
    through ``surrogate`` (a :class:`train.surrogates.Surrogate`, a triangle half-width, or None
    for the model's own)."""

    def __init__(self, model: nn.Module, surrogate: surrogates.Surrogate | float | None = None):
        super().__init__()
        self.model = model.eval()
        self.surrogate = (
            surrogate if isinstance(surrogate, surrogates.Surrogate) else surrogates.make(surrogate)
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.surrogate.applied(self.model):
            return self.model(pixels)

    def train(self, mode: bool = True) -> AttackWrapper:
        # torchattacks toggles train/eval around its calls; the wrapped model stays in eval
        # (BatchNorm running statistics), as in the reference protocol.
        super().train(mode)
        self.model.eval()
        return self


@contextmanager
def attack_surrogate(model: nn.Module, width: float | None) -> Iterator[None]:
    """Temporarily use another triangle half-width in every spiking layer."""
    with surrogates.make(width).applied(model):
        yield


def craft(
    spec: AttackSpec, wrapper: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Adversarial (or noisy) pixels for one batch; the same seed gives the same result.

    ``wrapper``: an :class:`AttackWrapper` (its surrogate is replaced by the spec's
    ``@SURROGATE`` if it names one) or any pixels -> logits module (black-box kinds).
    """
    if spec.surrogate and isinstance(wrapper, AttackWrapper):
        wrapper = AttackWrapper(wrapper.model, surrogates.make(spec.surrogate))
    if isinstance(wrapper, AttackWrapper):
        wrapper.surrogate.reset()
    return attack_kinds.kind(spec.kind).craft(spec, wrapper, x, y, generator)


def ensemble_members(eps: float, name: str = "ensemble") -> list[AttackSpec]:
    """The members of ensemble ``name`` (``ensemble``, ``ensemble-full``) at budget ``eps``."""
    ens = attack_kinds.kind(name)
    if not isinstance(ens, attack_kinds.Ensemble):
        raise ValueError(f"'{name}' is not an ensemble")
    return ens.members(eps)


def with_square_queries(members: list[AttackSpec], queries: int) -> list[AttackSpec]:
    """``members`` with every Square member given ``queries`` queries (and its text to match)."""
    return [
        parse_attacks(f"square:{m.eps * 255:g}/255:{queries}")[0] if m.kind == "square" else m
        for m in members
    ]


@dataclass
class WorstCase:
    """Per-image worst case over an ensemble's members, float model and (optionally) deployed.

    ``robust`` [N] bool: correct under every member on the float model; ``x_adv`` [N, 3, H, W]:
    the breaking example where one was found; ``broke``: per member (its attack string), the
    images it broke first; ``broken_by`` [N]: that member's string per image (None: robust, or
    wrong when clean); ``seconds``: per member. With a deployed model: ``robust_deployed``
    [N] (the integer model correct on the clean image, on every member's candidates, rounded to
    8 bit, and under Square run on the integer model itself), ``broke_deployed`` likewise.
    """

    robust: torch.Tensor
    x_adv: torch.Tensor
    broke: dict[str, int]
    seconds: dict[str, float]
    broken_by: list[str | None]
    robust_deployed: torch.Tensor | None = None
    broke_deployed: dict[str, int] = field(default_factory=dict)


DEPLOYED_SQUARE_SUFFIX = " on the integer model"


def worst_case(
    model: nn.Module,
    members: list[AttackSpec],
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    deployed: nn.Module | None = None,
    deployed_square_queries: int | None = None,
) -> WorstCase:
    """Per-image worst case over ``members`` (AutoAttack's sequential scheme).

    Each member attacks only the images that every earlier member left correctly classified, so
    the cost falls as the ensemble proceeds. torchattacks' MultiAttack does the same but does not
    say which member broke which image; that record is what the masking checks read.

    With ``deployed`` (a :class:`train.deployed.IntegerModel`), every member's candidates, not
    only those that fooled the float model, are checked on it, and a last Square attack
    (the ensemble's Square budget, or ``deployed_square_queries``) runs black-box against it on
    the images it still classifies correctly.

    Args:
        x: pixels [N, 3, H, W] in [0, 1]; y: labels [N].
    """
    target = AttackWrapper(model)
    x_adv = x.clone()
    with torch.no_grad():
        robust = target(x).argmax(1) == y
        robust_dep = deployed.predict(x) == y if deployed is not None else None
    broke: dict[str, int] = {}
    broken_by: list[str | None] = [None] * len(y)
    broke_dep: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for spec in members:
        t0 = time.perf_counter()
        idx = robust.nonzero().flatten()
        broke[spec.text] = 0
        if deployed is not None:
            broke_dep[spec.text] = 0
        if len(idx):
            adv = craft(spec, AttackWrapper(model), x[idx], y[idx], generator)
            with torch.no_grad():
                fooled = target(adv).argmax(1) != y[idx]
            x_adv[idx[fooled]] = adv[fooled]
            robust[idx[fooled]] = False
            broke[spec.text] = int(fooled.sum())
            for i in idx[fooled].tolist():
                broken_by[i] = spec.text
            if deployed is not None:
                before = int(robust_dep.sum())
                robust_dep[idx] &= deployed.predict(adv) == y[idx]
                broke_dep[spec.text] = before - int(robust_dep.sum())
        seconds[spec.text] = time.perf_counter() - t0
    if deployed is not None:
        squares = [s for s in members if s.kind == "square"]
        queries = deployed_square_queries or (squares[-1].steps if squares else SQUARE_QUERIES)
        spec = with_square_queries(parse_attacks(f"square:{members[0].eps}"), queries)[0]
        label = spec.text + DEPLOYED_SQUARE_SUFFIX
        t0 = time.perf_counter()
        idx = robust_dep.nonzero().flatten()
        broke_dep[label] = 0
        if len(idx):
            adv = craft(spec, deployed, x[idx], y[idx], generator)
            fooled = deployed.predict(adv) != y[idx]
            robust_dep[idx[fooled]] = False
            broke_dep[label] = int(fooled.sum())
        seconds[label] = time.perf_counter() - t0
    return WorstCase(robust, x_adv, broke, seconds, broken_by, robust_dep, broke_dep)
