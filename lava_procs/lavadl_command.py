"""``rssnn run --net FILE.net --inputs X.npy``: a stock lava-dl NetX file on the user's inputs.

    rssnn run --net mnist.net --inputs x.npz --steps 32 --out report.json
    rssnn run --net pilotnet_sdnn.net --inputs frames.npy --perturb clean --compare-stock

``lava_procs/run.py`` hands every file without ``/rssnn`` metadata here. The network runs in
Lava through our exact fast synapse models with the one network monitor
(:mod:`lava_procs.lavadl`); the same inputs go through the integer reference
(:func:`rssnn.lavadl.reference_run`), and the report says whether the read-out and the
monitor's activity counts equal it. ``--perturb gn:SIGMA`` adds a second copy on noisy inputs
and the monitor measures the MPPD of every CUBA layer; sigma-delta layers have no leaky membrane,
so there the monitor counts activity only. ``--compare-stock`` also runs stock lava-dl
(``netx.hdf5.Network`` with Lava's own models; imports torch) and reports both times.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PERTURB = "gaussian:8/255"  # lava_procs/run.py's default; MPPD needs CUBA neurons
TUTORIAL_STEPS_CUBA = 32  # lava-dl's MNIST NetX tutorial: reset_interval 32, one image per 32 steps


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The flags of a lava-dl file run (ignored for rssnn-lava files)."""
    g = ap.add_argument_group("stock lava-dl NetX files (no /rssnn metadata)")
    g.add_argument(
        "--inputs",
        default=None,
        help=".npy or .npz (x, optional y) shaped like the file's input, [N, C, H, W] or [N, F] "
        "(repeated over --steps), or with a trailing time axis [..., T] (spike or graded rasters)",
    )
    g.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps per sample (default: the rasters' length; 32 for a CUBA network as in lava-dl's "
        "MNIST tutorial; 1 for sigma-delta, one frame per step as in its PilotNet tutorial)",
    )
    g.add_argument(
        "--reset-interval",
        type=int,
        default=None,
        help="reset CUBA neurons every R steps, phased per layer (default --steps; 0: never). "
        "Sigma-delta neurons are never reset, as in NetX",
    )
    g.add_argument(
        "--readout",
        choices=("spikes", "voltage", "output"),
        default=None,
        help="spikes: the last layer's spike counts per sample; voltage: its CUBA voltage at the "
        "window's last step; output: its messages at that step (default: spikes for CUBA, output "
        "for a sigma decoder)",
    )
    g.add_argument(
        "--compare-stock",
        action="store_true",
        help="also run stock lava-dl (netx.hdf5.Network, Lava's own models) and report both times",
    )


def _summary_net(net, num_steps: int) -> types.SimpleNamespace:
    """What :func:`rssnn.activity.summarise` reads of a network: T and the layers."""
    return types.SimpleNamespace(num_steps=num_steps, layers=net.layers)


def _settings(args: argparse.Namespace, net, inputs) -> tuple[int, int, str]:
    from rssnn.errors import UserError

    from .lavadl import default_readout

    t_in = inputs.data.shape[1]
    default = t_in if t_in > 1 else (TUTORIAL_STEPS_CUBA if net.model == "cuba" else 1)
    steps = args.steps if args.steps is not None else default
    if not 1 <= steps <= 4096:
        raise UserError(f"--steps must lie in 1..4096, got {steps}")
    if t_in > 1 and t_in != steps:
        raise UserError(f"--inputs hold rasters of {t_in} steps; --steps {steps} differs (drop --steps)")
    reset = steps if args.reset_interval is None else args.reset_interval
    if reset < 0:
        raise UserError(f"--reset-interval must be >= 0 (0: never), got {reset}")
    readout = args.readout or default_readout(net)
    if readout == "voltage" and net.layers[-1].neuron.model != "cuba":
        raise UserError("--readout voltage reads a CUBA layer's membrane; the last layer here is sigma-delta")
    return steps, reset, readout


def run(args: argparse.Namespace, spec, out: Path, chosen) -> dict[str, Any]:
    """``rssnn run`` on a stock lava-dl file; ``spec``, ``out`` and the back end ``chosen`` (one of
    :data:`lava_procs.backends.BACKENDS`) were checked and chosen by run.py's run."""
    from tqdm import tqdm

    from rssnn import activity, lavadl
    from rssnn.atomic import atomic_write_text
    from rssnn.errors import UserError
    from rssnn.lava_guard import cleanup_on_exit

    from . import lavadl as graph_mod

    net = lavadl.read(args.net)
    if args.inputs is None:
        raise UserError(
            f"'{args.net}' is a lava-dl NetX file (no /rssnn metadata): pass its inputs with --inputs X.npy "
            "(see rssnn run --help)"
        )
    inputs = lavadl.load_inputs(args.inputs, net, limit=args.limit)
    lavadl.set_input_bits(net, inputs)
    steps, reset, readout = _settings(args, net, inputs)
    notes = list(net.notes)
    if net.model != "cuba" and args.reset_interval:
        notes.append("--reset-interval applies to CUBA layers; sigma-delta neurons never reset (as in NetX)")
    if spec.kind not in ("clean", "gn"):
        raise UserError(
            f"--perturb {spec.kind}: a lava-dl file carries no float model to attack; use clean or gn:SIGMA"
        )
    perturbed = None
    if spec.kind == "gn" and not args.no_monitor:
        refusal = graph_mod.sdnn_refusal(net)
        if refusal and args.perturb == DEFAULT_PERTURB:
            notes.append(refusal.split(". Run with")[0] + "; ran clean")
        elif refusal:
            raise UserError(refusal)
        else:
            perturbed = lavadl.input_noise(inputs, spec.eps, args.seed)
    n = len(inputs)
    backend, run_cfg = chosen.label(), chosen.run_config()
    graph = graph_mod.build_graph(
        net, inputs.data, steps, reset, perturbed=perturbed, readout=readout, monitor=not args.no_monitor
    )
    print(f"running {n} samples ({net.model}, T = {steps}) on {backend}: {graph.total_steps} steps")
    with tqdm(total=n, desc="lava", unit="sample", mininterval=0.5 if sys.stderr.isatty() else 30.0) as bar:
        with cleanup_on_exit():
            result = graph_mod.run(graph, run_cfg, args.watchdog, progress=lambda d: bar.update(d - bar.n))
    reference = lavadl.reference_run(net, inputs.data, steps, reset, record_state=readout == "voltage")
    expected = _reference_readout(net, reference, readout, n, steps)
    report: dict[str, Any] = dict(
        backend=backend,
        net=str(args.net),
        file_kind="lava-dl NetX (stock)",
        neuron_model=net.model,
        inputs=str(args.inputs),
        n_samples=n,
        steps=steps,
        reset_interval=reset if net.model != "sdnn" else 0,
        readout=readout,
        input_message_bits=inputs.message_bits,
        layers=[layer.name for layer in net.layers],
        readout_values=result["readout"].tolist(),
        readout_equals_integer_reference=bool(np.array_equal(result["readout"], expected)),
        perturbation=args.perturb if perturbed is not None else "clean",
        notes=notes,
        steps_run=result["steps"],
        run_s=result["run_s"],
        seconds_per_sample=result["run_s"] / n,
        compile_and_first_chunk_s=result.get("compile_and_first_chunk_s"),
    )
    if readout == "spikes":
        report["predictions"] = result["readout"].argmax(1).tolist()
        if inputs.labels is not None:
            report["accuracy"] = float((result["readout"].argmax(1) == inputs.labels).mean())
    mon = result["monitor"]
    if mon is not None:
        counts = lavadl.reference_counts(net, inputs, steps, reset)
        report["activity"] = activity.summarise(_summary_net(net, steps), mon, n)
        report["activity_equals_integer_reference"] = bool(
            np.array_equal(mon["spikes"], counts["spikes"])
            and np.array_equal(mon["synops"], counts["synops"])
            and int(mon["input_macs"]) == int(counts["input_macs"])
        )
        if net.model != "cuba":
            report["sigma_delta_monitor"] = (
                "messages (non-zero graded outputs) count as spikes and each drives its fan-out as synaptic "
                "ops; no MPPD: sigma-delta neurons hold no leaky membrane"
            )
        if perturbed is not None:
            ref_mppd = lavadl.mppd_reference(net, inputs.data, perturbed, steps, reset)
            report["mppd_per_layer"] = [float(np.mean(s)) for s in mon["mppd"]]
            report["mppd_per_layer_reference"] = [float(np.mean(s)) for s in ref_mppd]
            report["mppd_per_step"] = mon["mppd"].tolist()
    if args.compare_stock:
        with cleanup_on_exit():
            stock = graph_mod.run_stock(net, inputs.data, steps, reset, watchdog_s=max(args.watchdog, 300.0))
        mine = _stock_readout(net, stock["raster"], readout, reference, n, steps)
        report["stock_lava_dl"] = dict(
            run_s=stock["run_s"],
            seconds_per_sample=stock["run_s"] / n,
            readout_equal=None if mine is None else bool(np.array_equal(mine, result["readout"])),
            speedup=stock["run_s"] / result["run_s"],
        )
    atomic_write_text(out, json.dumps(report, indent=2))
    line = (
        f"{backend}: {n} samples, read-out equals the reference: {report['readout_equals_integer_reference']}"
    )
    if "activity" in report:
        act = report["activity"]
        line += (
            f"; per sample {act['spikes_per_inference']:.4g} spikes, "
            f"{act['synops_per_inference']:.4g} synaptic ops, sparsity {act['sparsity']:.3f} "
            f"(equal to the reference: {report['activity_equals_integer_reference']})"
        )
    if "accuracy" in report:
        line += f"; accuracy {report['accuracy']:.3f}"
    if "mppd_per_layer" in report:
        line += f"; MPPD per layer {', '.join(f'{v:.3g}' for v in report['mppd_per_layer'])}"
    if "stock_lava_dl" in report:
        s = report["stock_lava_dl"]
        line += f"; stock lava-dl {s['run_s']:.2f} s vs {report['run_s']:.2f} s ({s['speedup']:.1f}x)"
    print(line + f"; report {out}")
    return report


def _reference_readout(net, reference: dict[str, Any], readout: str, n: int, steps: int) -> np.ndarray:
    """The read-out the recorder should hold, from the integer reference, Lava-flat [N, F]."""
    from rssnn import lavadl

    last = len(net.layers) - 1
    per_step = reference["outputs"][last] if readout != "voltage" else reference["states"][last][:, 2]
    w = _lava_flat(lavadl.windows(net, last, per_step, n, steps))
    return (w != 0).sum(1) if readout == "spikes" else w[:, -1]


def _stock_readout(net, raster: np.ndarray, readout: str, reference, n: int, steps: int) -> np.ndarray | None:
    """The read-out from stock lava-dl's output raster [N, T, F] (None for the voltage, which a
    stock run does not expose without Lava's per-element Var reads)."""
    if readout == "voltage":
        return None
    return (raster != 0).sum(1) if readout == "spikes" else raster[:, -1]


def _lava_flat(w: np.ndarray) -> np.ndarray:
    """[N, T, C, H, W] -> [N, T, W H C] (Lava's flat order); [N, T, F] stays."""
    from rssnn.layout import swap_layout

    return swap_layout(w, axis=2).reshape(*w.shape[:2], -1) if w.ndim == 5 else w


def cost_activity(net_path: str, inputs_path: str, limit: int, steps: int | None = None) -> dict[str, Any]:
    """``rssnn cost --net F --images N --inputs X.npy``: the network monitor's activity per
    inference (:func:`rssnn.activity.summarise`) on the first N of the user's inputs, checked
    against the integer reference (UserError if they differ: the count would be wrong)."""
    from rssnn import activity, lavadl
    from rssnn.errors import UserError
    from rssnn.lava_guard import cleanup_on_exit

    from . import backends
    from . import lavadl as graph_mod

    net = lavadl.read(net_path)
    inputs = lavadl.load_inputs(inputs_path, net, limit=limit)
    lavadl.set_input_bits(net, inputs)
    args = argparse.Namespace(steps=steps, reset_interval=None, readout=None)
    steps, reset, readout = _settings(args, net, inputs)
    graph = graph_mod.build_graph(net, inputs.data, steps, reset, readout=readout, monitor=True)
    with cleanup_on_exit():
        counts = graph_mod.run(graph, backends.choose("sim").run_config())["monitor"]
    ref = lavadl.reference_counts(net, inputs, steps, reset)
    if not all(np.array_equal(counts[k], ref[k]) for k in ("spikes", "synops", "input_macs")):
        raise UserError("the network monitor's counts differ from the integer reference; please report this")
    act = activity.summarise(_summary_net(net, steps), counts, len(inputs))
    act["counted_by"] = "the network monitor in Lava, equal to the integer reference (rssnn.lavadl)"
    if net.model != "cuba":
        act["sigma_delta"] = (
            "non-zero graded messages count as spikes, each driving its fan-out as synaptic ops; "
            "the source feeds an input layer's neurons directly (no input MACs)"
        )
    return act
