"""Folding float layers into the weights that precede them: the formulas every front end shares.

The trained SLAYER model's front end (``export/fold_torch.fold``) reads its tensors and calls
these; the lowering then quantises the folded float weights. (The NIR front end has no
BatchNorm to fold: NIR graphs carry affine synapses already.) The functions take numpy arrays
or torch tensors alike (only ``+ - * /`` and ``** 0.5``), so the training side's Theorem 3.1
bound and the exporter use one formula; nothing here imports torch.
"""

from __future__ import annotations

from typing import Any


def batchnorm_affine(
    gamma: Any, beta: Any, running_mean: Any, running_var: Any, eps: float
) -> tuple[Any, Any]:
    """Inference-mode BatchNorm as ``y = scale * x + shift`` per channel; all arguments [C].

    ``scale = gamma / sqrt(running_var + eps)``, ``shift = beta - running_mean * scale``.
    """
    scale = gamma / (running_var + eps) ** 0.5
    return scale, beta - running_mean * scale
