"""MPPD recursion, MS-MPPD loss, recording hooks and the Theorem 3.1 gain bound."""

from __future__ import annotations

import pytest
import torch

from train import mppd
from train.models import ConvUnit, DenseUnit, build_model, calibrate_batchnorm, spiking_layers
from train.neurons import NeuronConfig


def test_eps_recursion_equals_closed_form():
    torch.manual_seed(0)
    delta = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    leak = torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64)
    eps = mppd.mppd_sequence(delta, leak)
    for t in range(7):
        closed = sum(leak.view(1, 3, 1) ** (t - k) * delta[..., k] for k in range(t + 1))
        torch.testing.assert_close(eps[..., t], closed)


def test_ms_mppd_is_mean_square_and_detaches_clean_side():
    torch.manual_seed(1)
    clean = torch.randn(4, 5, 6, requires_grad=True)
    pert = torch.randn(4, 5, 6, requires_grad=True)
    leak = torch.tensor([0.8])
    loss = mppd.ms_mppd(clean, pert, leak)
    expected = mppd.mppd_sequence(clean.detach() - pert.detach(), leak).pow(2).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert clean.grad is None, "clean currents must be detached (reference code)"
    assert pert.grad.abs().sum() > 0
    per_step = mppd.mppd_per_step(clean.detach(), pert.detach(), leak)
    torch.testing.assert_close(per_step.mean(), expected)


def test_recording_captures_last_or_all_layers():
    model = build_model("cpu", 3, width=4)
    x = torch.rand(2, 3, 32, 32)
    last = mppd.select_layers(model, "last")
    every = mppd.select_layers(model, "all")
    assert len(last) == 1 and last[0][0] == spiking_layers(model)[-1][0]
    assert len(every) == len(spiking_layers(model)) == 6
    with mppd.recording(every):
        model(x)
        shapes = [m.recorded_current.shape for _, m in every]
    assert shapes[0] == (2, 4, 32, 32, 3) and shapes[-1] == (2, 256, 3)
    assert all(m.recorded_current is None and not m.record for _, m in every)
    with pytest.raises(ValueError, match="unknown spiking layers"):
        mppd.select_layers(model, ["nope"])


def test_identical_inputs_give_zero_mppd_and_noise_gives_positive():
    torch.manual_seed(2)
    x = torch.rand(8, 3, 32, 32)
    model = calibrate_batchnorm(build_model("cpu", 2, width=4), x)  # every layer active
    from train.engine import mppd_profile

    same = mppd_profile(model, x, sigma=0.0)
    noisy = mppd_profile(model, x, sigma=8 / 255)
    assert all(max(v) == 0 for v in same.values())
    assert all(max(v) > 0 for v in noisy.values())


def _dense_matrix(fn, in_shape):
    n = int(torch.tensor(in_shape).prod())
    basis = torch.eye(n).reshape(n, *in_shape)
    return fn(basis).reshape(n, -1).T


def test_spectral_norm_of_conv_unit_matches_svd():
    torch.manual_seed(3)
    unit = ConvUnit(2, 3, 1, NeuronConfig(), stride=2)
    with torch.no_grad():
        unit.norm.weight.copy_(torch.tensor([0.5, 2.0, 1.0]))
        unit.norm.running_var.copy_(torch.tensor([1.0, 4.0, 0.25]))
    unit.eval()
    shape = (2, 6, 6)

    def linear(x):  # conv + inference BN scale, without the BN shift
        y = unit.synapse(x.unsqueeze(-1))[..., 0]
        scale = unit.norm.weight / torch.sqrt(unit.norm.running_var + unit.norm.eps)
        return y * scale.view(1, -1, 1, 1)

    with torch.no_grad():
        exact = torch.linalg.matrix_norm(_dense_matrix(linear, shape), ord=2).item()
    assert mppd.spectral_norm(unit, shape, iterations=200) == pytest.approx(exact, rel=1e-3)
    dense = DenseUnit(5, 4, 1, NeuronConfig())
    exact_dense = torch.linalg.matrix_norm(dense.synapse.weight.detach().reshape(4, 5), ord=2)
    assert mppd.spectral_norm(dense, (5,)) == pytest.approx(exact_dense.item(), rel=1e-5)


def test_gain_bounds_cover_every_spiking_unit_and_follow_theorem():
    model = build_model("cpu", 2, width=4)
    bounds = mppd.gain_bounds(model)
    assert len(bounds) == 6
    name, unit = next((n, m) for n, m in model.named_modules() if isinstance(m, ConvUnit))
    leak = unit.neuron.clamped()[0].max().item()
    shape = (3, 32, 32)
    expected = (1 / (1 - leak)) ** 0.5 * mppd.spectral_norm(unit, shape)
    assert bounds[name] == pytest.approx(expected, rel=1e-6)
