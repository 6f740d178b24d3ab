"""MPPD recursion, MS-MPPD loss, recording hooks and the Theorem 3.1 gain bound."""

from __future__ import annotations

import pytest
import torch

from rssnn.neuron import REFERENCE_LEAK
from rssnn.train import mppd
from rssnn.train.models import ConvUnit, DenseUnit, build_model, calibrate_batchnorm, spiking_layers
from rssnn.train.neurons import NeuronConfig


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
    from rssnn.train.metrics import mppd_profile

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


def _last_unit(model):
    """The conv/dense unit that feeds the last spiking layer (the MS-MPPD layer)."""
    return next(m for m in model.modules() if isinstance(m, ConvUnit | DenseUnit) and m.neuron is not None
                and m.neuron is spiking_layers(model)[-1][1])  # fmt: skip


def _ms_mppd_of(model, x, x_pert, leak_mode="detached", units="threshold"):
    layers = mppd.select_layers(model, "last")
    neuron = layers[0][1]
    with mppd.recording(layers):
        model(x)
        clean = neuron.recorded_current
        logits = model(x_pert)
        pert = neuron.recorded_current
    return mppd.ms_mppd(clean, pert, *mppd.recursion_params(neuron, leak_mode, units)), logits


@pytest.fixture()
def active_model():
    torch.manual_seed(4)
    x = torch.rand(16, 3, 32, 32)
    model = calibrate_batchnorm(build_model("cpu", 4, width=4, neuron=NeuronConfig()), x)
    x_pert = (x + 8 / 255 * torch.randn_like(x)).clamp(0, 1)
    return model, x, x_pert


@pytest.mark.parametrize("c", [0.5, 4.0])
def test_ms_mppd_is_invariant_to_rescaling_current_and_threshold(active_model, c):
    """Scaling a layer's current and threshold by c changes no spike; the loss must not move.

    Powers of two keep the float arithmetic exact, so spikes match bit for bit.
    """
    model, x, x_pert = active_model
    with torch.no_grad():
        loss, logits = _ms_mppd_of(model, x, x_pert)
        raw, _ = _ms_mppd_of(model, x, x_pert, units="raw")
        unit = _last_unit(model)
        assert unit.norm is not None, "the cpu model's MS-MPPD layer has BatchNorm"
        unit.norm.weight.mul_(c)
        unit.norm.bias.mul_(c)
        unit.neuron.threshold.mul_(c)
        loss_c, logits_c = _ms_mppd_of(model, x, x_pert)
        raw_c, _ = _ms_mppd_of(model, x, x_pert, units="raw")
    torch.testing.assert_close(logits_c, logits, rtol=0, atol=0)  # the network is unchanged
    assert loss.item() > 0
    torch.testing.assert_close(loss_c, loss, rtol=1e-6, atol=0)
    # The reference's raw measure would be satisfied by rescaling alone: it moves by c^2.
    torch.testing.assert_close(raw_c, raw * c * c, rtol=1e-5, atol=0)


def test_ms_mppd_gradient_ignores_the_leak_by_default_and_reaches_the_weights(active_model):
    model, x, x_pert = active_model
    neuron = spiking_layers(model)[-1][1]
    first_conv = next(m for m in model.modules() if isinstance(m, ConvUnit))
    for mode, leak_grad_expected in (("detached", False), ("fixed", False), ("learned", True)):
        model.zero_grad(set_to_none=True)
        loss, _ = _ms_mppd_of(model, x, x_pert, leak_mode=mode)
        loss.backward()
        leak_grad = 0.0 if neuron.leak.grad is None else neuron.leak.grad.abs().sum().item()
        assert (leak_grad > 0) == leak_grad_expected, (mode, leak_grad)
        th_grad = neuron.threshold.grad
        assert th_grad is None or th_grad.abs().sum().item() == 0, "threshold enters detached"
        # The regulariser is connected: its gradient flows back to the first layer's weights.
        assert first_conv.synapse.weight.grad.abs().sum().item() > 0, mode


def test_fixed_leak_mode_uses_the_reference_leak(active_model):
    model, _, _ = active_model
    neuron = spiking_layers(model)[-1][1]
    with torch.no_grad():
        neuron.leak.fill_(0.5)
    leak, unit = mppd.recursion_params(neuron, "fixed")
    assert torch.all(leak == REFERENCE_LEAK) and not leak.requires_grad
    leak, _ = mppd.recursion_params(neuron, "detached")
    assert torch.all(leak == 0.5) and not leak.requires_grad
    torch.testing.assert_close(unit, neuron.clamped()[1].detach())
    with pytest.raises(ValueError, match="unknown MPPD leak mode"):
        mppd.recursion_params(neuron, "bogus")
