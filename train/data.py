"""CIFAR-10/100 for training: torch tensors over :mod:`rssnn.cifar`, subsets, augmentation.

Images stay uint8 [N, 3, 32, 32] in memory and become float pixels in [0, 1] per batch;
normalisation happens inside the model, so noise and attacks act in pixel space. Reading,
checking and splitting the batches is :mod:`rssnn.cifar` (numpy, no torch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from rssnn import cifar
from rssnn.cifar import (  # noqa: F401
    DATASETS,
    DEFAULT_DATA_ROOT,
    balanced_subset,
    class_names,
    download,
    resolve_root,
)
from rssnn.errors import UserError  # noqa: F401

# Normalisation constants of the reference code (method.md §9; applied inside the model).
NORMALISATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}


@dataclass
class Split:
    """One split: uint8 images [N, 3, 32, 32], int64 labels [N], class names."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def load_split(*args, **kwargs) -> Split:
    """:func:`rssnn.cifar.load_split` (same arguments) as torch tensors."""
    x, y, names = cifar.load_split(*args, **kwargs)
    return Split(torch.from_numpy(x), torch.from_numpy(y), names)


def load_run_split(data_root: str | Path | None, dataset: str, split: str, run_config: dict) -> Split:
    """:func:`rssnn.cifar.load_run_split` as torch tensors (the split a training run held out)."""
    x, y, names = cifar.load_run_split(data_root, dataset, split, run_config)
    return Split(torch.from_numpy(x), torch.from_numpy(y), names)


def augment(images: torch.Tensor, generator: torch.Generator, cutout: int = 0) -> torch.Tensor:
    """Random crop (pad 4) and horizontal flip, optional Cutout, on uint8 [N, 3, 32, 32]."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=generator)
    dy = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(images)
    for i in range(n):
        crop = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    if cutout:
        cy = torch.randint(0, h, (n,), generator=generator)
        cx = torch.randint(0, w, (n,), generator=generator)
        for i in range(n):
            y0, y1 = max(0, cy[i] - cutout // 2), min(h, cy[i] + cutout // 2)
            x0, x1 = max(0, cx[i] - cutout // 2), min(w, cx[i] + cutout // 2)
            out[i, :, y0:y1, x0:x1] = 0
    return out


def batches(
    split: Split,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    augmentation: bool = False,
    cutout: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (pixels float [B, 3, 32, 32] in [0, 1], labels [B]) over the split."""
    order = torch.randperm(len(split), generator=generator) if shuffle else torch.arange(len(split))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        imgs = split.images[idx]
        if augmentation:
            imgs = augment(imgs, generator, cutout)
        yield imgs.float().div_(255.0), split.labels[idx]
