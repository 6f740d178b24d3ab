"""The attack registry and the spiking-network attacks (issues 27 and 28).

The strength tests use a real DLIF network built so that the training surrogate's gradient is
exactly zero where its potentials sit (|m - threshold| = 3 > the triangle's half-widths): every
gradient attack through the triangle (the old ensemble's widths 0.5, 1 and 2) leaves it
standing, and each new surrogate must find the perturbation that flips it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import assert_one_line_error, call_main
from torch import nn

from rssnn import perturbation
from rssnn.train import attack_kinds, data, objective, perturb, surrogates
from rssnn.train.attacks import AttackWrapper, craft, ensemble_members, parse_attacks, worst_case
from rssnn.train.neurons import DLIF, NeuronConfig

EPS = 8 / 255
PIXELS = 48  # [3, 4, 4] images


class FlatModel(nn.Module):
    """pixels [N, 3, 4, 4] -> logits [N, 3]. One LIF neuron, threshold 4, T = 1, current
    ``k (sum(x) - 24) + 7``: 7 at x = 0.5, where it fires (class 0) and stays 3 above threshold;
    lowering every pixel by eps lowers the current by 3.6 and silences it (class 1). A random
    start in the eps-ball moves the current by 0.3 (one standard deviation)."""

    def __init__(self):
        super().__init__()
        self.k = 3.6 / (PIXELS * EPS)
        self.neuron = DLIF(1, 1, NeuronConfig.lif(threshold=4.0, surrogate_width=1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = (self.k * (x.flatten(1).sum(1, keepdim=True) - PIXELS / 2) + 7.0).unsqueeze(-1)  # [N, 1, 1]
        rate = self.neuron(current).mean(-1)  # [N, 1]
        zero = torch.zeros_like(rate)
        return torch.cat([rate - 0.5, zero, zero - 1], 1)  # a third class for the DLR loss


@pytest.fixture(scope="module")
def flat():
    """8 images 3 above threshold (class 0), and 4 black ones far below it (class 1, out of
    reach: they give the potential the spread PDSG scales its width by)."""
    gen = torch.Generator().manual_seed(0)
    near = 0.5 + 0.002 * (torch.rand(8, 3, 4, 4, generator=gen) - 0.5)
    x = torch.cat([near, torch.zeros(4, 3, 4, 4)])
    y = torch.tensor([0] * 8 + [1] * 4)
    return FlatModel().eval(), x, y


def _accuracy(model, text, x, y):
    """Accuracy under the attack on the 8 images near threshold (the black ones must stay)."""
    spec = parse_attacks(text)[0]
    adv = craft(spec, AttackWrapper(model), x, y, torch.Generator().manual_seed(1))
    assert (adv - x).abs().max() <= spec.eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        ok = model(adv).argmax(1) == y
    assert bool(ok[8:].all())
    return float(ok[:8].float().mean())


def test_the_old_ensembles_gradient_members_leave_the_flat_model_standing(flat):
    model, x, y = flat
    with torch.no_grad():
        assert bool((model(x).argmax(1) == y).all())
    old = [m.text for m in attack_kinds.Ensemble("v1", attack_kinds.ENSEMBLE_V1).members(EPS)]
    for text in [t for t in old if not t.startswith("square")] + ["apgd-ce:8/255:20@tri0.25"]:
        assert _accuracy(model, text, x, y) == 1.0, text


@pytest.mark.parametrize(
    "text",
    [
        "pgd:8/255:10@exp0.5",  # SLAYER's exponential: never exactly flat
        "pgd:8/255:10@atan1",
        "pgd:8/255:10@rect4",
        "pgd:8/255:10@tri4",  # the family's wider triangle
        "sapgd:8/255:20@assg",  # ASSG sharpness from |u|: wide where u stays far
        "pgd:8/255:10@pdsg",
        "pgd:8/255:10@rga",  # rate gradients: the rate 1 sits inside their support
        "pgd:8/255:10@bptr",
        "apgd-ce:8/255:20@exp0.5",
    ],
)
def test_each_new_attack_breaks_what_the_training_surrogate_cannot(flat, text):
    model, x, y = flat
    assert _accuracy(model, text.split("@")[0] + "@tri1", x, y) == 1.0  # the same attack, own surrogate
    assert _accuracy(model, text, x, y) == 0.0


def test_surrogates_change_the_backward_only_and_are_removed_afterwards(flat):
    model, x, y = flat
    with torch.no_grad():
        clean = model(x)
    for name in perturbation.SURROGATES:
        sur = surrogates.make(name + ("0.5" if perturbation.SURROGATES[name] else ""))
        with torch.no_grad():
            torch.testing.assert_close(AttackWrapper(model, sur)(x), clean)
    assert model.neuron.spike_fn is None and "forward" not in vars(model.neuron)
    assert model.neuron.config.surrogate_width == 1.0


def test_exponential_and_atan_derivatives_match_their_formulas():
    u = torch.tensor([-2.0, -0.3, 0.0, 0.7])
    torch.testing.assert_close(surrogates.Exponential(0.5).derivative(u), torch.exp(-u.abs() / 0.5) / 1.0)
    # atan at w = 0.5: alpha = 4, peak 1 / w = 2 at u = 0; 4 / (2 (1 + (2 pi 0.7)^2)) at 0.7
    got = surrogates.Arctan(0.5).derivative(u)
    assert float(got[2]) == pytest.approx(2.0)
    assert float(got[3]) == pytest.approx(2.0 / (1 + (2 * torch.pi * 0.7) ** 2))


def test_unknown_kinds_and_surrogates_are_one_line_errors(capsys, tmp_path):
    from rssnn.train.evaluate import main

    for bad, msg in [
        ("blur:3", "unknown attack 'blur'"),
        ("pgd:8/255:10@sharp1", "unknown surrogate 'sharp1'"),
        ("square:8/255@tri1", "square takes no @SURROGATE"),
    ]:
        with pytest.raises(ValueError, match=msg) as exc:
            parse_attacks(bad)
        assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="unknown attack kind 'apgd-xx'") as exc:
        attack_kinds.kind("apgd-xx")  # craft no longer turns an unknown kind into APGD
    assert "\n" not in str(exc.value)
    code = call_main(main, ["--checkpoint", str(tmp_path / "none.pt"), "--attacks", "blur:3"])
    assert_one_line_error(capsys, code, "unknown attack 'blur'")
    with pytest.raises(ValueError, match="unknown mode natural"):
        attack_kinds.training_spec(SimpleNamespace(mode="natural"))


def test_the_grammar_and_the_code_name_the_same_kinds():
    assert set(attack_kinds.ATTACKS) == set(perturbation.KINDS)
    assert set(surrogates.SURROGATES) == set(perturbation.SURROGATES)
    for name, kind in perturbation.KINDS.items():
        assert isinstance(attack_kinds.ATTACKS[name], attack_kinds.Ensemble) == kind.ensemble
    for ens in ("ensemble", "ensemble-full"):
        members = ensemble_members(2 / 255, ens)
        assert members[-1].kind == "square" and all(m.eps == 2 / 255 for m in members)
    full = {m.surrogate for m in ensemble_members(2 / 255, "ensemble-full")}
    assert {"exp0.25", "rect2", "atan0.5", "tri0.25", "assg", "pdsg", "rga", "bptr"} <= full
    assert ensemble_members(8 / 255, "ensemble-full")[-1].steps == 5000


@pytest.mark.parametrize("mode", ["gaussian", "fgsm", "pgd"])
def test_training_perturbations_go_through_the_registry_unchanged(mode):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, y = torch.rand(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])
    cfg = SimpleNamespace(mode=mode, sigma=0.1, eps=4 / 255, pgd_steps=3, pgd_alpha=1 / 255)
    got = objective.perturbed_input(model, x, y, cfg, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    want = {
        "gaussian": lambda: perturb.gaussian(x, 0.1, gen),
        "fgsm": lambda: perturb.fgsm(model, x, y, 4 / 255, gen),
        "pgd": lambda: perturb.pgd(model, x, y, 4 / 255, 3, 1 / 255, gen),
    }[mode]()
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_deployed_robustness_counts_every_members_candidates_and_square_on_the_integer_model(cifar_root):
    """The integer model's robust set: correct on the clean image, on every member's candidate
    and under Square run on it; each image it loses is counted once, by the first member."""
    from rssnn.train.deployed import IntegerModel, lower_model
    from rssnn.train.models import build_model, calibrate_batchnorm

    split = data.load_split(cifar_root, "cifar10", "val", val_size=200, seed=0)
    x, y = split.images[:12].float() / 255, split.labels[:12]
    model = calibrate_batchnorm(build_model("cpu", 2, width=8), x)
    deployed = IntegerModel(lower_model(model))
    members = parse_attacks("fgsm:2/255,pgd:2/255:3@exp0.5,square:2/255:10")
    res = worst_case(model, members, x, y, torch.Generator().manual_seed(0), deployed, 10)
    clean_ok = deployed.predict(x) == y
    assert bool((res.robust_deployed <= clean_ok).all())
    assert int(clean_ok.sum()) - int(res.robust_deployed.sum()) == sum(res.broke_deployed.values())
    assert "square:2/255:10 on the integer model" in res.broke_deployed
    assert set(res.seconds) >= {m.text for m in members}
    assert [k for k in res.broken_by if k] and all(k in res.broke for k in res.broken_by if k)
