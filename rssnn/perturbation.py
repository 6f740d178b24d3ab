"""The one perturbation grammar of rssnn-lava: budgets, attack strings and their meaning.

``train/evaluate.py --attacks``, ``python -m lava_procs.run --perturb`` and the main job all
parse strings here, so a string means the same attack everywhere (one PGD step-size rule)::

    clean | gn:SIGMA | fgsm:EPS | pgd:EPS:STEPS[:ALPHA] | apgd-ce:EPS[:STEPS]
    | apgd-dlr:EPS[:STEPS] | square:EPS[:QUERIES] | ensemble:EPS

Budgets are pixel fractions such as ``8/255``. ``none`` and ``gaussian`` are accepted as
``clean`` and ``gn``. Pure Python: the Lava side parses without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALIASES = {"none": "clean", "gaussian": "gn"}


def parse_fraction(text: str) -> float:
    """'8/255' -> 0.0313...; '0.03' -> 0.03 (used by --sigma and --eps); finite values only."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"'{text}' is not a number or a fraction such as 8/255") from exc
    if not math.isfinite(value):
        raise ValueError(f"'{text}' is not a finite number; give a value such as 8/255")
    return value


# The reference protocol's PGD step sizes at eps 8/255 (method.md §10), scaled with eps.
PGD_ALPHA_AT_8 = {7: 2.55 / 255, 10: 2 / 255, 20: 1 / 255, 40: 0.5 / 255}


def default_pgd_alpha(eps: float, steps: int) -> float:
    """PGD step size when none is given: the reference's for 7/10/20/40 steps (scaled with eps),
    else 2.5 eps / steps. One rule for ``train/evaluate.py`` and ``python -m lava_procs.run``."""
    if steps in PGD_ALPHA_AT_8:
        return PGD_ALPHA_AT_8[steps] * eps / (8 / 255)
    return 2.5 * eps / steps


KINDS = ("clean", "gn", "fgsm", "pgd", "apgd-ce", "apgd-dlr", "square", "ensemble")
# pgd:8/255:20:2/255 shares PGD-10's step size, for the fixed-step monotonicity check.
DEFAULT_ATTACKS = (
    "clean,fgsm:8/255,pgd:8/255:7,pgd:8/255:10,pgd:8/255:20,pgd:8/255:40,pgd:8/255:20:2/255,"
    "apgd-ce:8/255:10,apgd-dlr:8/255:10,gn:4/255,gn:8/255,gn:16/255,gn:32/255,"
    "ensemble:2/255,ensemble:8/255"
)
SQUARE_QUERIES = 500  # default budget of the gradient-free Square attack


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
        kind = ALIASES.get(parts[0].lower(), parts[0].lower())
        if kind not in KINDS:
            raise ValueError(f"unknown attack '{parts[0]}' in '{item}': use one of " f"{', '.join(KINDS)}")
        try:
            if kind == "clean":
                if len(parts) != 1:
                    raise ValueError("clean takes no parameters")
                specs.append(AttackSpec("clean", text=item))
                continue
            eps = parse_fraction(parts[1]) if len(parts) > 1 else None
            if eps is None or not 0 <= eps <= 1:
                raise ValueError("a budget in [0, 1] pixel units is required, e.g. 8/255")
            if kind in ("gn", "fgsm", "ensemble"):
                if len(parts) != 2:
                    raise ValueError(f"{kind} takes one parameter")
                specs.append(AttackSpec(kind, eps, 1 if kind == "fgsm" else 0, text=item))
            elif kind == "square":
                if len(parts) not in (2, 3):
                    raise ValueError("square takes EPS[:QUERIES]")
                queries = int(parts[2]) if len(parts) == 3 else SQUARE_QUERIES
                if queries < 1:
                    raise ValueError("queries must be >= 1")
                specs.append(AttackSpec(kind, eps, queries, text=item))
            elif kind == "pgd":
                if len(parts) not in (3, 4):
                    raise ValueError("pgd takes EPS:STEPS[:ALPHA]")
                steps = int(parts[2])
                if steps < 1:
                    raise ValueError("steps must be >= 1")
                alpha = parse_fraction(parts[3]) if len(parts) == 4 else default_pgd_alpha(eps, steps)
                if not 0 < alpha <= 1:
                    raise ValueError("the step size must be in (0, 1], e.g. 2/255")
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


def parse_one(text: str, allowed: tuple[str, ...] = KINDS) -> AttackSpec:
    """Exactly one attack string, of one of the ``allowed`` kinds (ValueError otherwise)."""
    specs = parse_attacks(text)
    if len(specs) != 1:
        raise ValueError(f"'{text}' names {len(specs)} attacks; give one")
    if specs[0].kind not in allowed:
        raise ValueError(f"'{text}': this command runs {', '.join(allowed)} only")
    return specs[0]


def gaussian_pixels(pixels, sigma: float, seed: int):
    """uint8 images [N, 3, H, W] + sigma N(0, I) noise in [0, 1] units, rounded back to uint8.

    numpy's generator (seeded), so the Lava side needs no torch.
    """
    import numpy as np

    x = np.asarray(pixels, dtype=np.float64) / 255.0
    noisy = x + sigma * np.random.default_rng(seed).standard_normal(x.shape)
    return np.rint(np.clip(noisy, 0.0, 1.0) * 255.0).astype(np.uint8)
