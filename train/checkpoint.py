"""Checkpoints: atomic writes, safe loading, validation of foreign or corrupt files, models.

A checkpoint holds the model's constructor arguments, its state dict, the training state
(optimiser, schedule, epoch, batch, RNG states), the run configuration and the class names:
enough to rebuild the model without the training command line (architecture.md contract).

Loading never executes code from the file: :mod:`rssnn.torch_archive` first checks that the
file is a plain ``torch.save`` zip (a TorchScript archive would reach ``torch.jit.load`` and run
its code even under ``weights_only=True`` on torch < 2.6, CVE-2025-32434), then
``torch.load(weights_only=True)`` reads those same bytes, admitting tensors and plain data
(dict, list, str, numbers) only, which is all a checkpoint of ours holds. A file that needs more
(an old or foreign pickle) is refused; :func:`migrate` converts one the user
trusts, and only when asked to explicitly (``rssnn migrate-checkpoint --trust``).
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rssnn.atomic import atomic_write_bytes, file_sha256  # noqa: F401  (re-exported for callers)
from rssnn.errors import UserError, first_line
from rssnn.torch_archive import read_state_archive

from .models import build_model
from .neurons import NeuronConfig

FORMAT = "rssnn-lava-checkpoint"
VERSION = 1


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically (adds the format tag and version)."""
    payload = dict(payload, format=FORMAT, version=VERSION)
    # Serialised in memory first: a full disk then fails in our write (one line, no partial
    # file), not inside torch's zip writer (a RuntimeError with a traceback).
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, lambda fh: fh.write(buffer.getbuffer()))


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint; any problem becomes a one-line :class:`UserError`."""
    path = Path(path)
    data = read_state_archive(path)  # refuses TorchScript and anything but a plain archive
    try:
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported class" not in str(exc) and "Unsupported global" not in str(exc):
            raise UserError(
                f"checkpoint '{path}' is corrupt or not a PyTorch file "
                "(UnpicklingError); use another checkpoint or start a new run"
            ) from exc
        # The pickle names a class or function: it carries objects that are not plain data.
        raise UserError(
            f"checkpoint '{path}' holds Python objects besides tensors and plain data, so "
            "loading it could run code; it was not loaded. If you wrote it and trust it, convert "
            "it once with 'rssnn migrate-checkpoint --trust SRC DST'"
        ) from exc
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


def migrate(src: str | Path, dst: str | Path) -> None:
    """Re-save a trusted checkpoint so that it loads safely: full unpickling (this can run code
    from ``src``; call it only on files you trust), then every non-tensor value reduced to plain
    JSON data. The result loads with :func:`load`."""

    def plain(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj
        if isinstance(obj, dict):
            return {str(k) if not isinstance(k, int) else k: plain(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [plain(v) for v in obj]
        return json.loads(json.dumps(obj, default=str))

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise UserError(f"checkpoint '{src}' does not exist")
    if dst.exists():
        raise UserError(f"'{dst}' exists; choose a new file name for the migrated checkpoint")
    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(f"checkpoint '{src}' cannot be read ({exc.__class__.__name__})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"'{src}' is not an rssnn-lava checkpoint (written by another program)")
    save(dst, plain(ckpt))
    load(dst)  # the migrated file must load safely, or it is an error


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
        raise UserError(
            f"checkpoint '{path}' does not match its model description: {first_line(exc)}"
        ) from exc
    return model
