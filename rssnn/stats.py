"""Paired statistics for robustness comparisons (numpy only).

Two models evaluated on the same images give, per image, a pair of outcomes (correct or not).
The difference of their accuracies is then best judged per image: a paired bootstrap over
images for its confidence interval, and McNemar's exact test on the discordant pairs. With
several training seeds, model A of seed s is paired with model B of seed s, and the per-image
difference is averaged over seeds before resampling images (the spread over seeds is reported
separately, as the seed-to-seed standard deviation of the accuracy difference).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def parse_correct(text: str) -> np.ndarray:
    """'0110...' (an evaluate row's ``correct``) -> bool array [N]."""
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired bool outcomes ``a``, ``b`` (same shape).

    Under H0 the discordant pairs split 50/50: p = P(Binomial(n10 + n01, 1/2) as extreme).
    """
    n10 = int(np.sum(a & ~b))
    n01 = int(np.sum(~a & b))
    n = n10 + n01
    if n == 0:
        return 1.0
    k = min(n10, n01)
    # exact integer ratio: 2.0**n overflows a float beyond n = 1023 discordant pairs
    tail = sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)
    return min(1.0, 2.0 * tail)


@dataclass
class PairedDifference:
    """Accuracy of B minus accuracy of A, in points (percent)."""

    diff: float  # mean over seeds
    ci_low: float  # paired bootstrap over images, 95 %
    ci_high: float
    seed_sd: float  # standard deviation of the per-seed differences (nan with one seed)
    p_mcnemar: float  # exact McNemar on all (seed, image) pairs pooled
    seeds: int
    n: int

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        sd = f", seed sd {self.seed_sd:.1f}" if self.seeds > 1 else ""
        return f"{self.diff:+.1f} [{self.ci_low:+.1f}, {self.ci_high:+.1f}]{sd}"


def paired_difference(
    a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> PairedDifference:
    """B - A for bool outcomes [seeds, N] (row s of A pairs with row s of B, same images)."""
    a, b = np.atleast_2d(a).astype(bool), np.atleast_2d(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need equal shapes, got {a.shape} and {b.shape}")
    per_image = (b.astype(np.float64) - a).mean(0)  # [N], averaged over seeds
    rng = np.random.default_rng(seed)
    n = per_image.size
    boot = np.empty(resamples)
    for start in range(0, resamples, 500):  # chunks keep memory at 500 x N
        idx = rng.integers(0, n, (min(500, resamples - start), n))
        boot[start : start + len(idx)] = per_image[idx].mean(1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    per_seed = b.mean(1) - a.mean(1)
    return PairedDifference(
        diff=100 * float(per_image.mean()),
        ci_low=100 * float(lo),
        ci_high=100 * float(hi),
        seed_sd=100 * float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan"),
        p_mcnemar=mcnemar_exact(a.ravel(), b.ravel()),
        seeds=a.shape[0],
        n=n,
    )


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (for one accuracy on n images)."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))
