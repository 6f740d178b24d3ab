"""DLIF neuron: hand-written reference, fused kernel vs autograd, finite differences, fixed point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rssnn import dynamics
from rssnn.errors import UserError
from rssnn.train.neurons import DLIF, NeuronConfig, dlif_reference


def _naive_dlif(x, leak, threshold, current_leak, steps):
    """Scalar Python loops over every neuron: the neuron's definition, written out by hand."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1, x.shape[-1])
    out = np.zeros((n, c, flat.shape[2], steps))
    for i in range(n):
        for ch in range(c):
            for k in range(flat.shape[2]):
                u = h = 0.0
                for t in range(steps):
                    u = current_leak[ch] * u + float(flat[i, ch, k, 0 if flat.shape[-1] == 1 else t])
                    m = leak[ch] * h + u
                    s = 1.0 if m >= threshold[ch] else 0.0
                    h = m * (1 - s)
                    out[i, ch, k, t] = s
    return out.reshape(*x.shape[:-1], steps)


def _layer(channels, steps, per_channel, backend, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = NeuronConfig(per_channel=per_channel, backend=backend, **kw)
    n = DLIF(channels, steps, cfg)
    with torch.no_grad():
        n.leak.copy_(torch.rand_like(n.leak) * 0.5 + 0.5)
        n.threshold.copy_(torch.rand_like(n.threshold) + 0.5)
    return n


@pytest.mark.parametrize("backend", ["fused", "torch"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (3, 7)], ids=["conv", "dense"])
@pytest.mark.parametrize("constant", [False, True])
def test_forward_matches_handwritten_reference(backend, per_channel, shape, constant):
    steps = 6
    neuron = _layer(shape[1], steps, per_channel, backend, current_leak=0.3)
    x = torch.randn(*shape, 1 if constant else steps) * 1.5
    with torch.no_grad():
        got = neuron(x).numpy()
    leak, th, cl = (p.detach().expand(shape[1]).numpy() for p in neuron.clamped())
    want = _naive_dlif(x.numpy(), leak, th, cl, steps)
    assert got.shape == (*shape, steps)
    assert 0.05 < got.mean() < 0.95, "input should make some but not all neurons fire"
    assert np.array_equal(got, want)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("constant", [False, True])
def test_fused_kernel_gradients_equal_autograd(per_channel, detach_reset, constant):
    steps, c = 5, 4
    x = (torch.randn(3, c, 4, 5, 1 if constant else steps) * 1.5).requires_grad_()
    weights = torch.randn(3, c, 4, 5, steps)
    grads = {}
    for backend in ("fused", "torch"):
        neuron = _layer(
            c,
            steps,
            per_channel,
            backend,
            current_leak=0.4,
            learn_current_leak=True,
            detach_reset=detach_reset,
        )
        (neuron(x) * weights).sum().backward()
        grads[backend] = [x.grad.clone(), neuron.leak.grad, neuron.threshold.grad, neuron.current_leak.grad]
        x.grad = None
    for fused, ref in zip(grads["fused"], grads["torch"]):
        assert fused.abs().sum() > 0
        torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-4)


class _SmoothSpike(torch.autograd.Function):
    """A C1 ramp whose exact derivative is the triangle surrogate: FD-checkable."""

    @staticmethod
    def forward(ctx, x, width):
        ctx.save_for_backward(x)
        ctx.width = width
        w = width
        up = (x + w) ** 2 / (2 * w * w)
        down = 1 - (w - x) ** 2 / (2 * w * w)
        return torch.where(x < -w, 0 * x, torch.where(x < 0, up, torch.where(x < w, down, 1 + 0 * x)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        w = ctx.width
        return grad * torch.clamp(w - x.abs(), min=0) / (w * w), None


@pytest.mark.parametrize("param", ["leak", "threshold", "current_leak"])
def test_parameter_gradients_match_finite_differences(param):
    """The surrogate chain rule through leak, threshold and reset, checked by central FD."""
    torch.manual_seed(3)
    steps = 6
    x = torch.randn(2, 3, 4, steps, dtype=torch.float64) * 1.2
    weights = torch.randn(2, 3, 4, steps, dtype=torch.float64)
    params = dict(
        leak=torch.tensor([0.9, 0.7, 0.95], dtype=torch.float64).view(3, 1),
        threshold=torch.tensor([1.0, 0.8, 1.2], dtype=torch.float64).view(3, 1),
        current_leak=torch.tensor([0.2, 0.0, 0.5], dtype=torch.float64).view(3, 1),
    )

    def loss(p):
        args = dict(params, **{param: p})
        s, _ = dlif_reference(
            x,
            args["leak"],
            args["threshold"],
            args["current_leak"],
            steps,
            1.0,
            False,
            spike_fn=_SmoothSpike.apply,
        )
        return (s * weights).sum()

    p = params[param].clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(p), p)
    h = 1e-6
    fd = torch.zeros_like(p)
    for i in range(3):
        e = torch.zeros_like(p)
        e[i] = h
        fd[i] = (loss(p.detach() + e) - loss(p.detach() - e)) / (2 * h)
    assert fd.abs().max() > 1e-3
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7)


def test_fused_leak_gradient_matches_finite_differences_on_membrane():
    """The production kernel itself: d(sum c * m)/d(leak) vs FD, where no spike flips.

    With the reset detached, a loss on the membrane is an ordinary smooth function of the leak
    between spike flips, so its FD is the true derivative: this catches a wrong sign or scale
    (lava-dl's built-in decay gradient is -4096x off, lava-dl #383).
    """
    steps, c, h = 8, 3, 2e-4
    neuron = DLIF(c, steps, NeuronConfig(per_channel=True, backend="fused", detach_reset=True))
    neuron.record = True
    base = torch.tensor([0.9, 0.8, 0.95])

    def membrane_loss(x, coef, leak):
        with torch.no_grad():
            neuron.leak.copy_(leak)
        spikes = neuron(x)
        return (neuron.recorded_membrane.double() * coef).sum(), spikes

    checked = 0
    for seed in range(10):  # inputs where no spike flips within +-h (almost all of them)
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(2, c, 3, 3, steps, generator=gen) * 0.6
        coef = torch.randn(2, c, 3, 3, steps, generator=gen, dtype=torch.float64)
        loss, spikes = membrane_loss(x, coef, base)
        neuron.leak.grad = None
        loss.backward()
        grad = neuron.leak.grad.clone()
        for i in range(c):
            e = torch.zeros(c)
            e[i] = h
            lp, sp = membrane_loss(x, coef, base + e)
            lm, sm = membrane_loss(x, coef, base - e)
            if not (torch.equal(sp, spikes) and torch.equal(sm, spikes)):
                break
            fd = (lp.item() - lm.item()) / (2 * h)
            assert abs(fd) > 0.1
            assert grad[i].item() == pytest.approx(fd, rel=1e-2)
        else:
            assert spikes.sum() > 0
            checked += 1
    assert checked >= 3


def test_vanilla_lif_learns_nothing_and_dlif_parameters_stay_in_loihi_range():
    lif = DLIF(4, 3, NeuronConfig.lif())
    assert not lif.leak.requires_grad and not lif.threshold.requires_grad
    assert lif.leak.item() == pytest.approx(0.99) and lif.threshold.item() == 1.0
    dlif = DLIF(4, 3, NeuronConfig(per_channel=True))
    with torch.no_grad():
        dlif.leak.copy_(torch.tensor([1.5, -0.2, 0.5, 0.0]))
        dlif.threshold.copy_(torch.tensor([-1.0, 0.0, 1e3, 2.0]))
    dlif.constrain_()
    assert dlif.leak.min() >= dynamics.LEAK_RANGE[0] and dlif.leak.max() <= 1.0
    assert dlif.threshold.min() > 0
    params = dlif.loihi_params(weight_step=1 / 64)
    assert params["vDecay"].min() >= 0 and params["vDecay"].max() <= 4095
    assert params["vThMant"].min() >= 1


def test_gain_option_scales_input_per_step():
    steps = 4
    neuron = DLIF(2, steps, NeuronConfig(learn_gain=True, backend="fused"))
    assert neuron.gain.shape == (steps,)
    with torch.no_grad():
        neuron.gain.copy_(torch.tensor([0.0, 0.0, 1.0, 1.0]))
    x = torch.full((1, 2, 1), 1.2)  # constant input above threshold, inside the surrogate
    spikes = neuron(x)
    assert spikes[0, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    spikes.sum().backward()
    assert neuron.gain.grad is not None and neuron.gain.grad.abs().sum() > 0
    with pytest.raises(UserError, match="no Loihi mapping"):
        neuron.loihi_params(1 / 64)


def test_fixed_point_equals_float_on_integer_valued_inputs():
    """Loihi integer mode vs float mode where every product is exact: identical spikes.

    Weight step 1/64: a float current I = a_in / 64 is u = a_in << 6 in Loihi units (x4096).
    With leaks that are powers of two (lam = 1/2, 3/4, 1) and currents that are multiples of
    2**-k, the float arithmetic is exact and rounding toward zero never triggers.
    """
    steps, c = 10, 3
    torch.manual_seed(5)
    a_in = torch.randint(-8, 40, (4, c, 5, 5, steps)) * 64  # multiples of 64: decays stay exact
    neuron = DLIF(c, steps, NeuronConfig(per_channel=True))
    with torch.no_grad():
        neuron.leak.copy_(torch.tensor([0.5, 0.75, 1.0]))
        neuron.threshold.copy_(torch.tensor([10.0, 20.0, 40.0]) + 1 / 64)
    step = 1 / 64
    params = neuron.loihi_params(step)
    assert params["vDecay"].tolist() == [2048, 1024, 0]
    assert params["vThMant"].tolist() == [641, 1281, 2561]
    fixed = neuron.forward_fixed(a_in, params)
    with torch.no_grad():
        float_spikes = neuron(a_in.double().float() * step)
    assert fixed.sum() > 10
    # Loihi fires on v > th (strict), the float model on m >= th (the reference): thresholds
    # off the input grid by 1/64 keep m == th from occurring, the only place they may differ.
    assert torch.equal(fixed, float_spikes)


def test_fixed_point_rounding_toward_zero_with_arbitrary_leak():
    """With a non-dyadic leak the fixed-point mode is Loihi's, not the float one: against an
    independent plain-integer Loihi oracle (tests/loihi_oracle.py) on random currents, and on an
    input worked out by hand where rounding toward zero and floor give other spikes (random
    currents almost never do: the two differ by 1/64 of a unit, on a negative membrane only)."""
    from loihi_oracle import cuba_spikes

    steps = 8
    neuron = DLIF(2, steps, NeuronConfig(per_channel=True, leak=0.9))
    params = neuron.loihi_params(1 / 64)
    assert params["vDecay"].tolist() == [410, 410]  # round(0.1 * 4096): non-dyadic
    a_in = torch.randint(-10, 45, (3, 2, steps))
    fixed = neuron.forward_fixed(a_in, params).numpy()
    for i in range(3):
        want = cuba_spikes(a_in[i].numpy(), params["iDecay"], params["vDecay"], params["vThMant"])
        assert np.array_equal(fixed[i], want), i
    assert fixed.sum() > 5
    # a = -10: v = -10 << 6 = -640. Next step v decays to -640 * 3686 / 4096 = -575.94: -575
    # toward zero (floor: -576), and a = 73 adds 73 << 6 = 4672, so v = 4097 > vThMant << 6 = 4096
    # fires (floor: 4096 does not). After the reset nothing more arrives.
    edge = torch.tensor([[[-10, 73, 0, 0, 0, 0, 0, 0]] * 2])
    assert neuron.forward_fixed(edge, params)[0].tolist() == [[0, 1, 0, 0, 0, 0, 0, 0]] * 2


def test_lif_and_dlif_are_one_neuron_whose_float_and_integer_forms_agree():
    """LIF and DLIF are parameter sets of one float neuron; its Loihi integers are the values
    worked out by hand from Loihi's units (vDecay = round((1 - leak) 4096), vThMant =
    round(threshold / weight step)), and the float form steps like the plain-integer oracle."""
    from loihi_oracle import cuba_spikes

    lif = DLIF(4, 3, NeuronConfig.lif()).float_form()
    np.testing.assert_allclose(lif.leak, 0.99)
    np.testing.assert_allclose(lif.threshold, 1.0)
    layer = DLIF(6, 3, NeuronConfig(per_channel=True))
    with torch.no_grad():
        layer.leak.copy_(torch.linspace(0.6, 1.0, 6))
        layer.threshold.copy_(torch.linspace(0.4, 2.0, 6))
    step = 1 / 64
    params = layer.loihi_params(step)  # what the exporter writes
    # (1 - [0.6, 0.68, 0.76, 0.84, 0.92, 1.0]) * 4096 = 1638.4, 1310.72, 983.04, 655.36, 327.68, 0
    assert params["vDecay"].tolist() == [1638, 1311, 983, 655, 328, 0]
    # [0.4, 0.72, 1.04, 1.36, 1.68, 2.0] * 64 = 25.6, 46.08, 66.56, 87.04, 107.52, 128
    assert params["vThMant"].tolist() == [26, 46, 67, 87, 108, 128]
    assert params["iDecay"].tolist() == [4096] * 6  # no current memory: u = x
    lif_params = DLIF(4, 3, NeuronConfig.lif()).loihi_params(step)
    assert lif_params["vDecay"].tolist() == [41] * 4 and lif_params["vThMant"].tolist() == [64] * 4
    # The float neuron of those integers, written out (m = leak h + x, fire on m >= threshold,
    # hard reset), against the integer oracle on integer currents a (float a * step).
    leak = 1 - params["vDecay"] / 4096
    threshold = params["vThMant"] * step
    a_in = np.random.default_rng(0).integers(-10, 80, size=(300, 6, 16))
    h = np.zeros((300, 6))
    float_spikes = np.zeros(a_in.shape)
    for t in range(a_in.shape[-1]):
        m = leak * h + a_in[..., t] * step
        float_spikes[..., t] = m >= threshold
        h = np.where(float_spikes[..., t] > 0, 0.0, m)
    loihi = np.stack([cuba_spikes(a, params["iDecay"], params["vDecay"], params["vThMant"]) for a in a_in])
    # ... and the project's own forms agree with both
    back = layer.float_form().to_loihi(step).to_float(step)
    np.testing.assert_allclose(back.leak, leak)
    np.testing.assert_allclose(back.threshold, threshold)
    assert float_spikes.mean() > 0.05  # the neurons do fire
    same = float_spikes == loihi
    assert same.mean() > 0.98, same.mean()  # differences: rounding toward zero, > vs >=
