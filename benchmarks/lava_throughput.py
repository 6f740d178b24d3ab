"""Lava CPU simulation speed of the default model: stock vs fast synapse models, monitor overhead.

Runs N real CIFAR-10 images through the clean + perturbed network pair in Lava (Loihi2SimCfg,
fixed point) in one process, alternating the variants so machine noise hits all alike:
    stock     Lava's own synapse process models (scipy convolution per channel pair)
    fast      our exact fast synapse models (lava_procs.synapses), without monitors
    fast+mon  the same with the membrane-perturbation monitors (what the runner does)
and prints seconds per step and per image, the speed-up stock / fast (goal >= 10), the monitor
overhead fast+mon / fast (goal <= 1.25), peak memory (PSS) of the whole process tree, and the
integer reference's batch-1 seconds per image for scale. Predictions must agree.

    python benchmarks/lava_throughput.py [--net model.net] [--images 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

import torch

from rssnn import netx_file
from rssnn.export import lowering
from rssnn.integer_forward import run_fixed
from rssnn.lava_procs import backends, runtime
from rssnn.train import data
from rssnn.train.models import build_model, calibrate_batchnorm

CHUNK = 4  # steps per Lava run call; the first call's time (compilation, start-up) is excluded


def default_net(split: data.Split):
    """The default CPU architecture with BatchNorm statistics of real images (no training)."""
    torch.manual_seed(0)
    model = calibrate_batchnorm(build_model("cpu", 2), split.images[:256].float() / 255)
    return lowering.lower(model.eval(), split.class_names)


def _tree_pss_mib(root: int) -> tuple[float, int]:
    """Proportional set size of ``root`` and all its descendants (shared pages counted once),
    and how many processes that tree holds."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack, count = 0, [root], 0
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        count += 1
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024, count


class PeakMemory:
    """Samples the process tree's PSS every 0.5 s in a thread; ``peak`` in MiB, ``processes``
    the most processes seen in the tree (this one and Lava's workers)."""

    def __init__(self):
        self.peak, self.processes, self._stop = 0.0, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            pss, count = _tree_pss_mib(os.getpid())
            self.peak, self.processes = max(self.peak, pss), max(self.processes, count)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--net", default=None, help="exported file (default: untrained default model)")
    ap.add_argument("--images", type=int, default=6, help="images per run (default 6)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per variant (default 2)")
    ap.add_argument("--out", default="benchmarks/results/lava_throughput.json")
    args = ap.parse_args(argv)
    split = data.load_split(data.DEFAULT_DATA_ROOT, "cifar10", "val", val_size=1000, seed=0)
    net = netx_file.read(args.net)[0] if args.net else default_net(split)
    clean = split.images[: args.images]
    gen = torch.Generator().manual_seed(0)
    pert = (clean.float() + 8 * torch.randn(clean.shape, generator=gen)).clamp(0, 255).round()
    pert = pert.to(torch.uint8)
    variants = {
        "stock": (backends.choose("sim").run_config(fast_synapses=False), False),
        "fast": (backends.choose("sim").run_config(), False),
        "fast+mon": (backends.choose("sim").run_config(), True),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, float] = {}
    processes: dict[str, int] = {}
    predictions: dict[str, list] = {}
    steps = 0
    for _ in range(args.repeats):
        for name, (cfg, monitor) in variants.items():
            graph = runtime.build_pair(net, clean, pert, monitor=monitor)
            with PeakMemory() as mem:
                result = runtime.run(graph, cfg, chunk=CHUNK)
            peaks[name] = max(peaks.get(name, 0.0), mem.peak)
            processes[name] = max(processes.get(name, 0), mem.processes)
            first = result["compile_and_first_chunk_s"]
            times[name].append((result["run_s"] - first) / (result["steps"] - CHUNK))
            predictions[name] = [p.tolist() for p in result["predictions"]]
            steps = result["steps"]
    per_step = {k: statistics.median(v) for k, v in times.items()}
    t0 = time.perf_counter()
    for i in range(len(clean)):
        run_fixed(net, clean[i : i + 1])
        run_fixed(net, pert[i : i + 1])
    reference_pair_s = (time.perf_counter() - t0) / len(clean)
    agree = all(predictions[k] == predictions["stock"] for k in predictions)
    out = dict(
        benchmark="lava_throughput",
        images=args.images,
        num_steps=net.num_steps,
        lava_steps=steps,
        copies=2,
        seconds_per_step={k: v for k, v in per_step.items()},
        seconds_per_image_pair={k: v * net.num_steps for k, v in per_step.items()},
        speedup_stock_over_fast=per_step["stock"] / per_step["fast"],
        speedup_stock_over_fast_with_monitor=per_step["stock"] / per_step["fast+mon"],
        monitor_overhead_ratio=per_step["fast+mon"] / per_step["fast"],
        peak_pss_mib=peaks,
        processes_in_tree=processes,
        memory_note="Lava forks one worker per process model; rssnn.lava_guard.run_steps freezes the "
        "parent's objects for the garbage collector first (gc.freeze), as workers that collected "
        "them copied the parent's heap page by page (peaks of 2.3-3.3 GB, 2 of 14 runs, unfrozen)",
        integer_reference_batch1_seconds_per_image_pair=reference_pair_s,
        predictions_identical=agree,
        raw_seconds_per_step=times,
        model=args.net or "default cpu model (untrained)",
        cpu_count=os.cpu_count(),
    )
    print(json.dumps({k: v for k, v in out.items() if k != "raw_seconds_per_step"}, indent=1))
    if not agree:
        raise SystemExit("predictions differ between stock and fast synapse models")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
