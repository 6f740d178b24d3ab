"""The Loihi 2 placement estimate: checked against Intel's compiler on real lava-dl files, run on
our own exports, and refusing what it cannot place with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
from conftest import ROOT, assert_one_line_error, call_main

from rssnn import loihi2

SHARED = ROOT.parent / "shared" / "data" / "loihi2"


@pytest.fixture(scope="module")
def shared_files() -> Path:
    if not (SHARED / "mnist.net").is_file():
        pytest.skip(f"lava-dl's tutorial NetX files not found at {SHARED}")
    return SHARED


def _cores(report: dict) -> dict[int, int]:
    return {layer["index"]: layer["cores"] for layer in report["layers"] if layer["cores"]}


def test_mnist_placement_equals_intels_compiler_layer_by_layer(shared_files):
    report = loihi2.place(shared_files / "mnist.net")
    assert _cores(report) == loihi2.COMPILER_PLACEMENTS["mnist.net"]
    assert report["total_cores"] == 5 and report["chips"] == 1
    first = report["layers"][0]  # 784 -> 128: the one layer its synaptic memory spreads over cores
    assert first["binding"] == "synaptic memory" and first["nonzero_weights"] == 90135


def test_pilotnet_placement_is_within_the_stated_miss_of_intels_compiler(shared_files):
    """docs/loihi2.md: 50 cores against the compiler's 61 (-18 %); conv 2 and dense 100 miss by
    more than a core or 20 %. This guards that stated gap; a better model should tighten it."""
    report = loihi2.place(shared_files / "pilotnet_sdnn.net")
    truth = loihi2.COMPILER_PLACEMENTS["pilotnet_sdnn.net"]
    ours = _cores(report)
    assert ours.keys() == truth.keys()  # the graded input layer is the host's, as on the chip
    total = sum(truth.values())
    assert abs(report["total_cores"] - total) <= 0.2 * total
    misses = [i for i in truth if abs(ours[i] - truth[i]) > max(1, 0.2 * truth[i])]
    assert len(misses) <= 2, (ours, truth)


def test_rssnn_cost_reports_an_exported_model(tiny_run, tmp_path, capsys):
    from rssnn import cost
    from rssnn.export import to_netx

    net = tmp_path / "m.net"
    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(net)]) == 0
    out = tmp_path / "report" / "cost.json"
    assert call_main(cost.main, ["--net", str(net), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["total_cores"] == sum(layer["cores"] for layer in report["layers"]) >= 6
    assert report["chips"] == 1
    names = [layer["name"] for layer in report["layers"]]
    assert names[0] == "0:input" and names[-1].endswith("readout")
    for layer in report["layers"][1:]:
        assert layer["neurons"] > 0 and layer["cores"] >= 1 and layer["fan_in"] > 0
    assert "neurocores" in out.with_suffix(".md").read_text() and out.with_suffix(".png").stat().st_size
    assert "energy_mj" not in report  # placement alone counts nothing

    # With images: the network monitor's counts in Lava, equal to the integer reference's.
    from rssnn import activity, cifar, netx_file

    argv = [
        "--net",
        str(net),
        "--out",
        str(out),
        "--images",
        "4",
        "--data-root",
        str(ROOT.parent / "shared" / "data" / "cifar10"),
    ]
    assert call_main(cost.main, argv) == 0
    report = json.loads(out.read_text())
    lowered, meta = netx_file.read(net)
    pixels = cifar.load_run_split(None, "cifar10", "val", meta["training_config"])[0][:4]
    counts = activity.reference_counts(lowered, pixels)
    spikes = [layer["spikes_per_inference"] * 4 for layer in report["activity"]["layers"]]
    assert spikes == counts["spikes"].tolist() and sum(spikes) > 0
    assert report["synops_per_inference"] == (counts["synops"].sum() + counts["input_macs"]) / 4
    assert report["spikes_per_inference"] == counts["spikes"].sum() / 4
    low, high = report["energy_mj"]
    assert 0 < low < high and report["latency_ms"] > 0
    for layer in report["activity"]["layers"]:
        assert 0 <= layer["sparsity"] <= 1
    assert "Energy per inference" in out.with_suffix(".md").read_text()
    # --images without data: one line, and the report written above is left as it was.
    before = out.read_bytes()
    argv = ["--net", str(net), "--out", str(out), "--images", "2", "--data-root", str(tmp_path / "nodata")]
    assert_one_line_error(capsys, call_main(cost.main, argv), "no cifar10 data")
    assert out.read_bytes() == before


def test_energy_constants_carry_sources_and_bracket_the_pilotnet_measurement():
    """Every constant has a source and a kind; PilotNet CUBA's measured 1.09 mJ dynamic energy
    would need between 46 and 160 million synaptic operations per inference under the range."""
    from rssnn import energy

    for c in energy.ENERGY.values():
        assert c.source and c.kind
    assert energy.ENERGY["hala_point_pj_per_op"].value == pytest.approx(6.84, abs=0.01)
    high_ops, low_ops = energy.pilotnet_implied_synops()
    assert high_ops == pytest.approx(4.62e7, rel=0.01) and low_ops == pytest.approx(1.59e8, rel=0.01)


def test_what_cannot_be_placed_is_refused_with_one_line(shared_files, tmp_path, capsys):
    from rssnn import cost

    def copy_with(edit) -> Path:
        path = tmp_path / f"edited{len(list(tmp_path.glob('edited*')))}.net"
        shutil.copy(shared_files / "mnist.net", path)
        path.chmod(0o644)
        with h5py.File(path, "r+") as f:
            edit(f)
        return path

    def set_type(f):
        del f["layer/1/type"]
        f["layer/1"].create_dataset("type", (1,), "S10", [b"convT"])

    def set_neuron(f):
        del f["layer/1/neuron/type"]
        f["layer/1/neuron"].create_dataset("type", data=b"RF")

    truncated = tmp_path / "cut.net"
    truncated.write_bytes((shared_files / "mnist.net").read_bytes()[:5000])
    out = tmp_path / "out" / "cost.json"
    for net, message in [
        (tmp_path / "none.net", "does not exist"),
        (truncated, "not a readable HDF5 file"),
        (copy_with(set_type), "layer type 'convT' has no placement model"),
        (copy_with(set_neuron), "no placement model for neuron type 'RF'"),
    ]:
        assert_one_line_error(capsys, call_main(cost.main, ["--net", str(net), "--out", str(out)]), message)
    for extra, message in [
        (["--images", "3"], "--images needs an rssnn-lava NetX file"),  # lava-dl's: no dataset
        (["--images", "0"], "--images must be >= 1"),
        (["--data-root", str(tmp_path)], "add --images"),
    ]:
        argv = ["--net", str(shared_files / "mnist.net"), "--out", str(out), *extra]
        assert_one_line_error(capsys, call_main(cost.main, argv), message)
    assert not out.parent.exists()
