"""Training throughput of the default model, and the neuron overhead against a plain ANN.

For T in {4, 8}: images/s of a full training step (forward, CE, backward, SGD) of the default
CPU model with DLIF neurons, and in the same run the same architecture as an ANN (ReLU, one
step). Neuron overhead = SNN step time / (T x ANN step time); the synapses, BatchNorm and
optimiser are identical, so the ratio isolates the cost of the spiking dynamics over time.
The stock SLAYER cuba neuron is timed too, for reference.

    python benchmarks/train_throughput.py [--batch-size 64] [--repeats 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from rssnn.train.models import build_model
from rssnn.train.neurons import DLIF, NeuronConfig


class _Relu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class _SlayerCuba(nn.Module):
    """Stock lava-dl CUBA neuron as a drop-in (leak 0.99, threshold 1, no learning)."""

    def __init__(self, num_steps: int):
        super().__init__()
        from rssnn.train.slayer_import import slayer

        self.num_steps = num_steps
        self.neuron = slayer.neuron.cuba.Neuron(
            threshold=1.0, current_decay=1.0, voltage_decay=0.01, persistent_state=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(x.expand(*x.shape[:-1], self.num_steps).contiguous())


def _swap_neurons(model: nn.Module, factory) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, DLIF):
            setattr(model, name, factory())
        else:
            _swap_neurons(child, factory)
    return model


def time_steps(model: nn.Module, batch_size: int, repeats: int) -> float:
    """Median seconds of one training step on random CIFAR-sized pixels."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (batch_size,))
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:  # two warm-up steps (kernel compilation, allocator)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    ap.add_argument("--repeats", type=int, default=8, help="timed steps per variant (default 8)")
    ap.add_argument("--steps", default="4,8", help="time steps T to measure (default 4,8)")
    ap.add_argument("--no-slayer", action="store_true", help="skip the stock SLAYER cuba row")
    ap.add_argument(
        "--out", default="benchmarks/results/train_throughput.json", help="JSON file for the figures"
    )
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for T in (int(s) for s in args.steps.split(",")):
        ann = _swap_neurons(build_model("cpu", 1), _Relu)
        snn = build_model("cpu", T, neuron=NeuronConfig())
        t_ann = time_steps(ann, args.batch_size, args.repeats)
        t_snn = time_steps(snn, args.batch_size, args.repeats)
        row = dict(
            T=T,
            batch_size=args.batch_size,
            ann_step_s=t_ann,
            dlif_step_s=t_snn,
            dlif_images_per_s=args.batch_size / t_snn,
            dlif_neuron_overhead=t_snn / (T * t_ann),
        )
        if not args.no_slayer:
            cuba = _swap_neurons(build_model("cpu", T), lambda T=T: _SlayerCuba(T))
            t_cuba = time_steps(cuba, args.batch_size, args.repeats)
            row.update(slayer_cuba_step_s=t_cuba, slayer_cuba_neuron_overhead=t_cuba / (T * t_ann))
        rows.append(row)
        print(
            " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
            flush=True,
        )
    result = dict(
        benchmark="train_throughput",
        model="cpu",
        machine=platform.processor() or platform.machine(),
        threads=torch.get_num_threads(),
        rows=rows,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
