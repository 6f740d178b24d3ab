"""The trained model's front end: a SLAYER :class:`SpikingNet` or :class:`ResNet` folded into a
:class:`FoldedNet` (:func:`fold`), which the seam (:func:`rssnn.export.lowering.lower_folded`)
lowers to Loihi integers.

Folding reads the model's tensors (torch) and hands on float64 numpy arrays: inference
BatchNorm folds into the weights and a bias, 2x2 average pooling and flattening into the next
synapse (:mod:`.pooling`), a residual network's analog stream into skip synapses
(docs/netx-schema.md). The model is never modified: folding reads copies of its tensors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rssnn.errors import UserError
from rssnn.synapse_kinds import conv_output_shape

from ..train.models import (
    AvgPool,
    ConvUnit,
    DenseUnit,
    Flatten,
    ResNet,
    SpikingNet,
    batchnorm_affine_of,
)
from .folded import FoldedLayer, FoldedNet, ImageInput, Term
from .pooling import pool_into_conv, pool_into_dense


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A float64 copy of a tensor (never a view of the model's own memory)."""
    return t.detach().to(torch.float64).numpy().copy()


def _fold_bn(w: torch.Tensor, norm: nn.Module | None, bias: torch.Tensor | None):
    """Fold inference-mode BatchNorm: returns (W', b') float64 arrays with I = W' * s + b' per
    channel."""
    w = w.detach().double()
    out = w.shape[0]
    if norm is None:
        b = bias.detach().double() if bias is not None else torch.zeros(out, dtype=torch.float64)
        return _numpy(w), _numpy(b)
    scale, shift = batchnorm_affine_of(norm, torch.float64)
    return _numpy(w * scale.view(-1, *([1] * (w.dim() - 1)))), _numpy(shift)


def _check_exportable(model: nn.Module) -> None:
    """The model kinds the exporter handles (a neuron with the per-step gain a[t] is refused as
    its layer is folded, by ``DLIF.float_form``: the one place that says so)."""
    if not isinstance(model, SpikingNet | ResNet):
        _, why = model.stock_netx_exportable()
        raise UserError(
            f"cannot export {type(model).__name__}: {why}; the exporter handles "
            "feed-forward conv/pool/dense models (cpu, vgg5, vgg11) and residual ones (cpu-res, wrn16)"
        )


def _input_normalisation(model: nn.Module) -> ImageInput:
    mean = _numpy(model.normalize.mean).reshape(-1)
    std = _numpy(model.normalize.std).reshape(-1)
    return ImageInput(mean, std, (len(mean), model.image_size, model.image_size))


def _bn_bound(norm: nn.Module | None):
    """(|gamma|, beta) [O] of a BatchNorm, for the seam's current bound; None without one."""
    if norm is None:
        return None
    return np.abs(_numpy(norm.weight)), _numpy(norm.bias)


def fold(model: nn.Module) -> FoldedNet:
    """A :class:`SpikingNet` or :class:`ResNet` as a :class:`FoldedNet` (other models raise
    UserError). The model is never modified: folding reads copies of its tensors."""
    _check_exportable(model)
    model = model.eval()
    image = _input_normalisation(model)
    fold_body = _fold_resnet if isinstance(model, ResNet) else _fold_chain
    return FoldedNet(image, model.num_steps, fold_body(model))


def _fold_chain(model: SpikingNet) -> list[FoldedLayer]:
    """A feed-forward :class:`SpikingNet`: pooling and flattening fold into the next synapse."""
    shape: tuple[int, ...] = (0, model.image_size, model.image_size)  # only H, W are read
    layers: list[FoldedLayer] = []
    pending_pool = pending_flatten = False
    units = list(model.layers) + [model.readout]
    for idx, unit in enumerate(units):
        name = "readout" if unit is model.readout else f"layers.{idx}"
        if isinstance(unit, AvgPool):
            if pending_pool:
                raise UserError("cannot export two consecutive pooling layers")
            pending_pool = True
            continue
        if isinstance(unit, Flatten):
            pending_flatten = True
            continue
        if not isinstance(unit, ConvUnit | DenseUnit):
            raise UserError(f"cannot export layer {name} of type {type(unit).__name__}")
        if isinstance(unit, ConvUnit):
            w, b = _fold_bn(unit.synapse.weight[..., 0], unit.norm, None)
            stride, padding = tuple(unit.synapse.stride[:2]), tuple(unit.synapse.padding[:2])
            if pending_pool:
                w, stride, padding = pool_into_conv(w, stride, padding)
            own, kind, flatten = Term(len(layers) - 1, w, stride, padding), "conv", False
            shape = conv_output_shape((w.shape[1], *shape[1:]), w.shape, stride, padding)
        else:
            w, b = _fold_bn(
                unit.synapse.weight.reshape(unit.synapse.weight.shape[0], -1), unit.norm, unit.bias
            )
            if pending_pool:
                c, hh, ww = shape
                w = pool_into_dense(w, c, hh // 2, ww // 2)
            own, kind = Term(len(layers) - 1, w), "dense"
            flatten, pending_flatten = pending_flatten, False
            shape = (w.shape[0],)
        pending_pool = False
        neuron = unit.neuron.float_form() if unit.neuron is not None else None
        norm = getattr(unit, "norm", None)
        layers.append(
            FoldedLayer(name, kind, own, b, neuron, flatten_before=flatten, bn_bound=_bn_bound(norm))
        )
    return layers


def _conv_term(source: int, conv: nn.Module) -> Term:
    w = _numpy(conv.weight)[..., 0]
    return Term(source, w, tuple(conv.stride[:2]), tuple(conv.padding[:2]))


def _residual_layer(
    layers: list[FoldedLayer], terms: list[Term], norm: nn.Module, neuron: nn.Module, name: str
) -> int:
    """A neuron reading the residual stream ``BN(sum of terms)``: BN's scale folds into every
    term, its shift into the bias; the term from the previous layer is the layer's own synapse,
    the others become skips. Returns the new layer's index."""
    here = len(layers)
    own = [i for i, t in enumerate(terms) if t.source == here - 1]
    if len(own) != 1 or any(u.source < 0 for i, u in enumerate(terms) if i != own[0]):
        raise UserError(
            f"cannot export {name}: its input must be one synapse from the previous layer "
            "plus skips from spiking layers (an identity shortcut around the stem is not)"
        )
    scale, b = (_numpy(a) for a in batchnorm_affine_of(norm, torch.float64))
    folded = [t.scaled(scale) for t in terms]
    skips = [t for i, t in enumerate(folded) if i != own[0]]
    layers.append(
        FoldedLayer(name, "conv", folded[own[0]], b, neuron.float_form(), skips, bn_bound=_bn_bound(norm))
    )
    return here


def _fold_resnet(model: ResNet) -> list[FoldedLayer]:
    """A pre-activation :class:`ResNet`: the analog residual stream becomes synapses.

    Every neuron that reads the stream ``x`` sees ``BN(x) = a (sum_i c_i conv_i(s_i)) + b``,
    a sum of conv synapses from earlier spiking layers ``s_i`` (mixing coefficients ``c_i``
    products of the blocks' ``mix``, identity shortcuts unrolled); :func:`_residual_layer` folds
    BN. The stem (no neuron) is the first layer's own synapse on the image. Global average
    pooling folds into the read-out (weights / (H W)).
    """
    layers: list[FoldedLayer] = []
    stream = [_conv_term(-1, model.stem)]
    for i, block in enumerate(model.blocks):
        first = _residual_layer(layers, stream, block.norm1, block.neuron1, f"blocks.{i}.neuron1")
        second = _residual_layer(
            layers, [_conv_term(first, block.conv1)], block.norm2, block.neuron2, f"blocks.{i}.neuron2"
        )
        c0, c1 = (float(c) for c in block.mix.detach())
        short = [_conv_term(first, block.shortcut)] if block.shortcut is not None else stream
        stream = [t.scaled(c0) for t in short] + [_conv_term(second, block.conv2).scaled(c1)]
    last = _residual_layer(layers, stream, model.norm, model.neuron, "neuron")
    c = layers[last].own.weight.shape[0]
    h, wd = _residual_map_size(model, layers)
    readout = model.readout
    w = _numpy(readout.synapse.weight).reshape(readout.synapse.weight.shape[0], c)
    w = np.broadcast_to(w[:, :, None] / (h * wd), (*w.shape, h * wd)).reshape(w.shape[0], -1)  # pool folded
    layers.append(
        FoldedLayer("readout", "dense", Term(last, w), _numpy(readout.bias), None, flatten_before=True)
    )
    return layers


def _residual_map_size(model: ResNet, layers: list[FoldedLayer]) -> tuple[int, int]:
    """(H, W) of the last layer's map: the own synapses' geometry applied to the image."""
    shape: tuple[int, ...] = (0, model.image_size, model.image_size)
    for layer in layers:
        w = layer.own.weight
        shape = conv_output_shape((w.shape[1], *shape[1:]), w.shape, layer.own.stride, layer.own.padding)
    return shape[1], shape[2]
