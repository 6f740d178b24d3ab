"""Randomized smoothing: the certificate's arithmetic against hand-computed cases, the float and
the deployed base classifiers on a real tiny model, the Lava spot check, flags and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from conftest import assert_one_line_error, call_main, run_cli

from rssnn import smoothing
from rssnn.commands.certify import main as certify_main


def _phi(z: float) -> float:
    """Standard normal CDF from math.erf (independent of the NormalDist the module uses)."""
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(Bin(n, p) >= k), summed term by term."""
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


def test_clopper_pearson_lower_bound_matches_hand_computed_cases():
    # nA = n: Beta(n, 1) has CDF p^n, so the alpha quantile is alpha^(1/n).
    assert smoothing.lower_confidence_bound(100, 100, 0.001) == pytest.approx(0.001 ** (1 / 100), rel=1e-12)
    assert smoothing.lower_confidence_bound(100, 100, 0.001) == pytest.approx(0.9332543, abs=1e-7)
    # nA = 1: Beta(1, n) has CDF 1 - (1 - p)^n, so the quantile is 1 - (1 - alpha)^(1/n).
    assert smoothing.lower_confidence_bound(1, 20, 0.05) == pytest.approx(1 - 0.95 ** (1 / 20), rel=1e-10)
    # Any nA: the bound is the p at which nA or more successes have probability alpha.
    for n_a, n, alpha in ((7, 10, 0.05), (60, 100, 0.001), (990, 1000, 0.001)):
        p = smoothing.lower_confidence_bound(n_a, n, alpha)
        assert _binomial_tail(n_a, n, p) == pytest.approx(alpha, rel=1e-8)
        assert p < n_a / n
    assert smoothing.lower_confidence_bound(0, 50, 0.001) == 0.0
    with pytest.raises(ValueError):
        smoothing.lower_confidence_bound(11, 10, 0.001)


def test_radius_abstains_at_one_half_and_is_sigma_times_the_normal_quantile():
    assert smoothing.radius(_phi(1.0), 0.25) == pytest.approx(0.25, rel=1e-9)
    assert smoothing.radius(_phi(2.0), 0.5) == pytest.approx(1.0, rel=1e-9)
    assert smoothing.radius(0.5, 0.25) is None and smoothing.radius(0.3, 0.25) is None
    # the note's bound: n 1,000 and alpha 0.001 certify at most 2.46 sigma
    top = smoothing.radius(smoothing.lower_confidence_bound(1000, 1000, 0.001), 1.0)
    assert round(top, 2) == 2.46


def test_certify_takes_the_class_from_the_selection_samples_and_counts_it_in_the_estimation():
    sel = np.array([0, 9, 1])
    # The estimation favours class 0, but CERTIFY counts cA = 1 (chosen on the n0 samples).
    res = smoothing.certify_from_counts(sel, np.array([80, 20, 0]), 0.25, 0.001)
    assert (res["prediction"], res["n_a"], res["n"], res["radius"]) == (smoothing.ABSTAIN, 20, 100, None)
    res = smoothing.certify_from_counts(sel, np.array([0, 100, 0]), 0.25, 0.001)
    p = 0.001 ** (1 / 100)
    assert res["prediction"] == 1 and res["p_a_lower"] == pytest.approx(p)
    assert _phi(res["radius"] / 0.25) == pytest.approx(p, rel=1e-9)


def test_predict_is_a_two_sided_binomial_test_between_the_top_two_classes():
    # 10 of 10 on one class: p = 2 * 0.5^10 = 0.00195
    assert smoothing.predict_from_counts(np.array([0, 10, 0]), 0.001) == (
        smoothing.ABSTAIN,
        pytest.approx(2**-9),
    )
    assert smoothing.predict_from_counts(np.array([0, 10, 0]), 0.01)[0] == 1
    # 6 against 4 (a third class does not enter the test): p = 2 P(X >= 6) = 0.754
    pred, p = smoothing.predict_from_counts(np.array([6, 4, 3]), 0.05)
    exact = min(1.0, 2 * _binomial_tail(6, 10, 0.5))
    assert pred == smoothing.ABSTAIN and p == pytest.approx(exact)


def test_certified_accuracy_counts_correct_images_whose_radius_reaches_r():
    labels = [0, 1, 2, 3]
    preds = [0, 1, 5, smoothing.ABSTAIN]
    radii = [0.3, 0.1, 0.9, None]  # image 2 is certified, but wrong
    assert smoothing.certified_accuracy(labels, preds, radii, [0, 0.1, 0.2, 0.5]) == [0.5, 0.5, 0.25, 0.0]


def test_batched_sampling_draws_the_same_noise_as_one_draw():
    x = np.random.default_rng(1).random((3, 8, 8), dtype=np.float32)

    def classify(noisy: np.ndarray) -> np.ndarray:  # the brightest channel of each copy
        return noisy.reshape(len(noisy), 3, -1).mean(-1).argmax(1)

    counts = [
        smoothing.sample_counts(classify, x, 100, 0.5, 3, smoothing.image_rng(0, 4), batch)
        for batch in (7, 100)
    ]
    assert counts[0].tolist() == counts[1].tolist() and counts[0].sum() == 100
    whole = classify(smoothing.noisy_copies(x, 0.5, smoothing.image_rng(0, 4), 100))
    assert np.bincount(whole, minlength=3).tolist() == counts[0].tolist()
    other = smoothing.sample_counts(classify, x, 100, 0.5, 3, smoothing.image_rng(0, 5), 100)
    assert other.tolist() != counts[0].tolist()  # another image index draws other noise


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    from rssnn.export import to_netx  # in-process: the export CLI's subprocess test is test_export's

    out = tmp_path_factory.mktemp("certify") / "m.net"
    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(out)]) == 0
    return out


def _check_rows(report: dict, sigma: float, alpha: float, n: int) -> None:
    """Every row's bound and radius recomputed from its counts and alpha, as a reader would."""
    for row in report["images"]:
        assert row["n"] == n == sum(row["counts"]) and row["n_a"] <= n
        p = smoothing.lower_confidence_bound(row["n_a"], n, alpha)
        assert row["p_a_lower"] == pytest.approx(p)
        if p > 0.5:
            assert row["radius"] == pytest.approx(sigma * NormalDist().inv_cdf(p))
            assert row["prediction"] >= 0
        else:
            assert row["radius"] is None and row["prediction"] == -1


def test_deployed_certificate_with_lava_check(cifar_root, exported, tmp_path):
    """The integer model certified from the CLI: recomputable rows, a table, a plot, and Lava
    predicting what the integer model predicts on the certificate's own noisy inputs."""
    from rssnn import cifar, netx_file
    from rssnn.integer_forward import run_fixed

    out = tmp_path / "cert.json"
    argv = ["--net", str(exported), "--data-root", str(cifar_root), "--sigma", "0.25", "--n0", "8",
            "--n", "40", "--limit", "3", "--batch-size", "16", "--lava-check", "6",
            "--out", str(out)]  # fmt: skip
    assert certify_main(argv) == 0
    report = json.loads(out.read_text())
    assert (report["sigma"], report["alpha"], report["n0"], report["n"]) == (0.25, 0.001, 8, 40)
    assert [r["index"] for r in report["images"]] == [0, 1, 2] and report["complete"]
    _check_rows(report, 0.25, 0.001, 40)
    check = report["lava_check"]
    assert check["samples"] == 6 and check["agreement"] == 1.0 and check["mismatches"] == []
    # the replayed inputs are the certificate's: image 0's first selection samples
    net, meta = netx_file.read(exported)
    images, labels, _ = cifar.load_run_split(cifar_root, "cifar10", "val", meta["training_config"])
    assert [r["label"] for r in report["images"]] == labels[:3].tolist()
    x0 = images[0].astype(np.float32) / 255
    first = smoothing.device_pixels(smoothing.noisy_copies(x0, 0.25, smoothing.image_rng(0, 0), 2))
    assert run_fixed(net, first)["logits"].argmax(1).tolist() == check["integer_predictions"][0::3]
    assert set(report["certified_accuracy"]) == {"0", "0.25", "0.5", "0.75", "1"}
    assert "| 0.25 |" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 1000


def test_tiny_sigma_certifies_the_clean_prediction_of_both_base_classifiers(
    cifar_root, tiny_run, exported, tmp_path
):
    """Noise far below half a pixel level vanishes in the device's 8-bit rounding: every sample is
    the clean image, so nA = n and the prediction is the integer model's clean one. The float
    model sees the (unrounded) noise, which is too small to move a prediction here."""
    from rssnn import cifar, netx_file
    from rssnn.export.verify import model_predictor
    from rssnn.integer_forward import run_fixed
    from rssnn.train import checkpoint

    net, meta = netx_file.read(exported)
    images, _, _ = cifar.load_run_split(cifar_root, "cifar10", "val", meta["training_config"])
    clean_int = run_fixed(net, images[:4])["logits"].argmax(1)
    model = checkpoint.restore_model(checkpoint.load(tiny_run / "best.pt"))
    import torch

    clean_float = model_predictor(model)(torch.from_numpy(images[:4]))
    common = ["--data-root", str(cifar_root), "--sigma", "1e-5", "--n0", "5", "--n", "30", "--limit", "2",
              "--skip", "2", "--device", "cpu"]  # fmt: skip
    for flag, path, clean in (
        ("--net", exported, clean_int),
        ("--checkpoint", tiny_run / "best.pt", clean_float),
    ):
        out = tmp_path / f"{flag[2:]}.json"
        assert certify_main([flag, str(path), *common, "--out", str(out)]) == 0
        report = json.loads(out.read_text())
        assert [r["index"] for r in report["images"]] == [0, 2]
        assert [r["prediction"] for r in report["images"]] == clean[[0, 2]].tolist(), flag
        assert all(r["n_a"] == 30 for r in report["images"])
        assert report["images"][0]["p_a_lower"] == pytest.approx(0.001 ** (1 / 30))
    assert json.loads((tmp_path / "checkpoint.json").read_text())["base_classifier"] == "float"


def test_resume_keeps_finished_images_and_refuses_other_settings(cifar_root, exported, tmp_path, capsys):
    out = tmp_path / "r.json"
    common = ["--net", str(exported), "--data-root", str(cifar_root), "--n0", "4", "--n", "12"]
    assert certify_main([*common, "--sigma", "0.25", "--out", str(out), "--limit", "2"]) == 0
    first = json.loads(out.read_text())["images"]
    assert certify_main([*common, "--sigma", "0.25", "--out", str(out), "--limit", "3", "--resume"]) == 0
    rows = json.loads(out.read_text())["images"]
    assert rows[:2] == first and [r["index"] for r in rows] == [0, 1, 2]
    fresh = tmp_path / "fresh.json"
    assert certify_main([*common, "--sigma", "0.25", "--out", str(fresh), "--limit", "3"]) == 0
    assert json.loads(fresh.read_text())["images"][2]["counts"] == rows[2]["counts"]  # same noise per image
    capsys.readouterr()
    code = certify_main([*common, "--sigma", "0.5", "--out", str(out), "--limit", "3", "--resume"])
    assert_one_line_error(capsys, code, "other settings (sigma)")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sigma", "0"], "--sigma must be > 0"),
        (["--sigma", "-0.25"], "--sigma must be > 0"),
        (["--n0", "200", "--n", "100"], "--n0 (200) must not exceed --n (100)"),
        (["--alpha", "0"], "--alpha must be in (0, 1)"),
        (["--alpha", "1"], "--alpha must be in (0, 1)"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--radii", "0,x"], "--radii must be"),
    ],
)
def test_bad_flags_are_one_line_before_any_sampling(exported, tmp_path, capsys, flags, message):
    out = tmp_path / "bad.json"
    argv = ["--net", str(exported), "--sigma", "0.25", *flags, "--out", str(out)]
    assert_one_line_error(capsys, call_main(certify_main, argv), message)
    assert not out.exists()


def test_missing_files_and_a_lava_check_without_a_net_are_one_line(tiny_run, tmp_path, capsys):
    out = str(tmp_path / "bad.json")
    for argv, message in (
        (["--net", str(tmp_path / "none.net")], "--net '"),
        (["--checkpoint", str(tmp_path / "none.pt")], "does not exist"),
        (["--checkpoint", str(tiny_run / "best.pt"), "--lava-check", "3"], "it needs --net"),
    ):
        code = call_main(certify_main, [*argv, "--sigma", "0.25", "--out", out])
        assert_one_line_error(capsys, code, message)
    assert not Path(out).exists()


def test_the_deployed_certificate_needs_no_torch(cifar_root, exported, tmp_path):
    """``rssnn certify --net`` on a host with Lava and the numpy core only."""
    from test_lava_procs import TORCH_BLOCKER

    out = tmp_path / "notorch.json"
    argv = ["certify", "--net", str(exported), "--data-root", str(cifar_root), "--sigma", "0.25", "--n0", "4",
            "--n", "8", "--limit", "1", "--out", str(out)]  # fmt: skip
    code = TORCH_BLOCKER + (
        "from rssnn.commands.cli import main\n"
        f"rc = main({argv!r})\n"
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))\n"
    )
    res = run_cli("-c", code)
    assert res.returncode == 0 and res.stdout.strip().splitlines()[-1] == "0 []", res.stderr[-2000:]
    assert json.loads(out.read_text())["images"][0]["n"] == 8


@pytest.mark.parametrize("sigma", ["0.12", "0.25", "0.5", "64/255"])
def test_gaussian_training_takes_the_certificates_sigma(sigma):
    """``train/cifar.py --mode gaussian --sigma S`` at the sigmas certificates use (docs/certify.md);
    a whole tiny run at 0.12 and 0.5 was checked by hand (about 20 s each)."""
    from rssnn.perturbation import parse_fraction
    from rssnn.train.cifar import build_parser
    from rssnn.train.config import TrainConfig

    cfg = TrainConfig.from_args(build_parser().parse_args(["--mode", "gaussian", "--sigma", sigma]))
    assert (cfg.mode, cfg.sigma) == ("gaussian", parse_fraction(sigma))
