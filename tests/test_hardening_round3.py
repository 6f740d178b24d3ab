"""Issue 30, the third adversarial round: hard-linked memory bombs, distributed runs that outlive
their launcher or disagree at the default seed, NIR files that crash or write corrupt integers,
quadratic graph reading. One test per defect; each failed before its fix.

The bombs are built here with h5py from unallocated datasets (the file stays a few KB; a read
materialises fill values) and opened in a child process whose address space is capped a little
above what it has mapped after its imports, so a regression fails the test with a MemoryError
instead of taking the machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT

ENV = dict(os.environ, OMP_NUM_THREADS="1")

# -- 1. and 11. one budget for what a file makes us hold --------------------------------------

# Runs in the child: imports first, then the address space is capped at what is mapped plus
# CAP_EXTRA (a regression dies of MemoryError, not the machine); prints the peak RSS as JSON.
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child of a large pytest worker
# would report its parent's peak.
CHILD = """
import json, resource, sys, time
from rssnn import netx_file
from rssnn.errors import UserError
{imports}
vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + {cap_extra}, vm + {cap_extra}))
t0 = time.monotonic()
try:
    {call}
    outcome = "accepted"
except UserError as exc:
    outcome = "refused: " + str(exc)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) * 1024
print(json.dumps(dict(outcome=outcome, seconds=time.monotonic() - t0, peak_rss=peak)))
"""
CAP_EXTRA = 1 << 30


def _open_in_child(call: str, imports: str = "", cap_extra: int = CAP_EXTRA) -> dict:
    code = CHILD.format(imports=imports, call=call, cap_extra=cap_extra)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=ENV,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_refused(result: dict, message: str) -> None:
    """One line holding ``message``, within 10 s and 1 GB (the issue's bar)."""
    outcome = result["outcome"]
    assert outcome.startswith("refused: ") and message in outcome, outcome
    assert len(outcome.splitlines()) == 1
    assert result["seconds"] < 10 and result["peak_rss"] < 1e9, result


def _netx_skeleton(path: Path, n_layers: int, input_shape=(16384, 1, 1)) -> h5py.File:
    """An rssnn NetX file's metadata and input layer; the caller adds layers 1..n_layers (a file
    otherwise valid: the old reader accepted the last two bombs below whole)."""
    f = h5py.File(path, "w")
    meta = f.create_group("rssnn")
    meta.attrs.update(
        dict(format="rssnn-netx", version=1, kind="stock", features="[]", num_steps=2,
             class_names=json.dumps([str(i) for i in range(10)]),
             layer_names=json.dumps([f"l{i}" for i in range(n_layers)]),
             layer_scales=json.dumps([1.0] * n_layers))
    )  # fmt: skip
    g = f.create_group("layer/0")
    g["type"] = np.array([b"input"], "S10")
    g["shape"] = np.array(input_shape)
    return f


def _dense_layer(
    f: h5py.File, i: int, features: int, weight: h5py.Dataset | None, inputs: int | None = None
) -> h5py.Group:
    g = f.create_group(f"layer/{i}")
    g["type"] = np.array([b"dense"], "S10")
    g["shape"] = np.array([features])
    g["bias"] = np.zeros(features)
    for key, value in dict(iDecay=0, vDecay=0, vThMant=100).items():
        g[f"neuron/{key}"] = value
    g["neuron/type"] = np.array([b"CUBA"], "S10")
    if weight is None:
        g.create_dataset("weight", (features, inputs or features), "f4")  # unallocated: reads as zeros
    else:
        g["weight"] = weight  # a hard link: the same dataset, read again
    return g


def _linked_dense(path: Path) -> Path:
    """The issue's runner bomb: 12 dense layers that all link one empty 16384 x 16384 weight."""
    with _netx_skeleton(path, 12) as f:
        first = _dense_layer(f, 1, 16384, None)
        for i in range(2, 13):
            _dense_layer(f, i, 16384, first["weight"])
    return path


def _linked_within_each_bound(path: Path) -> Path:
    """Skips that each fit every per-dataset bound: 20 links to one 4096 x 4096 weight (128 MiB
    as held) add up to 2.5 GiB only when every link is counted."""
    with _netx_skeleton(path, 2, (4096, 1, 1)) as f:
        first = _dense_layer(f, 1, 4096, None)
        second = _dense_layer(f, 2, 4096, first["weight"])
        for j in range(20):
            second[f"skip/{j}/type"] = np.array([b"dense"], "S10")
            second[f"skip/{j}/source"] = 1
            second[f"skip/{j}/weight"] = first["weight"]
    return path


def _huge_neuron_type(path: Path) -> Path:
    """A small file whose neuron/type dataset declares 2^28 64-byte strings: 16 GiB."""
    with _netx_skeleton(path, 1, (3, 32, 32)) as f:
        g = _dense_layer(f, 1, 10, None, 3072)
        del g["neuron/type"]
        g.create_dataset("neuron/type", (1 << 28,), "S64")
    return path


def _long_text_attribute(path: Path) -> Path:
    """A variable-length string attribute of 17 MiB, past the 16 MiB bound: its storage size
    reads as 16 B."""
    with _netx_skeleton(path, 1, (3, 32, 32)) as f:
        _dense_layer(f, 1, 10, None, 3072)
        f["rssnn"].attrs["notes"] = "x" * (17 << 20)
    return path


NETX_BOMBS = [
    (_linked_dense, "every hard link counted"),
    (_linked_within_each_bound, "every hard link counted"),
    (_huge_neuron_type, "every hard link counted"),
    (_long_text_attribute, "attribute 'notes' holds more than 16 MiB of text"),
]


@pytest.mark.parametrize("build, message", NETX_BOMBS, ids=[b.__name__ for b, _ in NETX_BOMBS])
def test_netx_files_that_would_make_us_hold_too_much_are_refused_in_one_line(tmp_path, build, message):
    path = build(tmp_path / "bomb.net")
    assert path.stat().st_size < (18 << 20)  # the bombs are small files
    _assert_refused(_open_in_child(f"netx_file.read({str(path)!r})"), message)


def test_the_budget_counts_a_link_once_per_use_not_per_dataset(tmp_path):
    """The same 4096 x 4096 weight linked from two layers only is within the budget: what
    refuses the bomb above is the count of its links."""
    with _netx_skeleton(tmp_path / "two.net", 2, (4096, 1, 1)) as f:
        first = _dense_layer(f, 1, 4096, None)
        _dense_layer(f, 2, 4096, first["weight"])
    with h5py.File(tmp_path / "two.net", "r") as f:
        from rssnn import hdf5_checks

        hdf5_checks.check_structure(tmp_path / "two.net", f)  # accepted: 2 x 128 MiB


def _nir_bomb(path: Path) -> Path:
    """The issue's NIR bomb: 30 Affine nodes linking one empty 2^27-element float64 weight."""
    with h5py.File(path, "w") as f:
        f.create_dataset("version", data="1.0", dtype=h5py.string_dtype())
        nodes = f.create_group("node/nodes")
        f["node/type"] = np.array(b"NIRGraph")
        weight = None
        for i in range(30):
            g = nodes.create_group(f"a{i}")
            g.create_dataset("type", data="Affine", dtype=h5py.string_dtype())
            if weight is None:
                weight = g.create_dataset("weight", (1 << 13, 1 << 14), "f8")
            else:
                g["weight"] = weight
            g["bias"] = np.zeros(1 << 13)
    return path


def test_a_nir_file_of_hard_linked_weights_is_refused_before_nir_reads_it(tmp_path):
    path = _nir_bomb(tmp_path / "bomb.nir")
    result = _open_in_child(f"nir_read.read({str(path)!r})", imports="from rssnn.export import nir_read")
    _assert_refused(result, "every hard link counted")


# -- 3. distributed runs die with their launcher ----------------------------------------------


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet is dead: it runs nothing and writes nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir() if p.is_file()}


def test_sigkill_to_torchrun_ends_every_rank_and_nothing_is_written_after(cifar_root, tmp_path):
    """The issue's case: both ranks went on training (and rewriting last.pt) for 40 s after
    torchrun was killed. Now no rank outlives it by 5 s, and no file changes after the kill."""
    from rssnn.train import checkpoint

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "train/cifar.py", "--data-root", str(cifar_root), "--train-limit", "2000", "--val-size", "100",
           "--width", "4", "--timesteps", "2", "--batch-size", "20", "--device", "cpu", "--quiet",
           "--checkpoint-every", "1", "--epochs", "1", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)  # fmt: skip
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if (out / "last.pt").exists() and checkpoint.load(out / "last.pt")["batch_in_epoch"] >= 1:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                  text=True).stdout.split()]  # fmt: skip
        assert len(workers) == 2, workers
        os.kill(proc.pid, signal.SIGKILL)  # the launcher alone, as a scheduler's kill -9 would
        killed = time.time()
        proc.wait()
        time.sleep(0.5)  # a write the kill caught half-way ends (or dies) within this
        at_kill = _files(out)
        while time.time() < killed + 5 and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "a rank outlived its launcher by 5 s"
        time.sleep(1)
        assert _files(out) == at_kill  # nothing written after the kill
        assert all(mtime <= (killed + 0.5) * 1e9 for mtime, _ in at_kill.values())
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


# -- 4. the run folder is claimed for the run's whole life, resume included --------------------


def test_a_resume_into_the_folder_of_a_live_run_is_refused(tiny_run, cifar_root, tmp_path, capsys):
    """The issue's case: both runs exited 0, the second's checkpoints replacing the first's."""
    from conftest import assert_one_line_error, call_main

    from rssnn.train import cifar

    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "config.json"):
        (run / name).write_bytes((tiny_run / name).read_bytes())
    before = (run / "last.pt").read_bytes()
    claim = tmp_path / ".run.claim"
    claim.write_text(str(os.getppid()))  # a live process (not this one) is training into it
    argv = ["--data-root", str(cifar_root), "--out", str(run), "--resume", "--epochs", "2", "--quiet",
            "--train-limit", "200", "--val-size", "100", "--width", "4", "--batch-size", "20"]  # fmt: skip
    assert_one_line_error(capsys, call_main(cifar.main, argv), f"is writing --out '{run}'")
    assert (run / "last.pt").read_bytes() == before and claim.read_text() == str(os.getppid())


# -- 6. and 7. NIR parameters and metadata: one line each, before anything is written ----------


def _nir_chain(metadata: dict) -> tuple[dict, list, dict]:
    """test_nir's valid chain (conv, CubaLIF, flatten, dense read-out), as nodes to edit."""
    import nir

    shape = (4, 32, 32)
    lif = nir.CubaLIF(tau_syn=np.full(shape, 2e-4), tau_mem=np.full(shape, 1e-3), r=np.full(shape, 10.0),
                      v_leak=np.zeros(shape), v_threshold=np.ones(shape),
                      w_in=np.full(shape, 2.0))  # fmt: skip
    nodes = {
        "input": nir.Input(np.array([3, 32, 32])),
        "conv": nir.Conv2d((32, 32), np.ones((4, 3, 3, 3)) * 0.01, 1, 1, 1, 1, np.zeros(4)),
        "lif": lif,
        "flat": nir.Flatten({"input": np.array([4, 32, 32])}, 0, -1),
        "fc": nir.Affine(np.ones((10, 4096)) * 0.01, np.zeros(10)),
        "output": nir.Output(np.array([10])),
    }
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "flat"), ("flat", "fc"), ("fc", "output")]
    return nodes, edges, dict(dict(num_steps=4, dt=1e-4), **metadata)


def _set(node: str, field: str, value):
    return lambda nodes: setattr(nodes[node], field, value)


def _input_shape(value):
    return lambda nodes: nodes["input"].input_type.__setitem__("input", value)


NIR_VARIANTS = [  # (metadata, node edit, what the line says): item 6, then item 7's 13
    ({}, _set("conv", "bias", np.array([0.0, np.nan, 0.0, 0.0])), "bias holds NaN or infinity"),
    (dict(num_steps="four"), None, "num_steps must be a whole number, got 'four'"),
    (dict(num_steps=float("nan")), None, "num_steps must be a whole number, got nan"),
    (dict(num_steps=float("inf")), None, "num_steps must be a whole number, got inf"),
    (dict(num_steps=np.array([4, 4])), None, "num_steps must be a whole number, got [4, 4]"),
    (dict(num_steps=2.7), None, "num_steps must be a whole number, got 2.7"),
    (dict(dt="1e-4"), None, "dt must be one finite number, got '1e-4'"),
    (dict(dt=np.array([1e-4, 1e-4])), None, "dt must be one finite number"),
    (dict(input_range=np.array([0.0, 0.5, 1.0])), None, "input_range must be two numbers"),
    (dict(input_range="0 1"), None, "input_range must be two numbers (LO, HI), got '0 1'"),
    ({}, _input_shape(np.array([3.0, np.nan, 32.0])), "shape holds NaN or infinity"),
    ({}, _input_shape(np.array([b"3", b"32", b"32"])), "shape is not numeric"),
    ({}, _set("fc", "bias", np.zeros(7)), "bias has shape (7,); 10 values"),
    ({}, lambda nodes: nodes["fc"].weight.__setitem__((0, 0), np.inf), "weight holds NaN or infinity"),
]


@pytest.mark.parametrize("metadata, edit, message", NIR_VARIANTS, ids=[m for *_, m in NIR_VARIANTS])
def test_nir_parameters_and_metadata_are_refused_in_one_line_before_writing(
    tmp_path, capsys, metadata, edit, message
):
    import nir
    from conftest import assert_one_line_error, call_main

    from rssnn.export.to_netx import main as to_netx

    nodes, edges, meta = _nir_chain(metadata)
    if edit is not None:
        edit(nodes)
    path = tmp_path / "g.nir"
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False))
    out = tmp_path / "out.net"
    assert_one_line_error(capsys, call_main(to_netx, ["--nir", str(path), "--out", str(out)]), message)
    assert not out.exists() and not list(tmp_path.glob(".*"))  # nothing written, not even a partial


def test_the_unedited_nir_chain_converts(tmp_path):
    """The variants above are refused for their edit alone."""
    import nir

    from rssnn.export.to_netx import main as to_netx

    path = tmp_path / "g.nir"
    nodes, edges, meta = _nir_chain({})
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta))
    assert to_netx(["--nir", str(path), "--out", str(tmp_path / "g.net")]) == 0


# -- 8. NIR graph reading in linear time --------------------------------------------------------


def test_a_nir_graph_of_80000_edges_is_read_in_linear_time():
    """2,000 nodes, 80,000 edges: the parents and the topological order took 19 s as one scan
    of the edges per node; one pass each reaches the first refusal at once."""
    import nir

    from rssnn.errors import UserError
    from rssnn.export import nir_read

    names = [f"a{i}" for i in range(1998)]
    nodes = {name: nir.Affine(np.ones((1, 1)), np.zeros(1)) for name in names}
    nodes.update(input=nir.Input(np.array([3, 32, 32])), output=nir.Output(np.array([1])))
    rng = np.random.default_rng(0)
    pairs = {tuple(sorted(p)) for p in rng.integers(0, len(names), (90_000, 2)) if p[0] != p[1]}
    edges = [("input", name) for name in names] + [(names[i], names[j]) for i, j in sorted(pairs)]
    edges = edges[:79_000] + [(name, "output") for name in names[-1000:]]
    assert len(edges) == 80_000
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(num_steps=4, dt=1e-4), type_check=False)
    t0 = time.monotonic()
    with pytest.raises(UserError, match="needs a Flatten"):  # a0, the first after the input
        nir_read.from_nir(graph, None, None, None)
    assert time.monotonic() - t0 < 3
