"""Plots of a training run (PNG, matplotlib Agg): curves, learned dynamics, MPPD over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import nn  # noqa: E402

from rssnn.atomic import atomic_save_figure  # noqa: E402

from .models import spiking_layers  # noqa: E402


def training_curves(history: list[dict[str, Any]], path: Path) -> Path:
    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax1.plot(epochs, [r["train_ce_clean"] for r in history], "o-", label="CE clean")
    ax1.plot(epochs, [r["train_ce_pert"] for r in history], "o-", label="CE perturbed")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="training losses")
    ax1.legend()
    ax2.plot(epochs, [r["train_mppd"] for r in history], "o-", color="C3")
    ax2.set(xlabel="epoch", ylabel="MS-MPPD", title="membrane perturbation (train)")
    ax3.plot(epochs, [r["train_acc"] for r in history], "o-", label="train")
    ax3.plot(epochs, [r["val_acc"] for r in history], "o-", label="val clean")
    ax3.plot(epochs, [r["val_acc_gn"] for r in history], "o-", label="val Gaussian")
    ax3.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    ax3.legend()
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def learned_dynamics(model: nn.Module, initial: dict[str, float], path: Path) -> Path:
    """Learned leak and threshold of every spiking layer against their initial values."""
    layers = spiking_layers(model)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key in zip(axes, ("leak", "threshold")):
        values = [m.clamped()[0 if key == "leak" else 1].detach().cpu().numpy() for _, m in layers]
        ax.boxplot(values, showfliers=True)
        ax.axhline(initial[key], color="grey", ls="--", lw=1, label=f"initial {initial[key]:g}")
        ax.set_xticks(range(1, len(layers) + 1), [n for n, _ in layers], rotation=45, ha="right", fontsize=7)
        ax.set(title=f"learned {key} per layer", ylabel=key)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def mppd_over_time(profile: dict[str, list[float]], sigma: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in profile.items():
        ax.plot(range(1, len(values) + 1), values, "o-", label=name)
        ax.set_xticks(range(1, len(values) + 1))
    ax.set(
        xlabel="time step t",
        ylabel="mean eps[t]^2",
        yscale="log",
        title=f"reset-free MPPD per layer (Gaussian sigma {sigma * 255:.3g}/255)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
