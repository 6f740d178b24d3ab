"""The float model of a training checkpoint as a base classifier for ``rssnn certify``.

The model takes pixels in [0, 1] units (it normalises inside), so noisy pixels go in as they are:
not clamped, as in Gaussian training (``train.perturb.gaussian``) and in Cohen et al.'s code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint


def load(path: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """(classify, info) for a checkpoint: ``classify`` maps noisy pixels float32 [B, 3, H, W] to
    classes int64 [B]; ``info`` holds ``dataset``, ``num_classes`` and the run ``config``.
    A bad file is one UserError line (:func:`train.checkpoint.load`)."""
    ckpt = checkpoint.load(path)
    dev = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
    classify = from_model(checkpoint.restore_model(ckpt, path), dev)
    info = dict(
        dataset=ckpt["model"]["dataset"],
        num_classes=int(ckpt["model"]["num_classes"]),
        config=ckpt.get("config", {}),
        device=str(dev),
    )
    return classify, info


def from_model(model: torch.nn.Module, device: torch.device | str = "cpu") -> Any:
    """A model (pixels [B, 3, H, W] in [0, 1] units -> logits) as ``classify``: noisy pixels
    float32 [B, 3, H, W] (numpy) -> classes int64 [B], in eval mode, without gradients."""
    model = model.to(device).eval()

    @torch.no_grad()
    def classify(x: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        return model(pixels).argmax(1).cpu().numpy()

    return classify
