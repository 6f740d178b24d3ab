"""A NIR graph as a :class:`FoldedNet`: :func:`read` (the file, checked) and :func:`from_nir`.

:func:`from_nir` accepts our graphs and those snnTorch or Norse write: Input, Conv2d,
Affine, Linear, AvgPool2d / SumPool2d (2x2, stride 2), Flatten, CubaLIF, LIF and Output, in a
feed-forward graph whose neuron layers form a chain (plus conv skips). Anything else is one
line naming the node and what is supported.

2x2 pooling folds into the next synapse (:mod:`.pooling`), as in the trained model's front end.
The graphs we write (:mod:`.nir_write`) come back as the :class:`FoldedNet` they were written
from, up to the per-channel thresholds folded on the way out. numpy only: no torch.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rssnn.errors import UserError
from rssnn.netx_file import MAX_NUM_STEPS
from rssnn.neuron import FloatCuba
from rssnn.synapse_kinds import conv_output_shape

from .folded import FoldedLayer, FoldedNet, ImageInput, Term
from .nir_format import BN_BETA, BN_GAMMA, nir_package
from .pooling import pool_into_conv, pool_into_dense

SUPPORTED = (
    "Input, Conv2d, Affine, Linear, AvgPool2d/SumPool2d (2x2, stride 2), Flatten, CubaLIF, LIF, Output"
)


@dataclass
class _Image:
    """The input, as the graph has transformed it so far: x = (p/255 - mean) / std."""

    mean: np.ndarray
    std: np.ndarray
    shape: tuple[int, ...]
    flat: bool = False
    used: bool = False  # a synapse already read it (a later 1x1 conv is then a synapse)


@dataclass
class _Spikes:
    """A spiking layer's output, with the pooling / flattening applied on the way."""

    layer: int
    shape: tuple[int, ...]  # the layer's own (C, H, W) or (F,)
    pool: float = 0.0  # 0: none; else the 2x2 pool's factor (1/4 average, 1 sum)
    flat: bool = False


@dataclass
class _Current:
    """A synapse's output current: terms into one target plus a bias [O]."""

    kind: str
    terms: list[Term]
    bias: np.ndarray
    out_shape: tuple[int, ...]
    flatten_before: bool = False
    bn_bound: tuple[np.ndarray, np.ndarray] | None = None


def _show(value: Any) -> str:
    """A value from a file, for a one-line message: its repr, cut short."""
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _numbers(where: str, field: str, value: Any) -> np.ndarray:
    """A numeric field of the graph as finite float64, or one line: text, NaN or infinity in a
    parameter would reach the integer conversion (NaN becomes INT64_MIN there)."""
    value = value.detach().numpy() if hasattr(value, "detach") else value
    try:  # text that reads as a number ("32") is refused too: a file holds numbers as numbers
        raw = np.asarray(value)
        array = raw.astype(np.float64) if raw.dtype.kind in "biuf" else None
    except (TypeError, ValueError):
        array = None
    if array is None:
        raise UserError(f"{where}: {field} is not numeric ({_show(value)})")
    if not np.all(np.isfinite(array)):
        raise UserError(f"{where}: {field} holds NaN or infinity")
    return array


def _bn_bound(name: str, node) -> tuple[np.ndarray, np.ndarray] | None:
    meta = getattr(node, "metadata", None) or {}
    if BN_GAMMA not in meta or BN_BETA not in meta:
        return None
    where = f"NIR node '{name}'"
    return tuple(_numbers(where, f"metadata {k}", meta[k]) for k in (BN_GAMMA, BN_BETA))


def _array(name: str, node, field: str) -> np.ndarray:
    return _numbers(f"NIR node '{name}'", field, getattr(node, field))


def _bias(name: str, node, outputs: int) -> np.ndarray:
    """The node's bias as [outputs]: one value per output, one for all, or none (zeros)."""
    if getattr(node, "bias", None) is None:
        return np.zeros(outputs)
    bias = _array(name, node, "bias")
    if bias.size != 1 and bias.shape != (outputs,):
        raise UserError(
            f"NIR node '{name}': bias has shape {bias.shape}; {outputs} values (one per output) are needed"
        )
    return np.broadcast_to(bias.reshape(-1), (outputs,)).copy()


def _pair(name: str, field: str, value) -> tuple[int, int]:
    a = np.atleast_1d(_numbers(f"NIR node '{name}'", field, value)).reshape(-1)
    if a.size not in (1, 2) or np.any(a != np.rint(a)) or np.any(np.abs(a) > 1 << 16):
        raise UserError(f"NIR node '{name}': {field} {_show(value)} is not one or two whole numbers")
    return (int(a[0]), int(a[-1]))


def _topological(name_of: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Kahn's order of the nodes, in time linear in nodes + edges; a cycle (a recurrent edge) is
    refused."""
    indegree = {n: 0 for n in name_of}
    children: dict[str, list[str]] = {n: [] for n in name_of}
    for a, b in edges:
        indegree[b] += 1
        children[a].append(b)
    ready = deque(n for n in name_of if indegree[n] == 0)
    order = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for b in children[n]:
            indegree[b] -= 1
            if indegree[b] == 0:
                ready.append(b)
    if len(order) != len(name_of):
        cyclic = sorted(set(name_of) - set(order))
        raise UserError(
            f"NIR graph has a recurrent edge (a cycle through {', '.join(cyclic[:3])}); "
            "only feed-forward networks map to this exporter"
        )
    return order


def _per_channel(node_name: str, field: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A neuron parameter (scalar, [1], [C] or per neuron) as [C]; refuses values that vary
    inside a channel (Loihi's neuron parameters here are per channel)."""
    channels = shape[0]
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]))
    if value.shape == (channels,):
        return value.copy()
    if value.shape != tuple(shape):
        raise UserError(f"NIR node '{node_name}': {field} has shape {value.shape} for neurons {shape}")
    flat = value.reshape(channels, -1)
    if np.any(flat != flat[:, :1]):
        raise UserError(
            f"NIR node '{node_name}': {field} varies within a channel; only per-channel "
            "neuron parameters map to Loihi here"
        )
    return flat[:, 0].copy()


def _whole_number(key: str, value: Any) -> int:
    """A setting that counts (num_steps): a whole number, not text, a list, NaN or 2.7."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{key} must be a whole number, got {_show(value)}")
    if not math.isfinite(value) or value != int(value):
        raise UserError(f"{key} must be a whole number, got {_show(value)}")
    return int(value)


def _real_number(key: str, value: Any) -> float:
    """A setting that measures (dt, an input range end): one finite number."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{key} must be one finite number, got {_show(value)}")
    return float(value)


def _input_range(value: Any) -> tuple[float, float]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise UserError(f"input_range must be two numbers (LO, HI), got {_show(value)}")
    lo, hi = (_real_number("input_range", v) for v in value)
    return lo, hi


def check_flags(num_steps: int | None, dt: float | None, input_range) -> None:
    """The import's settings (flags or metadata) in range, or one line (UserError)."""
    if num_steps is not None and not 1 <= num_steps <= MAX_NUM_STEPS:
        raise UserError(f"num_steps must be in 1..{MAX_NUM_STEPS}, got {num_steps}")
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise UserError(f"dt must be a finite time step > 0, got {dt}")
    if input_range is not None:
        lo, hi = input_range
        if not (np.isfinite(lo) and np.isfinite(hi) and hi != lo):
            raise UserError(f"the input range must be two different finite numbers, got {lo} {hi}")


def from_nir(
    graph, num_steps: int | None, dt: float | None, input_range: tuple[float, float] | None
) -> tuple[FoldedNet, dict[str, Any]]:
    """A NIR graph as a :class:`FoldedNet`, plus what was used (``num_steps``, ``dt``,
    ``input_range``, where each came from). The graph's metadata wins over the arguments."""
    from rssnn.netx_file import MAX_LAYER_NEURONS  # the largest layer a file may declare

    nir = nir_package()
    meta = dict(getattr(graph, "metadata", None) or {})
    used: dict[str, Any] = {}
    parse = dict(num_steps=_whole_number, dt=_real_number, input_range=lambda _, v: _input_range(v))
    for key, given in (("num_steps", num_steps), ("dt", dt), ("input_range", input_range)):
        if key in meta:  # checked here, before anything is built or written from it
            used[key], used[f"{key}_from"] = parse[key](f"the file's {key}", meta[key]), "file metadata"
        elif given is not None:
            used[key], used[f"{key}_from"] = given, "flag"
        elif key == "input_range":
            used[key], used[f"{key}_from"] = (0.0, 1.0), "default"
        else:
            flag = "--num-steps" if key == "num_steps" else "--dt (snnTorch writes with dt=1e-4)"
            raise UserError(f"the NIR graph's metadata has no {key}; pass {flag}")
    steps, step_dt, (lo, hi) = used["num_steps"], used["dt"], used["input_range"]
    used["input_range"] = [lo, hi]
    check_flags(steps, step_dt, (lo, hi))

    nodes, edges = graph.nodes, [tuple(e) for e in graph.edges]
    known = (nir.Input, nir.Output, nir.Conv2d, nir.Affine, nir.Linear, nir.CubaLIF, nir.LIF,
             nir.AvgPool2d, nir.SumPool2d, nir.Flatten)  # fmt: skip
    for name, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise UserError(
                f"NIR node '{name}' is a subgraph (a recurrent layer?); supported nodes: {SUPPORTED}"
            )
        if not isinstance(node, known):
            raise UserError(f"NIR node '{name}' is a {type(node).__name__}; supported nodes: {SUPPORTED}")
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise UserError(f"NIR edge ({a}, {b}) names a node the graph does not have")
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(
            f"NIR graph needs one Input and one Output node, has {len(inputs)} and {len(outputs)}"
        )
    input_type = getattr(nodes[inputs[0]], "input_type", None)
    declared = input_type.get("input") if isinstance(input_type, dict) else None
    dims = _numbers(f"NIR input '{inputs[0]}'", "shape", declared).reshape(-1)
    if dims.size != 3 or np.any(dims != np.rint(dims)) or dims.min() < 1 or dims.prod() > MAX_LAYER_NEURONS:
        raise UserError(f"NIR input '{inputs[0]}' has shape {_show(declared)}; an image (C, H, W) is needed")
    in_shape = tuple(int(d) for d in dims)
    # x = lo + (hi - lo) p/255 is (p/255 - mean) / std with:
    std0, mean0 = 1.0 / (hi - lo), -lo / (hi - lo)
    c = in_shape[0]
    values: dict[str, Any] = {inputs[0]: _Image(np.full(c, mean0), np.full(c, std0), in_shape)}
    layers: list[FoldedLayer] = []
    image: _Image = values[inputs[0]]
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:  # one pass: 2,000 nodes and 80,000 edges took 19 s as a scan per node
        parents[b].append(a)

    for name in _topological(list(nodes), edges):
        node = nodes[name]
        if isinstance(node, nir.Input):
            continue
        got = [values[p] for p in parents[name]]
        if not got:
            raise UserError(f"NIR node '{name}' has no input edge")
        if isinstance(node, nir.CubaLIF | nir.LIF | nir.Output):
            values[name] = _neuron_or_readout(nir, name, node, got, layers, step_dt)
            continue
        if len(got) != 1:
            raise UserError(
                f"NIR node '{name}' has {len(got)} inputs; only neurons and the output sum inputs"
            )
        x = got[0]
        if isinstance(x, _Current):
            raise UserError(
                f"NIR node '{name}' ({type(node).__name__}) follows a synapse directly; "
                "put a neuron between synapses (two linear maps in a row are not supported)"
            )
        values[name] = _transform(nir, name, node, x)
        if isinstance(x, _Image) and isinstance(values[name], _Current):
            x.used = True
    if not layers or layers[-1].neuron is not None:
        raise UserError("NIR graph has no read-out synapse into its Output")
    image_input = ImageInput(image.mean, image.std, in_shape)  # type: ignore[arg-type]
    used["class_count"] = int(layers[-1].own.weight.shape[0])
    return FoldedNet(image_input, steps, layers), used


def _transform(nir, name: str, node, x):
    """A non-neuron node applied to the image or to spikes."""
    if isinstance(node, nir.Flatten):
        if node.end_dim != -1 or node.start_dim not in (0, -len(x.shape)):
            raise UserError(
                f"NIR node '{name}': Flatten(start_dim={node.start_dim}, end_dim={node.end_dim}) "
                "must flatten the whole (C, H, W) map (start_dim 0, end_dim -1; batch excluded)"
            )
        return replace(x, flat=True)  # a copy: the source may feed other nodes unflattened
    if isinstance(node, nir.AvgPool2d | nir.SumPool2d):
        k, s, p = (_pair(name, f, getattr(node, f)) for f in ("kernel_size", "stride", "padding"))
        if not isinstance(x, _Spikes) or x.pool or x.flat or (k, s, p) != ((2, 2), (2, 2), (0, 0)):
            raise UserError(
                f"NIR node '{name}': only 2x2 pooling with stride 2 and no padding, on a neuron "
                "layer's spikes (once), is supported"
            )
        return replace(x, pool=0.25 if isinstance(node, nir.AvgPool2d) else 1.0)
    if isinstance(node, nir.Conv2d):
        return _conv(name, node, x)
    return _dense(name, node, x)  # Affine / Linear


def _conv(name: str, node, x) -> _Current | _Image:
    w = _array(name, node, "weight")
    stride, dilation = _pair(name, "stride", node.stride), _pair(name, "dilation", node.dilation)
    padding = node.padding
    if isinstance(padding, str):
        raise UserError(f"NIR node '{name}': padding '{padding}' is not supported; give it in pixels")
    padding = _pair(name, "padding", padding)
    if w.ndim != 4 or node.groups != 1 or dilation != (1, 1):
        raise UserError(f"NIR node '{name}': only Conv2d with groups 1 and dilation 1 is supported")
    bias = _bias(name, node, w.shape[0])
    if x.flat:
        raise UserError(f"NIR node '{name}': Conv2d after Flatten")
    if isinstance(x, _Image):
        m = w[:, :, 0, 0] if w.shape[2:] == (1, 1) else None
        scale = np.diag(m) if m is not None and m.shape[0] == m.shape[1] else None
        normalisation = (
            scale is not None and not x.used and np.array_equal(m, np.diag(scale)) and (scale != 0).all()
            and stride == (1, 1) and padding == (0, 0)
        )  # fmt: skip
        if normalisation:  # x' = scale x + bias; the image's state, shared by all its readers
            x.mean, x.std = x.mean - bias * x.std / scale, x.std / scale
            return x
        term = Term(-1, w, stride, padding)
    else:
        if x.pool:
            w, stride, padding = pool_into_conv(w * (4 * x.pool), stride, padding)
        term = Term(x.layer, w, stride, padding)
    in_shape = x.shape
    if w.shape[1] != in_shape[0]:
        raise UserError(f"NIR node '{name}': {w.shape[1]} input channels for a map of {in_shape[0]}")
    out_shape = conv_output_shape(in_shape, w.shape, stride, padding)
    return _Current("conv", [term], bias, out_shape, bn_bound=_bn_bound(name, node))


def _dense(name: str, node, x) -> _Current:
    w = _array(name, node, "weight")
    if w.ndim != 2:
        raise UserError(f"NIR node '{name}': weight of shape {tuple(w.shape)}; a matrix is needed")
    bias = _bias(name, node, w.shape[0])
    if len(x.shape) > 1 and not x.flat and w.shape[1] != int(np.prod(x.shape)):
        raise UserError(f"NIR node '{name}': a dense synapse on a (C, H, W) map needs a Flatten before it")
    # Norse's exporter writes no Flatten node: a dense synapse that reads a whole map reads it
    # flattened in (C, H, W) order, as torch's Flatten would.
    source = -1 if isinstance(x, _Image) else x.layer
    if isinstance(x, _Spikes) and x.pool:
        c, h, wd = x.shape
        w = pool_into_dense(w * (4 * x.pool), c, h // 2, wd // 2)
    features = int(np.prod(x.shape))
    if w.shape[1] != features:
        raise UserError(f"NIR node '{name}': {w.shape[1]} inputs for {features} features")
    flatten = len(x.shape) > 1
    return _Current("dense", [Term(source, w)], bias, (w.shape[0],), flatten)


def _neuron_or_readout(nir, name: str, node, got: list, layers: list[FoldedLayer], dt: float):
    """A neuron (or the Output) summing the currents of its input edges: a new FoldedLayer."""
    if not all(isinstance(g, _Current) for g in got):
        what = "Output" if isinstance(node, nir.Output) else "neuron"
        raise UserError(
            f"NIR {what} '{name}' reads a node that is not a synapse; "
            + ("the read-out must be an Affine/Linear/Conv2d into Output (no neuron before it)"
               if what == "Output" else "a neuron reads synapses (Conv2d, Affine, Linear)")
        )  # fmt: skip
    here = len(layers)
    own = [g for g in got if g.terms[0].source == here - 1]
    if len(own) != 1:
        raise UserError(
            f"NIR node '{name}': its input must include exactly one synapse from the layer "
            "before it (neuron layers must form a chain, with skips from earlier layers)"
        )
    main = own[0]
    skips = [g for g in got if g is not main]
    if any(g.kind != "conv" or main.kind != "conv" or g.terms[0].source < 0 for g in skips):
        raise UserError(f"NIR node '{name}': skip synapses must be Conv2d from earlier neuron layers")
    if any(g.out_shape != main.out_shape for g in skips):
        raise UserError(f"NIR node '{name}': its input synapses produce different shapes")
    bias = sum((g.bias for g in got), np.zeros(main.out_shape[0]))
    # Layer names: ours come back as written ("<layer>.neuron" -> "<layer>", output -> readout).
    layer_name = "readout" if isinstance(node, nir.Output) else name.removesuffix(".neuron")
    layer = FoldedLayer(
        layer_name, main.kind, main.terms[0], bias, None, [g.terms[0] for g in skips], main.flatten_before,
        main.bn_bound if len(got) == 1 else None,
    )  # fmt: skip
    if isinstance(node, nir.Output):
        layers.append(layer)
        return None
    fields = ["tau_mem", "r", "v_threshold", "v_leak", "v_reset"] + (
        ["tau_syn", "w_in"] if isinstance(node, nir.CubaLIF) else []
    )
    params = {}
    for f in fields:
        value = getattr(node, "tau" if f == "tau_mem" and isinstance(node, nir.LIF) else f, None)
        if value is not None:
            params[f] = _per_channel(name, f, _numbers(f"NIR node '{name}'", f, value), main.out_shape)
    try:
        neuron, gain = FloatCuba.from_nir(dt, **params)
    except ValueError as exc:
        raise UserError(f"NIR node '{name}': {exc}") from None
    if not np.allclose(gain, 1.0, rtol=1e-12, atol=0):  # ours and snnTorch's files: 1
        layer = layer.scaled(gain)
    layer.neuron = neuron
    layers.append(layer)
    return _Spikes(here, main.out_shape)


def read(path: str | Path):
    """``nir.read`` after the HDF5 safety checks NetX files get (no external or soft links,
    bounded sizes, ``rssnn.hdf5_checks``): a NIR file from elsewhere is untrusted input."""
    from rssnn import hdf5_checks

    nir = nir_package()
    with hdf5_checks.open_checked(path):
        pass
    try:  # no nir type check: from_nir checks every synapse against its source's shape itself,
        # and accepts what nir's check refuses but means one thing (Norse's graphs have no Flatten)
        return nir.read(str(path), type_check=False)
    except Exception as exc:  # nir raises KeyError/ValueError/TypeError on a malformed file
        raise UserError(f"'{path}' is not a readable NIR file ({type(exc).__name__}: {exc})"[:300]) from None
