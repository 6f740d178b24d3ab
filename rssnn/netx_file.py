"""NetX HDF5 files: writing a :class:`LoweredNet`, reading and validating it back.

The layout is lava-dl NetX's (``/layer/<i>/...``, see docs/netx-schema.md), so stock
``lava.lib.dl.netx.hdf5.Network`` loads the file. Everything NetX does not read lives under
``/rssnn`` (attributes), which NetX ignores:

* format, version, kind (``stock`` or ``rssnn-extension``) and the extension features used;
* T, input encoding, class names, dataset, the training configuration (JSON), the source
  checkpoint's SHA-256, the exporter version, and per layer the scale ``k`` and its limits.

Files are written to a temporary file and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rssnn import __version__ as RSSNN_VERSION
from rssnn import dynamics
from rssnn.errors import UserError, first_line
from rssnn.hdf5_checks import open_checked
from rssnn.layout import swap_layout
from rssnn.lowered import INPUT_MESSAGE_BITS, LoweredLayer, LoweredNet, SkipSynapse
from rssnn.neuron import LoihiCuba
from rssnn.neuron_kinds import KINDS as NEURON_KINDS
from rssnn.neuron_kinds import find as find_neuron_kind
from rssnn.synapse_kinds import KINDS, kind_of, read_integers

FORMAT = "rssnn-netx"
VERSION = 1
# The neuron kind of every spiking layer and the read-out of our files (rssnn.neuron_kinds).
FILE_KIND = NEURON_KINDS["cuba"]

# Bounds on what a file may declare, checked before anything is read or allocated (a crafted
# file otherwise declares terabyte datasets or a billion time steps). They are far above any
# network Loihi 2 runs: 8,192 neurons per core, 128 cores per chip, so a million neurons a chip.
MAX_NUM_STEPS = 4096  # T; the paper uses 4-8, Loihi's reset interval is a power of 2
MAX_LAYER_NEURONS = 1 << 24


def _type(handle: h5py.Group, name: str) -> None:
    handle.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def _neuron(handle: h5py.Group, neuron: LoihiCuba) -> None:
    """A layer's NetX neuron group: our files hold the CUBA kind only (its fields: neuron_cuba)."""
    FILE_KIND.write(handle, neuron)


def _bias_for_netx(layer: LoweredLayer) -> np.ndarray:
    """Per-channel bias as (C,); per-neuron bias in NetX's neuron order (x, y, c) = (W, H, C)."""
    b = np.asarray(layer.bias, dtype=np.int64)
    return swap_layout(b)


def extension_features(net: LoweredNet) -> list[str]:
    """What in this network stock NetX readers cannot be assumed to handle."""
    features = ["per_channel_neuron"] if any(layer.per_channel for layer in net.layers) else []
    return features + (["residual"] if net.residual else [])


# Stock NetX skips layer types it does not know, so a residual file read as a chain would load
# silently as the wrong network. A residual file therefore starts with this guard layer: a
# well-formed ``dense`` layer whose weight is text. NetX converts weights with
# ``.astype(int)``, so a stock loader stops there with this sentence in its ValueError.
GUARD_MESSAGE = (
    "rssnn residual network: stock NetX cannot describe residual connections; "
    "read this file with rssnn.netx_file.read and run it with python -m lava_procs.run "
    "(docs/netx-schema.md)"
)


def _guard(handle: h5py.Group) -> None:
    _type(handle, "dense")
    handle.create_dataset("shape", data=np.array([1]))
    _neuron(handle, LoihiCuba.integrator())
    handle.create_dataset("weight", data=np.array([GUARD_MESSAGE.encode("ascii")]))
    handle.attrs["rssnn_guard"] = True


def _skips(handle: h5py.Group, layer: LoweredLayer, group_of: dict[int, int]) -> None:
    """``skip/<j>``: a residual synapse from the layer at NetX index ``source``."""
    for j, skip in enumerate(layer.skips):
        g = handle.create_group(f"skip/{j}")
        _type(g, skip.kind)
        g.create_dataset("source", data=group_of[skip.source])
        kind_of(skip.kind).write(g, skip)


def write(path: str | Path, net: LoweredNet, metadata: dict[str, Any]) -> str:
    """Write ``net`` to ``path`` atomically; returns the kind of file written."""
    from rssnn.atomic import atomic_write_bytes

    path = Path(path)
    features = extension_features(net)
    kind = "rssnn-extension" if features else "stock"
    lo, hi = dynamics.BIAS_MANT_RANGE
    for layer in net.layers:
        # min and max, not abs: abs(INT64_MIN), where a NaN bias ended, overflows to a negative
        bias = np.asarray(layer.bias)
        if bias.size and (not np.all(np.isfinite(bias)) or bias.min() < lo or bias.max() > hi):
            raise UserError(f"bias of {layer.name} does not fit Loihi's 13-bit mantissa ({lo}..{hi})")

    def write_h5(fh) -> None:
        with h5py.File(fh, "w") as f:
            layer_group = f.create_group("layer")
            idx = 0

            def group() -> h5py.Group:
                nonlocal idx
                g = layer_group.create_group(str(idx))
                idx += 1
                return g

            g = group()
            _type(g, "input")
            g.create_dataset("shape", data=np.array(net.input_shape))
            if net.residual:
                _guard(group())
            group_of: dict[int, int] = {}  # lowered layer index -> NetX layer index
            for k, layer in enumerate(net.layers):
                if layer.flatten_before:
                    g = group()
                    _type(g, "flatten")
                    g.create_dataset("shape", data=np.array([layer.in_shape[0], 1, 1]))
                group_of[k] = idx
                g = group()
                _type(g, layer.kind)
                g.create_dataset("shape", data=np.array(layer.out_shape))
                kind_of(layer.kind).write(g, layer)
                g.create_dataset("bias", data=_bias_for_netx(layer))
                _skips(g, layer, group_of)
                _neuron(g, layer.neuron if layer.spiking else LoihiCuba.integrator())
            meta = f.create_group("rssnn")
            attrs = dict(
                format=FORMAT,
                version=VERSION,
                kind=kind,
                features=json.dumps(features),
                num_steps=net.num_steps,
                input_message_bits=INPUT_MESSAGE_BITS,
                input_encoding="raw 8-bit pixel levels 0..255 as graded spikes, "
                "the same image on every step",
                class_names=json.dumps(net.class_names),
                exporter_version=RSSNN_VERSION,
                layer_names=json.dumps([lay.name for lay in net.layers]),
                layer_scales=json.dumps([lay.scale for lay in net.layers]),
                layer_scale_limits=json.dumps([lay.limits for lay in net.layers]),
            )
            attrs.update(
                {
                    k: (json.dumps(v, default=str) if isinstance(v, dict | list) else v)
                    for k, v in metadata.items()
                }
            )
            for key, value in attrs.items():
                meta.attrs[key] = value

    try:
        atomic_write_bytes(path, write_h5)
    except OSError as exc:
        raise UserError(f"cannot write '{path}': {exc.strerror or exc}") from exc
    return kind


def _decode(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def _json_attribute(path: Path, meta: dict[str, Any], key: str, kind: type) -> Any:
    try:
        value = json.loads(meta[key])
    except (TypeError, ValueError, RecursionError) as exc:
        raise UserError(f"'{path}': /rssnn attribute '{key}' is not valid JSON; export again") from exc
    if not isinstance(value, kind):
        raise UserError(f"'{path}': /rssnn attribute '{key}' is not a JSON {kind.__name__}; export again")
    return value


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``/rssnn`` attributes of a file; UserError for missing, foreign or corrupt files."""
    path = Path(path)
    with open_checked(path) as f:
        return _metadata(path, f)


def _metadata(path: Path, f: h5py.File) -> dict[str, Any]:
    """:func:`read_metadata` of a file :func:`open_checked` opened."""
    from rssnn.cifar import DATASETS

    if "rssnn" not in f or "layer" not in f:
        raise UserError(
            f"'{path}' is not an rssnn-lava NetX file (no /rssnn metadata); "
            "export it with python export/to_netx.py"
        )
    try:
        meta = {k: _decode(v) for k, v in f["rssnn"].attrs.items()}
    except OSError as exc:
        raise UserError(f"'{path}' is not a readable HDF5 file (truncated or corrupt?)") from exc
    if meta.get("format") != FORMAT:
        raise UserError(f"'{path}' is not an rssnn-lava NetX file")
    if int(meta.get("version", -1)) != VERSION:
        raise UserError(
            f"'{path}' has rssnn-netx version {meta.get('version')}, this reader " f"supports {VERSION}"
        )
    for key in ("class_names", "features", "layer_names", "layer_scales"):
        if key not in meta:
            raise UserError(f"'{path}' lacks the /rssnn attribute '{key}'; export the model again")
        meta[key] = _json_attribute(path, meta, key, list)
    if not all(isinstance(name, str) for name in meta["class_names"]) or not meta["class_names"]:
        raise UserError(f"'{path}': /rssnn class_names must be a non-empty list of names")
    meta["training_config"] = (
        _json_attribute(path, meta, "training_config", dict) if meta.get("training_config") else {}
    )
    dataset = meta.setdefault("dataset", "cifar10")
    if dataset not in DATASETS:
        raise UserError(f"'{path}' names the dataset {str(dataset)[:40]!r}; known: {', '.join(DATASETS)}")
    try:
        steps = int(meta.get("num_steps", 0))
    except (TypeError, ValueError, OverflowError):
        steps = 0
    if not 1 <= steps <= MAX_NUM_STEPS:
        raise UserError(
            f"'{path}' has num_steps={meta.get('num_steps')!r}; a network needs 1 <= T <= {MAX_NUM_STEPS}"
        )
    meta["num_steps"] = steps
    return meta


def mark_verified(path: str | Path, verified: bool, detail: str) -> None:
    """Record in the file whether (and how) Lava verified it: ``/rssnn`` ``verified``, ``verification``."""
    try:
        with h5py.File(path, "r+") as f:
            f["rssnn"].attrs["verified"] = bool(verified)
            f["rssnn"].attrs["verification"] = detail
    except OSError as exc:
        raise UserError(f"cannot record the verification in '{path}' ({exc})") from exc


def _check_range(path: Path, name: str, what: str, values: np.ndarray, lo: int, hi: int) -> None:
    if values.size and (values.min() < lo or values.max() > hi):
        raise UserError(
            f"'{path}' {name}: {what} {values.min()}..{values.max()} outside Loihi's {lo}..{hi}; "
            "the file is damaged or was not written by this exporter"
        )


def _synapse_fits(syn: LoweredLayer | SkipSynapse, out_shape: tuple[int, ...]) -> bool:
    return KINDS[syn.kind].output_shape(syn) == tuple(out_shape)


def validate_layer(path: Path, layer: LoweredLayer) -> None:
    """Shapes agree with each other and every register fits Loihi 2 (UserError otherwise)."""
    for what, syn in [("weight", layer)] + [(f"skip {j} weight", s) for j, s in enumerate(layer.skips)]:
        if not _synapse_fits(syn, layer.out_shape):
            raise UserError(
                f"'{path}' {layer.name}: {what} shape {syn.weight.shape} does not fit input "
                f"{syn.in_shape} and output {layer.out_shape}; the file is damaged"
            )
        _check_range(path, layer.name, f"{what} values", syn.weight, *dynamics.WEIGHT_MANT_RANGE)
    _check_range(path, layer.name, "bias", np.asarray(layer.bias), *dynamics.BIAS_MANT_RANGE)
    if layer.spiking:
        n = layer.neuron
        _check_range(path, layer.name, "iDecay", n.i_decay, *dynamics.I_DECAY_RANGE)
        _check_range(path, layer.name, "vDecay", n.v_decay, *dynamics.V_DECAY_RANGE)
        _check_range(path, layer.name, "vThMant", n.vth_mant, *dynamics.VTH_MANT_RANGE)


def _read_skips(
    path: Path, g: h5py.Group, name: str, lowered_of: dict[int, int], layers: list[LoweredLayer]
) -> list[SkipSynapse]:
    skips = []
    for j in range(len(g["skip"]) if "skip" in g else 0):
        s = g[f"skip/{j}"]
        kind, source = layer_type(s), int(read_integers(s, "source", ())[()])
        if kind not in KINDS or source not in lowered_of or not layers[lowered_of[source]].spiking:
            raise UserError(
                f"'{path}' {name}: skip {j} ({kind} from layer {source}) must be a synapse "
                f"({', '.join(KINDS)}) from an earlier spiking layer; the file is damaged"
            )
        fields = KINDS[kind].read(s, layers[lowered_of[source]].out_shape)
        skips.append(SkipSynapse(source=lowered_of[source], kind=kind, **fields))
    return skips


def layer_type(g: h5py.Group) -> str:
    """A NetX group's ``type``: a length-1 array of short ASCII text."""
    t = g["type"]
    if not isinstance(t, h5py.Dataset) or t.shape != (1,) or t.dtype.kind != "S" or t.dtype.itemsize > 16:
        raise ValueError(f"{g.name}/type is not a NetX layer type")
    return t[0].decode("ascii", "replace")


def declared_shape(g: h5py.Group) -> tuple[int, ...]:
    """A layer's declared neuron grid, bounded before anything is sized from it."""
    shape = tuple(int(x) for x in read_integers(g, "shape", ndim=1))
    if not 1 <= len(shape) <= 3 or min(shape) < 1 or int(np.prod(shape)) > MAX_LAYER_NEURONS:
        raise ValueError(f"{g.name}/shape {shape} is not a layer of 1 to {MAX_LAYER_NEURONS} neurons")
    return shape


def _bias(g: h5py.Group, out_shape: tuple[int, ...]) -> np.ndarray:
    """(C,) per channel, or (W, H, C) per neuron in NetX's order, back to (C, H, W)."""
    shape = g["bias"].shape if "bias" in g else None
    if shape not in ((out_shape[0],), tuple(out_shape[::-1])):
        raise ValueError(f"{g.name}/bias has shape {shape}, expected ({out_shape[0]},) or {out_shape[::-1]}")
    bias = read_integers(g, "bias", shape)
    return swap_layout(bias)


def _file_neuron(path: Path, g: h5py.Group, index: int, channels: int) -> LoihiCuba:
    """A spiking layer's neuron: its ``neuron/type`` must name our files' kind (CUBA; LOIHI is its
    alias), and its fields are read and checked by that kind."""
    n = g["neuron"]
    neuron_type = layer_type(n)
    if find_neuron_kind(neuron_type) is not FILE_KIND:
        raise UserError(
            f"'{path}' layer {index}: neuron type '{neuron_type[:20]}' in an rssnn-lava file, whose "
            f"neurons are {FILE_KIND.netx_type}; the file is damaged"
        )
    return FILE_KIND.read(n, channels)


def read(path: str | Path) -> tuple[LoweredNet, dict[str, Any]]:
    """Read a file written by :func:`write` back into integers (for checks and lava_procs).

    Every declared shape is checked before its data is read; any damage is one UserError line.
    """
    path = Path(path)
    layers: list[LoweredLayer] = []
    with open_checked(path) as f:  # opened (and its structure checked) once for both parts
        meta = _metadata(path, f)
        names, scales = iter(meta["layer_names"]), iter(meta["layer_scales"])
        try:
            group = f["layer"]
            input_shape = declared_shape(group["0"])
            shape: tuple[int, ...] = input_shape
            flatten = False
            residual = "residual" in meta["features"]
            first = 2 if residual else 1
            if len(group) <= first:
                raise UserError(f"'{path}' holds an input layer but no synapse layer; nothing to run")
            if residual and not group["1"].attrs.get("rssnn_guard", False):
                raise UserError(f"'{path}' is marked residual but lacks its guard layer /layer/1")
            lowered_of: dict[int, int] = {}  # NetX layer index -> lowered layer index
            for i in range(first, len(group)):
                g = group[str(i)]
                kind = layer_type(g)
                if kind == "flatten":
                    flatten = True
                    continue
                if kind not in KINDS:
                    raise UserError(
                        f"'{path}' layer {i}: unsupported layer type '{kind}' (known: {', '.join(KINDS)})"
                    )
                out_shape = declared_shape(g)
                spiking = i != len(group) - 1  # the schema's last layer is the read-out
                c = out_shape[0]
                layer = LoweredLayer(
                    kind,
                    str(next(names)),
                    bias=_bias(g, out_shape),
                    out_shape=out_shape,
                    scale=float(next(scales)),
                    flatten_before=flatten,
                    spiking=spiking,
                    neuron=_file_neuron(path, g, i, c) if spiking else None,
                    **KINDS[kind].read(g, shape),
                )
                flatten = False
                layer.skips = _read_skips(path, g, layer.name, lowered_of, layers)
                validate_layer(path, layer)
                lowered_of[i] = len(layers)
                layers.append(layer)
                shape = out_shape
        except (KeyError, ValueError, TypeError, StopIteration, OSError, IndexError, OverflowError) as exc:
            raise UserError(f"'{path}' is damaged: {first_line(exc, 200)}") from exc
    if len(input_shape) != 3:
        raise UserError(f"'{path}' input shape {input_shape} is not (C, H, W)")
    readout = layers[-1].out_shape
    if readout != (len(meta["class_names"]),):
        raise UserError(
            f"'{path}' names {len(meta['class_names'])} classes but its read-out has shape {readout}"
        )
    net = LoweredNet(input_shape, meta["num_steps"], layers, meta["class_names"])
    return net, meta
