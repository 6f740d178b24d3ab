"""Loihi 2 placement of a NetX file, before the hardware: neurocores per layer, chips, and why.

Intel's compiler (lava-loihi) is closed and needs the hardware, so this is an explicit resource
model: one table of constants (:data:`RESOURCES`), each with its source and whether it is
documented or inferred, and one placement rule (:func:`place_layer`). Inferred constants come
from the placements Intel's compiler printed for two lava-dl tutorial files
(``shared/data/loihi2``); docs/loihi2.md sets the model beside those placements layer by layer
and states where it misses. It reads any stock NetX file (lava-dl's own, CUBA or sigma-delta
neurons; input, conv, dense, flatten, pool layers) and rssnn's extension files (per-channel
neurons, residual skip synapses), through the safety checks of :mod:`rssnn.netx_file`.

Rule per layer (the input layer is the host's: graded input, no neurons on chip, 0 cores):

* neurons: ``ceil(neurons / neurons_per_core[model])``;
* dense synapses: ``words = words_per_dense_synapse * fan_in * neurons`` (zeros included: the
  compiler's figures track the dense count), ``ceil(words / synaptic_memory_words)``;
* conv synapses: every core holding part of the layer keeps the whole kernel
  (``words_per_conv_weight`` per weight); a kernel larger than a core's memory splits by output
  channel;
* cores = the largest of these; the binding one is reported. A neuron whose own synapses exceed
  a core's memory cannot be placed at all.

Numpy and h5py only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rssnn.errors import UserError, first_line


@dataclass(frozen=True)
class Constant:
    value: float
    source: str
    kind: str  # "documented", "compiler output" or "inferred"


RESOURCES: dict[str, Constant] = {
    "cores_per_chip": Constant(
        128,
        "Intel, 'Taking Neuromorphic Computing to the Next Level with Loihi 2' (brief, 2021)",
        "documented",
    ),
    "neurons_per_core/CUBA": Constant(
        8192,
        "Intel's Loihi 2 brief: up to 1 million neurons per chip of 128 cores; no compiler "
        "placement available here comes near it (mnist.net's largest layer has 128 neurons)",
        "documented",
    ),
    "neurons_per_core/SDNN": Constant(
        3072,
        "pilotnet_sdnn.net, conv 24x32x99: 76,032 sigma-delta neurons on 25 cores, at most 3,072 "
        "on one (the compiler's densest packing of this neuron model in the files here)",
        "inferred",
    ),
    "synaptic_memory_words": Constant(
        12000,
        "printed by the Loihi 2 compiler for pilotnet_sdnn.net ('SynMem 12000' per core)",
        "compiler output",
    ),
    "words_per_dense_synapse": Constant(
        0.3,
        "pilotnet_sdnn.net dense 100->50 and 50->10: 1,500 words for 5,000 synapses and 150 for "
        "500; mnist.net's printed synapse percentages agree within 6 points (model 83.6 % vs "
        "78.4 % per core on 784->128)",
        "inferred",
    ),
    "words_per_conv_weight": Constant(
        1 / 8,
        "pilotnet_sdnn.net conv 3->24: its 648 kernel weights in 81 words per core (8 weights of "
        "8 bits per 64-bit word)",
        "inferred",
    ),
}
NEURON_MODELS = ("CUBA", "SDNN")

# What the model is checked against: cores per layer that Intel's Loihi 2 compiler (lava-loihi)
# printed for two lava-dl tutorial files, NetX layer index -> cores (shared/data/loihi2/README.md,
# from lava-dl's netx mnist and pilotnet_sdnn benchmark notebooks).
COMPILER_PLACEMENTS: dict[str, dict[int, int]] = {
    "mnist.net": {0: 3, 1: 1, 2: 1},
    "pilotnet_sdnn.net": {1: 25, 2: 13, 3: 3, 4: 3, 5: 2, 7: 12, 8: 1, 9: 1, 10: 1},
}


@dataclass
class LayerCost:
    """One NetX layer's resources and its placement."""

    index: int
    name: str
    kind: str  # input, conv, dense, pool
    neuron_model: str | None
    shape: tuple[int, ...]
    neurons: int
    fan_in: int = 0  # synapses per neuron (conv: in_channels * kh * kw; skips added)
    weights: int = 0  # stored weight values (conv: kernel values)
    nonzero_weights: int = 0
    weight_bits: int = 0  # magnitude bits + sign of the largest weight
    synapses: int = 0  # connections: fan_in * neurons
    input_axons: int = 0  # distinct inputs the layer reads
    synaptic_words: float = 0.0  # synaptic memory the model charges (per core for conv)
    cores: int = 0
    binding: str = "host"  # the resource that set ``cores``
    cores_by: dict[str, int] = field(default_factory=dict)


def _bits(w: np.ndarray) -> int:
    m = int(np.abs(w).max()) if w.size else 0
    return max(1, m).bit_length() + 1


def _r(name: str) -> float:
    return RESOURCES[name].value


def place_layer(layer: LayerCost) -> LayerCost:
    """Fill in ``cores`` and ``binding`` for one layer (UserError if it cannot be placed)."""
    if layer.kind == "input" or layer.neuron_model is None:
        layer.cores, layer.binding = 0, "host"
        return layer
    key = f"neurons_per_core/{layer.neuron_model}"
    if key not in RESOURCES:
        raise UserError(
            f"layer {layer.index} ({layer.name}): no placement model for neuron type "
            f"'{layer.neuron_model}'; known: {', '.join(NEURON_MODELS)}"
        )
    memory = _r("synaptic_memory_words")
    by = {"neurons": math.ceil(layer.neurons / _r(key))}
    if layer.kind == "dense":
        per_neuron = _r("words_per_dense_synapse") * layer.fan_in
        if per_neuron > memory:
            raise UserError(
                f"layer {layer.index} ({layer.name}) cannot be placed on Loihi 2: one neuron's "
                f"{layer.fan_in} synapses need {per_neuron:.0f} words, a core holds {memory:.0f}"
            )
        layer.synaptic_words = per_neuron * layer.neurons
        by["synaptic memory"] = math.ceil(layer.synaptic_words / memory)
    else:  # conv and pool: shared kernels, whole on every core that holds part of the layer
        layer.synaptic_words = _r("words_per_conv_weight") * layer.weights
        by["synaptic memory"] = math.ceil(layer.synaptic_words / memory)
    layer.cores_by = by
    layer.binding = max(by, key=by.get)
    layer.cores = max(1, by[layer.binding])
    return layer


def _neuron_model(g: h5py.Group) -> str | None:
    if "neuron" not in g or "type" not in g["neuron"]:
        return None
    t = g["neuron"]["type"][()]
    t = t[0] if isinstance(t, np.ndarray) and t.shape else t
    return t.decode("ascii", "replace") if isinstance(t, bytes) else str(t)


def read_layers(path: str | Path) -> list[LayerCost]:
    """Every layer of a NetX file with its static resources (no placement yet)."""
    from rssnn.netx_file import declared_shape, layer_type, open_checked
    from rssnn.synapse_kinds import read_integers

    path = Path(path)
    layers: list[LayerCost] = []
    try:
        with open_checked(path) as f:
            if "layer" not in f or not len(f["layer"]):
                raise UserError(f"'{path}' holds no /layer group: not a NetX file")
            group = f["layer"]
            names = _rssnn_layer_names(f)
            shape: tuple[int, ...] | None = None
            synapse_index = 0
            for i in sorted(group, key=int):
                g = group[i]
                kind = layer_type(g)
                if g.attrs.get("rssnn_guard", False):
                    continue  # the residual guard of rssnn files: not a layer on chip
                if kind == "flatten":
                    shape = (int(np.prod(shape)),) if shape else shape
                    continue
                if kind not in ("input", "conv", "dense", "pool"):
                    raise UserError(
                        f"'{path}' layer {i}: layer type '{kind}' has no placement model; "
                        "known: input, conv, dense, flatten, pool"
                    )
                out = declared_shape(g)
                named = kind != "input" and synapse_index < len(names)
                name = names[synapse_index] if named else kind
                cost = LayerCost(int(i), f"{i}:{name}", kind, _neuron_model(g), out, int(np.prod(out)))
                if kind == "input":
                    cost.neuron_model = None
                else:
                    synapse_index += 1
                    weights = [read_integers(g, "weight")]
                    skips = sorted(g["skip"], key=int) if "skip" in g else []
                    weights += [read_integers(g["skip"][j], "weight") for j in skips]
                    _synapses(cost, weights, shape)
                layers.append(cost)
                shape = out
    except (KeyError, ValueError, TypeError, OSError, IndexError) as exc:
        raise UserError(f"'{path}' is damaged: {first_line(exc, 200)}") from exc
    return layers


def _rssnn_layer_names(f: h5py.File) -> list[str]:
    import json

    try:
        return list(json.loads(f["rssnn"].attrs["layer_names"])) if "rssnn" in f else []
    except (KeyError, ValueError, TypeError):
        return []


def _synapses(cost: LayerCost, weights: list[np.ndarray], in_shape: tuple[int, ...] | None) -> None:
    """Fan-in, weights and axons of a conv or dense layer (own synapse + residual skips)."""
    for w in weights:
        per_neuron = int(np.prod(w.shape[1:]))  # dense: in features; conv: in_ch * kh * kw
        cost.fan_in += per_neuron
        cost.weights += int(w.size)
        cost.nonzero_weights += int(np.count_nonzero(w))
        cost.weight_bits = max(cost.weight_bits, _bits(w))
    cost.synapses = cost.fan_in * cost.neurons
    cost.input_axons = int(np.prod(in_shape)) if in_shape else weights[0].shape[1]


def place(path: str | Path) -> dict[str, Any]:
    """The placement report of a NetX file: per layer and in total."""
    layers = [place_layer(layer) for layer in read_layers(path)]
    total = sum(layer.cores for layer in layers)
    return dict(
        net=str(path),
        total_cores=total,
        chips=math.ceil(total / _r("cores_per_chip")) if total else 0,
        layers=[dict(asdict(layer), shape=list(layer.shape)) for layer in layers],
        resources={k: asdict(v) for k, v in RESOURCES.items()},
        model="rssnn.loihi2: neurons and synaptic memory per core; see docs/loihi2.md for its check "
        "against Intel's compiler",
    )
