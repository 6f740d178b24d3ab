"""Checkpoints: atomic writes, validation of foreign or corrupt files, model reconstruction.

A checkpoint holds the model's constructor arguments, its state dict, the training state
(optimiser, schedule, epoch, batch, RNG states), the run configuration and the class names:
enough to rebuild the model without the training command line (architecture.md contract).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rssnn.errors import UserError
from train.models import build_model
from train.neurons import NeuronConfig

FORMAT = "rssnn-lava-checkpoint"
VERSION = 1


def atomic_write_bytes(path: str | Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync, then rename over it.

    A crash at any point leaves either the old file or the new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary user files
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically (adds the format tag and version)."""
    payload = dict(payload, format=FORMAT, version=VERSION)
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh))


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint; any problem becomes a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(
            f"checkpoint '{path}' is corrupt or not a PyTorch file "
            f"({exc.__class__.__name__}); use another checkpoint or start a new run"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"'{path}' is not an rssnn-lava checkpoint (written by another program)")
    if ckpt.get("version") != VERSION:
        raise UserError(
            f"checkpoint '{path}' has format version {ckpt.get('version')}, "
            f"this rssnn-lava reads version {VERSION}"
        )
    for key in ("model", "state_dict"):
        if key not in ckpt:
            raise UserError(f"checkpoint '{path}' lacks '{key}'; it is truncated or damaged")
    return ckpt


def model_spec(
    name: str, num_steps: int, num_classes: int, dataset: str, width: int, neuron: NeuronConfig
) -> dict[str, Any]:
    """The constructor arguments stored under ``ckpt['model']``."""
    return dict(
        name=name,
        num_steps=num_steps,
        num_classes=num_classes,
        dataset=dataset,
        width=width,
        neuron=neuron.to_dict(),
    )


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    neuron = NeuronConfig(**spec["neuron"])
    return build_model(
        spec["name"], spec["num_steps"], spec["num_classes"], neuron, spec["dataset"], spec["width"]
    )


def restore_model(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the model of a validated checkpoint and load its weights."""
    try:
        model = build_from_spec(ckpt["model"])
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"checkpoint '{path}' does not match its model description: {first}") from exc
    return model


def file_sha256(path: str | Path) -> str:
    """Content hash of a file (the exporter records its source checkpoint's hash)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
