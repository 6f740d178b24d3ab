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
