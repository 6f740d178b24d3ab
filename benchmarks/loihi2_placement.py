"""The Loihi 2 placement estimate (rssnn.loihi2) beside Intel's compiler, layer by layer.

    python benchmarks/loihi2_placement.py [--shared ../shared/data/loihi2]

Intel's compiler printed the placements of two lava-dl tutorial NetX files (shared/data/loihi2,
README.md there; transcribed below with the layer each row belongs to). This script places the
same files with ``rssnn.loihi2`` and prints both side by side with the miss per layer and in
total, and also places rssnn's own exports (cpu, cpu-res, wrn16; untrained models with
calibrated BatchNorm: placement depends on shapes, not on training) for which no compiler
output exists. Writes benchmarks/results/loihi2_placement.json, a markdown table and a plot.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compare(path: Path) -> dict:
    from rssnn import loihi2

    report = loihi2.place(path)
    truth = loihi2.COMPILER_PLACEMENTS[path.name]
    rows = []
    for layer in report["layers"]:
        if layer["index"] not in truth:
            continue
        ours, theirs = layer["cores"], truth[layer["index"]]
        within = abs(ours - theirs) <= 1 or abs(ours - theirs) <= 0.2 * theirs
        rows.append(
            dict(layer=layer["name"], shape=layer["shape"], neurons=layer["neurons"], estimate=ours,
                 compiler=theirs, bound_by=layer["binding"], within_goal=within)
        )  # fmt: skip
    total = sum(truth.values())
    return dict(
        net=path.name,
        estimate_total=report["total_cores"],
        compiler_total=total,
        total_miss=(report["total_cores"] - total) / total,
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
            layers = [(lay["name"], lay["cores"], lay["binding"]) for lay in report["layers"]]
            rows.append(
                dict(model=name, total_cores=report["total_cores"], chips=report["chips"], layers=layers)
            )
    return rows


def markdown(result: dict) -> str:
    lines = []
    for c in result["compiler_check"]:
        lines += [
            f"**{c['net']}**: estimate {c['estimate_total']} cores, compiler {c['compiler_total']} "
            f"({c['total_miss']:+.0%})",
            "",
            "| layer | shape | neurons | estimate | compiler | bound by | within 1 core or 20 % |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in c["layers"]:
            shape = "x".join(str(s) for s in r["shape"])
            lines.append(
                f"| {r['layer']} | {shape} | {r['neurons']} | {r['estimate']} | {r['compiler']} | "
                f"{r['bound_by']} | {'yes' if r['within_goal'] else 'no'} |"
            )
        lines.append("")
    lines += ["| rssnn export | cores | chips |", "|---|---|---|"]
    lines += [f"| {r['model']} | {r['total_cores']} | {r['chips']} |" for r in result["own_exports"]]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(result["compiler_check"]), figsize=(11, 3.8))
    for ax, c in zip(axes, result["compiler_check"]):
        xs = range(len(c["layers"]))
        ax.bar([i - 0.2 for i in xs], [r["compiler"] for r in c["layers"]], 0.4, label="Intel compiler")
        ax.bar([i + 0.2 for i in xs], [r["estimate"] for r in c["layers"]], 0.4, label="rssnn estimate")
        ax.set_xticks(list(xs), [r["layer"] for r in c["layers"]], rotation=45, ha="right", fontsize=7)
        ax.set(title=f"{c['net']}: {c['estimate_total']} vs {c['compiler_total']} cores", ylabel="cores")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data" / "loihi2"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "loihi2_placement.json"))
    args = ap.parse_args(argv)
    from rssnn import loihi2

    shared = Path(args.shared)
    result = dict(
        compiler_check=[compare(shared / name) for name in loihi2.COMPILER_PLACEMENTS],
        own_exports=own_exports(),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    plot(result, out.with_suffix(".png"))
    sys.stdout.write(markdown(result))
    return result


if __name__ == "__main__":
    main()
