"""The one seam: any folded network, from a checkpoint (:mod:`.fold_torch`) or a NIR graph
(:mod:`.nir_read`), lowered to Loihi 2 integers, the content of a NetX file
(:func:`lower_folded`, through :func:`_lower_layer` per layer). numpy only: importing it, or
lowering a NIR graph, loads neither torch nor SLAYER.

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

2x2 average pooling (no neuron, the reference VGG) arrives folded into the next synapse by the
front ends (:mod:`.pooling`): conv(W, avgpool(s)) is a conv with kernel 2k, stride 2s, padding
2p and weights W/4.
"""

from __future__ import annotations

import warnings

import numpy as np

from rssnn import dynamics
from rssnn.errors import UserError
from rssnn.lowered import PIXEL_LEVELS, LoweredLayer, LoweredNet, SkipSynapse
from rssnn.neuron import FloatCuba, LoihiCuba
from rssnn.synapse_kinds import conv_output_shape

from .folded import FoldedLayer, FoldedNet, ImageInput


def _fold_input(w: np.ndarray, b: np.ndarray, mean: np.ndarray, std: np.ndarray, conv: bool) -> np.ndarray:
    """Fold normalisation, the 1/255 pixel scale and the bias into first-layer weights.

    The float layer computes ``W' ((p/255 - mean) / std) + b'`` on a zero-padded normalised
    image; returns weights over (pixels, bias channel) for the input ``encode_input(p)``.
    """
    if conv:
        w_pix = w / std.reshape(1, -1, 1, 1) / PIXEL_LEVELS
        k_const = -(w * (mean / std).reshape(1, -1, 1, 1)).sum(1, keepdims=True)
        centre = (w.shape[2] // 2, w.shape[3] // 2)  # always inside the image: 'same' padding
        k_const[:, 0, centre[0], centre[1]] += b
        return np.concatenate([w_pix, k_const / PIXEL_LEVELS], 1)
    plane = w.shape[1] // len(std)  # features per channel: the bias channel adds one plane
    w_pix = w / np.repeat(std, plane).reshape(1, -1) / PIXEL_LEVELS
    const = np.zeros((w.shape[0], plane), dtype=w.dtype)
    const[:, 0] = (b - w @ np.repeat(mean / std, plane)) / PIXEL_LEVELS
    return np.concatenate([w_pix, const], 1)  # one bias-channel feature carries the bias


def _current_bound(w: np.ndarray, b: np.ndarray, input_max: float, bn_bound) -> float:
    """Largest |synaptic input| (float units) the layer can meet.

    The worst case over inputs in [0, input_max] is ``input_max * max(sum w+, sum |w-|)``. With
    BatchNorm (``bn_bound`` = (|gamma|, beta)) the training statistics give a realistic bound:
    the normalised current stays within 8 standard deviations, |I - beta| <= 8 |gamma|, i.e.
    |W' x| <= 8 |gamma| + |beta - b'|.
    """
    rows = w.reshape(w.shape[0], -1)
    worst = input_max * np.maximum(np.clip(rows, 0, None).sum(1), np.clip(-rows, 0, None).sum(1))
    if bn_bound is not None:
        gamma, beta = bn_bound
        worst = np.minimum(worst, 8 * gamma + np.abs(beta - b))
    return float(worst.max())


def _choose_scale(
    w: np.ndarray,
    b: np.ndarray,
    threshold_max: float,
    current_max: float,
) -> tuple[float, dict[str, float]]:
    """Largest k that keeps weights, bias, threshold and the 24-bit current in range."""
    limits = {
        "weight": dynamics.WEIGHT_MANT_RANGE[1] / max(float(np.abs(w).max()), 1e-12),
        "bias": dynamics.BIAS_MANT_RANGE[1] / max(float(np.abs(b).max()), 1e-12),
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


def _quantise_weight(w: np.ndarray, k: float) -> np.ndarray:
    """Float weights at scale ``k`` as Loihi's even 8-bit mantissas (int64; rounding half to
    even)."""
    lo, hi = dynamics.WEIGHT_MANT_RANGE
    q = 2 * np.round(w * k / 2)  # even mantissas: Loihi's 8-bit mixed-sign weights
    return np.clip(q, lo, hi).astype(np.int64)


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
        bias = np.zeros_like(bias)
        input_max = PIXEL_LEVELS
    if not conv and w.shape[1] != in_shape[0]:
        raise UserError(f"cannot export {name}: {w.shape[1]} inputs for {in_shape[0]} features")
    if neuron is not None and bool(((neuron.current_leak > 0) & (bias != 0)).any()):
        # The float neuron filters its bias through the current (u = cl u + W s + b); Loihi adds
        # a bias to v. Only the first layer's bias rides on the input's bias channel (a current).
        raise UserError(
            f"cannot export {name}: it has a bias and its neurons keep a current (current leak "
            f"{float(neuron.current_leak.max()):.3g}); Loihi adds a bias to v, not to the current, so "
            "this has no exact mapping: train this layer without a bias (snnTorch: bias=False), "
            "or without a current state (current leak 0, NIR tau_syn = dt)"
        )
    rows = [w] + [t.weight for t in layer.skips]
    flat = np.concatenate([r.reshape(r.shape[0], -1) for r in rows], 1)
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
                f"{k * float(np.abs(r).max()):.3f} integer steps, 1 needed); the term is dropped",
                stacklevel=3,
            )
    geometry = dict(stride=own.stride, padding=own.padding) if conv else {}
    out_shape = conv_output_shape(in_shape, w.shape, own.stride, own.padding) if conv else (w.shape[0],)
    return LoweredLayer(
        kind,
        name,
        quantised[0],
        np.round(bias * k).astype(np.int64),
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


def lower(model, class_names: list[str]) -> LoweredNet:
    """A trained :class:`SpikingNet` or :class:`ResNet` in Loihi integers: the torch front end
    (:func:`rssnn.export.fold_torch.fold`, imported on this call only, so that importing the
    seam loads no torch) and :func:`lower_folded`. Other models raise UserError."""
    from .fold_torch import fold

    return lower_folded(fold(model), class_names)


def lower_folded(net: FoldedNet, class_names: list[str]) -> LoweredNet:
    """A folded float network in Loihi integers: :func:`_lower_layer` layer by layer."""
    layers: list[LoweredLayer] = []
    for layer in net.layers:
        layers.append(_lower_layer(layers, layer, net.image))
    return LoweredNet(net.image.lowered_shape, net.num_steps, layers, list(class_names))
