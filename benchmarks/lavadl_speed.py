"""Stock lava-dl files in Lava: stock lava-dl vs our runner, side by side (issue 31).

For each of lava-dl's tutorial files (shared/data/loihi2: mnist.net, CUBA; pilotnet_sdnn.net,
sigma-delta) and synthetic inputs (binary spikes for MNIST, graded frames for PilotNet), three
variants run the same steps on Loihi2SimCfg(fixed_pt), alternating per repeat so machine noise
hits all alike:

    stock     lava.lib.dl.netx.hdf5.Network with Lava's own process models
    fast      our runner (lava_procs.lavadl): fast synapse models, no monitor
    fast+mon  the same with the network monitor counting activity (what `rssnn run` does)

Each run goes in chunks of CHUNK steps; the first chunk (compilation, start-up) is excluded
from the steady seconds per step. Outputs must be equal (asserted). Results go to
benchmarks/results/lavadl_speed.json.

    python benchmarks/lavadl_speed.py [--samples-mnist 20] [--samples-pilotnet 24] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import numpy as np

from rssnn import lavadl
from rssnn.atomic import atomic_write_text
from rssnn.lava_guard import cleanup_on_exit
from rssnn.lava_procs import backends
from rssnn.lava_procs import lavadl as graph_mod

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "loihi2"
CHUNK = 8


def _steady(timings: dict, total: int) -> float:
    """Seconds per step after the first chunk."""
    return (timings["run_s"] - timings["compile_and_first_chunk_s"]) / max(1, total - CHUNK)


def bench(path: Path, x: np.ndarray, steps: int, repeats: int) -> dict:
    net = lavadl.read(path)
    inputs = lavadl.prepare_inputs(x, net)
    lavadl.set_input_bits(net, inputs)
    reset = steps if net.model == "cuba" else 0
    total = net.total_steps(len(inputs), steps)
    readout = "output"
    times: dict[str, list[float]] = {"stock": [], "fast": [], "fast+mon": []}
    outputs = {}
    for _ in range(repeats):
        with cleanup_on_exit():
            stock = graph_mod.run_stock(net, inputs.data, steps, reset, chunk=CHUNK)
        times["stock"].append(_steady(stock, total))
        outputs["stock"] = stock["raster"]
        for name, monitor in (("fast", False), ("fast+mon", True)):
            with cleanup_on_exit():
                graph = graph_mod.build_graph(
                    net, inputs.data, steps, reset, readout=readout, monitor=monitor, record=True
                )
                result = graph_mod.run(graph, backends.choose("sim").run_config(), chunk=CHUNK)
            times[name].append(_steady(result, total))
            outputs[name] = result["raster"]
    equal = all(np.array_equal(outputs["stock"], outputs[k]) for k in ("fast", "fast+mon"))
    assert equal, f"{path.name}: outputs differ from stock lava-dl"
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(
        file=path.name,
        neuron_model=net.model,
        samples=len(inputs),
        steps_per_sample=steps,
        steps_run=total,
        outputs_equal_stock=equal,
        seconds_per_step={k: v for k, v in med.items()},
        seconds_per_sample={k: v * total / len(inputs) for k, v in med.items()},
        all_seconds_per_step=times,
        speedup_fast=med["stock"] / med["fast"],
        speedup_fast_with_monitor=med["stock"] / med["fast+mon"],
    )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples-mnist", type=int, default=20)
    ap.add_argument("--samples-pilotnet", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lavadl_speed.json"))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [
        bench(
            SHARED / "mnist.net",
            (rng.random((args.samples_mnist, 784)) < 0.2).astype(np.uint8),
            32,  # lava-dl's MNIST tutorial: reset interval 32
            args.repeats,
        ),
        bench(
            SHARED / "pilotnet_sdnn.net",
            rng.integers(0, 256, (args.samples_pilotnet, 3, 66, 200)),
            1,  # lava-dl's PilotNet SDNN tutorial: one frame per step, no reset
            args.repeats,
        ),
    ]
    report = dict(
        note="Loihi2SimCfg(fixed_pt) on CPU; steady seconds per step (first chunk excluded), median of "
        "the repeats; other engineers shared the 2 cores, so ratios are the figure to read",
        cpu_count=os.cpu_count(),
        chunk_steps=CHUNK,
        rows=rows,
    )
    atomic_write_text(Path(args.out), json.dumps(report, indent=2))
    for r in rows:
        s = r["seconds_per_step"]
        print(
            f"{r['file']}: stock {s['stock'] * 1e3:.1f} ms/step, fast {s['fast'] * 1e3:.1f}, fast+monitor "
            f"{s['fast+mon'] * 1e3:.1f} -> speed-up {r['speedup_fast']:.2f}x "
            f"({r['speedup_fast_with_monitor']:.2f}x with the monitor); equal: {r['outputs_equal_stock']}"
        )
    print(f"written {args.out}")
    return report


if __name__ == "__main__":
    main()
