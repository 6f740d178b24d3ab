"""``rssnn cost``: does a NetX file fit Loihi 2, on how many neurocores and chips, and why.

    rssnn cost --net model.net --out cost.json      # also cost.md (table) and cost.png (plot)

Reads any stock NetX file (lava-dl's own, CUBA or sigma-delta) or an rssnn extension file with
the numpy core and h5py only (no torch, no Lava) and places it under the resource model of
:mod:`rssnn.loihi2`: neurons, fan-in, weights (non-zero, bits), synaptic memory and cores per
layer, the resource that bound each layer, totals, and every constant with its source. This is
an estimate: docs/loihi2.md checks it against Intel's compiler. Activity (spikes, synaptic
operations) and energy need a run on images; this command does not count them yet.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Loihi 2 placement estimate: {report['net']}",
        "",
        f"**{report['total_cores']} neurocores on {report['chips']} chip(s)** (an estimate from "
        "rssnn.loihi2's resource model, not Intel's compiler)",
        "",
        "| layer | kind | neuron | shape | neurons | fan-in | weights (non-zero, bits) | synaptic words | "
        "cores | bound by |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in report["layers"]:
        shape = "x".join(str(s) for s in layer["shape"])
        weights = f"{layer['weights']} ({layer['nonzero_weights']}, {layer['weight_bits']})"
        lines.append(
            f"| {layer['name']} | {layer['kind']} | {layer['neuron_model'] or '-'} | {shape} | "
            f"{layer['neurons']} | {layer['fan_in']} | {weights} | {layer['synaptic_words']:.0f} | "
            f"{layer['cores']} | {layer['binding']} |"
        )
    lines += ["", "| constant | value | kind | source |", "|---|---|---|---|"]
    for name, c in report["resources"].items():
        lines.append(f"| {name} | {c['value']:g} | {c['kind']} | {c['source']} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rssnn.atomic import atomic_save_figure

    placed = [layer for layer in report["layers"] if layer["cores"]]
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(placed) + 2), 3.8))
    ax.bar(range(len(placed)), [layer["cores"] for layer in placed], color="C0")
    for i, layer in enumerate(placed):
        ax.text(i, layer["cores"], layer["binding"].split()[0], ha="center", va="bottom", fontsize=7)
    names = [layer["name"] for layer in placed]
    ax.set_xticks(range(len(placed)), names, rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="neurocores (estimate)", title=f"{report['total_cores']} cores, {report['chips']} chip(s)")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rssnn import loihi2
    from rssnn.atomic import atomic_write_text, check_output_file

    out = Path(args.out)
    for path in (out, out.with_suffix(".md"), out.with_suffix(".png")):
        check_output_file(path)  # before any work
    report = loihi2.place(args.net)
    atomic_write_text(out, json.dumps(report, indent=2))
    atomic_write_text(out.with_suffix(".md"), markdown(report))
    plot(report, out.with_suffix(".png"))
    print(
        f"{args.net}: {report['total_cores']} Loihi 2 neurocores on {report['chips']} chip(s) "
        f"(estimate); report {out}"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import OneLineParser, run_cli

    ap = OneLineParser(
        prog="rssnn cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--net", required=True, help="NetX HDF5 file (ours or lava-dl's)")
    ap.add_argument("--out", default="cost.json", help="JSON report; .md and .png beside it")
    args = ap.parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
