"""The lowered network: a model in Loihi 2 integers (numpy only).

This is the form that ``export/lowering.py`` produces (from a trained model or a NIR graph), that
:mod:`rssnn.netx_file` writes and reads, that :mod:`rssnn.integer_forward` runs as the
reference, and that ``lava_procs`` builds into Lava processes. Nothing here needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rssnn.neuron import LoihiCuba

PIXEL_LEVELS = 255  # input: 8-bit graded spikes carrying the raw pixel level
INPUT_MESSAGE_BITS = 8

# Timing of the network as Lava (and Loihi) pipeline it: every process hop costs one step. The
# source sends an image's first frame at step 1 (Lava counts steps from 1), the first synapse
# delivers it at step 2, and each further layer adds a step.
FIRST_LAYER_DELAY = 2  # source step + first synapse


def first_step(layer: int) -> int:
    """The 1-based Lava step at which layer ``layer`` (0: the first synapse layer; the read-out
    is the last index) integrates the first frame of the first image."""
    return FIRST_LAYER_DELAY + layer


def steps_to_run(num_images: int, num_steps: int, last_layer: int) -> int:
    """Steps until layer ``last_layer`` has integrated the whole window of every image."""
    return num_images * num_steps + first_step(last_layer)


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
    neuron: LoihiCuba | None = None  # spiking layers: parameters [C]; the read-out has none
    limits: dict[str, float] = field(default_factory=dict)  # candidate scales, for the report
    skips: list[SkipSynapse] = field(default_factory=list)  # residual inputs from earlier layers

    @property
    def per_channel(self) -> bool:
        """Whether any neuron parameter differs between channels (an rssnn extension file)."""
        n = self.neuron
        return n is not None and any(len(np.unique(p)) > 1 for p in (n.i_decay, n.v_decay, n.vth_mant))

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


def readout_logits(summed_input: np.ndarray, bias: np.ndarray, num_steps: int) -> np.ndarray:
    """The read-out's integer logits: its synaptic input summed over an image's window
    [..., F] (rounded: Lava carries it as float) plus ``num_steps`` times its bias [F]; the
    argmax is the predicted class. The read-out never fires (``LoihiCuba.integrator``), so
    its voltage is this sum, read on the host instead of from the chip."""
    return np.rint(summed_input).astype(np.int64) + num_steps * np.asarray(bias, dtype=np.int64)


def encode_input(pixels) -> np.ndarray:
    """uint8 images [N, 3, H, W] -> int64 graded input [N, 4, H, W]: pixels + bias channel.

    Accepts a numpy array or anything ``np.asarray`` reads (a CPU torch tensor).
    """
    x = np.asarray(pixels).astype(np.int64)
    const = np.full_like(x[:, :1], PIXEL_LEVELS)
    return np.concatenate([x, const], 1)
