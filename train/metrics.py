"""What a training run measures each epoch and writes: validation accuracy (clean and under
Gaussian noise), the per-step MPPD profile, the learned neuron parameters, and the metrics files.

Shapes: images [N, 3, H, W] in [0, 1]; an MPPD profile is, per spiking layer, a list of T floats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rssnn.atomic import atomic_write_text

from . import data, mppd, perturb
from .models import spiking_layers


@torch.no_grad()
def split_accuracy(
    model: nn.Module,
    split: data.Split,
    batch_size: int,
    device: torch.device,
    sigma: float = 0.0,
    seed: int = 0,
) -> float:
    """Accuracy on a split; with ``sigma`` > 0 under clamped Gaussian noise (test-time GN)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    correct = 0
    for x, y in data.batches(split, batch_size):
        x, y = x.to(device), y.to(device)
        if sigma > 0:
            x = perturb.gaussian(x, sigma, gen).clamp(0, 1)
        correct += int((model(x).argmax(1) == y).sum())
    return correct / max(1, len(split))


@torch.no_grad()
def mppd_profile(model: nn.Module, x: torch.Tensor, sigma: float, seed: int = 0) -> dict[str, list[float]]:
    """Per-layer mean eps^2 per time step for Gaussian noise ``sigma`` on batch ``x`` (eval mode).

    Measured on a common scale (leak 0.99, dI in threshold units) so that layers, epochs and
    models compare; the training loss may use the layer's own leak.
    """
    model.eval()
    layers = spiking_layers(model)
    x_pert = perturb.gaussian(x, sigma, torch.Generator().manual_seed(seed)).clamp(0, 1)
    with mppd.recording(layers):
        model(x)
        clean = [m.recorded_current for _, m in layers]
        model(x_pert)
        return {
            name: mppd.mppd_per_step(c, m.recorded_current, *mppd.recursion_params(m, "fixed")).tolist()
            for c, (name, m) in zip(clean, layers)
        }


def neuron_summary(model: nn.Module) -> dict[str, float]:
    """Learned leak and threshold per spiking layer: mean, min, max."""
    out: dict[str, float] = {}
    for name, m in spiking_layers(model):
        leak, th, _ = m.clamped()
        for key, p in (("leak", leak), ("threshold", th)):
            p = p.detach().float()
            out[f"{key}_mean/{name}"] = p.mean().item()
            out[f"{key}_min/{name}"] = p.min().item()
            out[f"{key}_max/{name}"] = p.max().item()
    return out


def write_metrics(
    out: Path, history: list[dict[str, Any]], mppd_steps: dict[str, dict[str, list[float]]]
) -> None:
    """metrics.csv (one row per epoch) and metrics.json, both written atomically."""
    import csv
    import io

    keys = list(history[0].keys())
    for row in history[1:]:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    payload = json.dumps(dict(epochs=history, mppd_per_step=mppd_steps), indent=1)
    atomic_write_text(out / "metrics.json", payload)
