"""Residual networks: lowering, the file's graph section, Lava bit for bit with delays, the monitor."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import torch
from test_export import _calibrated, assert_float_equivalent, float_spikes_and_logits, widen_registers

from rssnn import netx_file
from rssnn.errors import UserError
from rssnn.export import lowering
from rssnn.export.verify import compare, run_lava
from rssnn.integer_forward import mppd_reference, run_fixed
from rssnn.train import data
from rssnn.train.models import MODEL_NAMES, ResNet, build_model
from rssnn.train.neurons import NeuronConfig


@pytest.fixture(scope="module")
def images(cifar_root):
    split = data.load_split(cifar_root, "cifar10", "val", val_size=200, seed=0)
    return split.images[:64], split.labels[:64], split.class_names


def _resnet(pixels, per_channel: bool, mix=(0.7, 0.9)) -> ResNet:
    """cpu-res at width 4: conv shortcuts (blocks 0, 2) and an identity one (block 1)."""
    model = build_model("cpu-res", 3, width=4, neuron=NeuronConfig(per_channel=per_channel))
    with torch.no_grad():
        for block in model.blocks:  # not the 0.5/0.5 start: the folding must carry the mixing
            block.mix.copy_(torch.tensor(mix))
    return _calibrated(model, pixels, per_channel)


def test_residual_stream_becomes_skip_synapses_with_the_right_delays(images):
    pixels, _, names = images
    net = lowering.lower(_resnet(pixels, False), names)
    skips = {layer.name: [(s.source, s.weight.shape[2:]) for s in layer.skips] for layer in net.layers}
    assert skips == {
        "blocks.0.neuron1": [],  # the stem, on the image
        "blocks.0.neuron2": [],
        "blocks.1.neuron1": [(0, (1, 1))],  # block 0's 1x1 conv shortcut of its first spikes
        "blocks.1.neuron2": [],
        "blocks.2.neuron1": [(0, (1, 1)), (1, (3, 3))],  # identity shortcut: block 0's terms again
        "blocks.2.neuron2": [],
        "neuron": [(4, (1, 1))],
        "readout": [],
    }
    assert [net.skip_delay(k, s) for k, layer in enumerate(net.layers) for s in layer.skips] == [1, 3, 2, 1]
    assert net.residual and net.layers[-1].in_shape == (16 * 8 * 8,)


def test_residual_lowering_is_exact_up_to_quantisation(images, monkeypatch):
    """Widened registers remove quantisation: the integer residual network (skips, folded BN,
    mixing, stem, pooled read-out) must then reproduce the float model layer by layer."""
    pixels, _, names = images
    model = _resnet(pixels, True)
    widen_registers(monkeypatch)
    net = lowering.lower(model, names)
    fixed = run_fixed(net, pixels)
    outs, float_logits = float_spikes_and_logits(model, pixels)
    assert len(outs) == len(fixed["spikes"]) == 7
    assert all(0.02 < out.mean() < 0.9 for out in outs)
    assert_float_equivalent(net, fixed, outs, float_logits)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-layer", "per-channel"])
def test_residual_file_round_trip_and_lava_are_bit_exact(images, tmp_path, per_channel):
    pixels, _, names = images
    net = lowering.lower(_resnet(pixels, per_channel), names)
    path = tmp_path / "res.net"
    assert netx_file.write(path, net, {}) == "rssnn-extension"
    back, meta = netx_file.read(path)
    assert "residual" in meta["features"]
    for a, b in zip(net.layers, back.layers, strict=True):
        assert a.name == b.name and np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        assert [s.source for s in a.skips] == [s.source for s in b.skips]
        for s, t in zip(a.skips, b.skips):
            assert np.array_equal(s.weight, t.weight) and (s.stride, s.padding) == (t.stride, t.padding)
        if a.spiking:
            assert np.array_equal(a.neuron.vth_mant, b.neuron.vth_mant)
            assert np.array_equal(a.neuron.v_decay, b.neuron.v_decay)
    sample = pixels[:4]
    report = compare(back, run_lava(path, back, sample), run_fixed(back, sample))
    assert all(v["reference_spikes"] > 0 for v in report["per_layer"].values()), report
    assert report["spike_mismatches"] == 0, report
    assert report["prediction_agreement"] == 1.0


def test_skips_without_their_delays_break_lava_agreement(images, tmp_path, monkeypatch):
    """The delays are load-bearing: with every skip delivered one hop late or early, Lava
    disagrees with the reference (so the bit-exact test above checks the timing)."""
    from rssnn.lowered import LoweredNet

    pixels, _, names = images
    net = lowering.lower(_resnet(pixels, False), names)
    path = tmp_path / "res.net"
    netx_file.write(path, net, {})
    monkeypatch.setattr(LoweredNet, "skip_delay", lambda self, target, skip: target - skip.source - 2)
    report = compare(net, run_lava(path, net, pixels[:2]), run_fixed(net, pixels[:2]))
    assert report["spike_mismatches"] > 0
    first_with_skip = "blocks.1.neuron1"
    assert report["per_layer"]["blocks.0.neuron2"]["mismatches"] == 0
    assert report["per_layer"][first_with_skip]["mismatches"] > 0


def test_stock_netx_refuses_a_residual_file_clearly(images, tmp_path):
    from lava.lib.dl.netx import hdf5 as netx_hdf5

    pixels, _, names = images
    path = tmp_path / "res.net"
    netx_file.write(path, lowering.lower(_resnet(pixels, False), names), {})
    with pytest.raises(ValueError, match="stock NetX cannot describe residual connections"):
        netx_hdf5.Network(net_config=str(path))


def test_damaged_skip_is_rejected(images, tmp_path):
    import h5py

    pixels, _, names = images
    path = tmp_path / "res.net"
    netx_file.write(path, lowering.lower(_resnet(pixels, False), names), {})
    with h5py.File(path, "r+") as f:
        for i in f["layer"]:
            if "skip" in f["layer"][i]:
                f["layer"][i]["skip/0/source"][()] = int(i)  # from itself: not an earlier layer
                break
    with pytest.raises(UserError, match="earlier spiking layer"):
        netx_file.read(path)


def test_monitor_equals_the_reference_mppd_on_a_residual_network(images, tmp_path):
    from rssnn import activity
    from rssnn.lava_procs import backends, runtime

    pixels, _, names = images
    path = tmp_path / "res.net"
    netx_file.write(path, lowering.lower(_resnet(pixels, True), names), {})
    net, _ = netx_file.read(path)
    clean = pixels[:3]
    noise = torch.randint(-8, 9, clean.shape, generator=torch.Generator().manual_seed(0))
    pert = (clean.int() + noise).clamp(0, 255).to(torch.uint8)
    result = runtime.run(runtime.build_pair(net, clean, pert), backends.choose("sim").run_config())
    reference = mppd_reference(net, clean, pert)
    assert result["predictions"][0].tolist() == reference["pred_clean"].tolist()
    assert result["predictions"][1].tolist() == reference["pred_pert"].tolist()
    mon = result["monitor"]
    assert mon["images"].tolist() == [3] * 7, "every spiking layer, those inside blocks included"
    for k, (mppd, mpp) in enumerate(zip(reference["mppd_per_step"], reference["mpp_per_step"])):
        assert min(mppd) > 0
        np.testing.assert_allclose(mon["mppd"][k], mppd, rtol=1e-9)
        np.testing.assert_allclose(mon["mpp"][k], mpp, rtol=1e-9)
    # Activity, skips' fan-out included: equal to the integer reference's counts.
    counts = activity.reference_counts(net, clean)
    assert mon["spikes"].tolist() == counts["spikes"].tolist()
    assert mon["synops"].tolist() == counts["synops"].tolist()
    assert multiprocessing.active_children() == []


def test_wrn16_lowers_to_thirteen_layers_with_nine_skips(images):
    pixels, _, names = images
    model = _calibrated(build_model("wrn16", 2), pixels[:8], False)
    net = lowering.lower(model, names)
    assert len(net.layers) == 14 and sum(len(layer.skips) for layer in net.layers) == 9
    assert net.layers[0].weight.shape == (16, 4, 3, 3) and net.layers[-2].out_shape == (256, 8, 8)


def test_an_identity_shortcut_around_the_stem_is_refused(images):
    pixels, _, names = images
    model = _calibrated(ResNet(8, [(8, 1)], 2), pixels[:8], False)
    with pytest.raises(UserError, match="identity shortcut around the stem"):
        lowering.lower(model, names)


def test_the_training_cli_offers_every_model():
    from rssnn.train.cifar import MODEL_CHOICES

    assert MODEL_CHOICES == MODEL_NAMES


def test_residual_runner_needs_neither_torch_nor_slayer(images, cifar_root, tmp_path):
    """The deployment path of a residual file (skips, delays, monitor) runs on Lava and the core."""
    import json

    from conftest import run_cli
    from test_lava_procs import TORCH_BLOCKER

    pixels, _, names = images
    path, out = tmp_path / "res.net", tmp_path / "report.json"
    netx_file.write(path, lowering.lower(_resnet(pixels, True), names), dict(dataset="cifar10"))
    args = ["--net", str(path), "--data-root", str(cifar_root), "--limit", "2", "--perturb", "gn:8/255"]
    code = TORCH_BLOCKER + (
        f"from rssnn.lava_procs.run import main\nrc = main({args + ['--out', str(out)]!r})\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'torch']\nsys.exit(rc)\n"
    )
    res = run_cli("-c", code)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["agreement_with_reference"] == 1.0 and len(report["mppd_per_layer"]) == 7
    np.testing.assert_allclose(report["mppd_per_layer"], report["mppd_per_layer_reference"], rtol=1e-9)


def test_a_switched_off_branch_is_dropped_with_a_warning_and_stays_bit_exact(images, tmp_path):
    """Learned mixing can switch a block's branch off (c1 ~ 1e-4 in a trained cpu-res): that
    term rounds to zero at 8 bits. The export warns, keeps the other terms, and Lava still
    matches the reference; only a layer whose every term vanishes is refused."""
    pixels, _, names = images
    model = _resnet(pixels, False)
    with torch.no_grad():
        model.blocks[1].mix[1] = 1e-5
    with pytest.warns(
        UserWarning, match="blocks.2.neuron1: its synapse from blocks.1.neuron2 rounds to zero"
    ):
        net = lowering.lower(model, names)
    layer = net.layers[4]
    assert not layer.weight.any() and all(s.weight.any() for s in layer.skips)
    path = tmp_path / "res.net"
    netx_file.write(path, net, {})
    back, _ = netx_file.read(path)
    report = compare(back, run_lava(path, back, pixels[:2]), run_fixed(back, pixels[:2]))
    assert report["spike_mismatches"] == 0 and report["per_layer"]["blocks.2.neuron1"]["reference_spikes"] > 0
