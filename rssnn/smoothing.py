"""Randomized smoothing (Cohen, Rosenfeld and Kolter, ICML 2019): CERTIFY, PREDICT, the sampling.

The smoothed classifier of a base classifier f is g(x) = argmax_c P(f(x + delta) = c) with
delta ~ N(0, sigma^2 I). CERTIFY draws n0 noisy copies of x to choose the top class cA, then n
fresh ones to count nA = #{f(x + delta) = cA}; the one-sided Clopper-Pearson lower bound of
pA at level alpha gives, when it exceeds 1/2, the L2 radius sigma * Phi^-1(pA_lower) within which
g provably returns cA (with probability at least 1 - alpha over the sampling). PREDICT returns
the top class only when a two-sided binomial test between the two most frequent classes rejects
a tie at level alpha.

Here f is any function from noisy [0, 1]-space pixels to classes: the float model of a checkpoint
(``rssnn.train.base_classifier``) or the deployed integer model of a NetX file
(:func:`integer_classifier`), whose 8-bit input rounding is part of f: the noise is added in
[0, 1] pixel space before the rounding (:func:`device_pixels`), so the certificate is an L2
radius in [0, 1] pixel space for the network as the device runs it.

numpy only at import time; scipy (installed with Lava: lava-nc depends on it) is imported inside
the two functions that need a Beta quantile and a binomial test, for which the standard library
has nothing (Phi^-1 comes from ``statistics.NormalDist``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

ABSTAIN = -1  # the prediction of an image on which CERTIFY or PREDICT abstains

# Classifier: noisy pixels float32 [B, 3, H, W] in [0, 1] units (not clamped) -> classes int [B].
Classifier = Callable[[np.ndarray], np.ndarray]


def lower_confidence_bound(n_a: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of a binomial proportion from nA of n.

    The alpha quantile of Beta(nA, n - nA + 1); 0 when nA = 0. The same bound as Cohen et
    al.'s ``proportion_confint(nA, n, alpha=2 * alpha, method="beta")[0]``.
    """
    if not 0 <= n_a <= n or n < 1:
        raise ValueError(f"need 0 <= n_a <= n and n >= 1, got n_a={n_a}, n={n}")
    if n_a == 0:
        return 0.0
    # scipy: the exact Beta quantile, which neither numpy nor the standard library provides;
    # imported here (not at module level) so the core's import stays numpy + h5py.
    from scipy.stats import beta

    return float(beta.ppf(alpha, n_a, n - n_a + 1))


def radius(p_a_lower: float, sigma: float) -> float | None:
    """Certified L2 radius sigma * Phi^-1(pA_lower); None (abstain) when pA_lower <= 1/2."""
    if p_a_lower <= 0.5:
        return None
    return sigma * NormalDist().inv_cdf(p_a_lower)


def certify_from_counts(
    selection: np.ndarray, estimation: np.ndarray, sigma: float, alpha: float
) -> dict[str, Any]:
    """CERTIFY from class counts of the n0 selection [C] and the n estimation samples [C].

    Returns ``prediction`` (cA, or :data:`ABSTAIN`), ``n_a`` (estimation count of cA), ``n``,
    ``p_a_lower`` and ``radius`` (None on abstain): everything a reader needs to recompute it.
    """
    c_a = int(np.argmax(selection))
    n = int(np.sum(estimation))
    n_a = int(estimation[c_a])
    p_a_lower = lower_confidence_bound(n_a, n, alpha)
    r = radius(p_a_lower, sigma)
    return dict(prediction=c_a if r is not None else ABSTAIN, n_a=n_a, n=n, p_a_lower=p_a_lower, radius=r)


def predict_from_counts(counts: np.ndarray, alpha: float) -> tuple[int, float]:
    """PREDICT from class counts [C] of n noisy samples: (top class or ABSTAIN, p-value).

    Two-sided binomial test of nA successes in nA + nB trials against p = 1/2 (the two most
    frequent classes); abstain when the p-value exceeds alpha.
    """
    # scipy's exact binomial test (maintained, the test Cohen et al.'s code calls); see above.
    from scipy.stats import binomtest

    order = np.argsort(counts, kind="stable")[::-1]
    n_a, n_b = int(counts[order[0]]), int(counts[order[1]]) if len(counts) > 1 else 0
    p_value = float(binomtest(n_a, n_a + n_b, 0.5).pvalue) if n_a + n_b else 1.0
    return (int(order[0]) if p_value <= alpha else ABSTAIN), p_value


def certified_accuracy(
    labels: Sequence[int], predictions: Sequence[int], radii: Sequence[float | None], at: Sequence[float]
) -> list[float]:
    """Fraction of images certified correct at each radius of ``at`` [R]: prediction equals the
    label and the certified radius is at least r (abstentions count as wrong), as Cohen et al.'s
    analysis. labels, predictions, radii: [N] (radius None on abstain)."""
    y, p = np.asarray(labels), np.asarray(predictions)
    r = np.array([-np.inf if v is None else v for v in radii], dtype=np.float64)
    return [float(np.mean((p == y) & (r >= t))) if len(y) else 0.0 for t in at]


def device_pixels(x: np.ndarray) -> np.ndarray:
    """The device's 8-bit input: float pixels [..] in [0, 1] units -> uint8 levels, clipped to
    [0, 1] and rounded to the nearest of 256 levels (as ``rssnn.perturbation.gaussian_pixels``)."""
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def noise(rng: np.random.Generator, num: int, shape: tuple[int, ...]) -> np.ndarray:
    """N(0, I) noise float32 [num, *shape]. Successive calls continue one stream, so drawing in
    batches gives the samples one draw would (what the Lava check replays)."""
    return rng.standard_normal((num, *shape), dtype=np.float32)


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The noise stream of one image: its selection samples, then its estimation samples. Keyed
    by the image's index, so a certificate does not depend on which other images ran (resume)."""
    return np.random.default_rng([seed, index])


def noisy_copies(x: np.ndarray, sigma: float, rng: np.random.Generator, num: int) -> np.ndarray:
    """``num`` noisy copies float32 [num, 3, H, W] of one image x [3, H, W]: x + sigma N(0, I),
    not clamped (a base classifier that needs [0, 1] clamps itself, as the device does)."""
    x = np.asarray(x, dtype=np.float32)
    return x[None] + np.float32(sigma) * noise(rng, num, x.shape)


def sample_counts(
    classify: Classifier,
    x: np.ndarray,
    num: int,
    sigma: float,
    num_classes: int,
    rng: np.random.Generator,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Class counts int64 [C] of ``classify`` on ``num`` copies of ``x`` + sigma N(0, I).

    Args:
        x: one image, float32 [3, H, W] in [0, 1] units.
        progress: called with the number of samples of each finished batch.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for start in range(0, num, batch_size):
        b = min(batch_size, num - start)
        classes = np.asarray(classify(noisy_copies(x, sigma, rng, b)))
        counts += np.bincount(classes, minlength=num_classes)[:num_classes]
        if progress is not None:
            progress(b)
    return counts


def certify(
    classify: Classifier,
    x: np.ndarray,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    num_classes: int,
    rng: np.random.Generator,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """CERTIFY on one image x float32 [3, H, W] (n0 selection samples, then n estimation samples
    from the same stream), plus PREDICT on the estimation counts: :func:`certify_from_counts`'s
    fields, ``predict``, ``predict_p_value`` and ``counts`` (the estimation counts [C])."""
    selection = sample_counts(classify, x, n0, sigma, num_classes, rng, batch_size, progress)
    estimation = sample_counts(classify, x, n, sigma, num_classes, rng, batch_size, progress)
    result = certify_from_counts(selection, estimation, sigma, alpha)
    result["predict"], result["predict_p_value"] = predict_from_counts(estimation, alpha)
    result["counts"] = estimation.tolist()
    return result


def integer_classifier(net) -> Classifier:
    """The deployed base classifier of a :class:`~rssnn.lowered.LoweredNet`: noisy [0, 1]-space
    pixels float [B, 3, H, W] -> the device's uint8 input -> the integer forward's argmax [B]."""
    from rssnn.integer_forward import run_fixed

    def classify(x: np.ndarray) -> np.ndarray:
        return run_fixed(net, device_pixels(x))["logits"].argmax(1)

    return classify
