"""Image encoder and class decoder processes for running many images in one compiled network.

``ImageEncoder`` sends image n as 8-bit graded input (raw pixel levels 0..255) on every step of
its window ``n T + 1 .. (n + 1) T`` and zeros after the last image; the neurons' pipelined reset
(``reset_interval = T``) zeroes their state between images. ``ClassDecoder`` sums the read-out
synapse's output over each image window (the integer logits, up to the bias term added on the
host) and records the arg-max per image.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class ImageEncoder(AbstractProcess):
    """Feeds a clean and a perturbed image stream to two copies of a network in lock-step.

    Args:
        images: graded input levels [N, *shape] in Lava order ((x, y, c) or (f,)), 0..255.
        perturbed: the perturbed stream, same shape (defaults to ``images``).
        num_steps: T, steps per image.
    Ports ``s_out`` (clean) and ``s_out_pert``; leave ``s_out_pert`` unconnected for one copy.
    """

    def __init__(
        self,
        *,
        images: np.ndarray,
        num_steps: int,
        perturbed: np.ndarray | None = None,
        name: str | None = None,
    ) -> None:
        images = np.asarray(images)
        perturbed = images if perturbed is None else np.asarray(perturbed)
        if perturbed.shape != images.shape:
            raise ValueError("clean and perturbed images must have the same shape")
        if images.min(initial=0) < 0 or images.max(initial=0) > 255:
            raise ValueError("ImageEncoder takes 8-bit levels (0..255)")
        shape = images.shape[1:]
        super().__init__(num_steps=num_steps, num_images=len(images), name=name)
        self.s_out = OutPort(shape=shape)
        self.s_out_pert = OutPort(shape=shape)
        self.images = Var(shape=images.shape, init=images.astype(np.int32))
        self.perturbed = Var(shape=images.shape, init=perturbed.astype(np.int32))


class ClassDecoder(AbstractProcess):
    """Args:
    num_classes: read-out size.
    num_steps: T.
    window_start: 1-based time step at which the read-out's input for image 0 arrives.
    num_images: images to decode.
    bias: integer read-out bias per class, added T times (as the neuron would).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        num_steps: int,
        window_start: int,
        num_images: int,
        bias: np.ndarray | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(num_steps=num_steps, window_start=window_start, num_images=num_images, name=name)
        self.a_in = InPort(shape=(num_classes,))
        self.bias = Var(
            shape=(num_classes,),
            init=np.zeros(num_classes, np.int64) if bias is None else np.asarray(bias, dtype=np.int64),
        )
        self.logits = Var(shape=(num_images, num_classes), init=np.zeros((num_images, num_classes), np.int64))
        self.predictions = Var(shape=(num_images,), init=np.full(num_images, -1, np.int32))


class SampleSource(AbstractProcess):
    """Feeds a user's inputs (lava-dl files), clean and perturbed in lock-step, like
    :class:`ImageEncoder` but for any integer messages and for rasters.

    Args:
        data: int [N, T_in, *shape] in Lava order; sample n's window (steps n T + 1 ..
            (n + 1) T) sends frame ``tau % T_in`` at its step tau (T_in = 1: one frame repeated).
        num_steps: T, steps per sample.
        perturbed: the perturbed stream, same shape (defaults to ``data``).
    Ports ``s_out`` (clean) and ``s_out_pert``; zeros after the last sample.
    """

    def __init__(
        self,
        *,
        data: np.ndarray,
        num_steps: int,
        perturbed: np.ndarray | None = None,
        name: str | None = None,
    ) -> None:
        data = np.asarray(data)
        perturbed = data if perturbed is None else np.asarray(perturbed)
        if perturbed.shape != data.shape:
            raise ValueError("clean and perturbed inputs must have the same shape")
        super().__init__(num_steps=num_steps, num_samples=len(data), name=name)
        self.s_out = OutPort(shape=data.shape[2:])
        self.s_out_pert = OutPort(shape=data.shape[2:])
        self.data = Var(shape=data.shape, init=data.astype(np.int32))
        self.perturbed = Var(shape=data.shape, init=perturbed.astype(np.int32))


class OutputRecorder(AbstractProcess):
    """Reads a layer's messages in every sample window and reduces them per sample.

    Args:
        size: elements read (``offset`` .. ``offset + size`` of the in-port).
        in_size: the in-port's length (a layer's flat ``out`` port, or a neuron's probe).
        window_start: the Lava step at which the layer handles sample 0's first step.
        num_steps, num_samples: T and N.
        mode: 'count' (non-zero messages summed over the window: spike counts) or 'last' (the
            value at the window's last step: a voltage or a sigma decoder's output).
        record: also keep every message of every window (``raster`` [N T, size]; reading it back
            costs ~30 us per element, so only for checks).
    """

    def __init__(
        self,
        *,
        size: int,
        in_size: int,
        window_start: int,
        num_steps: int,
        num_samples: int,
        mode: str = "count",
        offset: int = 0,
        record: bool = False,
        name: str | None = None,
    ) -> None:
        if mode not in ("count", "last"):
            raise ValueError(f"OutputRecorder mode must be 'count' or 'last', got {mode!r}")
        super().__init__(
            window_start=window_start,
            num_steps=num_steps,
            num_samples=num_samples,
            mode=mode,
            offset=offset,
            size=size,
            record=record,
            name=name,
        )
        self.a_in = InPort(shape=(in_size,))
        self.result = Var(shape=(num_samples, size), init=np.zeros((num_samples, size), np.int64))
        rows = num_samples * num_steps if record else 1
        self.raster = Var(shape=(rows, size), init=np.zeros((rows, size), np.int64))
