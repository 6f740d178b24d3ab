"""The one perturbation grammar of rssnn-lava: budgets, attack strings and their meaning.

``train/evaluate.py --attacks``, ``python -m lava_procs.run --perturb``, training's ``--mode`` and
the main job all parse strings here, so a string means the same attack everywhere (one PGD
step-size rule)::

    ATTACK[@SURROGATE], ATTACK one of the rows of :data:`KINDS`:
    clean | gn:SIGMA | fgsm:EPS | pgd:EPS:STEPS[:ALPHA] | apgd-ce:EPS[:STEPS]
    | apgd-dlr:EPS[:STEPS] | sapgd:EPS[:STEPS] | square:EPS[:QUERIES]
    | ensemble:EPS | ensemble-full:EPS

    SURROGATE (gradient attacks only; the attacker's spike derivative, see :data:`SURROGATES`):
    tri|exp|rect|atanWIDTH (e.g. tri0.25, exp1) | assg | pdsg | rga | bptr

Budgets are pixel fractions such as ``8/255``. ``none`` and ``gaussian`` are accepted as
``clean`` and ``gn``. Pure Python: the Lava side parses without torch.

Adding an attack kind: a row in :data:`KINDS` (its grammar) and its class in
``train/attack_kinds.py`` (what it does), which refuses to import if the two tables differ.
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


SQUARE_QUERIES = 500  # default budget of a bare square:EPS (the ensembles name their own)


@dataclass(frozen=True)
class Kind:
    """The grammar of one attack kind.

    ``params``: what follows the kind, one of ``""`` (nothing), ``"EPS"``, ``"EPS:STEPS[:ALPHA]"``,
    ``"EPS[:STEPS]"`` (``default_steps`` when left out). ``gradient``: crafted through the
    model's surrogate gradient (so it takes ``@SURROGATE``); ``ensemble``: a per-image worst
    case over members (evaluation only); ``needs_model``: crafted on the float model (torch),
    so the Lava runner needs a checkpoint for it.
    """

    name: str
    params: str
    help: str
    default_steps: int = 0
    gradient: bool = False
    ensemble: bool = False
    needs_model: bool = True


# The table of attack kinds. Adding a kind: a row here and its class in train/attack_kinds.py.
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("clean", "", "no perturbation", needs_model=False),
        Kind("gn", "EPS", "Gaussian noise of standard deviation SIGMA, clamped", needs_model=False),
        Kind("fgsm", "EPS", "fast gradient sign", 1, gradient=True),
        Kind("pgd", "EPS:STEPS[:ALPHA]", "projected gradient descent, random start", gradient=True),
        Kind("apgd-ce", "EPS[:STEPS]", "AutoPGD, cross-entropy loss", 10, gradient=True),
        Kind("apgd-dlr", "EPS[:STEPS]", "AutoPGD, difference-of-logits-ratio loss", 10, gradient=True),
        Kind(
            "sapgd",
            "EPS[:STEPS]",
            "SA-PGD (Wang et al. 2025): normalised momentum, step halving",
            100,
            gradient=True,
        ),  # fmt: skip
        Kind("square", "EPS[:QUERIES]", "gradient-free Square attack", SQUARE_QUERIES),
        Kind("ensemble", "EPS", "per-image worst case over the affordable ensemble", ensemble=True),
        Kind("ensemble-full", "EPS", "per-image worst case over the full (paper) ensemble", ensemble=True),
    )
}

# evaluate's default protocol; pgd:8/255:20:2/255 shares PGD-10's step size, for the fixed-step
# monotonicity check.
DEFAULT_ATTACKS = (
    "clean,fgsm:8/255,pgd:8/255:7,pgd:8/255:10,pgd:8/255:20,pgd:8/255:40,pgd:8/255:20:2/255,"
    "apgd-ce:8/255:10,apgd-dlr:8/255:10,gn:4/255,gn:8/255,gn:16/255,gn:32/255,"
    "ensemble:2/255,ensemble:8/255"
)

# The attacker's surrogates (what ``@NAME`` selects); True: the name takes a width, e.g. exp0.5.
SURROGATES: dict[str, bool] = {
    "tri": True,  # training's triangle max(0, w - |u|) / w^2
    "exp": True,  # SLAYER's exp(-|u| / w) / (2 w)
    "rect": True,  # 1[|u| < w] / (2 w)
    "atan": True,  # alpha / (2 (1 + (pi alpha u / 2)^2)), alpha = 2 / w (peak 1 / w, as the others')
    "assg": False,  # ASSG: atan with per-neuron, per-step sharpness from the attack's history
    "pdsg": False,  # PDSG: a normal pdf scaled by the per-channel spread of the potential
    "rga": False,  # RGA: a rate gradient w.r.t. the time-mean input current
    "bptr": False,  # BPTR: straight-through on the spike rate
}


@dataclass(frozen=True)
class AttackSpec:
    """One row of the protocol: ``kind``, budget ``eps`` (sigma for gn), ``steps``, ``alpha``,
    and the attacker's ``surrogate`` ('' = the model's own, e.g. 'tri0.25', 'assg')."""

    kind: str
    eps: float = 0.0
    steps: int = 0
    alpha: float = 0.0
    text: str = "clean"
    surrogate: str = ""


def parse_surrogate(text: str) -> str:
    """'exp0.5' -> 'exp0.5' (canonical), 'assg' -> 'assg'; ValueError on anything else."""
    name = text.rstrip("0123456789./").lower()
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate '{text}': use one of {', '.join(SURROGATES)}")
    arg = text[len(name) :]
    if not SURROGATES[name]:
        if arg:
            raise ValueError(f"surrogate {name} takes no width")
        return name
    width = parse_fraction(arg) if arg else -1.0
    if not 0 < width <= 16:
        raise ValueError(f"surrogate {name} needs a width in (0, 16], e.g. {name}0.5")
    return f"{name}{width:g}"


def surrogate_width(surrogate: str) -> float | None:
    """The width of a canonical surrogate name ('exp0.5' -> 0.5; 'assg' -> None)."""
    name = surrogate.rstrip("0123456789.")
    return float(surrogate[len(name) :]) if SURROGATES.get(name) else None


def _parse_item(item: str) -> AttackSpec:
    body, _, sur = item.partition("@")
    parts = body.split(":")
    name = ALIASES.get(parts[0].lower(), parts[0].lower())
    if name not in KINDS:
        raise ValueError(f"unknown attack '{parts[0]}' in '{item}': use one of {', '.join(KINDS)}")
    kind = KINDS[name]
    try:
        surrogate = ""
        if "@" in item:
            if not kind.gradient:
                raise ValueError(f"{name} takes no @SURROGATE (gradient attacks only)")
            surrogate = parse_surrogate(sur)
        args = parts[1:]
        if kind.params == "":
            if args:
                raise ValueError(f"{name} takes no parameters")
            return AttackSpec(name, text=item)
        eps = parse_fraction(args[0]) if args else None
        if eps is None or not 0 <= eps <= 1:
            raise ValueError("a budget in [0, 1] pixel units is required, e.g. 8/255")
        if kind.params == "EPS":
            if len(args) != 1:
                raise ValueError(f"{name} takes one parameter")
            return AttackSpec(name, eps, kind.default_steps, text=item, surrogate=surrogate)
        if kind.params == "EPS:STEPS[:ALPHA]":
            if len(args) not in (2, 3):
                raise ValueError(f"{name} takes EPS:STEPS[:ALPHA]")
        elif len(args) not in (1, 2):
            raise ValueError(f"{name} takes {kind.params}")
        steps = int(args[1]) if len(args) > 1 else kind.default_steps
        if steps < 1:
            raise ValueError(f"{'queries' if name == 'square' else 'steps'} must be >= 1")
        alpha = 0.0
        if kind.params == "EPS:STEPS[:ALPHA]":
            alpha = parse_fraction(args[2]) if len(args) == 3 else default_pgd_alpha(eps, steps)
            if not 0 < alpha <= 1:
                raise ValueError("the step size must be in (0, 1], e.g. 2/255")
        return AttackSpec(name, eps, steps, alpha, text=item, surrogate=surrogate)
    except ValueError as exc:
        raise ValueError(f"malformed attack '{item}': {exc}") from exc


def parse_attacks(text: str) -> list[AttackSpec]:
    """Parse 'clean,gn:8/255,fgsm:8/255,pgd:8/255:7[:ALPHA],apgd-ce:8/255[:STEPS]@exp0.5'.

    Raises ValueError with the offending item on malformed input.
    """
    specs = [_parse_item(item) for item in (s.strip() for s in text.split(",")) if item]
    if not specs:
        raise ValueError("no attack given")
    return specs


def parse_one(text: str, allowed: tuple[str, ...] | None = None) -> AttackSpec:
    """Exactly one attack string, of one of the ``allowed`` kinds (default: any but ensembles)."""
    allowed = allowed or tuple(k for k, v in KINDS.items() if not v.ensemble)
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
