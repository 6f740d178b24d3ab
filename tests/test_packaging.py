"""The installed form: a wheel adds one name, ``rssnn``, to site-packages."""

from __future__ import annotations

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
    for module in ("train/cifar.py", "train/evaluate.py", "export/to_netx.py", "lava_procs/run.py"):
        assert f"rssnn/{module}" in names, module
    for folder in ("dlif", "io", "monitor", "synapses"):
        assert {f"rssnn/lava_procs/{folder}/process.py", f"rssnn/lava_procs/{folder}/models.py"} & set(names)
    assert not any(n.startswith(("tests/", "benchmarks/", "train/", "export/")) for n in names)
