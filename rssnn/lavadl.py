"""Stock lava-dl NetX files (no ``/rssnn`` metadata): reading, the user's inputs, the integer
reference of a whole Lava run, and per-neuron fan-outs (numpy and h5py only).

lava-dl users hold files that ``lava.lib.dl.slayer`` blocks exported (``export_hdf5``): an
optional ``input`` layer, then ``conv`` / ``pool`` / ``flatten`` / ``dense`` layers, each with a
neuron: CUBA (``LOIHI`` is its older name) or sigma-delta (``SDNN``). This module reads such a
file through :func:`rssnn.hdf5_checks.open_checked` (the same structure checks as our own files)
into a :class:`LavaDlNet` that follows lava-dl NetX's ``hdf5.Network`` exactly. Each layer's
neuron kind comes from :mod:`rssnn.neuron_kinds` by its NetX type, which reads its fields and
steps it:

* CUBA (:mod:`rssnn.neuron_cuba`): Loihi 2 CUBA-LIF (:class:`rssnn.neuron.LoihiCuba`);
  ``du = iDecay - 1`` in Lava plus its offset 1 is ``iDecay`` here. Binary spikes (0 message bits).
* SDNN (:mod:`rssnn.neuron_sigma_delta`): an input layer is a *delta* encoder, ``sigma_output``
  marks a *sigma* decoder, every other layer a *sigma-delta* neuron with ReLU;
  ``spike_exp = state_exp = 6`` and 16 message bits, as NetX sets them (Lava's ``lava.proc.sdn``
  fixed-point models define the arithmetic).
* ``pool`` (which NetX cannot load) is a depthwise convolution with the pool kernel in every
  channel, as lava-dl's own pool synapse computes it.
* ``delay`` of a dense layer is NetX's per-output (or per-input) synaptic delay (``DelayDense``,
  clamped to 62); delays of conv layers are ignored, as NetX ignores them.

:func:`reference_run` replays what the Lava graph computes, step by step over a whole run
(every process hop costs a step, resets at the same steps), so its output equals Lava's spike
for spike; the tests hold the fast runner, stock lava-dl and this reference equal.

Shapes: PyTorch order, (C, H, W) or (F,), throughout; Lava's (x, y, c) order only in lava_procs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rssnn import dynamics, neuron_kinds
from rssnn.errors import UserError, first_line
from rssnn.layout import channel_first, swap_layout
from rssnn.neuron import LoihiCuba
from rssnn.neuron_sigma_delta import SigmaDeltaNeuron
from rssnn.synapse_kinds import read_integers, read_scalar, read_text

MAX_DELAY = 62  # NetX clamps dense delays to this (DelayDense, max_delay=62)
CONV_CLAMP_BITS = 24  # Lava's Conv models clamp their output to 24 signed bits
# NetX's neuron for a dense layer without one: a non-leaky integrator that never fires. Its
# threshold is written ``1 << 18 - 1`` there, which Python reads as 1 << 17.
INTEGRATOR = dict(iDecay=0, vDecay=dynamics.DECAY_UNITY, vThMant=1 << 17)
SUPPORTED = f"input, conv, pool, flatten, dense; neurons {neuron_kinds.known()}"


@dataclass
class Neuron:
    """One layer's neuron. ``model``: 'cuba', 'delta' (SDNN input), 'sigma_delta' or 'sigma'.
    ``cuba``: the CUBA parameters ([C] or scalars); ``vth``: the SDNN threshold mantissa;
    ``message_bits``: bits of its output messages (0: binary spikes)."""

    model: str
    cuba: LoihiCuba | None = None
    vth: int = 0
    message_bits: int = 0

    @property
    def graded(self) -> bool:
        return self.model != "cuba"

    @property
    def kind(self) -> neuron_kinds.NeuronKind:
        """Its neuron kind (:mod:`rssnn.neuron_kinds`)."""
        return neuron_kinds.of_mode(self.model)

    @property
    def params(self) -> LoihiCuba | SigmaDeltaNeuron:
        """Its parameters in its kind's integer form."""
        return self.cuba if self.cuba is not None else SigmaDeltaNeuron(self.model, self.vth)


@dataclass
class Layer:
    """A NetX layer with neurons. ``kind``: 'input', 'conv' (pool included) or 'dense'."""

    kind: str
    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    neuron: Neuron
    weight: np.ndarray | None = None  # int64 conv (out, in/groups, kh, kw) or dense (out, in)
    bias: np.ndarray | None = None  # int64 per channel (C,) or per neuron (C, H, W)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    delay: np.ndarray | None = None  # int64 (out, in), dense only
    flatten_before: bool = False
    in_message_bits: int = 0
    spiking: bool = True  # every layer has neurons (rssnn.activity.summarise reads this)
    notes: list[str] = field(default_factory=list)


@dataclass
class LavaDlNet:
    """A stock lava-dl network: ``layers`` in order (an input layer first if the file has one
    with neurons); ``input_shape`` is what the user's inputs must have per step."""

    path: str
    input_shape: tuple[int, ...]
    layers: list[Layer]
    input_message_bits: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        """'cuba' when every layer is CUBA, 'sdnn' when every one is sigma-delta, else 'mixed'
        (the names of :data:`rssnn.neuron_kinds.KINDS`)."""
        kinds = {layer.neuron.kind.name for layer in self.layers}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def has_input_neurons(self) -> bool:
        return self.layers[0].kind == "input"

    def first_step(self, k: int) -> int:
        """The 1-based Lava step at which layer ``k`` handles the first step of the first input:
        the source sends at step 1; an input layer's neurons take it in the same step, every
        synapse adds one step (it sends what it computed the step before)."""
        return 1 + k + (0 if self.has_input_neurons else 1)

    def total_steps(self, num_inputs: int, num_steps: int) -> int:
        """Steps until the last layer has handled every input's whole window."""
        return num_inputs * num_steps + self.first_step(len(self.layers) - 1)


def _pair(g: h5py.Group, key: str, default: int) -> tuple[int, int]:
    if key not in g:
        return (default, default)
    values = read_integers(g, key).reshape(-1)
    if values.size == 1:
        return (int(values[0]), int(values[0]))
    if values.size != 2:
        raise ValueError(f"{g.name}/{key} holds {values.size} values, expected 1 or 2")
    return (int(values[0]), int(values[1]))


def _neuron(path: Path, g: h5py.Group, kind: str, channels: int) -> Neuron:
    if "neuron" not in g:
        if kind != "dense":
            raise UserError(f"'{path}' {g.name}: a {kind} layer without neurons has no model here")
        return Neuron(
            "cuba", LoihiCuba(*(np.array([INTEGRATOR[k]]) for k in ("iDecay", "vDecay", "vThMant")))
        )
    n = g["neuron"]
    if "type" not in n:
        raise ValueError(f"{n.name} has no type")
    neuron_type = read_text(n["type"])
    bits = read_scalar(n, "messageBits") if "messageBits" in n else None
    neuron_kind = neuron_kinds.find(neuron_type)
    if neuron_kind is None:
        raise UserError(
            f"'{path}' {g.name}: neuron type '{neuron_type[:20]}' has no model in rssnn-lava's runner "
            f"(supported: {SUPPORTED})"
        )
    bits = neuron_kind.message_bits if bits is None else bits
    if neuron_kind is neuron_kinds.KINDS["cuba"]:
        return Neuron("cuba", neuron_kind.read(n, channels), message_bits=bits)
    try:
        sd = neuron_kind.read(n, input_layer=kind == "input")
    except UserError as exc:
        raise UserError(f"'{path}' {exc}") from None
    return Neuron(sd.mode, vth=sd.vth, message_bits=bits)


def _conv_shape(in_shape, weight_shape, stride, padding, dilation) -> tuple[int, int, int]:
    _, h, w = in_shape
    kh, kw = weight_shape[2:]
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return (int(weight_shape[0]), oh, ow)


def _bias(g: h5py.Group, out_shape: tuple[int, ...]) -> np.ndarray | None:
    if "bias" not in g:
        return None
    bias = read_integers(g, "bias")
    if bias.shape == (out_shape[0],):
        return bias
    if len(out_shape) == 3 and bias.shape == tuple(out_shape[::-1]):
        return swap_layout(bias)  # NetX's (x, y, c) per neuron
    raise ValueError(f"{g.name}/bias has shape {bias.shape}, expected ({out_shape[0]},)")


def _check_ranges(path: Path, layer: Layer) -> None:
    lo, hi = dynamics.WEIGHT_MANT_RANGE
    if (
        layer.weight is not None
        and layer.weight.size
        and (layer.weight.min() < lo or layer.weight.max() > hi)
    ):
        raise UserError(f"'{path}' {layer.name}: weights outside Loihi's {lo}..{hi}; the file is damaged")
    n = layer.neuron
    if n.model == "cuba":
        for what, values, (a, b) in (
            ("iDecay", n.cuba.i_decay, dynamics.I_DECAY_RANGE),
            ("vDecay", n.cuba.v_decay, (0, dynamics.DECAY_UNITY)),
            ("vThMant", n.cuba.vth_mant, (1, 1 << 17)),
        ):
            if values.min() < a or values.max() > b:
                raise UserError(f"'{path}' {layer.name}: {what} outside {a}..{b}; the file is damaged")
    elif n.model != "sigma" and not 0 <= n.vth < (1 << 17):
        raise UserError(f"'{path}' {layer.name}: vThMant {n.vth} outside 0..131071; the file is damaged")


def is_lavadl_file(path: str | Path) -> bool:
    """True for a NetX file without ``/rssnn`` metadata (lava-dl's own), after the structure checks."""
    from rssnn.hdf5_checks import open_checked

    with open_checked(path) as f:
        return "layer" in f and "rssnn" not in f


def read(path: str | Path) -> LavaDlNet:
    """Read and validate a stock lava-dl NetX file (UserError, one line, for anything else)."""
    from rssnn.hdf5_checks import open_checked
    from rssnn.netx_file import declared_shape, layer_type

    path = Path(path)
    layers: list[Layer] = []
    notes: list[str] = []
    with open_checked(path) as f:
        if "rssnn" in f:
            raise UserError(f"'{path}' is an rssnn-lava file; run it without --inputs (see --help)")
        if "layer" not in f or not len(f["layer"]):
            raise UserError(f"'{path}' holds no /layer group: not a NetX file")
        group = f["layer"]
        try:
            keys = sorted(group, key=int)
            if keys != [str(i) for i in range(len(keys))]:
                raise ValueError(f"layer groups {keys[:6]} are not numbered 0, 1, 2, ...")
            shape: tuple[int, ...] | None = None
            bits = 0
            flatten = False
            for i in keys:
                g = group[i]
                kind = layer_type(g)
                name = f"{i}:{kind}"
                if kind == "input":
                    if layers or shape is not None:
                        raise ValueError(f"{g.name}: an input layer after other layers")
                    shape = declared_shape(g)
                    if "neuron" in g:
                        neuron = _neuron(path, g, "input", shape[0])
                        layers.append(Layer("input", name, shape, shape, neuron, bias=None))
                        bits = neuron.message_bits
                    continue
                if kind == "flatten":
                    if shape is None:
                        raise ValueError(f"{g.name}: flatten before any layer")
                    flatten = True
                    continue
                if kind not in ("conv", "pool", "dense"):
                    raise UserError(
                        f"'{path}' layer {i}: layer type '{kind}' has no model in rssnn-lava's runner "
                        f"(supported: {SUPPORTED})"
                    )
                out = declared_shape(g)
                if "weight" not in g or not isinstance(g["weight"], h5py.Dataset):
                    raise ValueError(f"{g.name}/weight is missing (complex weights are not supported)")
                if kind == "dense":
                    w = read_integers(g, "weight")
                    w = w.reshape(int(np.prod(out)), -1) if w.ndim == 1 else w
                    if shape is None:
                        shape = (w.shape[1],)
                    in_shape = (int(np.prod(shape)),)
                    if w.ndim != 2 or w.shape != (int(np.prod(out)), in_shape[0]):
                        raise ValueError(f"{g.name}/weight shape {w.shape} does not fit {in_shape} -> {out}")
                    layer = Layer(
                        "dense",
                        name,
                        in_shape,
                        (int(np.prod(out)),),
                        _neuron(path, g, kind, int(np.prod(out))),
                    )
                    layer.weight = w
                    if "delay" in g:
                        layer.delay = _delay(g, w.shape, layer.notes)
                else:
                    if shape is None:
                        raise UserError(
                            f"'{path}' starts with a {kind} layer but has no input layer: its input "
                            "shape is unknown (lava-dl's NetX needs input_shape= here too)"
                        )
                    if len(shape) != 3:
                        raise ValueError(f"{g.name}: a {kind} layer on the input of shape {shape}")
                    stride, padding, dilation = (
                        _pair(g, k, d) for k, d in (("stride", 1), ("padding", 0), ("dilation", 1))
                    )
                    if kind == "pool":
                        kernel = read_integers(g, "weight")
                        kernel = kernel.reshape(kernel.shape[-2:]) if kernel.ndim >= 2 else kernel
                        c = shape[0]
                        w = np.broadcast_to(kernel, (c, 1, *kernel.shape)).copy()
                        groups = c
                    else:
                        w = read_integers(g, "weight")
                        w = w.reshape(w.shape[:4]) if w.ndim == 5 else w
                        groups = read_scalar(g, "groups") if "groups" in g else 1
                    if (
                        w.ndim != 4
                        or groups < 1
                        or shape[0] % groups
                        or w.shape[0] % groups
                        or w.shape[1] * groups != shape[0]
                        or min(stride) < 1
                        or min(dilation) < 1
                        or min(padding) < 0
                    ):
                        raise ValueError(
                            f"{g.name}/weight shape {w.shape} (groups {groups}) does not fit input {shape}"
                        )
                    in_shape = tuple(shape)
                    computed = _conv_shape(in_shape, w.shape, stride, padding, dilation)
                    if computed != tuple(out):
                        raise ValueError(
                            f"{g.name}: declared shape {tuple(out)}, the kernel gives {computed}"
                        )
                    layer = Layer("conv", name, in_shape, tuple(out), _neuron(path, g, kind, out[0]))
                    layer.weight, layer.stride, layer.padding = w, stride, padding
                    layer.dilation, layer.groups = dilation, groups
                    if "delay" in g:
                        layer.notes.append("its delays are ignored, as lava-dl's NetX ignores conv delays")
                if kind != "pool":
                    layer.bias = _bias(g, layer.out_shape)
                layer.flatten_before = flatten and len(shape) == 3
                layer.in_message_bits = bits
                flatten = False
                _check_ranges(path, layer)
                layers.append(layer)
                bits = layer.neuron.message_bits
                shape = layer.out_shape
        except UserError:
            raise
        except (KeyError, ValueError, TypeError, OSError, IndexError, OverflowError) as exc:
            raise UserError(f"'{path}' is damaged: {first_line(exc, 200)}") from exc
    if not any(layer.kind != "input" for layer in layers):
        raise UserError(f"'{path}' holds no synapse layer; nothing to run")
    input_shape = layers[0].in_shape
    for layer in layers:
        notes += [f"{layer.name}: {n}" for n in layer.notes]
    return LavaDlNet(str(path), tuple(input_shape), layers, notes=notes)


def _delay(g: h5py.Group, weight_shape: tuple[int, int], notes: list[str]) -> np.ndarray:
    """NetX's dense delay as a full (out, in) matrix: per output, per input or per synapse."""
    d = np.floor(np.asarray(g["delay"][()], dtype=np.float64))
    if not np.all(np.isfinite(d)) or d.min(initial=0) < 0:
        raise ValueError(f"{g.name}/delay holds negative or non-finite values")
    if d.max(initial=0) > MAX_DELAY:
        notes.append(f"delays above {MAX_DELAY} clamped to {MAX_DELAY}, as lava-dl's NetX clamps them")
        d = np.minimum(d, MAX_DELAY)
    d = d.astype(np.int64)
    out, inp = weight_shape
    if d.size == 1:
        return np.full(weight_shape, int(d.reshape(-1)[0]), np.int64)
    d = d.reshape(-1) if d.ndim == 1 else d
    if d.shape == (out,):
        return np.repeat(d[:, None], inp, 1)
    if d.shape == (inp,):
        return np.repeat(d[None, :], out, 0)
    if d.shape == weight_shape:
        return d
    raise ValueError(f"{g.name}/delay has shape {d.shape}, not ({out},), ({inp},) or {weight_shape}")


# ---------------------------------------------------------------------------------------------
# The user's inputs


@dataclass
class Inputs:
    """Inputs ready to run: ``data`` int64 [N, T_in, *input_shape] (T_in = 1: the same frame on
    every step of a window), ``labels`` int64 [N] or None, ``message_bits`` of the source."""

    data: np.ndarray
    labels: np.ndarray | None
    message_bits: int

    def __len__(self) -> int:
        return len(self.data)


def load_inputs(path: str | Path, net: LavaDlNet, limit: int | None = None) -> Inputs:
    """Read ``.npy`` or ``.npz`` inputs for ``net`` and check them (UserError, one line).

    Accepted per sample: the file's input shape ([C, H, W] frames, or [F] for a dense input; a
    [N, H, W] set of one-channel frames too), repeated over the window; or the same with a
    trailing time axis (a spike or graded raster: one message per step). ``.npz``: the array
    ``x`` (or ``inputs``, or the only array) and optional ``y`` / ``labels``. Values must be
    finite whole numbers; binary (0/1) inputs are sent as spikes, others as graded messages.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--inputs '{path}' does not exist or is not a file")
    labels = None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = next(
                    (k for k in ("x", "inputs", "images", "data") if k in z),
                    keys[0] if len(keys) == 1 else None,
                )
                if key is None:
                    raise UserError(f"--inputs '{path}': name the inputs 'x' (found {', '.join(keys)[:80]})")
                x = z[key]
                label_key = next((k for k in ("y", "labels") if k in z), None)
                labels = None if label_key is None else np.asarray(z[label_key])
        else:
            x = np.load(path, allow_pickle=False)
    except UserError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(
            f"--inputs '{path}' is not a readable .npy/.npz array ({first_line(exc, 120)})"
        ) from exc
    return prepare_inputs(x, net, labels, limit, str(path))


def prepare_inputs(x, net: LavaDlNet, labels=None, limit: int | None = None, what: str = "inputs") -> Inputs:
    """:func:`load_inputs` for an array in memory."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise UserError(f"{what}: dtype {x.dtype} is not numeric")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise UserError(f"{what}: holds NaN or infinite values; refused")
    if x.dtype.kind == "f" and np.any(x != np.rint(x)):
        raise UserError(
            f"{what}: holds fractional values; Lava carries integer messages: scale and round them "
            "(e.g. pixel levels 0..255)"
        )
    shape = tuple(net.input_shape)
    if x.ndim >= 1 and x.shape[1:] == shape:
        data = x[:, None]
    elif x.ndim >= 2 and x.shape[1:-1] == shape:
        data = np.moveaxis(x, -1, 1)
    elif len(shape) == 3 and shape[0] == 1 and x.shape[1:] == shape[1:]:
        data = x[:, None, None]
    elif len(shape) == 1 and x.ndim >= 2 and int(np.prod(x.shape[1:])) == shape[0]:
        data = x.reshape(len(x), 1, shape[0])  # e.g. [N, 28, 28] images for a 784-input dense layer
    else:
        raise UserError(
            f"{what}: shape {tuple(x.shape)} does not fit the network's input {shape}: pass "
            f"[N, {', '.join(map(str, shape))}] (repeated over the window) or "
            f"[N, {', '.join(map(str, shape))}, T] (one message per step)"
        )
    if len(data) == 0:
        raise UserError(f"{what}: holds no samples")
    if limit is not None:
        data = data[:limit]
    data = data.astype(np.int64)
    if np.abs(data).max(initial=0) >= 1 << 23:
        raise UserError(f"{what}: values beyond 24 bits do not fit Lava's messages")
    binary = data.min(initial=0) >= 0 and data.max(initial=0) <= 1
    bits = 0 if binary else max(1, int(np.abs(data).max(initial=1)).bit_length() + int(data.min() < 0))
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.dtype.kind not in "iu" or len(labels) < len(x):
            raise UserError(f"{what}: labels must be integers, one per sample ({len(labels)} for {len(x)})")
        labels = labels[: len(data)].astype(np.int64)
    return Inputs(data, labels, bits)


def set_input_bits(net: LavaDlNet, inputs: Inputs) -> None:
    """The source's message bits (0: spikes) become the first synapse's input bits, as
    ``hdf5.Network(input_message_bits=...)`` sets them (an input layer's neurons take any value)."""
    net.input_message_bits = inputs.message_bits
    if not net.has_input_neurons:
        net.layers[0].in_message_bits = inputs.message_bits


def input_noise(inputs: Inputs, sigma: float, seed: int) -> np.ndarray:
    """The inputs plus Gaussian noise of ``sigma`` times their full scale (the largest input
    value, 1 for spikes), rounded to whole numbers and clipped to [0, full scale] (or the
    inputs' range when negative values occur): MPPD's input perturbation ``gn:SIGMA``."""
    x = inputs.data
    lo, hi = min(0, int(x.min())), max(1, int(x.max()))
    noisy = x + sigma * hi * np.random.default_rng(seed).standard_normal(x.shape)
    return np.clip(np.rint(noisy), lo, hi).astype(np.int64)


def stream(data: np.ndarray, num_steps: int, total_steps: int) -> np.ndarray:
    """Input per Lava step [total_steps, *shape]: sample n's window is steps n T + 1 .. (n + 1) T
    (index step - 1), frame ``tau % T_in`` at step tau of its window; zeros after the last."""
    n, t_in = data.shape[:2]
    out = np.zeros((total_steps, *data.shape[2:]), np.int64)
    tau = np.arange(num_steps)
    for i in range(n):
        out[i * num_steps : (i + 1) * num_steps] = data[i, tau % t_in]
    return out


# ---------------------------------------------------------------------------------------------
# The integer reference of a whole run


def correlate_grouped(x: np.ndarray, layer: Layer) -> np.ndarray:
    """A conv layer's synaptic sums on frames x [S, C, H, W] -> [S, C', H', W'] (exact integers),
    clamped to 24 signed bits as Lava's Conv models clamp them."""
    from rssnn.convolution import correlate

    y = correlate(x, layer.weight, layer.stride, layer.padding, layer.dilation, layer.groups)
    y = np.rint(y).astype(np.int64)
    base = 1 << CONV_CLAMP_BITS
    return (y + base // 2) % base - base // 2


def _synapse(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Synaptic input per step [S, *out] from the previous layer's messages x [S, *in] (sent at
    step s, delivered at step s + 1 + delay)."""
    if layer.in_message_bits == 0:
        x = (x != 0).astype(np.int64)
    steps = len(x)
    if layer.kind == "conv":
        a = correlate_grouped(x, layer)
    else:
        flat = x.reshape(steps, -1).astype(np.float64)
        if layer.delay is None:
            a = np.rint(flat @ layer.weight.T.astype(np.float64)).astype(np.int64)
        else:
            a = np.zeros((steps, layer.weight.shape[0]), np.int64)
            for d in np.unique(layer.delay):
                w = np.where(layer.delay == d, layer.weight, 0).astype(np.float64)
                part = np.rint(flat @ w.T).astype(np.int64)
                a[d:] += part[: steps - d] if d else part
    out = np.zeros_like(a)
    out[1:] = a[:-1]
    return out


def _neurons(layer: Layer, a: np.ndarray, reset_interval: int, reset_step: int, record: bool):
    """Run a layer's neurons over all steps on input a [S, *shape]: (messages, states or None)."""
    n = layer.neuron
    shape = a.shape[1:]
    out = np.zeros_like(a)
    states = np.zeros((len(a), 3, *shape), np.int64) if record else None
    bias = (
        np.zeros(shape, np.int64)
        if layer.bias is None
        else np.broadcast_to(
            channel_first(layer.bias, len(shape)) if layer.bias.ndim == 1 else layer.bias, shape
        )
    )
    kind = n.kind
    neuron = kind.on_grid(n.params, len(shape))
    b = bias << kind.bias_shift
    state = kind.initial_state(shape)
    for s in range(len(a)):
        if reset_interval and (s + 1) % reset_interval == reset_step % reset_interval:
            state = kind.initial_state(shape)
        state, out[s] = kind.step(neuron, state, a[s], b)
        if record:
            states[s] = kind.recorded(state, out[s])
    return out, states


def reference_run(
    net: LavaDlNet,
    data: np.ndarray,
    num_steps: int,
    reset_interval: int,
    record_state: bool = False,
) -> dict[str, Any]:
    """Every layer's output messages at every Lava step of a run of ``data`` [N, T_in, *input]
    (:func:`stream`), with resets every ``reset_interval`` steps (0: never) aligned so that each
    layer starts each input's window from zero (sigma-delta layers never reset, as in NetX).

    Returns ``outputs``: per layer int64 [S, *out_shape] (S = :meth:`LavaDlNet.total_steps`;
    index s is Lava step s + 1); with ``record_state`` also ``states``: per layer [S, 3, *shape]
    holding (messages, u, v) for CUBA and (messages, sigma, activation) for sigma-delta layers.
    """
    total = net.total_steps(len(data), num_steps)
    x = stream(data, num_steps, total)
    outputs, states = [], []
    for k, layer in enumerate(net.layers):
        if layer.kind == "input":
            a = x
        else:
            if layer.flatten_before:
                x = x.reshape(len(x), -1)
            a = _synapse(layer, x)
        interval = reset_interval if layer.neuron.kind.resets else 0
        x, st = _neurons(layer, a, interval, net.first_step(k), record_state)
        outputs.append(x)
        states.append(st)
    result: dict[str, Any] = dict(outputs=outputs)
    if record_state:
        result["states"] = states
    return result


def windows(net: LavaDlNet, k: int, per_step: np.ndarray, num_inputs: int, num_steps: int) -> np.ndarray:
    """Layer k's per-step array [S, ...] cut into input windows [N, T, ...]."""
    start = net.first_step(k) - 1
    return per_step[start : start + num_inputs * num_steps].reshape(
        num_inputs, num_steps, *per_step.shape[1:]
    )


# ---------------------------------------------------------------------------------------------
# Activity: fan-outs, the reference counts, MPPD


def synapse_fan_out(layer: Layer) -> np.ndarray:
    """Non-zero synapses each input neuron of ``layer`` drives, int64 [in_shape] (groups and
    dilation included; a pool drives one synapse per kernel tap)."""
    w = np.asarray(layer.weight) != 0
    if layer.kind == "dense":
        return w.sum(0).reshape(layer.in_shape).astype(np.int64)
    c, h, wd = layer.in_shape
    o, c_grp, kh, kw = w.shape
    o_grp = o // layer.groups
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    _, oh, ow = layer.out_shape
    fan = np.zeros((c, h + 2 * ph + sh * oh + dh * kh, wd + 2 * pw + sw * ow + dw * kw), np.int64)
    for g in range(layer.groups):
        wg = w[g * o_grp : (g + 1) * o_grp]
        for dy in range(kh):
            for dx in range(kw):
                per_channel = wg[:, :, dy, dx].sum(0)  # [c_grp]
                y0, x0 = dy * dh, dx * dw
                fan[g * c_grp : (g + 1) * c_grp, y0 : y0 + sh * oh : sh, x0 : x0 + sw * ow : sw] += (
                    per_channel[:, None, None]
                )
    return fan[:, ph : ph + h, pw : pw + wd]


def fan_outs(net: LavaDlNet) -> tuple[np.ndarray, list[np.ndarray]]:
    """(source fan-out [input_shape], per layer fan-out [out_shape]) in PyTorch order. The
    source feeds an input layer's neurons one to one (no synapse: fan-out 0) or the first
    synapse; the last layer drives nothing."""
    fans = [np.zeros(layer.out_shape, np.int64) for layer in net.layers]
    source = np.zeros(net.input_shape, np.int64)
    for k, layer in enumerate(net.layers):
        if layer.kind == "input":
            continue
        fan = synapse_fan_out(layer)
        if k == 0:
            source += fan.reshape(source.shape)
        else:
            fans[k - 1] += fan.reshape(fans[k - 1].shape)
    return source, fans


def reference_counts(net: LavaDlNet, inputs: Inputs, num_steps: int, reset_interval: int) -> dict[str, Any]:
    """What the network monitor counts, from the reference: per layer ``spikes`` (non-zero
    messages) and ``synops`` (messages times fan-out), and ``input_macs`` (non-zero input values
    times their fan-out), totals over the inputs' windows (int64)."""
    n = len(inputs)
    run = reference_run(net, inputs.data, num_steps, reset_interval)
    source, fans = fan_outs(net)
    total = net.total_steps(n, num_steps)
    x = stream(inputs.data, num_steps, total)[: n * num_steps]
    spikes, synops = [], []
    for k, out in enumerate(run["outputs"]):
        per_neuron = (windows(net, k, out, n, num_steps) != 0).sum((0, 1))
        spikes.append(int(per_neuron.sum()))
        synops.append(int((per_neuron * fans[k]).sum()))
    input_macs = int(((x != 0).sum(0) * source).sum())
    return dict(
        spikes=np.array(spikes, np.int64), synops=np.array(synops, np.int64), input_macs=np.int64(input_macs)
    )


def mppd_unit(layer: Layer) -> tuple[np.ndarray, float]:
    """(leak per channel [C], float units per integer state) of a CUBA layer for the MPPD:
    ``lam = 1 - vDecay/4096``; states in units of the threshold (``vThMant << 6``), the
    largest threshold where channels differ."""
    c = layer.neuron.cuba
    leak = dynamics.v_decay_to_leak(np.asarray(c.v_decay, dtype=np.float64))
    return np.broadcast_to(leak, (layer.out_shape[0],)).copy() if leak.size == 1 else leak, 1.0 / (
        (1 << dynamics.VTH_SHIFT) * float(np.max(c.vth_mant))
    )


def mppd_reference(
    net: LavaDlNet, clean: np.ndarray, perturbed: np.ndarray, num_steps: int, reset_interval: int
) -> list[list[float]]:
    """Per layer and window step, the mean over inputs of the mean over neurons of eps[t]^2,
    ``eps = lam eps + (u_clean - u_pert)`` in threshold units, restarted every window: what the
    network monitor's MPPD computes (CUBA layers only)."""
    n = len(clean)
    a = reference_run(net, clean, num_steps, reset_interval, record_state=True)["states"]
    b = reference_run(net, perturbed, num_steps, reset_interval, record_state=True)["states"]
    result = []
    for k, layer in enumerate(net.layers):
        leak, unit = mppd_unit(layer)
        uc = windows(net, k, a[k][:, 1], n, num_steps).astype(np.float64)
        up = windows(net, k, b[k][:, 1], n, num_steps).astype(np.float64)
        lam = leak.reshape((-1,) + (1,) * (len(layer.out_shape) - 1))
        eps = np.zeros((n, *layer.out_shape))
        per_step = []
        for t in range(num_steps):
            eps = dynamics.mppd_step(eps, lam, unit * (uc[:, t] - up[:, t]))
            per_step.append(float((eps**2).reshape(n, -1).mean(1).mean()))
        result.append(per_step)
    return result
