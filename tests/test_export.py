"""Export to NetX HDF5: lowering, the file round trip, Lava vs integer reference bit for bit."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from conftest import run_cli

from rssnn import dynamics, netx_file
from rssnn.errors import UserError
from rssnn.export import lowering, pooling
from rssnn.export.verify import compare, run_lava
from rssnn.integer_forward import float_equivalent_logits, run_fixed
from rssnn.train import data
from rssnn.train.models import SpikingNet, build_model, calibrate_batchnorm, spiking_layers
from rssnn.train.neurons import NeuronConfig

PLANS = {
    "conv": [("conv", 4, 2), ("conv", 6, 2), ("flatten",), ("dense", 12, "bn")],
    "dense": [("flatten",), ("dense", 24, "bn"), ("dense", 12)],
    "pool": [("conv", 4, 1), ("pool",), ("conv", 6, 1), ("pool",), ("flatten",), ("dense", 12)],
}


@pytest.fixture(scope="module")
def images(cifar_root):
    split = data.load_split(cifar_root, "cifar10", "val", val_size=200, seed=0)
    return split.images[:64], split.labels[:64], split.class_names


def _calibrated(model: torch.nn.Module, pixels: torch.Tensor, per_channel: bool, seed: int = 0):
    """Give BatchNorm real statistics (and per-channel neurons distinct values) so every layer
    fires on real images, as in a trained model."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, n in spiking_layers(model):
            if per_channel:
                n.leak.copy_(0.6 + 0.39 * torch.rand(n.leak.shape, generator=gen))
                n.threshold.copy_(0.3 + 0.7 * torch.rand(n.threshold.shape, generator=gen))
            else:
                n.leak.fill_(0.9)
                n.threshold.fill_(0.8)
    return calibrate_batchnorm(model, pixels.float() / 255)


def widen_registers(monkeypatch) -> None:
    """Registers far wider than Loihi's: quantisation vanishes, the folding alone is tested."""
    for attr, value in (
        ("WEIGHT_MANT_RANGE", (-(2**24), 2**24 - 2)),
        ("BIAS_MANT_RANGE", (-(2**30), 2**30)),
        ("STATE_MAX", 1 << 50),
        ("VTH_MANT_RANGE", (1, 2**40)),
    ):
        monkeypatch.setattr(dynamics, attr, value)


def float_spikes_and_logits(model: torch.nn.Module, pixels: torch.Tensor):
    """The float model's spikes per spiking layer (execution order) and its logits."""
    outs = []
    hooks = [n.register_forward_hook(lambda m, i, o: outs.append(o)) for _, n in spiking_layers(model)]
    try:
        with torch.no_grad():
            logits = model(pixels.float() / 255)
    finally:
        for h in hooks:
            h.remove()
    return outs, logits


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-layer", "per-channel"])
@pytest.mark.parametrize("plan", ["conv", "dense", "pool"])
def test_roundtrip_is_bit_exact_in_lava(images, tmp_path, plan, per_channel):
    pixels, _, names = images
    model = _calibrated(
        SpikingNet(PLANS[plan], 3, neuron=NeuronConfig(per_channel=per_channel)), pixels, per_channel
    )
    net = lowering.lower(model, names)
    path = tmp_path / "tiny.net"
    kind = netx_file.write(path, net, dict(dataset="cifar10"))
    assert kind == ("rssnn-extension" if per_channel else "stock")
    back, meta = netx_file.read(path)
    assert meta["num_steps"] == 3 and meta["class_names"] == names
    for a, b in zip(net.layers, back.layers):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        if a.spiking:
            assert np.array_equal(a.neuron.vth_mant, b.neuron.vth_mant)
            assert np.array_equal(a.neuron.v_decay, b.neuron.v_decay)
    sample = pixels[:4]
    fixed = run_fixed(back, sample)
    lava = run_lava(path, back, sample)
    report = compare(back, lava, fixed)
    assert all(v["reference_spikes"] > 0 for v in report["per_layer"].values()), report
    assert report["spike_mismatches"] == 0, report
    assert report["prediction_agreement"] == 1.0


def test_weights_thresholds_and_biases_fit_loihi_registers(images):
    pixels, _, names = images
    net = lowering.lower(_calibrated(build_model("cpu", 2, width=8), pixels, True), names)
    for layer in net.layers:
        assert layer.weight.min() >= -256 and layer.weight.max() <= 254
        assert (layer.weight % 2 == 0).all(), "Loihi 8-bit mixed-sign weights are even"
        assert np.abs(layer.bias).max() <= 4095
        if layer.spiking:
            n = layer.neuron
            assert n.vth_mant.min() >= 1 and n.vth_mant.max() <= 131071
            assert n.v_decay.min() >= 0 and n.v_decay.max() <= 4095
            assert (n.i_decay == 4096).all()
    first = net.layers[0]
    assert first.weight.shape == (8, 4, 3, 3) and not first.bias.any(), "bias rides channel 4"
    assert net.input_shape == (4, 32, 32)


def test_pool_folding_equals_pool_then_synapse():
    torch.manual_seed(0)
    s = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    ref = torch.nn.functional.conv2d(torch.nn.functional.avg_pool2d(s, 2), w, None, 1, 1)
    w2, stride, pad = pooling.pool_into_conv(w.numpy(), (1, 1), (1, 1))
    torch.testing.assert_close(torch.nn.functional.conv2d(s, torch.from_numpy(w2), None, stride, pad), ref)
    wd = torch.randn(7, 3 * 4 * 4, dtype=torch.float64)
    ref_d = torch.nn.functional.avg_pool2d(s, 2).reshape(2, -1) @ wd.T
    torch.testing.assert_close(
        s.reshape(2, -1) @ torch.from_numpy(pooling.pool_into_dense(wd.numpy(), 3, 4, 4)).T, ref_d
    )


@pytest.mark.parametrize("plan", ["conv", "pool"])
def test_lowering_is_exact_up_to_quantisation(images, monkeypatch, plan):
    """With registers widened far beyond Loihi's, quantisation vanishes and the integer network
    must reproduce the float model: this checks the folding (BatchNorm, normalisation, bias
    channel with its border effect, pooling) independently of the 8-bit precision."""
    pixels, _, names = images
    model = _calibrated(SpikingNet(PLANS[plan], 3), pixels, False)
    widen_registers(monkeypatch)
    net = lowering.lower(model, names)
    fixed = run_fixed(net, pixels)
    outs, float_logits = float_spikes_and_logits(model, pixels)
    assert 0 < outs[0].mean() < 1
    assert_float_equivalent(net, fixed, outs, float_logits)


def assert_float_equivalent(net, fixed, float_spikes, float_logits, min_identical: float = 0.9) -> None:
    """The integer network (widened registers) computes the float model.

    A membrane that lands on its threshold within float32 rounding may fire in one model and
    not the other, and the flip then propagates; such ties are rare. So: most images must give
    identical spikes in every layer, and on those the logits must agree to float32 precision
    (any folding error would show there, at every image)."""
    per_image = np.ones(len(float_logits), dtype=bool)
    for out, spikes in zip(float_spikes, fixed["spikes"], strict=True):
        same = out.bool().numpy() == spikes
        assert same.mean() > 0.99
        per_image &= same.reshape(len(same), -1).all(1)
    assert per_image.mean() >= min_identical, f"only {per_image.mean():.2f} of images spike identically"
    logits = float_equivalent_logits(net, fixed["logits"])[per_image]
    np.testing.assert_allclose(logits, float_logits.double().numpy()[per_image], atol=1e-4, rtol=1e-4)


def test_default_model_on_real_images_is_bit_exact(images, tmp_path):
    pixels, _, names = images
    model = _calibrated(build_model("cpu", 2), pixels, False)
    net = lowering.lower(model, names)
    path = tmp_path / "cpu.net"
    netx_file.write(path, net, {})
    report = compare(net, run_lava(path, net, pixels[:3]), run_fixed(net, pixels[:3]))
    assert report["spike_mismatches"] == 0 and report["prediction_agreement"] == 1.0
    assert sum(v["lava_spikes"] for v in report["per_layer"].values()) > 1000


def test_unexportable_models_are_refused(images):
    _, _, names = images
    for name in ("cpu", "cpu-res"):
        with pytest.raises(UserError, match="input gain"):
            lowering.lower(build_model(name, 2, width=4, neuron=NeuronConfig(learn_gain=True)), names)


def test_foreign_and_truncated_files_are_rejected(tmp_path, images):
    pixels, _, names = images
    foreign = tmp_path / "foreign.net"
    with h5py.File(foreign, "w") as f:  # a plain NetX-style file from another exporter
        f.create_group("layer/0").create_dataset("shape", data=np.array([3, 32, 32]))
    with pytest.raises(UserError, match="not an rssnn-lava NetX file"):
        netx_file.read(foreign)
    good = tmp_path / "good.net"
    netx_file.write(
        good, lowering.lower(_calibrated(build_model("cpu", 2, width=4), pixels, False), names), {}
    )
    truncated = tmp_path / "truncated.net"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        netx_file.read(truncated)
    with pytest.raises(UserError, match="does not exist"):
        netx_file.read(tmp_path / "missing.net")


def test_cli_exports_verifies_and_reports(cifar_root, tiny_run, tmp_path):
    run = tiny_run
    out, rep = tmp_path / "m.net", tmp_path / "report.json"
    res = run_cli(
        "export/to_netx.py",
        "--checkpoint",
        str(run / "best.pt"),
        "--out",
        str(out),
        "--verify",
        "6",
        "--data-root",
        str(cifar_root),
        "--verify-report",
        str(rep),
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(rep.read_text())
    assert report["n_images"] == 6 and report["spike_mismatches"] == 0
    assert report["prediction_agreement"] == 1.0
    for key in ("float_accuracy", "fixed_point_accuracy", "per_layer", "accuracy_drop_pp"):
        assert key in report
    assert report["quantisation"]["images"] == 100  # --accuracy-images default, val has 100
    meta = netx_file.read_metadata(out)
    assert meta["source_checkpoint_sha256"] and meta["num_steps"] == 2
    assert meta["training_config"]["train_limit"] == 200
    # Bad input (one line, exit 2, nothing left): test_safety, in-process.
