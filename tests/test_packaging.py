"""The installed form: a wheel adds one name, ``rssnn``, to site-packages."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_holds_only_the_rssnn_namespace(tmp_path):
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(tmp_path), "."], cwd=ROOT, check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("rssnn_lava-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"rssnn", wheel.name.split("-py")[0] + ".dist-info"}
    # the design's folders, as sub-packages: every command and every Lava process folder
    for module in (
        "train/cifar.py",
        "train/evaluate.py",
        "export/to_netx.py",
        "lava_procs/run.py",
        "commands/demo.py",
    ):
        assert f"rssnn/{module}" in names, module
    # every process folder of the checkout (a folder missing from pyproject's list is dropped)
    folders = sorted(p.parent.name for p in (ROOT / "lava_procs").glob("*/models.py"))
    assert {"delay", "dlif", "io", "monitor", "synapses"} <= set(folders)
    for folder in folders:
        assert f"rssnn/lava_procs/{folder}/models.py" in names, folder
    assert not any(n.startswith(("tests/", "benchmarks/", "train/", "export/", "commands/")) for n in names)
    # the installed ``rssnn`` command lives in the command shell, which the wheel holds
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    script = zipfile.ZipFile(wheel).read(entry_points).decode().split("rssnn = ")[1].split()[0]
    assert script == "rssnn.commands.cli:entry" and "rssnn/commands/cli.py" in names
    # the main job (rssnn demo) starts every stage as a module that the wheel holds, and writes
    # under the working directory, not the package's folder (site-packages once installed)
    from rssnn.commands import demo

    out = tmp_path / "job"
    for stage, command, done in demo.pipeline(out, [], download=False):
        assert command[0] == "-m" and done.is_relative_to(out), (stage, command)
        assert command[1].replace(".", "/") + ".py" in names, (stage, command[1])


def test_the_core_imports_neither_lava_nor_torch_and_lava_comes_after_tqdm():
    """``import rssnn.<core>`` pulls in numpy and h5py only; Lava's runtime, which insists on
    fixing the 'fork' start method itself, still imports after tqdm or numba have fixed it."""
    code = (
        "import multiprocessing as mp, sys\n"
        "import rssnn.dynamics, rssnn.netx_file, rssnn.integer_forward, rssnn.perturbation\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'lava', 'torch', 'torchvision'})\n"
        "assert not heavy, heavy\n"
        "from tqdm import tqdm\n"
        "list(tqdm(range(3), disable=False, file=open('/dev/null', 'w')))  # its lock fixes the method\n"
        "assert mp.get_start_method(allow_none=True) == 'fork'\n"
        "import rssnn.lava_procs.network\n"
        "print('lava after tqdm:', mp.get_start_method())\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "lava after tqdm: fork" in res.stdout, res.stderr[-2000:]
    spawn = "import multiprocessing as mp; mp.set_start_method('spawn'); import rssnn.lava_procs"
    res = subprocess.run([sys.executable, "-c", spawn], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "'fork' start method, but 'spawn' is already set" in res.stderr


def test_every_core_module_imports_without_torch_or_slayer():
    """The core is numpy-only: each module of rssnn/ imports where torch and SLAYER cannot be
    imported, and none of them imports Lava (only lava_guard does, when asked to run it)."""
    modules = sorted(f"rssnn.{p.stem}" for p in (ROOT / "rssnn").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, importlib.abc, json, sys\n"
        "class Blocked(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision', 'torchattacks') or name.startswith(\n"
        "            'lava.lib.dl.slayer'):\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, Blocked())\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lava'))))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
    assert len(modules) >= 15
