"""Paired statistics of the robustness experiment (rssnn.stats) on outcomes with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rssnn.stats import mcnemar_exact, paired_difference, parse_correct, wilson_interval


def test_parse_correct_reads_an_evaluate_row():
    assert parse_correct("0110").tolist() == [False, True, True, False]


def test_mcnemar_exact_matches_the_binomial_tail():
    a = np.array([1] * 10 + [0] * 2 + [1] * 50, bool)  # 10 images only A gets right, 2 only B
    b = np.array([0] * 10 + [1] * 2 + [1] * 50, bool)
    expected = 2 * sum(math.comb(12, i) for i in range(3)) / 2**12
    assert mcnemar_exact(a, b) == pytest.approx(expected)
    assert mcnemar_exact(a, a) == 1.0


def test_mcnemar_exact_holds_for_thousands_of_discordant_pairs():
    # pooled over seeds, 6000 paired images give more than 1023 discordant pairs (2.0**n overflows)
    a = np.array([1] * 700 + [0] * 700 + [1] * 100, bool)
    b = np.array([0] * 700 + [1] * 700 + [1] * 100, bool)
    assert mcnemar_exact(a, b) == 1.0  # 700 vs 700 discordant: no evidence
    b2 = np.array([0] * 700 + [1] * 600 + [0] * 200, bool)
    assert 0 < mcnemar_exact(a, b2) < 1e-4  # 800 vs 600 discordant: a clear effect
    assert mcnemar_exact(b2, a) == mcnemar_exact(a, b2)  # two-sided


def test_paired_difference_is_centred_and_covers_the_truth():
    rng = np.random.default_rng(0)
    n = 2000
    a = rng.random((3, n)) < 0.40
    b = a | (rng.random((3, n)) < 0.05)  # B fixes about 3 % of A's errors, per image
    d = paired_difference(a, b)
    truth = 100 * (b.mean() - a.mean())
    assert d.diff == pytest.approx(truth)
    assert d.ci_low < truth < d.ci_high and d.ci_low > 0  # a real, paired effect is resolved
    assert d.p_mcnemar < 1e-6 and d.seeds == 3 and not math.isnan(d.seed_sd)
    same = paired_difference(a, a)
    assert same.diff == same.ci_low == same.ci_high == 0.0 and same.p_mcnemar == 1.0
    with pytest.raises(ValueError, match="equal shapes"):
        paired_difference(a, b[:2])


def test_wilson_interval_matches_hand_computed_values_and_is_not_wald():
    """Wilson score bounds (z = 1.96) worked out by hand: (p + z^2/2n -+ z sqrt(p(1-p)/n +
    z^2/4n^2)) / (1 + z^2/n). A Wald interval (p -+ z sqrt(p(1-p)/n)) gives (0.1900, 0.3100)
    for 50/200 and the empty (0, 0) for 0/20, so it fails here."""
    lo, hi = wilson_interval(50, 200)
    assert lo == pytest.approx(0.19508, abs=2e-5) and hi == pytest.approx(0.31434, abs=2e-5)
    lo, hi = wilson_interval(0, 20)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.16113, abs=2e-5)
    lo, hi = wilson_interval(20, 20)
    assert lo == pytest.approx(0.83887, abs=2e-5) and hi == 1.0
