"""Shared fixtures: the real CIFAR-10 copy (skipped with a reason when absent), tiny models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # scripts/test.sh runs two workers on this 2-core machine: one thread each (tests and the
    # commands they start), or two workers x two torch threads fight over two cores.
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
CIFAR_ROOT = Path(os.environ.get("RSSNN_CIFAR_ROOT", ROOT.parent / "shared" / "data" / "cifar10"))


def pytest_configure(config) -> None:
    """Tests use Lava directly too (its own LIF, RingBuffers), not only through rssnn.lava_procs,
    which imports Lava's runtime first: do it here, before numba or tqdm fix the start method."""
    from rssnn.lava_guard import import_lava_runtime

    import_lava_runtime()


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    if not (CIFAR_ROOT / "cifar-10-batches-py" / "data_batch_1").is_file():
        pytest.skip(f"real CIFAR-10 copy not found at {CIFAR_ROOT} (set RSSNN_CIFAR_ROOT)")
    return CIFAR_ROOT


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run a project command with the test interpreter, capturing output."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw
    )


def call_main(main, argv: list[str]) -> int:
    """A CLI's exit status, in-process: for error paths a subprocess would add only start-up
    time (torch, SLAYER and Lava imports, about 5 s each). argparse exits with SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def assert_one_line_error(capsys, code: int, message: str) -> str:
    """Exit status 2 and one line on stderr that holds ``message``, no traceback; returns it."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="session")
def tiny_run(cifar_root, tmp_path_factory) -> Path:
    """One real (tiny) training run shared by the CLI tests of evaluate, export and lava_procs
    (in-process: the training CLI's own subprocess test is in test_training)."""
    from rssnn.train.cifar import main

    run = tmp_path_factory.mktemp("tiny") / "run"
    code = call_main(main, [
        "--data-root", str(cifar_root), "--out", str(run), "--train-limit", "200", "--val-size", "100",
        "--width", "4", "--epochs", "1", "--batch-size", "20", "--quiet",
    ])  # fmt: skip
    assert code == 0
    return run


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from torch seed 0: results must not depend on which tests ran before
    (untrained models draw their weights from the global generator)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)
