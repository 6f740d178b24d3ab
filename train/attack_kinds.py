"""The attack kinds: one class per kind, found through :data:`ATTACKS` (issue 27).

Evaluation (``train/evaluate.py``, :func:`train.attacks.craft`), the Lava runner's adversarial
inputs (``python -m lava_procs.run --perturb``) and training's perturbations (``--mode``) all
look a kind up here; an unknown kind is a one-line error. The grammar of each kind (its
parameters, whether it takes ``@SURROGATE``) is its row in :data:`rssnn.perturbation.KINDS`,
which the Lava side parses without torch; this module refuses to import if the two tables differ.

Adding an attack: its grammar row in ``rssnn/perturbation.py`` and its class here. Adding a
surrogate: its name in ``rssnn.perturbation.SURROGATES`` and its class in ``train/surrogates.py``.

FGSM, PGD, APGD and Square come from torchattacks 3.5.1 (maintained, and the reference
implementations the field compares with); SA-PGD is written here from Wang et al.'s formulas
(arXiv 2512.22522), which no library ships.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rssnn import perturbation
from rssnn.perturbation import AttackSpec

from . import perturb


class AttackKind:
    """One attack kind. ``craft`` makes adversarial (or noisy) pixels [N, 3, H, W] in [0, 1]
    for evaluation and the runner; ``for_training`` the training recipe's perturbation."""

    name = ""

    def craft(
        self,
        spec: AttackSpec,
        target: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """``target``: pixels -> logits (an :class:`train.attacks.AttackWrapper`, or the integer
        model for black-box kinds); the same generator state gives the same result."""
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        torch.manual_seed(seed)  # torchattacks draws its random starts from the global generator
        return self.attack(spec, target, x, y, seed).detach()

    def attack(self, spec: AttackSpec, target: nn.Module, x, y, seed: int) -> torch.Tensor:
        raise NotImplementedError

    def for_training(self, model: nn.Module, x, y, spec: AttackSpec, gen, shard) -> torch.Tensor:
        raise ValueError(f"'{self.name}' is not a training perturbation (use gaussian, fgsm or pgd)")


class Clean(AttackKind):
    name = "clean"

    def craft(self, spec, target, x, y, generator):
        return x


class GaussianNoise(AttackKind):
    """Test-time Gaussian noise, clamped (the reference's "GN" attack); in training the
    reference's unclamped noise (:func:`train.perturb.gaussian`)."""

    name = "gn"

    def craft(self, spec, target, x, y, generator):
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        return (x + spec.eps * noise).clamp(0, 1)

    def for_training(self, model, x, y, spec, gen, shard):
        return perturb.gaussian(x, spec.eps, gen, shard)


class FGSM(AttackKind):
    name = "fgsm"

    def attack(self, spec, target, x, y, seed):
        import torchattacks

        return torchattacks.FGSM(target, eps=spec.eps)(x, y)

    def for_training(self, model, x, y, spec, gen, shard):
        return perturb.fgsm(model, x, y, spec.eps, gen, shard=shard)  # the reference's RFGSM


class PGD(AttackKind):
    name = "pgd"

    def attack(self, spec, target, x, y, seed):
        import torchattacks

        return torchattacks.PGD(target, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True)(
            x, y
        )

    def for_training(self, model, x, y, spec, gen, shard):
        return perturb.pgd(model, x, y, spec.eps, spec.steps, spec.alpha, gen, shard=shard)


class APGD(AttackKind):
    """AutoPGD (Croce & Hein 2020), CE or DLR loss, one restart."""

    def __init__(self, loss: str):
        self.loss = loss
        self.name = f"apgd-{loss}"

    def attack(self, spec, target, x, y, seed):
        import torchattacks

        attack = torchattacks.APGD(
            target,
            norm="Linf",
            eps=spec.eps,
            steps=spec.steps,
            n_restarts=1,
            seed=0,
            loss=self.loss,
            rho=0.75,
        )
        return attack(x, y)


class Square(AttackKind):
    """Gradient-free Square attack (Andriushchenko et al. 2020): immune to masked gradients,
    and the only kind that runs against the integer (deployed) model directly."""

    name = "square"

    def attack(self, spec, target, x, y, seed):
        import torchattacks

        attack = torchattacks.Square(
            target, norm="Linf", eps=spec.eps, n_queries=spec.steps, n_restarts=1, seed=seed % 2**31
        )
        return attack(x, y)


class SAPGD(AttackKind):
    """SA-PGD (Wang et al., arXiv 2512.22522), written here from the paper (no library has it).

    Start uniform in the eps-ball. Per image, with g the loss gradient:
    ``m <- 0.5 m + g / mean|g|``, ``v <- 0.8 v + g^2 / mean(g^2)``, step
    ``clip(eta m / sqrt(v), -eta, eta)`` with ``eta0 = eps``; eta halves every k iterations, k
    from 0.22 N shrinking by 0.03 N per halving to 0.06 N. Keeps each image's best-loss point,
    and the first point that fools the model. Cross-entropy loss.
    """

    name = "sapgd"

    def attack(self, spec, target, x, y, seed):
        gen = torch.Generator().manual_seed(seed)
        eps, n_steps = spec.eps, spec.steps
        shape = (-1,) + (1,) * (x.dim() - 1)
        adv = (x + (torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1) * eps).clamp(0, 1)
        best, best_loss = adv.clone(), torch.full((len(x),), -float("inf"), device=x.device)
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        m = torch.zeros_like(x)
        v = torch.zeros_like(x)
        eta = eps
        period = 0.22 * n_steps
        next_halving = period
        for i in range(n_steps + 1):
            adv.requires_grad_(True)
            logits = target(adv)
            loss = nn.functional.cross_entropy(logits, y, reduction="none")
            (g,) = torch.autograd.grad(loss.sum(), adv)
            adv = adv.detach()
            with torch.no_grad():
                wrong = (logits.argmax(1) != y) & ~fooled
                better = (loss > best_loss) & ~fooled
                keep = wrong | better
                best[keep] = adv[keep]
                best_loss = torch.where(better, loss.detach(), best_loss)
                fooled |= wrong
                if i == n_steps or bool(fooled.all()):
                    break
                flat = g.reshape(len(g), -1)
                m = 0.5 * m + g / flat.abs().mean(1).clamp_min(1e-30).view(shape)
                v = 0.8 * v + g * g / (flat * flat).mean(1).clamp_min(1e-30).view(shape)
                step = (eta * m / v.sqrt().clamp_min(1e-12)).clamp(-eta, eta)
                adv = torch.min(torch.max(adv + step, x - eps), x + eps).clamp(0, 1)
                if i + 1 >= next_halving:
                    eta /= 2
                    period = max(period - 0.03 * n_steps, 0.06 * n_steps)
                    next_halving += period
        return best


class Ensemble(AttackKind):
    """A per-image worst case over members (AutoAttack's sequential scheme, run by
    :func:`train.attacks.worst_case`): gradient members first, Square last, so what Square
    still breaks measures what the gradient members missed."""

    def __init__(self, name: str, members: tuple[str, ...]):
        self.name = name
        self.templates = members

    def members(self, eps: float) -> list[AttackSpec]:
        """The member attacks at budget ``eps`` (templates with ``{e}`` the budget, ``{a}`` a quarter)."""
        e, a = f"{eps * 255:g}/255", f"{eps * 255 / 4:g}/255"
        return [perturbation.parse_attacks(t.format(e=e, a=a))[0] for t in self.templates]

    def craft(self, spec, target, x, y, generator):
        raise ValueError("an ensemble is run by train.attacks.worst_case(), not craft()")


# The ensemble of issue 21, kept so new and old compare on the same images (benchmarks): FGSM,
# PGD-10 through triangle widths 0.5/1/2 and a restart, APGD-CE/DLR 10 steps, Square 500.
ENSEMBLE_V1 = (
    "fgsm:{e}", "pgd:{e}:10:{a}@tri0.5", "pgd:{e}:10:{a}@tri1", "pgd:{e}:10:{a}@tri2", "pgd:{e}:10:{a}",
    "apgd-ce:{e}:10", "apgd-dlr:{e}:10", "square:{e}:500",
)  # fmt: skip

# Affordable (the main job, 2 cores): one member of each family that adds breaks on the main job's
# model (docs/results.md), short schedules; Square at 1,000 queries as the check.
ENSEMBLE = (
    "fgsm:{e}",
    "apgd-ce:{e}:20@tri0.25",
    "apgd-ce:{e}:20@exp0.5",
    "sapgd:{e}:50@assg",
    "pgd:{e}:10:{a}@rga",
    "pgd:{e}:10:{a}@pdsg",
    "apgd-dlr:{e}:20@tri0.5",
    "square:{e}:1000",
)

# Full (papers): the surrogate family (4 shapes x 4 sharpnesses around the trained half-width 1,
# Özdenizci & Legenstein's protocol), ASSG + SA-PGD, both rate gradients, PDSG as published
# (PGD step eps/4, 10 steps), APGD-CE and APGD-DLR at 100 steps, Square at 5,000 queries.
SURROGATE_FAMILY = tuple(
    f"{shape}{w:g}" for shape in ("tri", "exp", "rect", "atan") for w in (0.25, 0.5, 1, 2)
)
ENSEMBLE_FULL = (
    "fgsm:{e}",
    "apgd-ce:{e}:100",
    "apgd-dlr:{e}:100",
    *(f"apgd-ce:{{e}}:100@{s}" for s in SURROGATE_FAMILY if s != "tri1"),
    "apgd-dlr:{e}:100@tri0.25",
    "sapgd:{e}:100@assg",
    "pgd:{e}:20@rga",
    "pgd:{e}:20@bptr",
    "pgd:{e}:10:{a}@pdsg",
    "square:{e}:5000",
)

# The table of attack kinds: name (the grammar's, rssnn.perturbation.KINDS) -> the kind.
ATTACKS: dict[str, AttackKind] = {
    k.name: k
    for k in (
        Clean(),
        GaussianNoise(),
        FGSM(),
        PGD(),
        APGD("ce"),
        APGD("dlr"),
        SAPGD(),
        Square(),
        Ensemble("ensemble", ENSEMBLE),
        Ensemble("ensemble-full", ENSEMBLE_FULL),
    )
}
if set(ATTACKS) != set(perturbation.KINDS):  # the grammar and the code must name the same kinds
    raise ImportError(
        f"attack kinds {sorted(ATTACKS)} differ from the grammar's {sorted(perturbation.KINDS)}"
    )


def kind(name: str) -> AttackKind:
    """The kind called ``name``; ValueError (one line) for an unknown one."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack kind '{name}': use one of {', '.join(ATTACKS)}") from None


TRAINING_MODES = {"gaussian": "gn", "fgsm": "fgsm", "pgd": "pgd"}  # --mode -> kind


def training_spec(cfg: Any) -> AttackSpec:
    """The perturbation of a :class:`train.config.TrainConfig` (mode, sigma, eps, pgd_steps,
    pgd_alpha) as an attack spec; ValueError for a mode that is not a perturbation."""
    name = TRAINING_MODES.get(cfg.mode)
    if name is None:
        raise ValueError(f"unknown mode {cfg.mode}: training perturbs with {', '.join(TRAINING_MODES)}")
    if name == "gn":
        return AttackSpec("gn", cfg.sigma, text=f"gn:{cfg.sigma}")
    if name == "fgsm":
        return AttackSpec("fgsm", cfg.eps, 1, text=f"fgsm:{cfg.eps}")
    return AttackSpec("pgd", cfg.eps, cfg.pgd_steps, cfg.pgd_alpha, text=f"pgd:{cfg.eps}:{cfg.pgd_steps}")
