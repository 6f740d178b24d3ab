"""Stock lava-dl NetX files through the fast runner (issue 31): lava-dl's tutorial files and files
written by lava-dl's own ``export_hdf5``, run on synthetic inputs, equal stock lava-dl
(``netx.hdf5.Network``, Lava's own models, fixed point) and the integer reference bit for bit;
the one network monitor's activity counts equal the reference's; MPPD under input noise."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import assert_one_line_error, call_main

from rssnn import lavadl

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "loihi2"
CUBA = dict(threshold=0.5, current_decay=0.25, voltage_decay=0.05, requires_grad=False)


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} not found (lava-dl's tutorial files, shared/data/loihi2)")
    return path


def _export(blocks, path: Path, x) -> Path:
    """lava-dl's own export: a forward pass fixes the shapes, then each block's export_hdf5."""
    import torch

    with torch.no_grad():
        for block in blocks:
            x = block(x)
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """CUBA (input neurons, conv, flatten, dense with per-output delays), CUBA with a pool, and
    sigma-delta (input, conv, flatten, dense, sigma output) files from slayer blocks."""
    import torch
    from lava.lib.dl import slayer

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("lavadl")
    cuba = slayer.block.cuba
    blocks = [
        cuba.Input(CUBA),
        cuba.Conv(CUBA, 2, 4, 3, stride=1, padding=1, weight_scale=3),
        cuba.Conv(CUBA, 4, 6, 3, stride=2, padding=0, weight_scale=3),
        cuba.Flatten(),
        cuba.Dense(CUBA, 24, 12, weight_scale=3, delay=True),
        cuba.Dense(CUBA, 12, 5, weight_scale=3),
    ]
    blocks[4].delay.delay.data = torch.randint(0, 4, blocks[4].delay.delay.shape).float()
    files = dict(cuba=_export(blocks, root / "cuba.net", torch.rand(1, 2, 6, 6, 4)))
    pool = [
        cuba.Input(CUBA),
        cuba.Conv(CUBA, 2, 4, 3, padding=1, weight_scale=3),
        cuba.Pool(CUBA, 2, weight_scale=3),
        cuba.Flatten(),
        cuba.Dense(CUBA, 36, 3, weight_scale=3),
    ]
    files["pool"] = _export(pool, root / "pool.net", torch.rand(1, 2, 6, 6, 4))
    sd = dict(threshold=0.1, activation=torch.nn.functional.relu, requires_grad=False)
    sdn = slayer.block.sigma_delta
    sblocks = [
        sdn.Input(sd),
        sdn.Conv(sd, 2, 4, 3, stride=2, weight_scale=3),
        sdn.Flatten(),
        sdn.Dense(sd, 36, 6, weight_scale=3),
        sdn.Output(sd, 6, 2, weight_scale=3),
    ]
    files["sdnn"] = _export(sblocks, root / "sdnn.net", torch.rand(1, 2, 8, 8, 4))
    return files


def _flat(net: lavadl.LavaDlNet, window: np.ndarray) -> np.ndarray:
    """Reference windows [N, T, *shape] -> [N, T, F] in Lava's flat (x, y, c) order."""
    return window.transpose(0, 1, 4, 3, 2).reshape(*window.shape[:2], -1) if window.ndim == 5 else window


def _ours_stock_reference(path: Path, x: np.ndarray, steps: int, stock: bool = True) -> dict:
    """Run inputs x through the fast runner (raster recorded, monitor on), stock lava-dl and the
    integer reference; returns all three and the reference counts."""
    from rssnn.lava_guard import cleanup_on_exit
    from rssnn.lava_procs import backends
    from rssnn.lava_procs import lavadl as graph_mod

    net = lavadl.read(path)
    inputs = lavadl.prepare_inputs(x, net)
    lavadl.set_input_bits(net, inputs)
    reset = steps if net.model == "cuba" else 0
    with cleanup_on_exit():
        graph = graph_mod.build_graph(net, inputs.data, steps, reset, readout="output", record=True)
        ours = graph_mod.run(graph, backends.choose("sim").run_config())
        theirs = graph_mod.run_stock(net, inputs.data, steps, reset) if stock else None
    last = len(net.layers) - 1
    ref = lavadl.reference_run(net, inputs.data, steps, reset)["outputs"]
    window = _flat(net, lavadl.windows(net, last, ref[last], len(inputs), steps))
    return dict(
        net=net,
        ours=ours,
        stock=theirs,
        reference=window,
        reference_outputs=ref,
        counts=lavadl.reference_counts(net, inputs, steps, reset),
    )


def _assert_counts(result: dict) -> None:
    mon, counts = result["ours"]["monitor"], result["counts"]
    np.testing.assert_array_equal(mon["spikes"], counts["spikes"])
    np.testing.assert_array_equal(mon["synops"], counts["synops"])
    assert int(mon["input_macs"]) == int(counts["input_macs"])


def test_mnist_net_equals_stock_lava_dl_with_activity_counted():
    """lava-dl's MNIST tutorial file (784-128-64-10 CUBA, no input layer), binary spike input
    repeated over T = 16 with resets every 16 steps: every output spike equal to stock lava-dl
    and the reference; the monitor's counts equal the reference's and are not trivial."""
    rng = np.random.default_rng(0)
    x = (rng.random((3, 784)) < 0.3).astype(np.uint8)
    result = _ours_stock_reference(_shared("mnist.net"), x, steps=16)
    raster = result["ours"]["raster"]
    np.testing.assert_array_equal(raster, result["stock"]["raster"])
    np.testing.assert_array_equal(raster, result["reference"])
    assert raster.sum() > 10  # the output layer fires
    _assert_counts(result)
    assert np.all(result["counts"]["spikes"] > 0) and result["counts"]["input_macs"] > 0


def test_pilotnet_sdnn_equals_stock_lava_dl_with_activity_counted():
    """lava-dl's PilotNet sigma-delta file (input delta encoder, 5 convs, 4 denses, sigma output):
    graded frames, the same output values as stock lava-dl and the reference at every step; the
    monitor counts the sigma-delta messages of every layer as the reference does."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (2, 3, 66, 200))
    result = _ours_stock_reference(_shared("pilotnet_sdnn.net"), x, steps=1)
    raster = result["ours"]["raster"]
    np.testing.assert_array_equal(raster, result["stock"]["raster"])
    np.testing.assert_array_equal(raster, result["reference"])
    assert np.any(raster != 0)
    _assert_counts(result)
    assert np.all(result["counts"]["spikes"][:-1] > 0)


def test_lava_dl_exported_sigma_delta_equals_stock(exported):
    rng = np.random.default_rng(2)
    result = _ours_stock_reference(exported["sdnn"], rng.integers(0, 64, (2, 2, 8, 8, 3)), steps=3)
    np.testing.assert_array_equal(result["ours"]["raster"], result["stock"]["raster"])
    np.testing.assert_array_equal(result["ours"]["raster"], result["reference"])
    _assert_counts(result)


def test_lava_dl_pool_layer_runs_as_depthwise_conv(exported):
    """NetX cannot load ``pool``; the runner maps it to the per-channel convolution lava-dl's
    pool synapse computes. Lava equals the reference; the pool layer's fan-out is its kernel."""
    rng = np.random.default_rng(3)
    result = _ours_stock_reference(exported["pool"], rng.integers(0, 32, (2, 2, 6, 6)), steps=6, stock=False)
    np.testing.assert_array_equal(result["ours"]["raster"], result["reference"])
    _assert_counts(result)
    net = result["net"]
    pool = next(layer for layer in net.layers if layer.groups > 1)
    assert pool.weight.shape[:2] == (4, 1)
    fan = lavadl.synapse_fan_out(pool)  # 2x2 stride 2: every input drives exactly one synapse
    np.testing.assert_array_equal(fan, (pool.weight[0, 0] != 0).all() * np.ones_like(fan))
    assert result["counts"]["spikes"][2] > 0


def test_cli_round_trip_of_exported_cuba_with_mppd_under_noise(exported, tmp_path, capsys):
    """lava-dl's exporter -> rssnn run --inputs (graded frames, npz with labels) --perturb gn:
    the read-out equals stock lava-dl and the reference, the activity the reference's, and the
    monitor's MPPD of every layer the reference's; noise makes it positive."""
    from rssnn.lava_procs.run import main

    rng = np.random.default_rng(4)
    np.savez(tmp_path / "x.npz", x=rng.integers(0, 64, (4, 2, 6, 6)), y=np.arange(4) % 5)
    out = tmp_path / "r.json"
    argv = ["--net", str(exported["cuba"]), "--inputs", str(tmp_path / "x.npz"), "--steps", "8"]
    assert call_main(main, argv + ["--perturb", "gn:0.2", "--compare-stock", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["readout_equals_integer_reference"] and report["activity_equals_integer_reference"]
    assert report["stock_lava_dl"]["readout_equal"] is True
    assert report["accuracy"] is not None and len(report["predictions"]) == 4
    device, ref = np.array(report["mppd_per_layer"]), np.array(report["mppd_per_layer_reference"])
    np.testing.assert_allclose(device, ref, rtol=1e-9)
    assert np.all(device > 0)
    assert sum(report["readout_values"][0]) > 0


@pytest.mark.parametrize(
    "inputs, message",
    [
        (np.full((2, 784), np.nan), "NaN"),
        (np.zeros((2, 785)), "does not fit the network's input (784,)"),
        (np.full((2, 784), 0.5), "fractional"),
    ],
)
def test_bad_inputs_refused_in_one_line(tmp_path, capsys, inputs, message):
    from rssnn.lava_procs.run import main

    np.save(tmp_path / "x.npy", inputs)
    code = call_main(main, ["--net", str(_shared("mnist.net")), "--inputs", str(tmp_path / "x.npy")])
    assert_one_line_error(capsys, code, message)


def test_neuron_without_model_and_sigma_delta_mppd_refused(exported, tmp_path, capsys):
    from rssnn.lava_procs.run import main

    path = tmp_path / "rf.net"
    path.write_bytes(exported["sdnn"].read_bytes())
    with h5py.File(path, "r+") as f:
        del f["layer/3/neuron/type"]
        f["layer/3/neuron"].create_dataset("type", data=b"RF")
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 8, 8)))
    code = call_main(main, ["--net", str(path), "--inputs", str(tmp_path / "x.npy")])
    assert_one_line_error(capsys, code, "neuron type 'RF' has no model")
    argv = ["--net", str(exported["sdnn"]), "--inputs", str(tmp_path / "x.npy"), "--perturb", "gn:0.1"]
    assert_one_line_error(capsys, call_main(main, argv), "not defined for sigma-delta neurons")
    code = call_main(main, ["--net", str(exported["sdnn"])])
    assert_one_line_error(capsys, code, "pass its inputs with --inputs")


def test_reader_follows_netx_and_inputs_accept_rasters():
    """mnist.net read as NetX reads it; rasters keep their time axis; binary inputs are spikes."""
    net = lavadl.read(_shared("mnist.net"))
    assert net.input_shape == (784,) and not net.has_input_neurons
    assert [layer.out_shape for layer in net.layers] == [(128,), (64,), (10,)]
    assert int(net.layers[0].neuron.cuba.i_decay[0]) == 410 and net.first_step(0) == 2
    raster = lavadl.prepare_inputs(np.zeros((2, 784, 5)), net)
    assert raster.data.shape == (2, 5, 784) and raster.message_bits == 0
    graded = lavadl.prepare_inputs(np.full((2, 28, 28), 200), net)
    assert graded.data.shape == (2, 1, 784) and graded.message_bits == 8
    stream = lavadl.stream(raster.data + np.arange(5)[None, :, None], 5, 12)
    assert stream[:5, 0].tolist() == [0, 1, 2, 3, 4] and not stream[10:].any()


def test_cost_counts_activity_of_a_lava_dl_network(exported, tmp_path):
    """rssnn cost --images N --inputs X.npy on a sigma-delta file from lava-dl's exporter: the
    monitor's per-inference activity equals the reference's, and it becomes an energy range."""
    from rssnn import activity
    from rssnn.commands.cost import main

    x = np.random.default_rng(5).integers(0, 64, (3, 2, 8, 8))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "cost.json"
    argv = ["--net", str(exported["sdnn"]), "--images", "2", "--inputs", str(tmp_path / "x.npy")]
    assert call_main(main, argv + ["--steps", "4", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    net = lavadl.read(exported["sdnn"])
    inputs = lavadl.prepare_inputs(x, net, limit=2)
    lavadl.set_input_bits(net, inputs)
    counts = lavadl.reference_counts(net, inputs, 4, 0)
    expected = activity.summarise(type("N", (), dict(num_steps=4, layers=net.layers)), counts, 2)
    assert report["activity"]["images"] == 2
    assert report["synops_per_inference"] == pytest.approx(expected["synops_per_inference"])
    assert report["spikes_per_inference"] == pytest.approx(expected["spikes_per_inference"])
    assert report["spikes_per_inference"] > 0
    lo, hi = report["energy_mj"]
    assert 0 < lo < hi


def test_voltage_readout_of_rasters_equals_the_reference(exported, tmp_path):
    """--readout voltage on graded rasters with a trailing time axis (T taken from them): the last
    layer's CUBA voltage at each window's last step, read through its probe, as the reference."""
    from rssnn.lava_procs.run import main

    rng = np.random.default_rng(6)
    np.save(tmp_path / "x.npy", rng.integers(0, 64, (2, 2, 6, 6, 5)).astype(np.int16))
    out = tmp_path / "v.json"
    argv = ["--net", str(exported["cuba"]), "--inputs", str(tmp_path / "x.npy"), "--readout", "voltage"]
    assert call_main(main, argv + ["--perturb", "clean", "--no-monitor", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["steps"] == 5 and report["input_message_bits"] == 6
    assert report["readout_equals_integer_reference"]
    assert np.any(np.array(report["readout_values"]) != 0)


def test_watchdog_stops_a_lava_dl_run_and_leaves_no_worker(exported, tmp_path, capsys):
    """The lava-dl path runs under the same watchdog (lava #227, #236: silent hangs): a run that
    makes no progress within --watchdog stops with one line and no Lava worker survives."""
    import multiprocessing

    from rssnn.lava_procs.run import main

    np.save(tmp_path / "x.npy", np.ones((1, 2, 8, 8), np.int64))
    argv = ["--net", str(exported["sdnn"]), "--inputs", str(tmp_path / "x.npy"), "--perturb", "clean"]
    code = call_main(main, argv + ["--watchdog", "0.01", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()  # the progress bar, then one error line
    assert code == 2 and "made no progress for 0.01 s" in err[-1] and "Traceback" not in "".join(err)
    assert multiprocessing.active_children() == []
    assert not (tmp_path / "r.json").exists()
