"""The Loihi 2 placement rules (rssnn.loihi2) beside Intel's compiler, layer by layer, on three
real lava-dl networks, and the core counts of rssnn's own exports.

    python benchmarks/loihi2_placement.py [--shared ../shared/data/loihi2] [--pilotnet-snn FILE]

Intel's compiler printed the placement of three lava-dl tutorial networks (lava-nc/lava-dl,
BSD-3-Clause, tutorials/lava/lib/dl/netx/):

* ``mnist.net`` (mnist/run.ipynb) and ``pilotnet_sdnn.net`` (pilotnet_sdnn/benchmark.ipynb, built
  with ``skip_layers=1``): both in shared/data/loihi2 with README.md there;
* ``pilotnet_snn.net``, PilotNet with CUBA neurons (type ``LOIHI``; pilotnet_snn/network.net,
  1.5 MB, placed on 74 cores in pilotnet_snn/benchmark.ipynb). It is not copied here: its
  layers are recorded in :data:`PILOTNET_SNN` (shapes, kernels, strides, paddings, neuron type;
  the rules read nothing else) and :func:`write_pilotnet_snn` writes a NetX file of that
  structure. ``--pilotnet-snn FILE`` (the original) places it as well and checks that both give
  the same cores.

Also places rssnn's own exports (cpu, cpu-res, wrn16; untrained models with calibrated
BatchNorm: the rules depend on shapes only), for which no compiler output exists. Writes
benchmarks/results/loihi2_placement.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# lava-dl's tutorials/lava/lib/dl/netx/pilotnet_snn/network.net, layer by layer (read with h5py):
# (type, shape as written, weight shape, kernel, stride, padding). Neurons: 'LOIHI' (CUBA).
PILOTNET_SNN = [
    ("input", (3, 66, 200), None, None, None, None),
    ("conv", (24, 32, 99), (24, 3, 3, 3), (3, 3), (2, 2), (0, 0)),
    ("conv", (36, 15, 49), (36, 24, 3, 3), (3, 3), (2, 2), (0, 0)),
    ("conv", (48, 7, 24), (48, 36, 3, 3), (3, 3), (2, 2), (0, 0)),
    ("conv", (64, 4, 22), (64, 48, 3, 3), (3, 3), (2, 1), (1, 0)),
    ("conv", (64, 2, 20), (64, 64, 3, 3), (3, 3), (1, 1), (0, 0)),
    ("flatten", (1, 1, 2560), None, None, None, None),
    ("dense", (100, 1, 1), (100, 2560), None, None, None),
    ("dense", (50, 1, 1), (50, 100), None, None, None),
    ("dense", (10, 1, 1), (10, 50), None, None, None),
    ("dense", (1, 1, 1), (10,), None, None, None),  # lava-dl writes the 1-neuron read-out as (10,)
]


def write_pilotnet_snn(path: Path) -> Path:
    """A NetX file with the structure of lava-dl's CUBA PilotNet (:data:`PILOTNET_SNN`); its
    weights are small integers (the placement rules read shapes only)."""
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for i, (kind, shape, weight, kernel, stride, padding) in enumerate(PILOTNET_SNN):
            g = f.create_group(f"layer/{i}")
            g.create_dataset("type", (1,), "S10", [kind.encode()])
            g.create_dataset("shape", data=np.array(shape))
            if kind == "flatten":
                continue
            n = g.create_group("neuron")
            n.create_dataset("type", data=b"LOIHI")
            for key, value in dict(iDecay=4096, vDecay=1024, vThMant=25, refDelay=1).items():
                n.create_dataset(key, data=value)
            if kind == "input":
                g.create_dataset("weight", data=40.0)
                g.create_dataset("bias", data=36.0)
                continue
            g.create_dataset("weight", data=rng.integers(-8, 9, weight).astype(np.float32))
            g.create_dataset("bias", data=np.zeros(shape[0], np.float32))
            if kind == "conv":
                g.create_dataset("inChannels", data=weight[1])
                g.create_dataset("outChannels", data=weight[0])
                g.create_dataset("kernelSize", data=np.array(kernel))
                g.create_dataset("stride", data=np.array(stride))
                g.create_dataset("padding", data=np.array(padding))
                g.create_dataset("dilation", data=np.array([1, 1]))
                g.create_dataset("groups", data=1)
            else:
                g.create_dataset("inFeatures", data=weight[-1])
                g.create_dataset("outFeatures", data=shape[0])
    return path


def compare(path: Path, name: str | None = None) -> dict:
    """The rules' placement of one compiled file beside the compiler's, layer by layer."""
    from rssnn import loihi2

    name = name or path.name
    skip = loihi2.COMPILER_SKIP_LAYERS[name]
    report = loihi2.place(path, skip)
    truth, tiles = loihi2.COMPILER_PLACEMENTS[name], loihi2.COMPILER_TILES.get(name, {})
    rows = []
    for layer in report["layers"]:
        if layer["index"] not in truth:
            continue
        ours, theirs = layer["cores"], truth[layer["index"]]
        # The compiler prints one core's neurons: a whole conv tile, or a dense layer's smaller share.
        tile = layer["neurons_per_core"] if layer["kind"] != "dense" else layer["neurons"] // ours
        rows.append(
            dict(layer=layer["name"], shape=layer["shape"], neurons=layer["neurons"], tile=layer["tile"],
                 neurons_per_core=tile, compiler_neurons_per_core=tiles.get(layer["index"]),
                 estimate=ours, compiler=theirs, bound_by=layer["binding"],
                 within_goal=abs(ours - theirs) <= max(1, 0.2 * theirs))
        )  # fmt: skip
    total = sum(truth.values())
    return dict(
        net=name,
        skip_layers=skip,
        estimate_total=report["total_cores"],
        compiler_total=total,
        total_miss=(report["total_cores"] - total) / total,
        exact=all(r["estimate"] == r["compiler"] for r in rows) and report["total_cores"] == total,
        layers=rows,
    )


def own_exports() -> list[dict]:
    """Placement of rssnn's own models as exported (per-channel CUBA, residual skips)."""
    import torch

    from rssnn import loihi2, netx_file
    from rssnn.export import lowering
    from rssnn.train import data
    from rssnn.train.models import build_model, calibrate_batchnorm
    from rssnn.train.neurons import NeuronConfig

    split = data.load_split(data.DEFAULT_DATA_ROOT, "cifar10", "val", val_size=200, seed=0)
    x = split.images[:32].float() / 255
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, width, steps in (("cpu", 32, 2), ("cpu-res", 32, 2), ("wrn16", 32, 8)):
            torch.manual_seed(0)
            model = build_model(name, steps, 10, NeuronConfig(per_channel=True), "cifar10", width)
            calibrate_batchnorm(model, x)
            path = Path(tmp) / f"{name}.net"
            netx_file.write(path, lowering.lower(model, split.class_names), dict(dataset="cifar10"))
            report = loihi2.place(path)
            layers = [
                dict(name=lay["name"], shape=lay["shape"], tile=lay["tile"], cores=lay["cores"],
                     bound_by=lay["binding"])
                for lay in report["layers"]
            ]  # fmt: skip
            rows.append(
                dict(model=name, total_cores=report["total_cores"], chips=report["chips"], layers=layers)
            )
    return rows


def markdown(result: dict) -> str:
    lines = []
    for c in result["compiler_check"]:
        skip = f", skip_layers={c['skip_layers']}" if c["skip_layers"] else ""
        lines += [
            f"**{c['net']}**{skip}: rules {c['estimate_total']} cores, compiler {c['compiler_total']} "
            f"({c['total_miss']:+.0%})",
            "",
            "| layer | shape | neurons | tile per core (rule) | neurons per core: rule / printed | cores: "
            "rule / compiler | bound by |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in c["layers"]:
            shape = "x".join(str(s) for s in r["shape"])
            tile = "x".join(str(s) for s in r["tile"])
            printed = r["compiler_neurons_per_core"] if r["compiler_neurons_per_core"] is not None else "-"
            lines.append(
                f"| {r['layer']} | {shape} | {r['neurons']} | {tile} | {r['neurons_per_core']} / {printed} | "
                f"{r['estimate']} / {r['compiler']} | {r['bound_by']} |"
            )
        lines.append("")
    if result.get("original_pilotnet_snn"):
        o = result["original_pilotnet_snn"]
        lines += [f"lava-dl's original pilotnet_snn network.net: {o['estimate_total']} cores, same per "
                  f"layer as the recorded structure: {o['same_as_recorded']}", ""]  # fmt: skip
    lines += ["| rssnn export | cores | chips |", "|---|---|---|"]
    lines += [f"| {r['model']} | {r['total_cores']} | {r['chips']} |" for r in result["own_exports"]]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rssnn.atomic import atomic_save_figure

    checks = result["compiler_check"]
    fig, axes = plt.subplots(1, len(checks), figsize=(5 * len(checks), 3.8))
    for ax, c in zip(np.atleast_1d(axes), checks):
        xs = range(len(c["layers"]))
        ax.bar([i - 0.2 for i in xs], [r["compiler"] for r in c["layers"]], 0.4, label="Intel compiler")
        ax.bar([i + 0.2 for i in xs], [r["estimate"] for r in c["layers"]], 0.4, label="rssnn rules")
        ax.set_xticks(list(xs), [r["layer"] for r in c["layers"]], rotation=45, ha="right", fontsize=7)
        ax.set(title=f"{c['net']}: {c['estimate_total']} vs {c['compiler_total']} cores", ylabel="cores")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data" / "loihi2"))
    ap.add_argument(
        "--pilotnet-snn", default=None, help="lava-dl's pilotnet_snn/network.net: place the original too"
    )
    ap.add_argument("--skip-exports", action="store_true", help="leave out rssnn's own exports (no torch)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "loihi2_placement.json"))
    args = ap.parse_args(argv)
    from rssnn import loihi2
    from rssnn.atomic import atomic_write_text

    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmp:
        snn = write_pilotnet_snn(Path(tmp) / "pilotnet_snn.net")
        checks = [compare(shared / "mnist.net"), compare(shared / "pilotnet_sdnn.net"), compare(snn)]
        result = dict(compiler_check=checks)
        if args.pilotnet_snn:
            o = compare(Path(args.pilotnet_snn), "pilotnet_snn.net")
            o["same_as_recorded"] = [r["estimate"] for r in o["layers"]] == [
                r["estimate"] for r in checks[2]["layers"]
            ]
            result["original_pilotnet_snn"] = o
    result["constants"] = {
        k: dict(value=c.value, kind=c.kind, source=c.source) for k, c in loihi2.RESOURCES.items()
    }
    result["own_exports"] = [] if args.skip_exports else own_exports()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2))
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    plot(result, out.with_suffix(".png"))
    sys.stdout.write(markdown(result))
    return result


if __name__ == "__main__":
    main()
