"""Training under torchrun: 2 CPU ranks (gloo) compute what one process computes, resume, and
stop together when one of them dies. The runs are the real command under the real launcher."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import ROOT, call_main

from rssnn.train import checkpoint

TINY = ["--device", "cpu", "--val-size", "100", "--width", "4", "--timesteps", "2", "--batch-size", "20",
        "--quiet", "--checkpoint-every", "0"]  # fmt: skip
ENV = dict(os.environ, OMP_NUM_THREADS="1")


# torchrun looks at its ranks every --monitor-interval seconds (5 by default in torch 2.3), so
# each launch idled up to 5 s after its ranks had ended, normally or not: 0.5 s here.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "--monitor-interval", "0.5"]  # fmt: skip


def _torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [*TORCHRUN, "train/cifar.py", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=ENV)


def _train_here(*args: str) -> None:
    from rssnn.train import cifar

    assert call_main(cifar.main, list(args)) == 0


def _assert_same_parameters(a: Path, b: Path, rtol: float = 1e-5) -> float:
    """Every parameter and buffer of two checkpoints equal to float tolerance; the worst
    relative difference."""
    sa, sb = checkpoint.load(a)["state_dict"], checkpoint.load(b)["state_dict"]
    assert sa.keys() == sb.keys()
    worst = 0.0
    for key, va in sa.items():
        vb = sb[key]
        if not va.is_floating_point():
            assert torch.equal(va, vb), key
            continue
        rel = ((va - vb).abs().max() / vb.abs().max().clamp(min=1e-12)).item()
        assert rel <= rtol, (key, rel)
        worst = max(worst, rel)
    return worst


def _ddp_and_one(common: list[str], ddp: Path, one: Path, *flags: str) -> None:
    """The same flags under torchrun (2 ranks) and in one process; the parameters and the logged
    training loss must agree."""
    res = _torchrun(*common, "--out", str(ddp), *flags)
    assert res.returncode == 0, res.stderr[-3000:]
    _train_here(*common, "--out", str(one), *flags)
    _assert_same_parameters(ddp / "last.pt", one / "last.pt")
    ddp_history = json.loads((ddp / "metrics.json").read_text())["epochs"][-1]
    one_history = json.loads((one / "metrics.json").read_text())["epochs"][-1]
    assert ddp_history["images"] == one_history["images"] == 40  # logged over the global batch
    assert abs(ddp_history["train_loss"] - one_history["train_loss"]) < 1e-5


# 2 steps of 20 images: the second step's forward runs on weights the first updated, so a wrong
# gradient (unsynchronised BatchNorm, a sum instead of a mean, a rank's own noise) shows at
# once, far above the 1e-5 tolerance (the issue-29 measurement is in the commit message).
COMMON = ["--train-limit", "40", "--mppd-layers", "all", *TINY]


def test_two_ranks_resume_and_train_what_one_process_trains(cifar_root, tmp_path, capsys):
    """At the default seed (0), one process trains epoch 1; from its checkpoint, 2 steps of
    2-rank DDP (per-rank batch 10, synchronised BatchNorm, Gaussian noise and MS-MPPD on every
    layer) and one process with batch 20 on the same data order resume for epoch 2 and end with
    the same parameters and training loss. One torchrun launch (about 12 s of the suite) covers
    the resume under DDP (every rank loads the checkpoint and its place in the data order) and
    the gradient path: the ranks' own noise, the averaged gradients and BatchNorm statistics.
    Epoch 2 draws another permutation (``epoch_generator``) and other noise (the checkpointed
    noise generator) than epoch 1, so starting DDP from scratch, or at a second seed, would add
    no gradient path this one misses. Shown to fail with the BatchNorm sums not all-reduced
    (weights 1.4e-3 apart) and with each rank drawing its own noise (2.4e-3)."""
    from rssnn.export import to_netx
    from rssnn.train import cifar

    common = ["--data-root", str(cifar_root), *COMMON]
    ddp, one = tmp_path / "ddp", tmp_path / "one"
    _train_here(*common, "--out", str(one), "--epochs", "1")
    shutil.copytree(one, ddp)
    # the refusal of changed flags is the same code in every rank: checked here, in-process
    refused = call_main(cifar.main, [*common, "--out", str(ddp), "--resume", "--epochs", "2", "--seed", "3"])
    assert refused == 2 and "error: --resume of" in capsys.readouterr().err
    _ddp_and_one(common, ddp, one, "--resume", "--epochs", "2")
    assert checkpoint.load(ddp / "last.pt")["epoch"] == 2
    config = json.loads((ddp / "config.json").read_text())
    assert (config["world_size"], config["global_batch"], config["per_rank_batch"]) == (2, 20, 10)
    assert config["sync_batchnorm"] is True and config["config"]["seed"] == 0
    # a checkpoint written under DDP is an ordinary one: the single-process export reads it
    assert to_netx.main(["--checkpoint", str(ddp / "last.pt"), "--out", str(tmp_path / "m.net")]) == 0


def _workers(launcher: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    return [int(p) for p, pp in (line.split() for line in out.splitlines()) if int(pp) == launcher]


def test_a_rank_that_dies_stops_every_rank_and_the_checkpoint_resumes(cifar_root, tmp_path):
    """SIGKILL to one rank mid-epoch (FGSM training): the other rank stops with one line, the
    launcher exits non-zero, no process is left, and last.pt loads and resumes."""
    out = tmp_path / "run"
    args = ["--data-root", str(cifar_root), "--train-limit", "2000", "--mode", "fgsm", *TINY[:-2],
            "--checkpoint-every", "2", "--out", str(out), "--epochs", "1"]  # fmt: skip
    cmd = [*TORCHRUN, "train/cifar.py", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if (out / "last.pt").exists() and checkpoint.load(out / "last.pt")["batch_in_epoch"] >= 2:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        workers = _workers(proc.pid)
        assert len(workers) == 2, workers
        os.kill(max(workers), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0
    assert "the process group failed" in err, err[-3000:]
    ours = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(ours) == 1, ours
    time.sleep(1)
    assert _workers(proc.pid) == [] and not [w for w in workers if Path(f"/proc/{w}").exists()]
    state = checkpoint.load(out / "last.pt")
    assert state["epoch"] == 0 and state["batch_in_epoch"] >= 2
