"""``rssnn cost``: does a NetX file fit Loihi 2, on how many neurocores and chips, and why.

    rssnn cost --net model.net --out cost.json      # also cost.md (table) and cost.png (plot)
    rssnn cost --net pilotnet_sdnn.net --out c.json --skip-layers 1   # input layer off the chip
    rssnn cost --net model.net --out cost.json --images 100 [--data-root DIR --split val]

Reads any stock NetX file (lava-dl's own, CUBA or sigma-delta) or an rssnn extension file with
the numpy core and h5py only (no torch, no Lava) and places it under the resource model of
:mod:`rssnn.loihi2`: neurons, fan-in, weights (non-zero, bits), synaptic memory and cores per
layer, the resource that bound each layer, totals, and every constant with its source. This is
an estimate: docs/loihi2.md checks it against Intel's compiler. The report is never written over
an existing file without ``--force``.

With ``--images N`` (an rssnn-lava file: it names its dataset and input encoding) the network
also runs in Lava on N held-out images and its network monitor counts, per layer and per
inference, spikes, synaptic operations (the graded input as multiply-accumulates), neuron updates
and activation sparsity (:mod:`rssnn.activity`); :mod:`rssnn.energy` turns them into an energy
range and a latency, labelled an estimate. Placement alone needs the numpy core and h5py; the
run imports Lava (``rssnn.lava_procs``), never torch.
"""

from __future__ import annotations

# Run as a file (python commands/cost.py) or as -m commands.cost: this module's relative imports resolve
# inside one package, rssnn.commands (PEP 366), never in a second copy of it.
if __name__ == "__main__":
    __package__ = "rssnn.commands"

import argparse
import json
import os
from pathlib import Path
from typing import Any


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Loihi 2 placement estimate: {report['net']}",
        "",
        f"**{report['total_cores']} neurocores on {report['chips']} chip(s)** (an estimate from "
        "rssnn.loihi2's resource model, not Intel's compiler)",
        "",
        "| layer | kind | neuron | shape | neurons | fan-in | weights (non-zero, bits) | per core | "
        "synaptic words per core | cores | bound by |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in report["layers"]:
        shape = "x".join(str(s) for s in layer["shape"])
        tile = "x".join(str(s) for s in layer["tile"]) or "-"
        weights = f"{layer['weights']} ({layer['nonzero_weights']}, {layer['weight_bits']})"
        lines.append(
            f"| {layer['name']} | {layer['kind']} | {layer['neuron_model'] or '-'} | {shape} | "
            f"{layer['neurons']} | {layer['fan_in']} | {weights} | {tile} | {layer['synaptic_words']} | "
            f"{layer['cores']} | {layer['binding']} |"
        )
    lines += ["", "| constant | value | kind | source |", "|---|---|---|---|"]
    for name, c in report["resources"].items():
        lines.append(f"| {name} | {c['value']:g} | {c['kind']} | {c['source']} |")
    if "activity" in report:
        lines += _activity_markdown(report)
    return "\n".join(lines) + "\n"


def _activity_markdown(report: dict[str, Any]) -> list[str]:
    act, energy = report["activity"], report["energy"]
    lo, hi = report["energy_mj"]
    dyn, static = energy["dynamic_mj"], energy["static_mj"]
    lines = [
        "",
        f"## Activity per inference, counted by the network monitor in Lava ({act['images']} images, "
        f"T = {act['num_steps']})",
        "",
        "| layer | neurons | spikes | synaptic ops | neuron updates | sparsity |",
        "|---|---|---|---|---|---|",
        f"| input (graded, MACs) | - | - | {act['input_macs_per_inference']:.4g} | - | - |",
    ]
    for layer in act["layers"]:
        lines.append(
            f"| {layer['name']} | {layer['neurons']} | {layer['spikes_per_inference']:.4g} | "
            f"{layer['synops_per_inference']:.4g} | {layer['neuron_updates_per_inference']} | "
            f"{layer['sparsity']:.3f} |"
        )
    lines += [
        f"| **total** | | **{act['spikes_per_inference']:.4g}** | **{act['synops_per_inference']:.4g}** | "
        f"{act['neuron_updates_per_inference']} | {act['sparsity']:.3f} |",
        "",
        f"**Energy per inference {lo:.3g} to {hi:.3g} mJ** (dynamic {dyn[0]:.3g} to {dyn[1]:.3g}, "
        f"static {static[0]:.3g} to {static[1]:.3g}); latency {energy['latency_ms']:.3g} ms. "
        f"{energy['note']}.",
        "",
        "| constant | value | kind | source |",
        "|---|---|---|---|",
    ]
    for name, c in energy["constants"].items():
        lines.append(f"| {name} | {c['value']:.4g} | {c['kind']} | {c['source']} |")
    return lines


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


def output_paths(out: str | Path) -> list[Path]:
    """The JSON report and the markdown and plot beside it: three distinct names, because the
    JSON must be named ``.json`` (``--out X.md`` would have the table overwrite the report)."""
    from rssnn.errors import UserError

    out = Path(out)
    if out.suffix.lower() != ".json":
        raise UserError(
            f"--out '{out}' must name a .json file: the table (.md) and the plot (.png) are written beside it"
        )
    return [out, out.with_suffix(".md"), out.with_suffix(".png")]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rssnn import loihi2
    from rssnn.atomic import atomic_write_text, check_output_file
    from rssnn.errors import UserError

    paths = output_paths(args.out)
    for path in paths:  # before any work
        check_output_file(path)
        if os.path.lexists(path) and not args.force:
            raise UserError(f"'{path}' exists; add --force to replace it or choose another --out")
    out, table, figure = paths
    if args.images is not None and args.images < 1:
        raise UserError(f"--images must be >= 1, got {args.images}")
    if args.images is None and (args.inputs or args.steps):
        raise UserError("--inputs and --steps choose the inputs of --images N; add --images")
    if args.images is None and (args.data_root or args.split != "val"):
        raise UserError("--data-root and --split choose the images of --images N; add --images")
    if args.skip_layers < 0:
        raise UserError(f"--skip-layers must be >= 0, got {args.skip_layers}")
    report = loihi2.place(args.net, args.skip_layers)
    if args.images:
        report.update(_count(args, report["total_cores"]))
    atomic_write_text(out, json.dumps(report, indent=2))
    atomic_write_text(table, markdown(report))
    plot(report, figure)
    print(
        f"{args.net}: {report['total_cores']} Loihi 2 neurocores on {report['chips']} chip(s) "
        f"(estimate); report {out}"
    )
    if args.images:
        lo, hi = report["energy_mj"]
        print(
            f"per inference ({report['activity']['images']} images in Lava): "
            f"{report['spikes_per_inference']:.4g} spikes, {report['synops_per_inference']:.4g} synaptic "
            f"ops, energy {lo:.3g} to {hi:.3g} mJ (estimate)"
        )
    return report


def _count(args: argparse.Namespace, cores: int) -> dict[str, Any]:
    """Activity counted by the network monitor in Lava on ``--images`` images, and the energy."""
    from rssnn import activity, cifar, netx_file
    from rssnn.errors import UserError

    if args.inputs is not None:  # any lava-dl network on the user's inputs (issue 31)
        from ..lava_procs.lavadl_command import cost_activity

        act = cost_activity(args.net, args.inputs, args.images, args.steps)
        return _activity_and_energy(act, cores)
    try:  # the metadata first, for the one line a lava-dl file (no dataset) deserves
        netx_file.read_metadata(args.net)
    except UserError as exc:
        raise UserError(
            f"--images needs an rssnn-lava NetX file (it names its dataset and input encoding) or "
            f"--inputs X.npy: {exc}"
        ) from None
    net, meta = netx_file.read(args.net)
    images, _, _ = cifar.load_run_split(args.data_root, meta["dataset"], args.split, meta["training_config"])
    pixels = images[: args.images]
    # The run needs Lava: the CLI reaches into lava_procs only here, so placement stays core-only.
    from rssnn.lava_guard import cleanup_on_exit

    from ..lava_procs import backends, runtime

    with cleanup_on_exit():
        counts = runtime.count_activity(net, pixels, backends.choose("sim").run_config())
    act = activity.summarise(net, counts, len(pixels))
    return _activity_and_energy(act, cores)


def _activity_and_energy(act: dict, cores) -> dict:
    """The report's activity part and its energy range, for a file of either kind."""
    from rssnn import energy

    est = energy.estimate(act, cores)
    return dict(
        activity=act,
        energy=est,
        synops_per_inference=act["synops_per_inference"],
        spikes_per_inference=act["spikes_per_inference"],
        energy_mj=est["energy_mj"],
        latency_ms=est["latency_ms"],
    )


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import OneLineParser, add_data_flags, run_cli

    ap = OneLineParser(
        prog="rssnn cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--net", required=True, help="NetX HDF5 file (ours or lava-dl's)")
    ap.add_argument("--out", default="cost.json", help="JSON report (.json); .md and .png beside it")
    ap.add_argument("--force", action="store_true", help="replace the report, table and plot if they exist")
    ap.add_argument(
        "--skip-layers",
        type=int,
        default=0,
        metavar="N",
        help="as lava-dl's netx.hdf5.Network(skip_layers=N): the first N layers stay off the chip (0)",
    )
    ap.add_argument(
        "--images",
        type=int,
        default=None,
        metavar="N",
        help="also run N held-out images in Lava: activity per layer and the energy range",
    )
    add_data_flags(ap)  # with --images N
    ap.add_argument(
        "--inputs",
        default=None,
        help="for --images N on a lava-dl file: the user's inputs (.npy/.npz, as rssnn run --inputs)",
    )
    ap.add_argument("--steps", type=int, default=None, help="steps per input with --inputs (as rssnn run)")
    args = ap.parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
