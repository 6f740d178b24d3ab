"""Fold a trained spiking model into a :class:`FoldedNet` (:func:`fold`), and lower any folded
network, from a checkpoint or a NIR graph, to Loihi 2 integers: the content of a NetX file
(:func:`lower_folded`, through the one seam :func:`_lower_layer`).

Per spiking layer, in the float model ``I = BN(W * s) = W' * s + b'``. We pick a per-layer scale
``k`` (integer units per unit of float current) and write

    weight  w_int = even integer round(k W') in [-256, 254]   (8-bit mantissa, Loihi's sign mode)
    bias    b_int = round(k b')                                  (13-bit mantissa, bias_exp 6)
    vThMant       = round(k threshold)                           (17 bit)
    vDecay        = round(4096 (1 - leak)),  iDecay = round(4096 (1 - current_leak))

so that Loihi's ``v`` equals ``64 k`` times the float membrane up to rounding. Lava's conv
process ignores weight exponents, so ``k`` lives entirely in threshold and bias. ``k`` is the
largest value that keeps every quantity inside its register, including the 24-bit current ``u``.

The input is the raw 8-bit pixel level (0..255) as a graded spike, plus one constant channel at
level 255, the *bias channel*: the first layer's bias (BatchNorm shift and the folded input
normalisation) rides on that channel's weights. A per-pixel weight is ~1/(255 std) of the float
weight while the bias is O(1), so as a 13-bit NetX bias it would cap ``k`` so low that the first
layer kept only ~3 weight bits; as 8-bit weights on a 255-level input it has 16x the range.
Zero padding of the constant channel reproduces exactly how the float model's zero padding of
the *normalised* image changes the folded bias at the border.

2x2 average pooling (no neuron, the reference VGG) is folded into the next synapse:
conv(W, avgpool(s)) is a conv with kernel 2k, stride 2s, padding 2p and weights W/4.
The model is never modified: lowering reads copies of its tensors.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from rssnn import dynamics
from rssnn.errors import UserError
from rssnn.lowered import PIXEL_LEVELS, LoweredLayer, LoweredNet, SkipSynapse
from rssnn.neuron import FloatCuba, LoihiCuba
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


def _fold_bn(w: torch.Tensor, norm: nn.Module | None, bias: torch.Tensor | None):
    """Fold inference-mode BatchNorm: returns (W', b') with I = W' * s + b' per channel."""
    w = w.detach().double()
    out = w.shape[0]
    if norm is None:
        b = bias.detach().double() if bias is not None else torch.zeros(out, dtype=torch.float64)
        return w, b
    scale, shift = batchnorm_affine_of(norm, torch.float64)
    return w * scale.view(-1, *([1] * (w.dim() - 1))), shift


def _fold_pool_into_conv(w: torch.Tensor, stride: tuple, padding: tuple):
    """avgpool2x2 followed by conv(w) == conv(w', stride 2s, padding 2p), w' = repeat(w)/4."""
    w2 = w.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) / 4
    return w2, (2 * stride[0], 2 * stride[1]), (2 * padding[0], 2 * padding[1])


def _fold_pool_into_dense(w: torch.Tensor, c: int, h: int, wd: int) -> torch.Tensor:
    """avgpool2x2 -> flatten -> dense(w) == flatten -> dense(w') on the unpooled map."""
    w4 = w.reshape(w.shape[0], c, h, wd)
    return (w4.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) / 4).reshape(w.shape[0], -1)


def _fold_input(
    w: torch.Tensor, b: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, conv: bool
) -> torch.Tensor:
    """Fold normalisation, the 1/255 pixel scale and the bias into first-layer weights.

    The float layer computes ``W' ((p/255 - mean) / std) + b'`` on a zero-padded normalised
    image; returns weights over (pixels, bias channel) for the input ``encode_input(p)``.
    """
    if conv:
        w_pix = w / std.view(1, -1, 1, 1) / PIXEL_LEVELS
        k_const = -(w * (mean / std).view(1, -1, 1, 1)).sum(1, keepdim=True)
        centre = (w.shape[2] // 2, w.shape[3] // 2)  # always inside the image: 'same' padding
        k_const[:, 0, centre[0], centre[1]] += b
        return torch.cat([w_pix, k_const / PIXEL_LEVELS], 1)
    plane = w.shape[1] // len(std)  # features per channel: the bias channel adds one plane
    w_pix = w / torch.repeat_interleave(std, plane).view(1, -1) / PIXEL_LEVELS
    const = torch.zeros(w.shape[0], plane, dtype=w.dtype)
    const[:, 0] = (b - w @ torch.repeat_interleave(mean / std, plane)) / PIXEL_LEVELS
    return torch.cat([w_pix, const], 1)  # one bias-channel feature carries the bias


def _current_bound(w: torch.Tensor, b: torch.Tensor, input_max: float, bn_bound) -> float:
    """Largest |synaptic input| (float units) the layer can meet.

    The worst case over inputs in [0, input_max] is ``input_max * max(sum w+, sum |w-|)``. With
    BatchNorm (``bn_bound`` = (|gamma|, beta)) the training statistics give a realistic bound:
    the normalised current stays within 8 standard deviations, |I - beta| <= 8 |gamma|, i.e.
    |W' x| <= 8 |gamma| + |beta - b'|.
    """
    rows = w.reshape(w.shape[0], -1)
    worst = input_max * torch.maximum(rows.clamp(min=0).sum(1), (-rows).clamp(min=0).sum(1))
    if bn_bound is not None:
        gamma, beta = bn_bound
        worst = torch.minimum(worst, 8 * gamma + (beta - b).abs())
    return worst.max().item()


def _choose_scale(
    w: torch.Tensor,
    b: torch.Tensor,
    threshold_max: float,
    current_max: float,
) -> tuple[float, dict[str, float]]:
    """Largest k that keeps weights, bias, threshold and the 24-bit current in range."""
    limits = {
        "weight": dynamics.WEIGHT_MANT_RANGE[1] / max(w.abs().max().item(), 1e-12),
        "bias": dynamics.BIAS_MANT_RANGE[1] / max(b.abs().max().item(), 1e-12),
        "threshold": dynamics.VTH_MANT_RANGE[1] / max(threshold_max, 1e-12),
        # u = a_in << 6 must stay inside +-2**23 (Loihi's current register wraps).
        "current": (dynamics.STATE_MAX >> dynamics.ACT_SHIFT) / max(current_max, 1e-12),
    }
    return min(limits.values()), limits


def _vanished(name: str, limits: dict[str, float]) -> UserError:
    binding = min(limits, key=limits.get)
    return UserError(
        f"cannot export {name}: its weights vanish at 8 bits because the "
        f"{binding} range limits the layer scale (limits {limits}); "
        "this layer cannot be represented on Loihi 2"
    )


def _quantise_weight(w: torch.Tensor, k: float) -> np.ndarray:
    """Float weights at scale ``k`` as Loihi's even 8-bit mantissas (int64)."""
    lo, hi = dynamics.WEIGHT_MANT_RANGE
    q = 2 * torch.round(w * k / 2)  # even mantissas: Loihi's 8-bit mixed-sign weights
    return q.clamp(lo, hi).to(torch.int64).numpy()


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
    mean = model.normalize.mean.detach().double().view(-1)
    std = model.normalize.std.detach().double().view(-1)
    return ImageInput(mean, std, (len(mean), model.image_size, model.image_size))


def _bn_bound(norm: nn.Module | None):
    """(|gamma|, beta) [O] of a BatchNorm, for :func:`_current_bound`; None without one."""
    if norm is None:
        return None
    return norm.weight.detach().double().abs(), norm.bias.detach().double()


def _lower_layer(layers: list[LoweredLayer], layer: FoldedLayer, image: ImageInput) -> LoweredLayer:
    """The one seam from a :class:`FoldedLayer` to a :class:`LoweredLayer` (every front end
    ends here; ``layers`` are the ones lowered so far).

    A first layer (none lowered yet) gets the input normalisation and its bias folded onto
    the bias channel. One scale ``k`` serves all terms (the current bound covers their sum); a
    term that rounds to zero at 8 bits is dropped with a warning (a residual branch that its
    learned mixing switched off), and only all of them vanishing is fatal.
    """
    name, kind, own, bias, neuron = layer.name, layer.kind, layer.own, layer.bias, layer.neuron
    first = not layers
    conv = kind == "conv"
    source_shape = image.lowered_shape if first else layers[-1].out_shape
    in_shape = source_shape if conv else (int(np.prod(source_shape)),)
    w, input_max = own.weight, 1.0
    if first:  # the bias moves onto the bias channel's weights
        w = _fold_input(w, bias, image.mean, image.std, conv)
        bias = torch.zeros_like(bias)
        input_max = PIXEL_LEVELS
    if not conv and w.shape[1] != in_shape[0]:
        raise UserError(f"cannot export {name}: {w.shape[1]} inputs for {in_shape[0]} features")
    if neuron is not None and bool(((neuron.current_leak > 0) & (bias.numpy() != 0)).any()):
        # The float neuron filters its bias through the current (u = cl u + W s + b); Loihi adds
        # a bias to v. Only the first layer's bias rides on the input's bias channel (a current).
        raise UserError(
            f"cannot export {name}: it has a bias and its neurons keep a current (current leak "
            f"{float(neuron.current_leak.max()):.3g}); Loihi adds a bias to v, not to the current, so "
            "this has no exact mapping: train this layer without a bias (snnTorch: bias=False), "
            "or without a current state (current leak 0, NIR tau_syn = dt)"
        )
    rows = [w] + [t.weight for t in layer.skips]
    flat = torch.cat([r.reshape(r.shape[0], -1) for r in rows], 1)
    th_max = float(neuron.threshold.max()) if neuron is not None else 1.0
    k, limits = _choose_scale(flat, bias, th_max, _current_bound(flat, bias, input_max, layer.bn_bound))
    quantised = [_quantise_weight(r, k) for r in rows]
    if not any(q.any() for q in quantised):  # one term may vanish, not all of them
        raise _vanished(name, limits)
    for term, r, q in zip(layer.terms, rows, quantised):
        if not q.any():
            source = "the image" if term.source < 0 else layers[term.source].name
            warnings.warn(
                f"{name}: its synapse from {source} rounds to zero at 8 bits (largest weight "
                f"{k * r.abs().max().item():.3f} integer steps, 1 needed); the term is dropped",
                stacklevel=3,
            )
    geometry = dict(stride=own.stride, padding=own.padding) if conv else {}
    out_shape = conv_output_shape(in_shape, w.shape, own.stride, own.padding) if conv else (w.shape[0],)
    return LoweredLayer(
        kind,
        name,
        quantised[0],
        torch.round(bias * k).to(torch.int64).numpy(),
        in_shape,
        out_shape,
        k,
        flatten_before=layer.flatten_before,
        spiking=neuron is not None,
        neuron=_loihi_neuron(name, neuron, k) if neuron is not None else None,
        limits=limits,
        skips=[
            SkipSynapse(t.source, q, layers[t.source].out_shape, t.stride, t.padding)
            for t, q in zip(layer.skips, quantised[1:])
        ],
        **geometry,
    )


def _loihi_neuron(name: str, neuron: FloatCuba, k: float) -> LoihiCuba:
    """The layer's neuron in integers for weights of ``1/k`` float units (UserError for a
    threshold the 17-bit mantissa cannot hold at this scale)."""
    try:
        return neuron.to_loihi(1.0 / k)
    except ValueError as exc:
        raise UserError(f"cannot export {name}: {exc}") from None


def lower_folded(net: FoldedNet, class_names: list[str]) -> LoweredNet:
    """A folded float network in Loihi integers: :func:`_lower_layer` layer by layer."""
    layers: list[LoweredLayer] = []
    for layer in net.layers:
        layers.append(_lower_layer(layers, layer, net.image))
    return LoweredNet(net.image.lowered_shape, net.num_steps, layers, list(class_names))


def fold(model: nn.Module) -> FoldedNet:
    """A :class:`SpikingNet` or :class:`ResNet` as a :class:`FoldedNet` (other models raise
    UserError). The model is never modified: folding reads copies of its tensors."""
    _check_exportable(model)
    model = model.eval()
    image = _input_normalisation(model)
    fold_body = _fold_resnet if isinstance(model, ResNet) else _fold_chain
    return FoldedNet(image, model.num_steps, fold_body(model))


def lower(model: nn.Module, class_names: list[str]) -> LoweredNet:
    """Lower a :class:`SpikingNet` or :class:`ResNet` to integers; other models raise UserError."""
    return lower_folded(fold(model), class_names)


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
                w, stride, padding = _fold_pool_into_conv(w, stride, padding)
            own, kind, flatten = Term(len(layers) - 1, w, stride, padding), "conv", False
            shape = conv_output_shape((w.shape[1], *shape[1:]), w.shape, stride, padding)
        else:
            w, b = _fold_bn(
                unit.synapse.weight.reshape(unit.synapse.weight.shape[0], -1), unit.norm, unit.bias
            )
            if pending_pool:
                c, hh, ww = shape
                w = _fold_pool_into_dense(w, c, hh // 2, ww // 2)
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
    w = conv.weight.detach().double()[..., 0]
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
    scale, b = batchnorm_affine_of(norm, torch.float64)
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
    w = readout.synapse.weight.detach().double().reshape(readout.synapse.weight.shape[0], c)
    w = (w[:, :, None] / (h * wd)).expand(-1, -1, h * wd).reshape(w.shape[0], -1)  # pool folded
    layers.append(
        FoldedLayer(
            "readout", "dense", Term(last, w), readout.bias.detach().double(), None, flatten_before=True
        )
    )
    return layers


def _residual_map_size(model: ResNet, layers: list[FoldedLayer]) -> tuple[int, int]:
    """(H, W) of the last layer's map: the own synapses' geometry applied to the image."""
    shape: tuple[int, ...] = (0, model.image_size, model.image_size)
    for layer in layers:
        w = layer.own.weight
        shape = conv_output_shape((w.shape[1], *shape[1:]), w.shape, layer.own.stride, layer.own.padding)
    return shape[1], shape[2]
