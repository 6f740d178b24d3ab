"""Issue 23, hardening round two: each test guards one defect that an adversarial pass found.

Crafted checkpoints must not run code, outputs must never replace special files, signals in the
numba kernels must become the usual one-line stop, crafted NetX files must be refused before
anything is allocated or opened, and a full disk must fail with one line and no partial file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import List  # noqa: UP035  (TorchScript reads the annotation)

import h5py
import numpy as np
import pytest
import torch
from conftest import ROOT, assert_one_line_error, call_main

from rssnn import netx_file
from rssnn.atomic import file_sha256
from rssnn.errors import UserError
from rssnn.train import checkpoint

# -- 1. a TorchScript checkpoint runs code on torch < 2.6 (CVE-2025-32434) ---------------------


class _Evil(torch.nn.Module):
    """Loading its TorchScript archive runs ``__setstate__``, which overwrites ``marker``'s first
    four bytes with 'AAAA' through a shared memory map: proof that file content executed."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.x = 1

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self) -> List[str]:  # noqa: UP006
        return [self.marker]

    @torch.jit.export
    def __setstate__(self, state: List[str]) -> None:  # noqa: UP006
        self.marker = state[0]
        self.training = False
        t = torch.from_file(state[0], True, 4, dtype=torch.uint8)
        t.fill_(65)
        self.x = int(t.sum())


@pytest.fixture
def torchscript_checkpoint(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    marker.write_bytes(b"0000")
    evil = tmp_path / "evil.pt"
    torch.jit.save(torch.jit.script(_Evil(str(marker))), str(evil))
    return evil, marker


def test_the_torchscript_payload_really_runs_code_under_plain_torch_load(torchscript_checkpoint):
    """The premise of the next test: torch 2.3's weights_only=True load executes the payload."""
    evil, marker = torchscript_checkpoint
    with pytest.warns(UserWarning, match="TorchScript"):
        torch.load(evil, weights_only=True)
    assert marker.read_bytes() == b"AAAA"


def test_torchscript_checkpoints_are_refused_at_every_entry_point(
    torchscript_checkpoint, tiny_run, cifar_root, tmp_path, capsys
):
    from rssnn.export import to_netx
    from rssnn.lava_procs import run
    from rssnn.train import cifar, evaluate

    evil, marker = torchscript_checkpoint
    with pytest.raises(UserError, match="TorchScript archive"):
        checkpoint.load(evil)
    out = tmp_path / "out"
    for main, argv in [
        (evaluate.main, ["--checkpoint", str(evil), "--out", str(out / "r.json")]),
        (to_netx.main, ["--checkpoint", str(evil), "--out", str(out / "m.net")]),
        (cifar.main, ["--data-root", str(cifar_root), "--out", str(out / "run"), "--resume", str(evil)]),
    ]:
        assert_one_line_error(capsys, call_main(main, argv), "TorchScript archive")
    # the runner through a .net file that names the planted checkpoint, hash and all
    net = tmp_path / "m.net"
    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(net)]) == 0
    with h5py.File(net, "r+") as f:
        f["rssnn"].attrs["source_checkpoint"] = str(evil)
        f["rssnn"].attrs["source_checkpoint_sha256"] = file_sha256(evil)
    capsys.readouterr()
    code = run.main(["--net", str(net), "--data-root", str(cifar_root), "--limit", "1",
                     "--perturb", "fgsm:8/255", "--out", str(out / "lava.json")])  # fmt: skip
    assert_one_line_error(capsys, code, "TorchScript archive")
    assert marker.read_bytes() == b"0000" and not out.exists()


def _rezip(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            edit(zout, info, zin.read(info))
    return dst


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda z, i, b: z.writestr(i, b, compress_type=zipfile.ZIP_DEFLATED), "compressed entry"),
        (lambda z, i, b: (z.writestr(i, b), i.filename.endswith("version") and z.writestr(
            i.filename.rsplit("/", 1)[0] + "/extra.py", b"x")), "unexpected entry"),
        (lambda z, i, b: z.writestr(i.filename.replace("archive/", "a/", 1)
                                    if i.filename.endswith("version") else i, b), "top-level folders"),
        (lambda z, i, b: None if i.filename.endswith("data.pkl") else z.writestr(i, b), "no data.pkl"),
    ],
)  # fmt: skip
def test_only_plain_state_archives_reach_torch_load(tiny_run, tmp_path, edit, message):
    good = tiny_run / "best.pt"
    checkpoint.load(good)  # the untouched archive loads
    with pytest.raises(UserError, match=message):
        checkpoint.load(_rezip(good, tmp_path / "edited.pt", edit))


# -- 2. --out never replaces a device node, FIFO or other special file ---------------------------


def _special_files(tmp_path: Path) -> list[Path]:
    """A FIFO, and a character device like /dev/null where this user may make one (root)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    nodes = [fifo]
    try:
        os.mknod(tmp_path / "null", 0o666 | 0o020000, os.makedev(1, 3))
        nodes.append(tmp_path / "null")
    except PermissionError:
        pass
    return nodes


def test_outputs_never_replace_special_files(tiny_run, cifar_root, tmp_path, capsys):
    from rssnn.export import to_netx
    from rssnn.lava_procs import run
    from rssnn.train import evaluate

    net = tmp_path / "m.net"
    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(net)]) == 0
    capsys.readouterr()
    for node in _special_files(tmp_path):
        kind = "FIFO" if node.name == "fifo" else "character device"
        for main, argv in [
            (run.main, ["--net", str(net), "--data-root", str(cifar_root), "--out", str(node)]),
            (evaluate.main, ["--checkpoint", str(tiny_run / "best.pt"), "--out", str(node)]),
            (to_netx.main, ["--checkpoint", str(tiny_run / "best.pt"), "--out", str(node), "--force"]),
        ]:  # fmt: skip
            assert_one_line_error(capsys, call_main(main, argv), f"is a {kind}, not a regular file")
        assert not node.is_file() and node.exists()


# -- 3. Ctrl-C or SIGTERM inside the numba DLIF kernels ------------------------------------------


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals: main thread")
def test_a_signal_inside_the_numba_kernels_is_a_keyboard_interrupt():
    """Without the deferral, 70 of 100 such signals gave SystemError ('returned a result with an
    exception set') and training then crashed with a segmentation fault."""
    from rssnn.train.neurons import DLIF

    layer = DLIF(8, 4)
    x = torch.randn(16, 8, 16, 16, 4, requires_grad=True)
    layer(x).sum().backward()  # compile (or load) the kernels before any signal flies
    go, sent = threading.Event(), threading.Event()
    rng = np.random.default_rng(0)

    def send() -> None:
        while go.wait():
            go.clear()
            time.sleep(float(rng.uniform(0, 0.02)))
            os.kill(os.getpid(), signal.SIGINT)
            sent.set()

    threading.Thread(target=send, daemon=True).start()
    outcomes = []
    for _ in range(20):
        sent.clear()
        go.set()
        try:
            try:
                for _ in range(50):
                    layer(x).sum().backward()
            finally:
                sent.wait()
                time.sleep(0.002)  # let a signal sent at the very end arrive here, not later
        except KeyboardInterrupt:
            outcomes.append("interrupt")
        except SystemError as exc:
            outcomes.append(f"SystemError: {exc}")
    assert outcomes == ["interrupt"] * 20


# -- 4. and 5. crafted NetX files --------------------------------------------------------------


@pytest.fixture(scope="module")
def good_net(tiny_run, tmp_path_factory) -> Path:
    from rssnn.export import to_netx

    path = tmp_path_factory.mktemp("crafted") / "good.net"
    assert to_netx.main(["--checkpoint", str(tiny_run / "best.pt"), "--out", str(path)]) == 0
    return path


def _replace(name: str, value=None, **create):
    def edit(f: h5py.File) -> None:
        del f[name]
        if create:
            f.create_dataset(name, **create)
        else:
            f[name] = value

    return edit


def _attr(key: str, value):
    return lambda f: f["rssnn"].attrs.__setitem__(key, value)


def _input_only(f: h5py.File) -> None:
    for key in [k for k in f["layer"] if k != "0"]:
        del f["layer"][key]


def _soft_loop(f: h5py.File) -> None:
    f["layer/1/loop"] = h5py.SoftLink("/layer/1/loop")


def _virtual(f: h5py.File) -> None:
    layout = h5py.VirtualLayout(shape=(1,), dtype="i8")
    layout[0] = h5py.VirtualSource("/etc/hostname", "x", shape=(1,))[0]
    del f["layer/1/stride"]
    f.create_virtual_dataset("layer/1/stride", layout)


def _external_storage(f: h5py.File) -> None:
    del f["layer/1/stride"]
    f.create_dataset("layer/1/stride", shape=(2,), dtype="i8", external=[("/etc/hostname", 0, 16)])


CRAFTED = [
    (_attr("num_steps", 10**9), "1 <= T <= 4096"),
    (_replace("layer/1/weight", shape=(2**20, 2**20), dtype="f4", chunks=(64, 64)), "declares"),
    (_replace("layer/1/bias", shape=(2**40,), dtype="f4", chunks=(1024,)), "declares"),
    (_replace("layer/1/stride", np.array([0, 0])), "stride (0, 0)"),
    (_attr("training_config", "{not json"), "'training_config' is not valid JSON"),
    (_attr("dataset", "../../etc"), "names the dataset '../../etc'"),
    (_replace("layer/1/bias", np.zeros((2, 2, 2))), "bias has shape (2, 2, 2)"),
    (_input_only, "no synapse layer"),
    (_soft_loop, "is a soft link"),
    (_virtual, "reads its data from other files"),
    (_external_storage, "reads its data from other files"),
    (lambda f: f["layer/1/weight"].__setitem__((0, 0, 0, 0), 0.5), "fractional"),
    (lambda f: _replace("layer/1/weight", f["layer/1/weight"][()].astype(np.complex64))(f), "not a numeric"),
    (_attr("class_names", "5"), "'class_names' is not a JSON list"),
    (_attr("class_names", json.dumps(["a", "b"])), "names 2 classes"),
]


@pytest.mark.parametrize("edit, message", CRAFTED, ids=[str(i) for i in range(len(CRAFTED))])
def test_crafted_netx_files_are_refused_with_one_line(good_net, tmp_path, edit, message):
    bad = tmp_path / "bad.net"
    bad.write_bytes(good_net.read_bytes())
    with h5py.File(bad, "r+") as f:
        edit(f)
    t0 = time.monotonic()
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        netx_file.read(bad)
    assert len(str(err.value).splitlines()) == 1
    assert time.monotonic() - t0 < 5  # refused from the declarations, nothing large was read


def test_an_external_link_to_a_fifo_is_refused_without_opening_it(good_net, tmp_path):
    """The link's target is never opened: opening a FIFO blocks where no signal reaches Python."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    bad = tmp_path / "linked.net"
    bad.write_bytes(good_net.read_bytes())
    with h5py.File(bad, "r+") as f:
        del f["layer/1/weight"]
        f["layer/1/weight"] = h5py.ExternalLink(str(fifo), "/w")
    code = f"from rssnn import netx_file; netx_file.read({str(bad)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "is an external link to another file" in proc.stderr, proc.stderr


def test_the_runner_refuses_a_crafted_file_and_leaves_no_folder(good_net, cifar_root, tmp_path, capsys):
    from rssnn.lava_procs import run

    bad = tmp_path / "bad.net"
    bad.write_bytes(good_net.read_bytes())
    with h5py.File(bad, "r+") as f:
        _replace("layer/1/stride", np.array([0, 0]))(f)
    out = tmp_path / "new" / "r.json"
    code = call_main(run.main, ["--net", str(bad), "--data-root", str(cifar_root), "--out", str(out)])
    assert_one_line_error(capsys, code, "stride (0, 0)")
    assert not out.parent.exists()


# -- 6. two exports to one --out ---------------------------------------------------------------


def test_a_second_export_to_a_claimed_out_is_refused(tiny_run, tmp_path, capsys):
    from rssnn.atomic import claim
    from rssnn.export import to_netx

    out = tmp_path / "m.net"
    argv = ["--checkpoint", str(tiny_run / "best.pt"), "--out", str(out)]
    held = tmp_path / f".{out.name}.claim"
    held.write_text(str(os.getppid()))  # a running process (not this one) claimed it
    assert_one_line_error(capsys, call_main(to_netx.main, argv), "is writing --out")
    assert not out.exists()
    held.unlink()
    with claim(out):  # our own claim, released on the way out
        assert held.read_text() == str(os.getpid())
    assert not held.exists()
    stale = held
    stale.write_text("999999999")  # a claim left by a killed export: taken over
    assert to_netx.main(argv) == 0 and out.is_file() and not stale.exists()


# -- 7. a full disk ----------------------------------------------------------------------------


# Caches the interpreter itself may fill on a fresh machine (numba's compiled kernels beside
# train/, matplotlib's font list) are filled first; then every write past LIMIT bytes fails with
# EFBIG, as on a full disk, and the real command runs in that process.
FULL_DISK = """
import resource, signal, sys
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
import torch
from rssnn.train.neurons import DLIF
DLIF(2, 2)(torch.ones(1, 2, 2, 2, 2, requires_grad=True)).sum().backward()  # numba compiles, caches
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
"""


def test_a_full_disk_fails_with_one_line_and_no_partial_file(cifar_root, tmp_path):
    out = tmp_path / "run"
    argv = ["--data-root", str(cifar_root), "--out", str(out), "--train-limit", "40", "--val-size", "100",
            "--width", "4", "--timesteps", "2", "--batch-size", "20", "--epochs", "1", "--quiet"]  # fmt: skip
    train = FULL_DISK + (
        "from rssnn.cli_support import exit_process\n"
        "from rssnn.train.cifar import main\n"
        f"exit_process(main({argv!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", train], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert err[-1].startswith("error: cannot write") and "File too large" in err[-1], err
    assert not list(out.glob(".*.tmp")) and not list(out.glob("*.pt"))
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 1  # written whole
    plot = FULL_DISK + (
        "from rssnn.atomic import atomic_save_figure\n"
        "from rssnn.errors import UserError\n"
        "fig, ax = plt.subplots(); ax.plot(range(10**4))\n"
        "try:\n"
        f"    atomic_save_figure(fig, {str(tmp_path / 'plot.png')!r}, dpi=300)\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", plot], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "File too large" in proc.stdout, proc.stdout + proc.stderr
    assert not (tmp_path / "plot.png").exists() and not list(tmp_path.glob(".plot.png*"))


# -- 8. output paths checked before the work ---------------------------------------------------


def test_bad_output_paths_fail_before_any_work(tiny_run, cifar_root, tmp_path, capsys):
    from rssnn.export import to_netx
    from rssnn.lava_procs import run
    from rssnn.train import cifar

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    folder = tmp_path / "folder"
    folder.mkdir()
    missing_data = str(tmp_path / "no-data")  # a run that got as far as the data would say so
    ckpt = str(tiny_run / "best.pt")
    for main, argv, message in [
        (cifar.main, ["--data-root", missing_data, "--out", str(a_file)], "exists and is not a folder"),
        (cifar.main, ["--data-root", missing_data, "--out", "/proc/nope/run"], "cannot write --out"),
        (run.main, ["--net", str(tmp_path / "none.net"), "--out", str(folder)], "is a folder"),
        (run.main, ["--net", str(tmp_path / "none.net"), "--out", "/proc/x/r.json"], "cannot write --out"),
        (to_netx.main, ["--checkpoint", ckpt, "--out", str(tmp_path / "m.net"), "--verify", "2",
                        "--verify-report", str(folder)], "--verify-report"),
    ]:  # fmt: skip
        assert_one_line_error(capsys, call_main(main, argv), message)
    assert not (tmp_path / "m.net").exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "a_file",
        "folder",
    ]


# -- 9. ranges ---------------------------------------------------------------------------------


def test_budgets_and_numbers_out_of_range_are_refused(tiny_run, cifar_root, tmp_path, capsys):
    from rssnn.lava_procs import run
    from rssnn.train import cifar, evaluate

    data = ["--data-root", str(tmp_path / "no-data"), "--out", str(tmp_path / "run")]
    for flags, message in [
        (["--eps", "2"], "--eps must be in [0, 1]"),
        (["--sigma", "1.5"], "--sigma must be in [0, 1]"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--max-minutes", "nan"], "--max-minutes must be a finite number"),
    ]:
        assert_one_line_error(capsys, call_main(cifar.main, data + flags), message)
    net = ["--net", str(tmp_path / "none.net"), "--out", str(tmp_path / "r.json")]
    for flags, message in [
        (["--perturb", "fgsm:1e300"], "budget in [0, 1]"),
        (["--perturb", "gn:2"], "budget in [0, 1]"),
        (["--watchdog", "nan"], "--watchdog must be"),
        (["--watchdog", "-1"], "--watchdog must be"),
    ]:
        assert_one_line_error(capsys, call_main(run.main, net + flags), message)
    ckpt = ["--checkpoint", str(tiny_run / "best.pt"), "--out", str(tmp_path / "e.json")]
    for attack, message in (("fgsm:1e300", "in [0, 1]"), ("pgd:8/255:7:2", "in (0, 1]")):
        assert_one_line_error(capsys, call_main(evaluate.main, ckpt + ["--attacks", attack]), message)
    assert not (tmp_path / "run").exists()


# -- 10. usability -----------------------------------------------------------------------------


def test_resume_refusals_come_before_the_data_and_advise_what_was_given(tiny_run, tmp_path, capsys):
    from rssnn.commands import cli
    from rssnn.train import cifar

    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes((tiny_run / "last.pt").read_bytes())
    no_data = ["--data-root", str(tmp_path / "no-data"), "--out", str(run), "--resume"]
    # the tiny run was trained with --width 4 and others; repeating none of them is refused,
    # and the line names the run's own values instead of telling the user to drop flags
    line = assert_one_line_error(capsys, call_main(cifar.main, no_data), "changed flags")
    assert "drop those flags" not in line and "add the run's own values" in line and "--width 4" in line
    line = assert_one_line_error(capsys, call_main(cifar.main, no_data + ["--seed", "5"]), "--seed 0 -> 5")
    assert "drop those flags" in line
    assert_one_line_error(capsys, cli.main(["bogus"]), "unknown command 'bogus'")
