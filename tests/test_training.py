"""Training on real CIFAR-10: the loss falls, the CLI writes its run folder, resume, bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, assert_one_line_error, call_main, run_cli

from rssnn.train import checkpoint, data, mppd
from rssnn.train.cifar import build_parser
from rssnn.train.config import TrainConfig
from rssnn.train.models import build_model
from rssnn.train.objective import joint_loss

TINY = [
    "--train-limit",
    "200",
    "--val-size",
    "100",
    "--width",
    "4",
    "--timesteps",
    "2",
    "--batch-size",
    "20",
    "--quiet",
]


@pytest.mark.parametrize("mode", ["gaussian", "fgsm"])
def test_training_steps_on_real_cifar_lower_the_loss(cifar_root, mode):
    torch.manual_seed(0)
    split = data.load_split(cifar_root, "cifar10", "train", val_size=500, train_limit=320, seed=0)
    model = build_model("cpu", 2, width=8)
    layers = mppd.select_layers(model, "last")
    cfg = TrainConfig.from_args(build_parser().parse_args(["--mode", mode, "--eps", "4/255", "--rho", "1"]))
    assert (cfg.sigma, cfg.kappa) == (8 / 255, 0.5)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x_all, y_all = split.images.float() / 255, split.labels

    def full_loss() -> float:
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(x_all), y_all).item()

    before = full_loss()
    for _ in range(2):  # enough: the loss falls by about 0.4 in two epochs
        for x, y in data.batches(split, 32, shuffle=True, generator=gen):
            loss, parts = joint_loss(model, x, y, cfg, layers, gen)
            assert parts.mppd > 0 and parts.ce_pert > 0
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert full_loss() < before - 0.1


def _run_train(cifar_root, out, *extra, **kw):
    """``python train/cifar.py`` in a subprocess: the path users run."""
    return run_cli("train/cifar.py", "--data-root", str(cifar_root), "--out", str(out), *TINY, *extra, **kw)


def _train(cifar_root, out, *extra) -> int:
    """The same command in-process (its ``main``): no interpreter start-up, same code path."""
    from rssnn.train.cifar import main

    return call_main(main, ["--data-root", str(cifar_root), "--out", str(out), *TINY, *extra])


def test_cli_writes_config_metrics_checkpoints_and_plots(cifar_root, tmp_path):
    out = tmp_path / "run"
    res = _run_train(cifar_root, out, "--epochs", "2", "--per-channel")
    assert res.returncode == 0, res.stderr
    for name in (
        "config.json",
        "metrics.csv",
        "metrics.json",
        "last.pt",
        "best.pt",
        "curves.png",
        "dynamics.png",
        "mppd_steps.png",
    ):
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["sigma"] == pytest.approx(8 / 255)
    assert config["environment"]["packages"]["lava-dl"] == "0.6.0"
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    gammas = [k for k in rows[0] if k.startswith("gamma/")]
    assert len(gammas) == 6 and all(float(rows[-1][k]) > 0 for k in gammas)
    assert 0 <= float(rows[-1]["val_acc"]) <= 1
    # The learned dynamics moved away from their initial values (leak 0.99, threshold 1).
    ckpt = checkpoint.load(out / "last.pt")
    model = checkpoint.restore_model(ckpt)
    leaks = torch.cat([m.leak.detach() for m in model.modules() if hasattr(m, "leak")])
    ths = torch.cat([m.threshold.detach() for m in model.modules() if hasattr(m, "threshold")])
    assert (leaks - 0.99).abs().max() > 1e-4 and (ths - 1.0).abs().max() > 1e-4
    assert ckpt["class_names"][0] == "airplane" and ckpt["model"]["neuron"]["per_channel"]


def test_resume_after_kill_continues_the_same_run(cifar_root, tmp_path):
    # All three runs are the command users run, each in a fresh interpreter: in-process runs
    # compared the pytest worker (after whatever tests it ran before) with a fresh process, and
    # differed in the last bits about one full suite in four (CI, never reproduced alone).
    args = ["--epochs", "2", "--checkpoint-every", "1"]
    full, out = tmp_path / "full", tmp_path / "killed"

    def start(folder, *extra):
        argv = ["train/cifar.py", "--data-root", str(cifar_root), "--out", str(folder), *TINY, *args, *extra]
        pipes = dict(stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return subprocess.Popen([sys.executable, *argv], cwd=ROOT, **pipes)

    reference, proc = start(full), start(out)  # side by side: the suite's time, not twice it
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "metrics.csv").exists():  # first epoch done, second under way
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = checkpoint.load(out / "last.pt")
    assert (state["epoch"], state["batch_in_epoch"]) < (2, 0), "the run must be killed mid-way"
    resumed = start(out, "--resume")
    for p in (reference, resumed):
        assert p.wait(timeout=180) == 0, p.stderr.read().decode()[-2000:]
    a = checkpoint.load(full / "last.pt")
    b = checkpoint.load(out / "last.pt")
    assert b["epoch"] == 2 and len(b["history"]) == 2
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert [r["val_acc"] for r in a["history"]] == [r["val_acc"] for r in b["history"]]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sigma=-1/255"], "--sigma must be in [0, 1]"),
        (["--eps", "eight"], "is not a number or a fraction"),
        (["--leak", "1.5"], "--leak must be in (0, 1]"),
        (["--timesteps", "0"], "--timesteps must be >= 1"),
    ],
)
def test_bad_flags_fail_with_one_line(cifar_root, tmp_path, capsys, flags, message):
    """In-process through the CLI's main: a subprocess per case would add only start-up time."""
    from rssnn.train.cifar import main

    code = call_main(main, ["--data-root", str(cifar_root), "--out", str(tmp_path / "bad"), *TINY, *flags])
    assert_one_line_error(capsys, code, message)
    assert not (tmp_path / "bad").exists()


def test_nan_loss_fails_with_one_line_and_keeps_the_last_checkpoint(cifar_root, tmp_path, capsys):
    code = _train(cifar_root, tmp_path / "bad", "--lr", "1e30", "--epochs", "1")
    assert_one_line_error(capsys, code, "loss became nan")
    assert checkpoint.load(tmp_path / "bad" / "last.pt")["epoch"] == 0


def test_missing_data_fails_with_one_line(tmp_path, capsys):
    from rssnn.train.cifar import main

    code = main(["--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--quiet"])
    assert "--download" in assert_one_line_error(capsys, code, "no cifar10 data")


def test_resume_rejects_corrupt_foreign_and_mismatched_checkpoints(cifar_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(cifar_root, out, "--epochs", "1") == 0
    capsys.readouterr()
    code = _train(cifar_root, out, "--epochs", "2", "--resume", "--width", "8")
    assert_one_line_error(capsys, code, "changed flags (--width 4 -> 8)")
    assert_one_line_error(capsys, _train(cifar_root, out, "--epochs", "2"), "already holds a run")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((out / "last.pt").read_bytes()[:5000])
    assert_one_line_error(
        capsys, _train(cifar_root, out, "--epochs", "2", "--resume", str(corrupt)), "corrupt"
    )
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    code = _train(cifar_root, out, "--epochs", "2", "--resume", str(foreign))
    assert_one_line_error(capsys, code, "not an rssnn-lava checkpoint")


def test_time_budget_plan_solves_the_epoch_cost_for_the_images():
    from rssnn.errors import UserError
    from rssnn.train import budget

    rates = budget.Rates(train=100.0, eval=1000.0)
    # 300 s over 3 epochs: 100 s each, less 2 x 5000 / 1000 = 10 s of validation and the 5 s
    # epoch overhead: 85 s x 100 images/s = 8500 images, 8448 in whole batches of 64
    plan = budget.plan(300.0, 3, 40000, 5000, 64, rates)
    assert plan.images_per_epoch == 8448
    assert plan.seconds == pytest.approx(3 * (84.48 + 10 + 5))
    assert budget.plan(300.0, 3, 2000, 5000, 64, rates).images_per_epoch == 2000  # capped
    with pytest.raises(UserError, match="fits 0 images per epoch"):
        budget.plan(30.0, 3, 40000, 5000, 64, rates)  # 10 s an epoch: validation alone is 15


def test_time_budget_measures_plans_records_and_keeps_its_plan_on_resume(cifar_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(cifar_root, out, "--epochs", "1", "--time-budget", "1") == 0
    assert "time budget 1.0 min:" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    plan = config["time_budget_plan"]
    assert plan["train_images_per_s"] > 0 and plan["eval_images_per_s"] > 0
    # the tiny model fits far more than its 200-image --train-limit (the cap) in a minute
    assert plan["images_per_epoch"] == config["config"]["train_limit"] == config["train_images"] == 200
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert int(rows[0]["images"]) == 200
    # a resume keeps the plan made at the start instead of measuring again
    assert _train(cifar_root, out, "--epochs", "2", "--time-budget", "1", "--resume") == 0
    assert "time budget" not in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["images"]) for r in rows] == [200, 200]
    # a budget too small for one epoch's validation is one line, before the data is read
    code = _train(cifar_root, tmp_path / "small", "--time-budget", "0.01")
    assert code == 2 and "--time-budget 0.01 min fits" in capsys.readouterr().err
