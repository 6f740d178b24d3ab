"""A :class:`FoldedNet` as a NIR graph (``nir`` 1.0.8): :func:`to_nir`.

The graph follows the contract of docs/nir.md (:data:`.nir_format.CONTRACT`), which its
metadata repeats: the input node takes the image as float pixels in [0, 1], shape (3, H, W);
the same image is presented at each of ``num_steps`` steps; the class is the argmax of the
Output summed over those steps; the neurons step by forward Euler with ``metadata["dt"]``.
The nodes:

* ``input`` -> ``normalise``, a 1x1 Conv2d holding the per-channel normalisation (kept as a
  node, not folded into the first convolution: that one zero-pads the *normalised* image);
* per layer ``<name>.synapse`` (Conv2d or Affine, BatchNorm folded in, the bias on it),
  ``<name>.skip<j>`` (residual Conv2d edges from earlier layers), ``<name>.flatten`` before a
  dense synapse on a map, and ``<name>.neuron`` (CubaLIF, per-neuron arrays);
* the read-out Affine -> ``output``.

2x2 average pooling is folded into the next synapse (exact: a conv with a doubled kernel and
stride), so the graph has no pooling nodes: ``norse.torch.from_nir`` 1.1.0 drops AvgPool2d. A
layer whose thresholds differ between channels gets them folded into its incoming weights and
bias (threshold 1): with a reset to 0 and no ``v_leak`` the spikes are unchanged, and snnTorch
accepts one threshold per layer only. The main edge into a neuron is listed before its skips
(Norse evaluates a merge too early otherwise).

The reader of such graphs (and of those snnTorch or Norse write) is :mod:`.nir_read`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rssnn.neuron import FloatCuba
from rssnn.synapse_kinds import conv_output_shape

from .folded import FoldedLayer, FoldedNet, Term
from .nir_format import BN_BETA, BN_GAMMA, CONTRACT, DEFAULT_DT, nir_package


def _per_neuron(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Per-channel values [C] as per-neuron arrays of ``shape`` (C, H, W) or (F,)."""
    return np.broadcast_to(values.reshape(-1, *([1] * (len(shape) - 1))), shape).astype(np.float64).copy()


def _unit_thresholds(layer: FoldedLayer) -> FoldedLayer:
    """Per-channel thresholds folded into the incoming current (threshold 1 everywhere)."""
    th = layer.neuron.threshold
    if np.all(th == th[0]):
        return layer
    scaled = layer.scaled(1.0 / th)
    n = layer.neuron
    scaled.neuron = FloatCuba(n.leak, np.ones_like(th), n.current_leak)
    return scaled


def to_nir(net: FoldedNet, dt: float = DEFAULT_DT, class_names: list[str] | None = None):
    """The folded network as a ``nir.NIRGraph`` (float64 arrays), under :data:`CONTRACT`."""
    nir = nir_package()
    image = net.image
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(image.shape))}
    edges: list[tuple[str, str]] = []
    c = image.shape[0]
    nodes["normalise"] = nir.Conv2d(
        input_shape=image.shape[1:],
        weight=np.diag(1.0 / image.std).reshape(c, c, 1, 1),
        stride=1, padding=0, dilation=1, groups=1,
        bias=-image.mean / image.std,
    )  # fmt: skip
    edges.append(("input", "normalise"))
    shapes: list[tuple[int, ...]] = []  # out shape per layer
    neuron_node: list[str] = []

    def source(term: Term) -> tuple[str, tuple[int, ...]]:
        return (
            ("normalise", image.shape) if term.source < 0 else (neuron_node[term.source], shapes[term.source])
        )

    for layer in net.layers:
        name = layer.name
        if layer.neuron is not None:
            layer = _unit_thresholds(layer)
        src, shape = source(layer.own)
        if layer.kind == "dense" and len(shape) > 1:
            nodes[f"{name}.flatten"] = nir.Flatten(
                input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1
            )
            edges.append((src, f"{name}.flatten"))
            src, shape = f"{name}.flatten", (int(np.prod(shape)),)
        w = layer.own.weight
        if layer.kind == "conv":
            nodes[f"{name}.synapse"] = nir.Conv2d(
                input_shape=shape[1:], weight=w, stride=layer.own.stride, padding=layer.own.padding,
                dilation=1, groups=1, bias=layer.bias,
            )  # fmt: skip
            out_shape = conv_output_shape(shape, w.shape, layer.own.stride, layer.own.padding)
        else:
            nodes[f"{name}.synapse"] = nir.Affine(weight=w, bias=layer.bias)
            out_shape = (w.shape[0],)
        if layer.bn_bound is not None:  # lets a round trip pick the same scale (not NIR's own)
            nodes[f"{name}.synapse"].metadata = {
                BN_GAMMA: layer.bn_bound[0],
                BN_BETA: layer.bn_bound[1],
            }
        target = "output" if layer.neuron is None else f"{name}.neuron"
        edges.append((src, f"{name}.synapse"))
        edges.append((f"{name}.synapse", target))  # the main edge before the skips (docs/nir.md)
        for j, skip in enumerate(layer.skips):
            skip_src, skip_shape = source(skip)
            nodes[f"{name}.skip{j}"] = nir.Conv2d(
                input_shape=skip_shape[1:], weight=skip.weight, stride=skip.stride,
                padding=skip.padding, dilation=1, groups=1, bias=np.zeros(skip.weight.shape[0]),
            )  # fmt: skip
            edges += [(skip_src, f"{name}.skip{j}"), (f"{name}.skip{j}", target)]
        if layer.neuron is None:
            nodes["output"] = nir.Output(output_type=np.array(out_shape))
            continue
        params = {k: _per_neuron(v, out_shape) for k, v in layer.neuron.to_nir(dt).items()}
        nodes[target] = nir.CubaLIF(**params)
        neuron_node.append(target)
        shapes.append(out_shape)
    metadata = dict(
        producer="rssnn-lava",
        contract=CONTRACT,
        num_steps=int(net.num_steps),
        dt=float(dt),
        input_range=[0.0, 1.0],
    )
    if class_names:
        metadata["class_names"] = list(class_names)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
