"""The lowered network: a model in Loihi 2 integers (numpy only).

This is the form that ``export/lowering.py`` produces from a trained model, that
:mod:`rssnn.netx_file` writes and reads, that :mod:`rssnn.integer_forward` runs as the
reference, and that ``lava_procs`` builds into Lava processes. Nothing here needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rssnn.neuron import LoihiCuba

PIXEL_LEVELS = 255  # input: 8-bit graded spikes carrying the raw pixel level
INPUT_MESSAGE_BITS = 8


@dataclass
class SkipSynapse:
    """A further synapse into a layer's neurons from an earlier spiking layer (residual nets).

    Its current adds to the current of the layer's own synapse: on Loihi and in Lava several
    synapses connect to one neuron's input and the in-port sums what arrives. The attribute
    names are a :class:`LoweredLayer`'s synapse fields, so one synapse function serves both.
    """

    source: int  # index into LoweredNet.layers of the spiking layer whose spikes it reads
    weight: np.ndarray  # int64 conv (out, in, kh, kw), at the target layer's scale
    in_shape: tuple[int, ...]  # the source layer's out_shape (C, H, W)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kind: str = "conv"


@dataclass
class LoweredLayer:
    """One synapse (+ neuron) layer in Loihi integers. Shapes in PyTorch order (C, H, W)."""

    kind: str  # "conv" or "dense"
    name: str
    weight: np.ndarray  # int64, conv (out, in, kh, kw) or dense (out, in)
    bias: np.ndarray  # int64, (C,) per channel or (C, H, W) per neuron
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    scale: float  # k: integer current units per float current unit
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    flatten_before: bool = False
    spiking: bool = True  # False for the read-out (logits accumulated on the host side)
    i_decay: np.ndarray | None = None  # int64 (C,)
    v_decay: np.ndarray | None = None
    vth: np.ndarray | None = None
    limits: dict[str, float] = field(default_factory=dict)  # candidate scales, for the report
    skips: list[SkipSynapse] = field(default_factory=list)  # residual inputs from earlier layers

    @property
    def per_channel(self) -> bool:
        return self.spiking and any(len(np.unique(p)) > 1 for p in (self.i_decay, self.v_decay, self.vth))

    @property
    def neuron(self) -> LoihiCuba:
        """The layer's neuron (spiking layers), parameters [C]."""
        return LoihiCuba(self.i_decay, self.v_decay, self.vth)

    @property
    def leak(self) -> np.ndarray:
        """Float leak per channel, [C] float64."""
        return self.neuron.to_float().leak


@dataclass
class LoweredNet:
    """A model in Loihi integers: what the NetX file holds and what both simulators run.

    ``input_shape`` includes the constant bias channel (the last input channel). Layer ``k``'s
    own synapse reads layer ``k - 1`` (layer 0: the input); residual networks add
    :class:`SkipSynapse` inputs from earlier layers. Layer ``k`` is at depth ``k``, so where
    every hop costs a step (Lava, Loihi) a skip from layer ``j`` is held ``k - j - 1`` steps
    longer than the layer's own synapse (:meth:`skip_delay`).
    """

    input_shape: tuple[int, int, int]
    num_steps: int
    layers: list[LoweredLayer]
    class_names: list[str]

    @property
    def residual(self) -> bool:
        return any(layer.skips for layer in self.layers)

    def skip_delay(self, target: int, skip: SkipSynapse) -> int:
        """Extra steps a skip must be held so it meets the target's own synapse's current."""
        return target - skip.source - 1


def encode_input(pixels) -> np.ndarray:
    """uint8 images [N, 3, H, W] -> int64 graded input [N, 4, H, W]: pixels + bias channel.

    Accepts a numpy array or anything ``np.asarray`` reads (a CPU torch tensor).
    """
    x = np.asarray(pixels).astype(np.int64)
    const = np.full_like(x[:, :1], PIXEL_LEVELS)
    return np.concatenate([x, const], 1)
