"""Evaluation: the attack wrapper, torchattacks vs our training attacks, parsing, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli

from rssnn.train import data, perturb
from rssnn.train.attacks import AttackSpec, AttackWrapper, craft, parse_attacks
from rssnn.train.evaluate import masking_checks
from rssnn.train.models import build_model, calibrate_batchnorm


@pytest.fixture(scope="module")
def batch(cifar_root):
    split = data.load_split(cifar_root, "cifar10", "val", val_size=200, seed=0)
    return split.images[:16].float() / 255, split.labels[:16]


@pytest.fixture(scope="module")
def model(batch):
    torch.manual_seed(0)
    m = build_model("cpu", 2, width=8)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    m.train()
    for _ in range(30):  # a little real training, so logits depend on the input
        loss = torch.nn.functional.cross_entropy(m(batch[0]), batch[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def test_wrapper_gives_the_models_logits_and_keeps_eval_mode(model, batch):
    wrapper = AttackWrapper(model)
    wrapper.train()
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(wrapper(batch[0]), model(batch[0]))


@pytest.mark.parametrize("text", ["fgsm:8/255", "pgd:8/255:5", "apgd-ce:8/255:5"])
def test_attacks_raise_the_loss_inside_the_eps_ball_and_box(model, batch, text):
    x, y = batch
    spec = parse_attacks(text)[0]
    adv = craft(spec, AttackWrapper(model), x, y, torch.Generator().manual_seed(0))
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= spec.eps + 1e-6
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy
        assert ce(model(adv), y) > ce(model(x), y) + 0.01


def test_our_training_attacks_match_torchattacks(model, batch):
    import torchattacks

    x, y = batch
    eps = 4 / 255
    wrapper = AttackWrapper(model)
    ours = perturb.fgsm(model, x, y, eps, jitter=0.0)
    torch.testing.assert_close(ours, torchattacks.FGSM(wrapper, eps=eps)(x, y), atol=1e-6, rtol=0)
    ours = perturb.pgd(model, x, y, eps, 3, 1 / 255, random_start=False)
    theirs = torchattacks.PGD(wrapper, eps=eps, alpha=1 / 255, steps=3, random_start=False)(x, y)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_attack_surrogate_width_changes_the_gradient_only_during_the_attack(model, batch):
    x, y = batch
    a = craft(AttackSpec("fgsm", 8 / 255, 1, text="fgsm"), AttackWrapper(model), x, y, torch.Generator())
    b = craft(
        AttackSpec("fgsm", 8 / 255, 1, text="fgsm"), AttackWrapper(model, 0.25), x, y, torch.Generator()
    )
    assert not torch.equal(a, b)
    assert all(n.config.surrogate_width == 1.0 for n in model.modules() if hasattr(n, "config"))


def test_attack_list_parser():
    specs = parse_attacks("clean, gn:8/255 ,fgsm:8/255,pgd:8/255:7,pgd:16/255:7:2/255,apgd-dlr:8/255")
    assert [s.kind for s in specs] == ["clean", "gn", "fgsm", "pgd", "pgd", "apgd-dlr"]
    assert specs[3].alpha == pytest.approx(2.55 / 255) and specs[3].steps == 7
    assert specs[4].alpha == pytest.approx(2 / 255) and specs[5].steps == 10
    for bad, msg in [
        ("blur:3", "unknown attack"),
        ("pgd:8/255", "EPS:STEPS"),
        ("fgsm:eight", "malformed"),
        ("pgd:8/255:0", "steps must be"),
        ("gn:-1/255", "budget"),
        ("", "no attack"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_attacks(bad)


def test_masking_checks_flag_rising_accuracy():
    def row(attack, kind, eps, steps, acc, transfer=False, alpha=2 / 255, **extra):
        return dict(
            attack=attack,
            kind=kind,
            eps=eps,
            steps=steps,
            alpha=alpha,
            accuracy=acc,
            transfer=transfer,
            **extra,
        )

    rows = [
        row("pgd7", "pgd", 8 / 255, 7, 0.30),
        row("pgd20", "pgd", 8 / 255, 20, 0.40),
        row("pgd40 other step", "pgd", 8 / 255, 40, 0.50, alpha=0.5 / 255),  # compared with nothing
        row("pgd64", "pgd", 64 / 255, 10, 0.20),
        row("pgd7 (transfer)", "pgd", 8 / 255, 7, 0.10, True),
        row("ensemble:8/255", "ensemble", 8 / 255, 0, 0.05, n=1000, members_broke={"square:8/255:1000": 40}),
    ]
    checks = {c["name"]: c["passed"] for c in masking_checks(rows, 1000)}
    assert not checks["PGD accuracy does not rise with steps (eps 8/255, step 2/255)"]
    # a lone step size has nothing to be compared with (other step sizes are not comparable)
    assert "PGD accuracy does not rise with steps (eps 8/255, step 0.5/255)" not in checks
    assert not checks["PGD at eps 64/255 drives accuracy near zero"]
    assert not checks["white-box pgd7 at least as strong as transfer"]
    assert not checks["gradient-free Square finds little that gradient attacks missed (ensemble:8/255)"]
    good = [
        row("pgd7", "pgd", 8 / 255, 7, 0.30),
        row("pgd20", "pgd", 8 / 255, 20, 0.25),
        row("pgd64", "pgd", 64 / 255, 10, 0.0),
        row("ensemble:8/255", "ensemble", 8 / 255, 0, 0.05, n=1000, members_broke={"square:8/255:1000": 3}),
    ]
    assert all(c["passed"] for c in masking_checks(good, 1000))


def test_worst_case_ensemble_is_per_image_minimum_over_its_members(cifar_root):
    """The ensemble's robust set is what survives every member, and Square runs last."""
    import torch

    from rssnn.train.attacks import ensemble_members, with_square_queries, worst_case

    torch.manual_seed(0)
    split = data.load_split(cifar_root, "cifar10", "val", val_size=200, seed=0)
    x = split.images[:24].float().div(255)
    y = split.labels[:24]
    model = calibrate_batchnorm(build_model("cpu", 2, width=8), x)
    members = ensemble_members(2 / 255)
    labels = [m.text for m in members]
    assert members[-1].kind == "square" and {"assg", "rga", "pdsg", "tri0.25"} <= {
        m.surrogate for m in members
    }
    # a cheap version of the same plan: short schedules, 20 Square queries
    cheap = [
        parse_attacks(f"{m.kind}:2/255:3" + (f"@{m.surrogate}" if m.surrogate else ""))[0]
        if m.kind in ("apgd-ce", "apgd-dlr", "sapgd")
        else m
        for m in with_square_queries(members, 20)
    ]
    res = worst_case(model, cheap, x, y, torch.Generator().manual_seed(0))
    assert set(res.broke) == {m.text for m in cheap} and len(labels) == len(cheap)
    with torch.no_grad():
        clean_ok = model(x).argmax(1) == y
        adv_ok = model(res.x_adv).argmax(1) == y
    assert (res.x_adv - x).abs().max() <= 2 / 255 + 1e-6 and res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    # every image counted as broken is broken by the returned example; robust ones are correct
    torch.testing.assert_close(adv_ok, res.robust)
    assert int(clean_ok.sum()) - int(res.robust.sum()) == sum(res.broke.values())
    assert res.robust_deployed is None


def test_cli_reports_rows_checks_mppd_and_plots(cifar_root, tiny_run, tmp_path):
    run = tiny_run
    out = tmp_path / "eval" / "results.json"
    res = run_cli(
        "train/evaluate.py",
        "--checkpoint",
        str(run / "best.pt"),
        "--data-root",
        str(cifar_root),
        "--limit",
        "20",
        "--attacks",
        "clean,gn:8/255,fgsm:8/255,pgd:8/255:3,pgd:8/255:6",
        "--out",
        str(out),
        "--quiet",
        "--transfer-checkpoint",
        str(run / "best.pt"),
    )
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text())
    attacks = [r["attack"] for r in result["rows"]]
    assert attacks[:6] == [
        "clean",
        "gn:8/255",
        "fgsm:8/255",
        "pgd:8/255:3",
        "pgd:8/255:6",
        "pgd:64/255:10:16/255",
    ]
    assert any(r["transfer"] for r in result["rows"])
    for r in result["rows"]:
        assert {"attack", "eps", "steps", "accuracy", "n"} <= set(r) and r["n"] == 20
    pgd = [r for r in result["rows"] if r["attack"] == "pgd:8/255:3"][0]
    assert len(pgd["mppd"]) == 6 and all(v > 0 for v in pgd["mppd"].values())
    assert all(v >= 0 for v in pgd["mpp_true"].values())
    assert result["checks"] and (out.parent / "results.md").read_text().startswith("| attack")
    for png in ("acc_vs_eps.png", "acc_vs_sigma.png", "mppd_per_layer.png"):
        assert (out.parent / png).stat().st_size > 0


def test_one_pgd_string_means_one_step_size_in_evaluate_and_the_lava_runner():
    """'pgd:8/255:7' used to mean step 2.55/255 in evaluate and 2.86/255 in lava_procs.run.

    Both commands' parsers against hand-computed values: the reference's step sizes at 8/255
    (7 steps 2.55/255, 10 steps 2/255, 20 steps 1/255) scaled with eps, else 2.5 eps / steps."""
    from rssnn.lava_procs.run import parse_perturbation

    expected = {  # text: (kind, eps, steps, alpha), by hand
        "pgd:8/255:7": ("pgd", 8 / 255, 7, 2.55 / 255),
        "pgd:4/255:10": ("pgd", 4 / 255, 10, 1 / 255),  # 2/255 at 8/255, halved
        "pgd:2/255:5": ("pgd", 2 / 255, 5, 1 / 255),  # 2.5 * (2/255) / 5
        "pgd:8/255:20:2/255": ("pgd", 8 / 255, 20, 2 / 255),
        "pgd:16/255:20": ("pgd", 16 / 255, 20, 2 / 255),  # 1/255 at 8/255, doubled
        "fgsm:4/255": ("fgsm", 4 / 255, 1, 0.0),
        "gn:8/255": ("gn", 8 / 255, 0, 0.0),
        "gaussian:8/255": ("gn", 8 / 255, 0, 0.0),
        "none": ("clean", 0.0, 0, 0.0),
    }
    for text, (kind, eps, steps, alpha) in expected.items():
        for spec in (parse_perturbation(text), parse_attacks(text)[0]):
            assert (spec.kind, spec.steps) == (kind, steps), text
            assert spec.eps == pytest.approx(eps, rel=1e-12) and spec.alpha == pytest.approx(alpha, rel=1e-12)
