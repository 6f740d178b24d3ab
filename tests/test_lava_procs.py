"""Lava processes: DLIF vs an independent integer oracle, the on-device monitor, the runner, cleanup."""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, assert_one_line_error, call_main, run_cli
from test_export import PLANS, _calibrated

from rssnn import activity, dynamics, lava_guard, netx_file
from rssnn.errors import UserError
from rssnn.export import lowering
from rssnn.integer_forward import lif_sequence, mppd_reference
from rssnn.lava_procs import backends, runtime
from rssnn.neuron import LoihiCuba
from rssnn.train import data
from rssnn.train.models import SpikingNet
from rssnn.train.neurons import NeuronConfig


def _run_dlif(shape, a_in, params, steps, reset_interval, tag="fixed_pt", gain=None):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from rssnn.lava_procs.dlif.process import DLIF

    src = Source(data=a_in)
    neuron = DLIF(shape=shape, reset_interval=reset_interval, reset_offset=1, gain=gain, **params)
    sink = Sink(shape=shape, buffer=steps)
    src.s_out.connect(neuron.a_in)
    neuron.s_out.connect(sink.a_in)
    try:
        neuron.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag=tag))
        return sink.data.get()
    finally:
        neuron.stop()


def test_dlif_process_equals_an_independent_loihi_oracle_with_per_neuron_parameters():
    """The Lava DLIF process against tests/loihi_oracle.py (plain integers, none of rssnn's
    arithmetic), and the core's integer reference (lif_sequence) against the same oracle. The
    last neuron's input is worked out by hand so that rounding toward zero matters (random
    currents almost never make it: floor differs by 1/64 of a unit, on a negative membrane)."""
    from loihi_oracle import cuba_spikes

    rng = np.random.default_rng(0)
    c, steps, window = 6, 12, 4
    a_in = rng.integers(-20, 60, size=(c, steps))
    # a = -10: v = -640; next step -640 * 3686 / 4096 = -575.94 -> -575 toward zero (floor -576),
    # plus 73 << 6 = 4672: v = 4097 > 64 << 6 fires (floor: 4096 does not).
    a_in[5] = [-10, 73, 0, 0, -10, 73, 0, 0, 0, 0, 0, 0]
    params = dict(
        i_decay=np.array([4096, 4096, 3000, 2048, 4096, 4096]),
        v_decay=np.array([0, 41, 300, 2048, 4095, 410]),
        vth_mant=np.array([40, 60, 30, 25, 10, 64]),
        bias_mant=np.array([0, 1, -1, 2, 0, 0]),
    )
    lava = _run_dlif((c,), a_in.astype(np.int32), params, steps, window)
    # Lava's first step is 1: reset_offset 1 zeroes the state before columns 0, 4, 8.
    want = cuba_spikes(a_in, window=window, **params)
    assert want[5].tolist() == [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert np.array_equal(lava.astype(np.int64), want)
    neuron = LoihiCuba(params["i_decay"], params["v_decay"], params["vth_mant"])
    windows = a_in.reshape(c, steps // window, window).transpose(1, 0, 2)  # [images, C, T]
    reference = lif_sequence(windows, neuron, params["bias_mant"], window)
    assert np.array_equal(reference.transpose(1, 0, 2).reshape(c, steps), want)
    assert lava.sum() > 5


def test_dlif_float_model_applies_the_per_step_gain():
    steps = 4
    a_in = np.full((2, steps), 10.0)
    params = dict(i_decay=4096, v_decay=0, vth_mant=12, bias_mant=0)
    out = _run_dlif((2,), a_in, params, steps, steps, tag="floating_pt", gain=np.array([1.0, 0.0, 2.0, 1.0]))
    # window starts at step 2 (reset_offset 1): gains apply in order 1, 0, 2, 1 -> v 10, 10, 30
    assert out[0].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_float_lava_dlif_equals_the_training_dlif_on_real_currents(cifar_root):
    """Lava's floating-point DLIF and training's DLIF fire on the same steps (m >= threshold).

    Currents: a real CIFAR image through a random conv, 4 images x T = 4 steps as independent
    reset windows; per-neuron leaks and thresholds, some thresholds set to values the membrane
    reaches exactly, where a strict comparison (the old Lava model's m > vth) differs.
    """
    from rssnn.train.neurons import dlif_reference

    split = data.load_split(cifar_root, "cifar10", "val", val_size=200, seed=0)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        currents = conv(split.images[:4].float() / 255)[:, :, 10:13, 10:13].reshape(4, -1)  # [4, 36]
    c, window = currents.shape[1], 4
    # The process holds integer parameters (the file's units): currents in 1/64 units, rounded.
    x = torch.round(64 * currents.double()).T.unsqueeze(-1).repeat(1, 1, window)  # neuron, image, step
    x[:, :, 1] = torch.round(0.5 * x[:, :, 1])  # a time-varying input
    v_decay = np.arange(c) * 100 % 4096
    leak = torch.from_numpy(dynamics.v_decay_to_leak(v_decay.astype(np.float64)))
    threshold = torch.round(x[:, 0, 0].abs() * 0.9) + 1
    threshold[::5] = x[::5, 0, 0].clamp(min=1)  # the first step's membrane itself: fires only with >=
    params = dict(
        i_decay=np.full(c, 4096), v_decay=v_decay, vth_mant=threshold.numpy(), bias_mant=np.zeros(c)
    )
    a_in = x.reshape(c, -1).numpy()  # images back to back
    lava = _run_dlif((c,), a_in, params, a_in.shape[1], window, tag="floating_pt")
    for k in range(4):
        seg = x[:, k].reshape(1, c, window)
        want, _ = dlif_reference(
            seg, leak.view(1, c, 1).squeeze(-1), threshold, torch.zeros(c), window, 1.0, False
        )
        got = lava[:, k * window : (k + 1) * window].astype(bool)
        assert np.array_equal(got, want[0].bool().numpy()), k
    assert 5 < lava.sum() < lava.size - 5  # both firing and silent steps are compared


@pytest.fixture(scope="module")
def tiny_net(cifar_root, tmp_path_factory):
    split = data.load_split(cifar_root, "cifar10", "val", val_size=200, seed=0)
    px = split.images[:64]
    model = _calibrated(SpikingNet(PLANS["conv"], 3, neuron=NeuronConfig(per_channel=True)), px, True)
    path = tmp_path_factory.mktemp("net") / "tiny.net"
    netx_file.write(path, lowering.lower(model, split.class_names), {})
    return netx_file.read(path)[0], split


def test_monitor_equals_the_integer_reference_mppd_and_many_images_match_per_image_runs(tiny_net):
    net, split = tiny_net
    clean = split.images[:6]
    gen = torch.Generator().manual_seed(0)
    noise = torch.randint(-8, 9, clean.shape, generator=gen)
    pert = (clean.int() + noise).clamp(0, 255).to(torch.uint8)
    graph = runtime.build_pair(net, clean, pert)
    result = runtime.run(graph, backends.choose("sim").run_config())
    reference = mppd_reference(net, clean, pert)
    assert result["predictions"][0].tolist() == reference["pred_clean"].tolist()
    assert result["predictions"][1].tolist() == reference["pred_pert"].tolist()
    mon = result["monitor"]
    assert mon["images"].tolist() == [6] * len(net.layers[:-1])
    for k, (mppd, mpp) in enumerate(zip(reference["mppd_per_step"], reference["mpp_per_step"])):
        assert min(mppd) > 0
        np.testing.assert_allclose(mon["mppd"][k], mppd, rtol=1e-9)
        np.testing.assert_allclose(mon["mpp"][k], mpp, rtol=1e-9)
    # The same monitor counts the clean copy's activity: equal to the integer reference's.
    counts = activity.reference_counts(net, clean)
    assert mon["spikes"].tolist() == counts["spikes"].tolist() and counts["spikes"].min() > 0
    assert mon["synops"].tolist() == counts["synops"].tolist()
    assert mon["input_macs"] == counts["input_macs"] > 0
    # One image at a time through PyTorch gives the same answers as the pipelined Lava run.
    for i in range(6):
        alone = mppd_reference(net, clean[i : i + 1], pert[i : i + 1])
        assert alone["pred_clean"].item() == result["predictions"][0][i]
    assert multiprocessing.active_children() == []


def test_failing_run_leaves_no_child_process(tiny_net):
    net, split = tiny_net
    graph = runtime.build_pair(net, split.images[:2], split.images[:2])
    graph.clean.neurons[0].gain.init = np.full(net.num_steps, 2.0)  # fixed point refuses a gain
    with pytest.raises(UserError, match="a Lava process failed.*no fixed-point"):
        runtime.run(graph, backends.choose("sim").run_config())
    assert multiprocessing.active_children() == []


def test_watchdog_stops_a_hung_run():
    sys.path.insert(0, str(ROOT / "tests"))
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava_hang.process import Hang

    hang = Hang()
    sink = Sink(shape=(1,), buffer=4)
    hang.s_out.connect(sink.a_in)
    with pytest.raises(UserError, match="no progress for 3 s"):
        lava_guard.run_steps(hang, 4, Loihi2SimCfg(select_tag="fixed_pt"), chunk=4, watchdog_s=3)
    assert multiprocessing.active_children() == []


@pytest.fixture(scope="module")
def trained_export(tiny_run, tmp_path_factory):
    from rssnn.export import to_netx  # in-process: the export CLI's subprocess test is test_export's

    tmp = tmp_path_factory.mktemp("run")
    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(tmp / "m.net")]) == 0
    return tmp


@pytest.mark.parametrize("perturb", ["gaussian:8/255", "fgsm:8/255"])
def test_runner_end_to_end_on_three_images(cifar_root, trained_export, perturb):
    """fgsm through ``python -m lava_procs.run`` as users run it, gaussian in-process (its main)."""
    from rssnn.lava_procs.run import main

    out = trained_export / f"report-{perturb.split(':')[0]}.json"
    argv = ["--net", str(trained_export / "m.net"), "--data-root", str(cifar_root), "--limit", "3"]
    argv += ["--perturb", perturb, "--out", str(out)]
    if perturb.startswith("fgsm"):
        res = run_cli("-m", "lava_procs.run", *argv)
        assert res.returncode == 0, res.stderr
    else:
        assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["backend"].startswith("Loihi2SimCfg") and report["n_images"] == 3
    assert report["agreement_with_reference"] == 1.0
    assert len(report["mppd_per_layer"]) == 6
    np.testing.assert_allclose(report["mppd_per_layer"], report["mppd_per_layer_reference"], rtol=1e-6)
    assert all(v > 0 for v in report["mppd_per_layer"])
    assert out.with_suffix(".png").stat().st_size > 0
    for key in ("accuracy_clean", "accuracy_perturbed", "seconds_per_image"):
        assert key in report


TORCH_BLOCKER = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "torchattacks"):
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, NoTorch())
"""


def test_runner_needs_neither_torch_nor_slayer(cifar_root, trained_export):
    """A deployment host has Lava and the numpy core only: clean and Gaussian runs work there, and
    an attack (crafted on the float model) says in one line what is missing. One interpreter with
    torch unimportable runs all three (each a fresh start would add only start-up time)."""
    common = ["--net", str(trained_export / "m.net"), "--data-root", str(cifar_root), "--limit", "2"]
    runs = {p: common + ["--perturb", p, "--out", str(trained_export / f"notorch-{p[:2]}.json")]
            for p in ("gn:8/255", "clean", "fgsm:8/255")}  # fmt: skip
    code = TORCH_BLOCKER + (
        "import contextlib, io, json\n"
        "from rssnn.lava_procs.run import main\n"
        f"runs = {runs!r}\n"
        "rcs, err = {}, io.StringIO()\n"
        "for p, argv in runs.items():\n"
        "    with contextlib.redirect_stderr(err if p.startswith('fgsm') else sys.stderr):\n"
        "        rcs[p] = main(argv)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
        "print(json.dumps(dict(rcs=rcs, fgsm_err=err.getvalue(), loaded=loaded)))\n"
    )
    res = run_cli("-c", code)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["loaded"] == [] and got["rcs"] == {"gn:8/255": 0, "clean": 0, "fgsm:8/255": 2}, got
    for p in ("gn:8/255", "clean"):
        report = json.loads(Path(runs[p][-1]).read_text())
        assert report["n_images"] == 2 and report["agreement_with_reference"] == 1.0
        assert len(report["mppd_per_layer"]) == 6
    err = got["fgsm_err"].strip()
    assert "needs torch" in err and len(err.splitlines()) == 1, err


def test_runner_bad_input_fails_with_one_line(cifar_root, trained_export, tmp_path, capsys):
    """Error paths in-process (the CLI's own main; a subprocess per case adds only start-up)."""
    from rssnn.lava_procs.run import main

    foreign = tmp_path / "foreign.net"
    foreign.write_bytes(b"\x89HDF\r\n\x1a\nnot really")
    net = str(trained_export / "m.net")
    cases = [
        (["--net", str(foreign)], "not a readable HDF5 file"),
        (["--net", net, "--perturb", "blur:3"], "unknown attack"),
        (["--net", net, "--perturb", "pgd:8/255:0"], "steps must be >= 1"),
        (["--net", net, "--perturb", "ensemble:8/255"], "this command runs clean, gn, fgsm, pgd,"),
        (
            ["--net", net, "--perturb", "fgsm:8/255", "--checkpoint", str(tmp_path / "no.pt")],
            "pass --checkpoint",
        ),
        (["--net", net, "--backend", "loihi2"], "needs Intel's lava-loihi"),
    ]
    common = ["--data-root", str(cifar_root), "--limit", "2", "--out", str(tmp_path / "r.json")]
    for args, message in cases:
        assert_one_line_error(capsys, call_main(main, common + args), message)
        assert not (tmp_path / "r.json").exists()
