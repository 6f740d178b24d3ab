"""Hostile files and hard stops: loading never runs code, signals leave no process or half-state.

Each test guards one defect of issue 13; the payloads would create a marker file if executed.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import ROOT, assert_one_line_error, call_main

from rssnn.errors import UserError
from rssnn.train import checkpoint, data


class Payload:
    """Unpickling this calls Path.touch(marker): proof that a loader executed file content."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# -- loading never executes code ----------------------------------------------------------------


def test_checkpoint_with_code_is_refused_and_not_run(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "x": Payload(marker)}, evil)
    with pytest.raises(UserError, match="could run code"):
        checkpoint.load(evil)
    from rssnn.export import to_netx
    from rssnn.train import evaluate

    assert_one_line_error(
        capsys,
        evaluate.main(["--checkpoint", str(evil), "--out", str(tmp_path / "r.json")]),
        "could run code",
    )
    assert_one_line_error(
        capsys, to_netx.main(["--checkpoint", str(evil), "--out", str(tmp_path / "m.net")]), "could run code"
    )
    assert not marker.exists() and not (tmp_path / "m.net").exists()


def test_migration_is_explicit_and_gives_a_safe_checkpoint(tiny_run, tmp_path, capsys):
    old = tmp_path / "old.pt"
    ckpt = torch.load(tiny_run / "best.pt", weights_only=True)
    ckpt["config"]["out"] = Path("runs/x")  # a Path object: not plain data
    torch.save(ckpt, old)
    with pytest.raises(UserError, match="could run code"):
        checkpoint.load(old)
    from rssnn.train import migrate_checkpoint

    new = tmp_path / "new.pt"
    with pytest.raises(SystemExit):
        migrate_checkpoint.main([str(old), str(new)])  # --trust is required
    assert "add --trust" in capsys.readouterr().err and not new.exists()
    assert migrate_checkpoint.main(["--trust", str(old), str(new)]) == 0
    again = checkpoint.load(new)
    assert again["config"]["out"] == "runs/x"
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(again["state_dict"][k], v)


def _cifar_folder(tmp_path: Path, batch: object, meta: object | None = None) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta if meta is not None else {b"label_names": [b"c%d" % i for i in range(10)]}, fh)
    for k in range(1, 6):
        with open(folder / f"data_batch_{k}", "wb") as fh:
            pickle.dump(batch, fh)
    return tmp_path


def test_cifar_batch_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    root = _cifar_folder(tmp_path, {b"data": Payload(marker), b"labels": [0]})
    with pytest.raises(UserError, match="not a plain CIFAR python batch"):
        data.load_split(root, "cifar10", "train", val_size=10)
    assert not marker.exists()
    root2 = tmp_path / "m"
    root2.mkdir()
    _cifar_folder(
        root2, {b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10))}, Payload(marker)
    )
    with pytest.raises(UserError, match="not a plain CIFAR python batch"):
        data.load_split(root2, "cifar10", "train", val_size=10)
    assert not marker.exists()


GOOD_BATCH = {b"data": np.zeros((20, 3072), np.uint8), b"labels": [0] * 20}


@pytest.mark.parametrize(
    "batch, meta, message",
    [
        ({b"data": np.zeros((20, 3072), object), b"labels": [0] * 20}, None, "holds object pixels"),
        ({b"data": np.full((20, 3072), 255000.0), b"labels": [0] * 20}, None, "holds float64 pixels"),
        ({b"data": np.zeros((20, 3072), np.uint8), b"labels": ["cat"] * 20}, None, "non-integer labels"),
        ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, None, "holds no images"),
        (GOOD_BATCH, {b"other": 1}, "no list of class names"),
        (GOOD_BATCH, {b"label_names": [b"a"] * 3}, "names 3 classes"),
    ],
)  # fmt: skip
def test_malformed_cifar_batches_fail_with_one_line(tmp_path, batch, meta, message):
    root = _cifar_folder(tmp_path, batch, meta)
    with pytest.raises(UserError, match=message):
        data.load_split(root, "cifar10", "train", val_size=10)


def test_lava_runner_loads_only_the_source_checkpoint_the_file_records(
    cifar_root, tiny_run, tmp_path, capsys
):
    from rssnn.export import to_netx
    from rssnn.lava_procs import run

    net = tmp_path / "m.net"
    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(net)]) == 0
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"x": Payload(marker)}, evil)
    with h5py.File(net, "r+") as f:  # a file from elsewhere, naming a planted checkpoint
        f["rssnn"].attrs["source_checkpoint"] = str(evil)
    capsys.readouterr()
    code = run.main(["--net", str(net), "--data-root", str(cifar_root), "--limit", "2",
                     "--perturb", "fgsm:8/255", "--out", str(tmp_path / "r.json")])  # fmt: skip
    assert_one_line_error(capsys, code, "SHA-256 differs")
    assert not marker.exists() and not (tmp_path / "r.json").exists()


# -- training: resume and the kill windows ---------------------------------------------------------

TINY = ["--train-limit", "100", "--val-size", "100", "--width", "4", "--timesteps", "2",
        "--batch-size", "25", "--quiet", "--epochs", "1"]  # fmt: skip


class Killed(BaseException):
    """Raised where a test kills a run: no except clause of the code under test catches it."""


def _train(cifar_root, out, *extra) -> int:
    from rssnn.train import cifar

    return call_main(cifar.main, ["--data-root", str(cifar_root), "--out", str(out), *TINY, *extra])


def test_resume_refuses_changed_flags_and_allows_more_epochs(cifar_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(cifar_root, out) == 0
    config = (out / "config.json").read_text()
    for flags, named in ((["--seed", "1"], "--seed 0 -> 1"), (["--lr", "0.05"], "--lr 0.1 -> 0.05"),
                         (["--val-size", "200"], "--val-size"), (["--mode", "fgsm"], "--mode")):  # fmt: skip
        capsys.readouterr()
        assert_one_line_error(capsys, _train(cifar_root, out, "--resume", *flags), named)
        assert (out / "config.json").read_text() == config  # provenance untouched
    assert _train(cifar_root, out, "--resume", "--epochs", "2") == 0
    assert checkpoint.load(out / "last.pt")["epoch"] == 2


def test_a_kill_between_the_epoch_end_writes_loses_nothing(cifar_root, tmp_path, monkeypatch):
    """Killed just as best.pt is written at the end of the epoch: resume restores every file."""
    assert _train(cifar_root, tmp_path / "whole") == 0
    out = tmp_path / "killed"
    real_save = checkpoint.save

    def dying_save(path, payload):
        if Path(path).name == "best.pt":
            raise Killed  # stands in for SIGKILL: nothing after it in the run gets to execute
        real_save(path, payload)

    monkeypatch.setattr(checkpoint, "save", dying_save)
    with pytest.raises(Killed):
        _train(cifar_root, out)
    monkeypatch.setattr(checkpoint, "save", real_save)
    (out / ".last.pt.abc123.tmp").write_bytes(b"partial")  # what a kill during a write leaves
    assert _train(cifar_root, out, "--resume") == 0
    for name in ("best.pt", "metrics.csv", "metrics.json"):
        assert (out / name).exists(), name
    assert not list(out.glob(".*.tmp"))
    a, b = checkpoint.load(tmp_path / "whole" / "best.pt"), checkpoint.load(out / "best.pt")
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert json.loads((out / "metrics.json").read_text())["epochs"][0]["val_acc"] == a["best_acc"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mppd-layers", "foo"], "unknown spiking layers ['foo']"),
        (["--momentum", "-5"], "--momentum must be in [0, 1)"),
        (["--eval-batch-size", "0"], "--eval-batch-size must be >= 1"),
        (["--sigma", "inf"], "not a finite number"),
    ],
)
def test_bad_training_flags_fail_before_anything_is_written(cifar_root, tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert_one_line_error(capsys, _train(cifar_root, out, *flags), message)
    assert not out.exists()


# -- evaluation and export: validated up front --------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--attack-surrogate-width", "0"], "--attack-surrogate-width must be > 0"),
        (["--attack-surrogate-width", "-1"], "--attack-surrogate-width must be > 0"),
        (["--attacks", "fgsm:nan"], "not a finite number"),
        (["--attacks", "gn:inf"], "not a finite number"),
        (["--attacks", "pgd:8/255:7:-1/255"], "step size must be in (0, 1]"),
        (["--out", "/proc/nope/r.json"], "cannot write --out"),
        (["--transfer-checkpoint", "/nonexistent.pt"], "does not exist"),
        (["--checkpoint", "/nonexistent.pt"], "does not exist"),
        (["--checkpoint", "{run}/metrics.csv"], "corrupt or not"),
        (["--split", "train2"], "invalid choice: 'train2'"),
        (["--attacks", "clean,blur:3"], "unknown attack"),
        (["--attacks", "pgd:x:7"], "malformed attack"),
    ],
)
def test_bad_evaluation_input_fails_before_any_attack(tiny_run, capsys, flags, message):
    from rssnn.train import evaluate

    args = ["--checkpoint", str(tiny_run / "best.pt"), "--limit", "4", "--attacks", "clean,pgd:8/255:2"]
    flags = [f.format(run=tiny_run) for f in flags]
    code = call_main(evaluate.main, args + ["--out", str(tiny_run.parent / "never.json"), *flags])
    assert_one_line_error(capsys, code, message)
    assert not (tiny_run.parent / "never.json").exists()


def test_export_refuses_bad_input_and_never_leaves_an_unverified_file(tiny_run, tmp_path, capsys):
    from rssnn import netx_file
    from rssnn.export import to_netx

    ckpt = str(tiny_run / "best.pt")
    out = tmp_path / "m.net"
    assert_one_line_error(
        capsys,
        to_netx.main(["--checkpoint", ckpt, "--out", str(out), "--verify", "-3"]),
        "--verify must be >= 0",
    )
    for argv, message in [
        (["--checkpoint", str(tmp_path / "none.pt"), "--out", str(out)], "does not exist"),
        (["--checkpoint", str(tiny_run / "metrics.csv"), "--out", str(out)], "corrupt or not"),
        (["--checkpoint", ckpt, "--out", str(tmp_path)], "is a folder"),
        (["--checkpoint", ckpt, "--out", "/proc/nope/z.net"], "cannot write"),
    ]:
        assert_one_line_error(capsys, call_main(to_netx.main, argv), message)
    zero_t = tmp_path / "t0.pt"
    state = torch.load(ckpt, weights_only=True)
    state["model"]["num_steps"] = 0
    torch.save(state, zero_t)
    assert_one_line_error(
        capsys, to_netx.main(["--checkpoint", str(zero_t), "--out", str(out)]), "num_steps=0"
    )
    assert not out.exists()
    assert to_netx.main(["--checkpoint", ckpt, "--out", str(out)]) == 0
    meta = netx_file.read_metadata(out)
    assert meta["verified"] == 0 and "not verified" in meta["verification"]
    assert_one_line_error(capsys, to_netx.main(["--checkpoint", ckpt, "--out", str(out)]), "add --force")
    assert to_netx.main(["--checkpoint", ckpt, "--out", str(out), "--force", "--verify", "2"]) == 0
    meta = netx_file.read_metadata(out)
    assert meta["verified"] == 1 and "0 spike mismatches" in meta["verification"]
    assert not list(tmp_path.glob(".*partial"))


def _damaged_copy(src: Path, dst: Path, edit) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def test_damaged_or_out_of_range_netx_files_are_refused(tiny_run, tmp_path):
    from rssnn import netx_file
    from rssnn.export import to_netx

    good = tmp_path / "good.net"
    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(good)]) == 0

    def set_attr(key, value):
        return lambda f: f["rssnn"].attrs.__setitem__(key, value)

    def replace(dataset, value):
        def edit(f):
            del f[dataset]
            f[dataset] = value

        return edit

    cases = [
        (set_attr("class_names", "[not json"), "not valid JSON"),
        (lambda f: f["rssnn"].attrs.__delitem__("layer_names"), "lacks the /rssnn attribute 'layer_names'"),
        (set_attr("num_steps", 0), "num_steps=0"),
        (replace("layer/1/weight", np.zeros((3, 3, 3, 3), np.float32)), "weight shape"),
        (replace("layer/1/neuron/vDecay", 99999), "vDecay 99999..99999 outside"),
        (replace("layer/1/neuron/vThMant", 0), "vThMant 0..0 outside"),
        (replace("layer/1/neuron/vThMant", -4), "vThMant -4..-4 outside"),
    ]
    for i, (edit, message) in enumerate(cases):
        bad = _damaged_copy(good, tmp_path / f"bad{i}.net", edit)
        with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")):
            netx_file.read(bad)


# -- signals: no process survives, whatever stops the command -----------------------------------


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    return [p for p, _, g in rows if g == pid and p != pid]


def _start_and_signal(cmd: list[str], sig: int, ready) -> tuple[subprocess.Popen, str]:
    """Start ``cmd`` in its own process group, send ``sig`` once Lava workers run, wait."""
    # A shell's background job inherits SIGINT ignored, and Python keeps an inherited SIG_IGN:
    # give the command the default disposition, as a terminal's foreground job has.
    proc = subprocess.Popen(
        [sys.executable, *cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and not ready(proc.pid):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, sig)  # to the parent only, as `kill PID` and most schedulers do
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        survivors = subprocess.run(["ps", "-g", str(proc.pid), "-o", "pid=,ppid=,stat=,args="],
                                   capture_output=True, text=True).stdout  # fmt: skip
        os.killpg(proc.pid, signal.SIGKILL)  # leave nothing behind, even when failing
        proc.communicate()
        raise AssertionError(
            f"{cmd[:2]} still running 60 s after {signal.Signals(sig).name}; left:\n{survivors}"
        ) from None
    return proc, err


def _lava_workers_running(pid: int) -> bool:
    return len(_descendants(pid)) >= 6


def _gone(pgid: int, within: float = 10.0) -> list[int]:
    deadline = time.monotonic() + within
    while (left := _descendants(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture(scope="module")
def long_lava_run(tiny_run, cifar_root, tmp_path_factory):
    from rssnn.export import to_netx

    net = tmp_path_factory.mktemp("sig") / "m.net"
    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(net)]) == 0
    return ["-m", "lava_procs.run", "--net", str(net), "--data-root", str(cifar_root), "--limit", "100",
            "--perturb", "gaussian:8/255", "--out", str(net.parent / "r.json")]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_lava_runner_leaves_no_process_whatever_signal_stops_it(long_lava_run, sig):
    proc, err = _start_and_signal(long_lava_run, sig, _lava_workers_running)
    assert _gone(proc.pid) == [], "Lava workers outlived the runner"
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig, err
        assert "Traceback" not in err and f"interrupted ({signal.Signals(sig).name})" in err, err


@pytest.mark.slow
def test_a_signal_while_lava_starts_its_workers_leaves_no_process(long_lava_run):
    """SIGTERM as the first worker appears: workers forked after the cleanup listed the
    children once made the runner wait for them forever at exit (seen under load)."""
    proc, err = _start_and_signal(long_lava_run, signal.SIGTERM, lambda pid: len(_descendants(pid)) >= 1)
    assert _gone(proc.pid) == [], "Lava workers outlived the runner"
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err


_PARENT_DIES_WHILE_FORKING = """
import os, sys, time
from rssnn import lava_guard

read_end, write_end = os.pipe()
top = os.getpid()


def wait_for_orphaning():  # registered first, so it runs before the guard's hook in the child
    if os.getpid() != top and os.getppid() == middle:
        while os.getppid() == middle:
            time.sleep(0.01)


middle = os.fork()
if middle == 0:  # the command: installs the guard, forks a worker and dies at once
    middle = os.getpid()
    os.register_at_fork(after_in_child=wait_for_orphaning)
    lava_guard.install_worker_guard()
    if os.fork() == 0:  # the worker, orphaned before the guard's hook ran
        os.close(read_end)
        time.sleep(60)  # a guarded worker never gets here
        os._exit(0)
    os._exit(0)
os.close(write_end)
os.waitpid(middle, 0)
start = time.monotonic()
os.read(read_end, 1)  # EOF once the worker, the last holder of the write end, is gone
print(f"{time.monotonic() - start:.2f}")
"""


def test_a_worker_orphaned_while_being_forked_exits():
    """The parent killed between a worker's fork and its guard hook: the worker must not take
    the orphaned state for its parent and run on (it held the runner's pipes open in CI)."""
    out = subprocess.run([sys.executable, "-c", _PARENT_DIES_WHILE_FORKING], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 5, f"the orphaned worker lived {out.stdout.strip()} s"


# SIGINT takes SIGTERM's path in every command (Python raises KeyboardInterrupt for it, and
# rssnn.signals raises Terminated, a KeyboardInterrupt, for SIGTERM; the runner test above sends
# all three): the exporter is checked with the signal a scheduler sends and the one no handler
# sees (each costs the suite about 12 s).
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_export_verification_leaves_no_process_and_no_file(tiny_run, cifar_root, tmp_path, sig):
    out = tmp_path / "m.net"
    cmd = ["export/to_netx.py", "--checkpoint", str(tiny_run / "best.pt"), "--out", str(out),
           "--verify", "100", "--data-root", str(cifar_root)]  # fmt: skip
    proc, err = _start_and_signal(cmd, sig, _lava_workers_running)
    assert _gone(proc.pid) == [], "Lava workers outlived the exporter"
    assert not out.exists(), "an unverified file was left under the final name"
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig and "Traceback" not in err, err
    from rssnn.export import to_netx  # in-process: the signalled run was the subprocess that matters

    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(out)]) == 0
    assert not list(tmp_path.glob(".*partial"))  # the killed export's leftover is cleaned
