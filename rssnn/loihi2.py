"""Loihi 2 placement of a NetX file, before the hardware: neurocores per layer, chips, and why.

Intel's compiler (lava-loihi) is closed and needs the hardware, so this is an explicit resource
model: one table of constants (:data:`RESOURCES`), each with its source and whether it is
documented, printed by the compiler or inferred, and one placement rule per layer kind
(:func:`place_layer`). The inferred constants come from the per-core figures Intel's compiler
printed for three lava-dl tutorial networks (mnist, PilotNet with sigma-delta neurons, PilotNet
with CUBA neurons); docs/loihi2.md sets every printed figure beside what the rules give. The
rules depend on shapes only, and the same rules serve every neuron model (the compiler tiled the
CUBA and the sigma-delta PilotNet identically): a layer's neuron kind (:mod:`rssnn.neuron_kinds`,
found by its NetX type) only names the constant that caps its neurons per core
(``tile_resource``, ``neurons_per_core`` for both kinds), and an unknown type is refused.

Rules (``N`` = :data:`RESOURCES` ``neurons_per_core``, ``M`` = ``synaptic_memory_words``):

* **conv, pool, and an input layer with neurons** (C x H x W): a core holds a tile of ``c``
  channels x ``h`` rows x ``w`` columns, with ``w`` the largest power of two such that
  ``c * H * w <= N`` (``w`` is not clipped to W: the compiler sized the tile before clipping
  it, so a layer 20 wide with room for 32 columns still got two 16-wide tiles); when a whole
  column does not fit, ``w = 1`` and ``h`` is the largest power of two with ``c * h <= N``.
  Every core of the layer holds its channels' part of the kernel, ``conv_words(rows, c) =
  rows * ceil(c * conv_weight_bits / synaptic_word_bits)`` words for ``rows = C_in * kh * kw``
  (skips added); channels are split into the fewest groups whose words fit ``M``.
  ``cores = ceil(C / c) * ceil(H / h) * ceil(W / w)``.
* **dense** (F neurons, fan-in K): a core holds the largest ``n <= N`` neurons whose allocation
  ``dense_words(K, n) = K * (ceil(n * dense_bits_per_synapse / synaptic_word_bits) +
  dense_words_per_axon)`` fits ``M``; ``cores = ceil(F / n)``. Where not even one neuron fits
  (K over 4,000), its inputs are split over ``g`` cores (``g`` times the cores; extrapolated: no
  printed layer needs it).
* **input without neurons** (graded input from the host), and the first ``skip_layers`` layers
  (lava-dl's ``netx.hdf5.Network(skip_layers=...)``, which keeps them off the chip): 0 cores.

Reading a file holds only shapes and per-block statistics (non-zero count, largest magnitude),
never a whole weight: placement must not cost more memory than the network it estimates.
Numpy and h5py only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rssnn import neuron_kinds
from rssnn.errors import UserError, first_line


@dataclass(frozen=True)
class Constant:
    value: float
    source: str
    kind: str  # "documented", "compiler output" or "inferred"


# The three compiled networks the rules are inferred from (lava-nc/lava-dl, BSD-3, tutorials/
# lava/lib/dl/netx/...): mnist/run.ipynb, pilotnet_sdnn/benchmark.ipynb, pilotnet_snn/benchmark.ipynb.
RESOURCES: dict[str, Constant] = {
    "cores_per_chip": Constant(
        128,
        "Intel, 'Taking Neuromorphic Computing to the Next Level with Loihi 2' (brief, 2021)",
        "documented",
    ),
    "neurons_per_core": Constant(
        4095,
        "largest conv tile C*H*w (w a power of two) that the compiler placed: 3,168 (CUBA PilotNet "
        "input 3x66x16); smallest it refused: 4,096 (64x4x16 and 64x2x32, both PilotNets, which it "
        "tiled 64x4x8 and 64x2x16); any limit from 3,168 to 4,095 gives all 11 printed conv and "
        "input tiles (3,168, 3,072, 2,160, 2,688, 2,048, 2,048); taken just under 2^12",
        "inferred",
    ),
    "synaptic_memory_words": Constant(
        12000,
        "printed by the Loihi 2 compiler for both PilotNets ('SynMem' register 12000 per core)",
        "compiler output",
    ),
    "synaptic_word_bits": Constant(
        64,
        "the unit in which the printed conv synapse counts come out whole: 3, 4, 5, 6 words per "
        "kernel row for 24 to 64 output channels of 5- to 7-bit weights (both PilotNets)",
        "inferred",
    ),
    "dense_bits_per_synapse": Constant(
        14,
        "CUBA PilotNet's printed SynMem violations for dense 2560->100: 61,440 = 2,560 axons x 24 "
        "words with the layer on one core (ceil(100 x 14 / 64) + 2) and 12,800 = 2,560 x 5 at 10 "
        "neurons a core (ceil(140 / 64) + 2); its printed 1,300 for dense 100->50 (100 x 13)",
        "inferred",
    ),
    "dense_words_per_axon": Constant(
        2,
        "fitted with dense_bits_per_synapse to the same three printed figures; with them 9 neurons "
        "of fan-in 2,560 fit a core (10 do not): 12 cores for 100, as printed for both PilotNets, "
        "and 59 of fan-in 784: 3 cores for mnist's 128, as printed",
        "inferred",
    ),
    "conv_weight_bits": Constant(
        8,
        "Loihi 2's largest synaptic weight (8 bits); the printed conv rows used 3 to 6 words per "
        "kernel row where 8 bits gives 3 to 8 (exact for conv 3->24), so conv memory is an upper "
        "bound; it binds no printed layer",
        "documented (upper bound)",
    ),
}

# What the rules are checked against: cores per NetX layer index that Intel's compiler printed, and
# the skip_layers the notebook built the network with (shared/data/loihi2/README.md; the CUBA
# PilotNet's table is in lava-dl's tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb).
COMPILER_PLACEMENTS: dict[str, dict[int, int]] = {
    "mnist.net": {0: 3, 1: 1, 2: 1},
    "pilotnet_sdnn.net": {1: 25, 2: 13, 3: 3, 4: 3, 5: 2, 7: 12, 8: 1, 9: 1, 10: 1},
    "pilotnet_snn.net": {0: 13, 1: 25, 2: 13, 3: 3, 4: 3, 5: 2, 7: 12, 8: 1, 9: 1, 10: 1},
}
COMPILER_SKIP_LAYERS = {"mnist.net": 0, "pilotnet_sdnn.net": 1, "pilotnet_snn.net": 0}
# Neurons per core the compiler printed (the dense 2560->100 row prints 8, the smaller share of
# 100 on 12 cores: 4 cores of 9 and 8 of 8).
COMPILER_TILES: dict[str, dict[int, int]] = {
    "pilotnet_sdnn.net": {1: 3072, 2: 2160, 3: 2688, 4: 2048, 5: 2048, 7: 8, 8: 50, 9: 10, 10: 1},
    "pilotnet_snn.net": {0: 3168, 1: 3072, 2: 2160, 3: 2688, 4: 2048, 5: 2048, 7: 8, 8: 50, 9: 10, 10: 1},
}

READ_BLOCK_ELEMENTS = 1 << 20  # one read of a weight: 8 MB at most as float64


@dataclass
class LayerCost:
    """One NetX layer's resources and its placement."""

    index: int
    name: str
    kind: str  # input, conv, dense, pool
    neuron_model: str | None  # as the file names it; None: no neurons (graded input)
    shape: tuple[int, ...]
    neurons: int
    fan_in: int = 0  # synapses per neuron (conv: in_channels * kh * kw; skips added)
    weights: int = 0  # stored weight values (conv: kernel values)
    nonzero_weights: int = 0
    weight_bits: int = 0  # magnitude bits + sign of the largest weight
    synapses: int = 0  # connections: fan_in * neurons
    input_axons: int = 0  # distinct inputs the layer reads
    skipped: bool = False  # among the first skip_layers layers: off the chip
    tile: tuple[int, ...] = ()  # what one core holds: (c, h, w), or (n,) for dense
    neurons_per_core: int = 0
    synaptic_words: int = 0  # per core, under the rule
    cores: int = 0
    binding: str = "host"  # the resource that set ``cores``


def _r(name: str) -> float:
    return RESOURCES[name].value


def _pow2_floor(x: float) -> int:
    """The largest power of two <= x (x >= 1)."""
    return 1 << (int(x).bit_length() - 1)


def dense_words(fan_in: int, n: int) -> int:
    """Synaptic words of ``n`` dense neurons with ``fan_in`` inputs on one core."""
    per_axon = math.ceil(n * _r("dense_bits_per_synapse") / _r("synaptic_word_bits"))
    return int(fan_in * (per_axon + _r("dense_words_per_axon")))


def conv_words(rows: int, channels: int) -> int:
    """Synaptic words of ``channels`` output channels' kernel rows (``rows`` = C_in * kh * kw)."""
    return int(rows * math.ceil(channels * _r("conv_weight_bits") / _r("synaptic_word_bits")))


def _chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    c, h, w = (tuple(shape) + (1, 1))[:3]
    return int(c), int(h), int(w)


def _cannot(layer: LayerCost, why: str) -> UserError:
    return UserError(f"layer {layer.index} ({layer.name}) cannot be placed on Loihi 2: {why}")


def _dense_neurons_per_core(fan_in: int, memory: float) -> int:
    """The most dense neurons of ``fan_in`` inputs whose :func:`dense_words` fit ``memory`` (0: none)."""
    per_axon = memory // max(fan_in, 1) - _r("dense_words_per_axon")
    return max(0, int(per_axon * _r("synaptic_word_bits") // _r("dense_bits_per_synapse")))


def _place_dense(layer: LayerCost, cap: int, memory: float) -> None:
    k = max(layer.fan_in, 1)
    groups = 1
    if _dense_neurons_per_core(k, memory) < 1:
        # One neuron's synapses overflow a core (fan-in over 4,000): its inputs must be split over
        # several cores whose partial currents meet in one compartment. No printed layer needs
        # this, so the split (the fewest cores over a few group counts) is extrapolated.
        least = math.ceil(dense_words(k, 1) / memory)
        options = []
        for g in range(least, 4 * least + 1):
            n = min(_dense_neurons_per_core(math.ceil(k / g), memory), cap, layer.neurons)
            if n >= 1:
                options.append((g * math.ceil(layer.neurons / n), g))
        if not options:
            raise _cannot(layer, f"one neuron's {layer.fan_in} synapses need {dense_words(k, 1)} words")
        groups = min(options)[1]
        k = math.ceil(k / groups)
    n_memory = _dense_neurons_per_core(k, memory)
    n = min(n_memory, cap, layer.neurons)
    per_group = math.ceil(layer.neurons / n)
    layer.cores = groups * per_group
    layer.binding = "synaptic memory" if n == n_memory < layer.neurons or groups > 1 else "neurons per core"
    if groups > 1:
        layer.binding += f" (fan-in split over {groups} cores, extrapolated)"
    layer.neurons_per_core = math.ceil(layer.neurons / per_group)  # an even split over the cores
    layer.tile = (layer.neurons_per_core,)
    layer.synaptic_words = dense_words(k, layer.neurons_per_core)


def _place_tiled(layer: LayerCost, cap: int, memory: float) -> None:
    channels, height, width = _chw(layer.shape)
    rows = layer.fan_in  # kernel rows every core of the layer holds (0: an input layer)
    c, binding = channels, "neurons per core"
    if rows:
        fit = int(memory // conv_words(rows, 1) * _r("synaptic_word_bits") // _r("conv_weight_bits"))
        if fit < 1:
            raise _cannot(
                layer,
                f"one channel's kernel needs {conv_words(rows, 1)} words, " f"a core holds {memory:.0f}",
            )
        if fit < channels:
            c, binding = math.ceil(channels / math.ceil(channels / fit)), "synaptic memory"
    if c > cap:
        c = _pow2_floor(cap)
    if c * height <= cap:
        h, w = height, _pow2_floor(cap / (c * height))
    else:  # not even one column of the tile fits: split it along H (no printed layer does)
        h, w = _pow2_floor(cap / c), 1
    layer.cores = math.ceil(channels / c) * math.ceil(height / h) * math.ceil(width / w)
    layer.tile = (c, min(h, height), min(w, width))
    layer.neurons_per_core = int(np.prod(layer.tile))
    layer.synaptic_words = conv_words(rows, c) if rows else 0
    layer.binding = binding


def place_layer(layer: LayerCost) -> LayerCost:
    """Fill in ``cores``, ``tile`` and ``binding`` for one layer (UserError if it cannot be placed)."""
    if layer.skipped or (layer.kind == "input" and layer.neuron_model is None):
        layer.cores, layer.binding = 0, "skipped (host)" if layer.skipped else "host"
        return layer
    if layer.neuron_model is None:
        raise UserError(
            f"layer {layer.index} ({layer.name}) has no neuron group; " f"a NetX {layer.kind} layer needs one"
        )
    kind = neuron_kinds.find(layer.neuron_model)
    if kind is None:
        raise UserError(
            f"layer {layer.index} ({layer.name}): no placement model for neuron type "
            f"'{layer.neuron_model[:40]}'; known: {neuron_kinds.known()}"
        )
    cap, memory = int(_r(kind.tile_resource)), _r("synaptic_memory_words")
    if layer.kind == "dense":
        _place_dense(layer, cap, memory)
    else:
        _place_tiled(layer, cap, memory)
    return layer


# -- reading: shapes and per-block statistics, never a whole weight ------------------------------


@dataclass
class _Weights:
    shape: tuple[int, ...]
    nonzero: int
    max_abs: int
    kind: str = ""  # the synapse kind it belongs to (conv, dense, pool)


def _check_values(dset: h5py.Dataset, block: np.ndarray) -> None:
    if block.dtype.kind == "f" and block.size:
        if not np.all(np.isfinite(block)) or np.any(block != np.rint(block)):
            raise ValueError(f"{dset.name} holds fractional or non-finite values")
        if np.abs(block).max() >= 2.0**62:
            raise ValueError(f"{dset.name} holds values beyond 64-bit integers")


def _blocks(shape: tuple[int, ...], limit: int):
    """Index tuples covering an array of ``shape`` in blocks of at most ``limit`` elements."""
    if not shape:
        yield ()
        return
    inner, k = 1, len(shape) - 1
    while k > 0 and inner * shape[k] <= limit:
        inner *= shape[k]
        k -= 1
    step = max(1, limit // inner)
    for lead in np.ndindex(*shape[:k]):
        for start in range(0, shape[k], step):
            yield lead + (slice(start, min(start + step, shape[k])),)


def weight_stats(group: h5py.Group, name: str = "weight") -> _Weights:
    """Shape, non-zero count and largest magnitude of an integer-valued weight dataset, read one
    block of :data:`READ_BLOCK_ELEMENTS` at a time (ValueError for a wrong type or fractional,
    non-finite or huge values). A chunked dataset none of whose chunks were written is all fill
    value: counted without reading it."""
    if name not in group:
        raise ValueError(f"{group.name}/{name} is missing")
    dset = group[name]
    if not isinstance(dset, h5py.Dataset) or dset.dtype.kind not in "iuf" or dset.shape is None:
        raise ValueError(f"{group.name}/{name} is not a numeric dataset ({getattr(dset, 'dtype', '?')})")
    shape = tuple(int(s) for s in dset.shape)
    if dset.chunks is not None and dset.id.get_num_chunks() == 0:
        fill = np.asarray(dset.fillvalue, dtype=dset.dtype).reshape(1)
        _check_values(dset, fill)
        value = abs(int(fill[0]))
        return _Weights(shape, int(np.prod(shape)) if value else 0, value)
    nonzero, max_abs = 0, 0
    for index in _blocks(shape, READ_BLOCK_ELEMENTS):
        block = np.asarray(dset[index])
        _check_values(dset, block)
        nonzero += int(np.count_nonzero(block))
        if block.size:
            max_abs = max(max_abs, abs(int(block.min())), abs(int(block.max())))
    return _Weights(shape, nonzero, max_abs)


def _neuron_model(g: h5py.Group) -> str | None:
    if "neuron" not in g:
        return None
    n = g["neuron"]
    if not isinstance(n, h5py.Group) or "type" not in n:
        raise ValueError(f"{g.name}/neuron has no type")
    t = n["type"]
    if (
        not isinstance(t, h5py.Dataset)
        or t.shape not in ((), (1,))
        or (h5py.check_string_dtype(t.dtype) is None and (t.dtype.kind != "S" or t.dtype.itemsize > 64))
    ):
        raise ValueError(f"{g.name}/neuron/type is not a short text")
    value = t[()] if t.shape == () else t[0]
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _grid(g: h5py.Group, key: str, default: int) -> tuple[int, int]:
    """A conv's (H, W) parameter (stride, padding, dilation): a pair, or one value for both."""
    from rssnn.synapse_kinds import read_integers

    if key not in g:
        return (default, default)
    values = read_integers(g, key)
    if values.size not in (1, 2):
        raise ValueError(f"{g.name}/{key} holds {values.size} values, expected 1 or 2")
    pair = tuple(int(v) for v in np.broadcast_to(values.ravel(), (2,)))
    return pair  # type: ignore[return-value]


def _conv_fits(
    g: h5py.Group, shape: tuple[int, ...], in_shape: tuple[int, ...] | None, out: tuple[int, ...]
) -> bool:
    """Whether a conv weight of ``shape`` (out, in / groups, kh, kw) maps ``in_shape`` to ``out``."""
    if len(shape) != 4 or len(out) != 3 or shape[0] != out[0]:
        return False
    if in_shape is None:
        return True  # a first layer without an input layer: nothing to check it against
    if len(in_shape) != 3:
        return False
    groups = int(_grid(g, "groups", 1)[0])
    stride, padding, dilation = _grid(g, "stride", 1), _grid(g, "padding", 0), _grid(g, "dilation", 1)
    if (
        groups < 1
        or min(stride) < 1
        or min(padding) < 0
        or min(dilation) < 1
        or shape[1] * groups != in_shape[0]
    ):
        return False
    grid = tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(in_shape[1:], shape[2:], stride, padding, dilation)
    )
    return grid == tuple(out[1:])


def _synapse(g: h5py.Group, kind: str, in_shape: tuple[int, ...] | None, out: tuple[int, ...]) -> _Weights:
    """A layer's (or skip's) weight statistics, refused unless the weight fits the declared shapes."""
    w = weight_stats(g)
    neurons = int(np.prod(out))
    if kind == "dense":
        features = int(np.prod(in_shape)) if in_shape else None
        ok = (len(w.shape) == 2 and w.shape[0] == neurons and w.shape[1] == (features or w.shape[1])) or (
            len(w.shape) == 1 and neurons == 1 and w.shape[0] == (features or w.shape[0])
        )  # lava-dl writes a one-neuron read-out's weight as (fan_in,)
    elif kind == "conv":
        ok = _conv_fits(g, w.shape, in_shape, out)
    else:  # pool: a fixed kernel per channel
        ok = len(w.shape) in (0, 1, 4)
    if not ok:  # read_layers reports it as damage, with the file's name
        raise ValueError(
            f"{g.name}/weight has shape {w.shape}, which does not fit input {in_shape} " f"and output {out}"
        )
    w.kind = kind
    return w


def _fan_in(w: _Weights) -> int:
    if w.kind == "dense":
        return w.shape[-1] if w.shape else 1
    return int(np.prod(w.shape[1:])) if len(w.shape) > 1 else 1  # conv: in_ch * kh * kw


def read_layers(path: str | Path, skip_layers: int = 0) -> list[LayerCost]:
    """Every layer of a NetX file with its static resources (no placement yet); the first
    ``skip_layers`` are marked off the chip. Every weight must fit its layer's declared shapes."""
    from rssnn.hdf5_checks import open_checked
    from rssnn.netx_file import declared_shape, layer_type
    from rssnn.synapse_kinds import read_integers

    path = Path(path)
    layers: list[LayerCost] = []
    try:
        with open_checked(path) as f:
            if "layer" not in f or not isinstance(f["layer"], h5py.Group) or not len(f["layer"]):
                raise UserError(f"'{path}' holds no /layer group: not a NetX file")
            group = f["layer"]
            names = _rssnn_layer_names(path, f)
            shape: tuple[int, ...] | None = None
            shapes: dict[int, tuple[int, ...]] = {}  # NetX index -> output shape (skip sources)
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
                cost.skipped = int(i) < skip_layers
                if kind != "input":
                    synapse_index += 1
                    synapses = [_synapse(g, kind, shape, out)]
                    for j in sorted(g["skip"], key=int) if "skip" in g else []:
                        s = g["skip"][j]
                        source = int(read_integers(s, "source", ())[()])
                        if source not in shapes:
                            raise ValueError(f"{s.name}: source {source} is not an earlier layer")
                        synapses.append(_synapse(s, layer_type(s), shapes[source], out))
                    for w in synapses:
                        cost.fan_in += _fan_in(w)
                        cost.weights += int(np.prod(w.shape))
                        cost.nonzero_weights += w.nonzero
                        cost.weight_bits = max(cost.weight_bits, max(1, w.max_abs).bit_length() + 1)
                    cost.synapses = cost.fan_in * cost.neurons
                    cost.input_axons = int(np.prod(shape)) if shape else synapses[0].shape[-1]
                layers.append(cost)
                shape = shapes[int(i)] = out
    except (KeyError, ValueError, TypeError, OSError, IndexError, OverflowError) as exc:
        raise UserError(f"'{path}' is damaged: {first_line(exc, 200)}") from exc
    return layers


def _rssnn_layer_names(path: Path, f: h5py.File) -> list[str]:
    """An rssnn file's layer names (none in a lava-dl file); a damaged list is one line."""
    if "rssnn" not in f or "layer_names" not in f["rssnn"].attrs:
        return []
    raw = f["rssnn"].attrs["layer_names"]
    try:
        names = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than any list
        raise UserError(f"'{path}': /rssnn attribute 'layer_names' is not valid JSON; export again") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"'{path}': /rssnn attribute 'layer_names' is not a JSON list of names; export again")
    return names


def place(path: str | Path, skip_layers: int = 0) -> dict[str, Any]:
    """The placement report of a NetX file: per layer and in total. ``skip_layers``: as lava-dl's
    ``netx.hdf5.Network(skip_layers=...)``, the first layers stay off the chip."""
    layers = [place_layer(layer) for layer in read_layers(path, skip_layers)]
    total = sum(layer.cores for layer in layers)
    return dict(
        net=str(path),
        skip_layers=skip_layers,
        total_cores=total,
        chips=math.ceil(total / _r("cores_per_chip")) if total else 0,
        layers=[dict(asdict(layer), shape=list(layer.shape), tile=list(layer.tile)) for layer in layers],
        resources={k: asdict(v) for k, v in RESOURCES.items()},
        model="rssnn.loihi2: conv tiles of at most neurons_per_core, dense neurons per core from "
        "synaptic memory; see docs/loihi2.md for every printed compiler figure beside the rule",
    )
