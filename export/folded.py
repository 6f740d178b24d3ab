"""The folded float network: what every front end produces and the one lowering seam consumes.

A front end (a trained SLAYER model, :func:`rssnn.export.fold_torch.fold`; a NIR graph,
:func:`rssnn.export.nir_read.from_nir`) folds BatchNorm, average pooling and flattening into
the synapses, so that a network is a list of :class:`FoldedLayer`: float synapses into one
neuron layer (or into the non-spiking read-out), each reading earlier layers' spikes. The
integer lowering (:func:`rssnn.export.lowering.lower_folded`) and the NIR writer
(:func:`rssnn.export.nir_write.to_nir`) read this one form, and :func:`forward` runs it in
float, so the folding is checked against the model it came from.

The form holds float64 numpy arrays, so a NIR graph reaches the integers without torch; only
:func:`forward` (the float reference, a convolution per step) imports torch, when called.

Time semantics (those of the trained model): every layer updates at every step, within the
same step (no per-hop delay); the image is presented at each of the T steps; the read-out's
logits are its synaptic current summed over the T steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rssnn import dynamics
from rssnn.neuron import FloatCuba

if TYPE_CHECKING:  # the float reference's arguments; the form itself needs no torch
    import torch


@dataclass
class Term:
    """One float synapse into a layer: conv weights [O, I, kh, kw] or dense [O, F] (float64)
    from the layer at index ``source`` (-1: the normalised image, a first layer only)."""

    source: int
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def scaled(self, c) -> Term:
        """The term times ``c``: a number, or an array [O] of one factor per output channel."""
        c = np.asarray(c, dtype=np.float64)
        if c.ndim == 1:
            c = c.reshape(-1, *([1] * (self.weight.ndim - 1)))
        return Term(self.source, self.weight * c, self.stride, self.padding)


@dataclass
class ImageInput:
    """The image side: the network reads ``(pixels / 255 - mean) / std`` per channel, zero
    padded; ``mean`` and ``std`` [C] float64, ``shape`` (C, H, W) of the image."""

    mean: np.ndarray
    std: np.ndarray
    shape: tuple[int, int, int]

    @property
    def lowered_shape(self) -> tuple[int, int, int]:
        """The lowered input: the pixel channels plus the constant bias channel."""
        c, h, w = self.shape
        return (c + 1, h, w)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images [N, C, H, W] (a torch tensor), uint8 levels or float pixels in [0, 1],
        normalised (float64)."""
        x = pixels.double() / 255 if not pixels.is_floating_point() else pixels.double()
        mean, std = (x.new_tensor(a).view(1, -1, 1, 1) for a in (self.mean, self.std))
        return (x - mean) / std


@dataclass
class FoldedLayer:
    """One layer: the current ``sum(terms) + bias`` into ``neuron`` (None: the read-out).

    ``own`` reads the previous layer (the image for the first), ``skips`` earlier spiking
    layers (conv only). ``bias`` [O] float64. ``flatten_before``: the own synapse is dense on
    the previous layer's flattened (C, H, W) map. ``bn_bound`` (|gamma|, beta) [O] of a folded
    BatchNorm, which bounds the current realistically (8 standard deviations) for the scale.
    """

    name: str
    kind: str  # "conv" or "dense"
    own: Term
    bias: np.ndarray
    neuron: FloatCuba | None
    skips: list[Term] = field(default_factory=list)
    flatten_before: bool = False
    bn_bound: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def terms(self) -> list[Term]:
        return [self.own, *self.skips]

    def scaled(self, gain: np.ndarray) -> FoldedLayer:
        """This layer with its input current multiplied by ``gain`` [O] per output channel
        (every term and the bias); the BatchNorm bound no longer applies."""
        gain = np.asarray(gain, dtype=np.float64)
        return FoldedLayer(
            self.name, self.kind, self.own.scaled(gain), self.bias * gain, self.neuron,
            [t.scaled(gain) for t in self.skips], self.flatten_before, None,
        )  # fmt: skip


@dataclass
class FoldedNet:
    """A network in folded float form: ``layers[-1]`` is the read-out (no neuron)."""

    image: ImageInput
    num_steps: int
    layers: list[FoldedLayer]


def _synapse(layer_kind: str, term: Term, x: torch.Tensor) -> torch.Tensor:
    """One term's current from its source's spikes (or the normalised image) at one step."""
    import torch
    import torch.nn.functional as F

    weight = torch.from_numpy(term.weight)
    if layer_kind == "conv":
        return F.conv2d(x, weight, stride=term.stride, padding=term.padding)
    return x.reshape(x.shape[0], -1) @ weight.T


def forward(net: FoldedNet, pixels: torch.Tensor) -> dict[str, list | torch.Tensor]:
    """Run the folded network in float64 on images [N, C, H, W] (uint8, or float in [0, 1]).

    Returns ``logits`` [N, classes] (the read-out's current summed over T) and ``spikes``: per
    spiking layer a bool tensor [N, C, H, W, T] or [N, F, T]. Runs on torch (imported here:
    the float reference of a verification, never needed to lower a network).
    """
    import torch

    with torch.no_grad():
        return _forward(net, pixels)


def _forward(net: FoldedNet, pixels: torch.Tensor) -> dict[str, list | torch.Tensor]:
    import torch

    image = net.image.normalise(pixels)
    spikes: list[torch.Tensor] = []
    logits = None
    for layer in net.layers:

        def source(term: Term, t: int) -> torch.Tensor:
            return image if term.source < 0 else spikes[term.source][..., t].double()

        view = (-1,) + (1,) * (2 if layer.kind == "conv" else 0)
        bias = torch.from_numpy(layer.bias).view(view)
        out = []
        u = h = 0.0
        if layer.neuron is not None:
            n = layer.neuron
            leak, th, cl = (torch.from_numpy(p).view(view) for p in (n.leak, n.threshold, n.current_leak))
        for t in range(net.num_steps):
            x = bias + sum(_synapse(layer.kind, term, source(term, t)) for term in layer.terms)
            if layer.neuron is None:
                logits = x if logits is None else logits + x
                continue
            u, m, s = dynamics.float_lif_update(u, h, x, cl, leak, th)
            h = m * ~s
            out.append(s)
        if layer.neuron is not None:
            spikes.append(torch.stack(out, -1))
    return dict(logits=logits, spikes=spikes)


def predictions(net: FoldedNet, pixels: torch.Tensor, batch_size: int = 250) -> np.ndarray:
    """Predicted classes [N] (int64) of :func:`forward`, in batches."""
    chunks = [pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size)]
    return np.concatenate([forward(net, chunk)["logits"].argmax(1).numpy() for chunk in chunks])
