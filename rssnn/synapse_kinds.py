"""Synapse kinds: all the core knows about one kind of synapse, in one class (numpy and h5py).

A synapse is a :class:`~rssnn.lowered.LoweredLayer`'s own or a
:class:`~rssnn.lowered.SkipSynapse`; both carry ``kind``, ``weight``, ``in_shape``, ``stride``
and ``padding``. Each kind answers, for its synapses:

* ``output_shape(syn)``: the neuron grid it drives, (C, H, W) or (F,), or None when the weight
  does not fit ``in_shape`` (a damaged file);
* ``forward(syn, x)``: the integer synaptic input, Loihi's arithmetic, for the reference;
* ``write(group, syn)`` / ``read(group, in_shape)``: its NetX HDF5 fields;
* ``lava_input(x)``: a graded input [N, C, H, W] in the Lava order its first layer expects.

A new synapse kind is a class here registered in :data:`KINDS`, plus its Lava block in
``lava_procs/network.py`` (:data:`~rssnn.lava_procs.network.BLOCKS`: the core does not import
Lava) and how the torch front end reads the trained module (``export/fold_torch.py``).
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from rssnn.convolution import correlate
from rssnn.errors import UserError
from rssnn.layout import swap_layout


def read_integers(
    group: h5py.Group, name: str, shape: tuple[int, ...] | None = None, ndim: int | None = None
) -> np.ndarray:
    """An integer-valued dataset of a NetX group as int64, its declared dtype and shape checked
    before it is read (ValueError, which the file reader reports as damage): integer or float
    holding whole numbers only; not complex, text or fractional."""
    if name not in group:
        raise ValueError(f"{group.name}/{name} is missing")
    dset = group[name]
    if not isinstance(dset, h5py.Dataset) or dset.dtype.kind not in "iuf":
        raise ValueError(f"{group.name}/{name} is not a numeric dataset ({getattr(dset, 'dtype', '?')})")
    if shape is not None and tuple(dset.shape) != tuple(shape):
        raise ValueError(f"{group.name}/{name} has shape {dset.shape}, expected {tuple(shape)}")
    if ndim is not None and len(dset.shape) != ndim:
        raise ValueError(f"{group.name}/{name} has {len(dset.shape)} dimensions, expected {ndim}")
    values = np.asarray(dset[()])
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.rint(values)):
            raise ValueError(f"{group.name}/{name} holds fractional or non-finite values")
        if values.size and np.abs(values).max() >= 2.0**62:
            raise ValueError(f"{group.name}/{name} holds values beyond 64-bit integers")
    return values.astype(np.int64)


def read_scalar(group: h5py.Group, name: str) -> int:
    """An integer field holding one value (scalar or length 1), as :func:`read_integers` checks
    it (ValueError for more values)."""
    values = read_integers(group, name)
    if values.size != 1:
        raise ValueError(f"{group.name}/{name} holds {values.size} values, expected one")
    return int(values.reshape(-1)[0])


def read_text(dset: h5py.Dataset) -> str:
    """A NetX text field (``type``, ``activation``): one bytes or str value, scalar or length 1
    (ValueError for more), decoded as ASCII."""
    value = dset[()]
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{dset.name} holds more than one value")
        value = value.reshape(-1)[0]
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def conv_output_shape(
    in_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[int, int, int]:
    """(C, H', W') of a conv with weight (out, in, kh, kw) on an input (C_in, H, W)."""
    (_, h, wd), (kh, kw), (sh, sw), (ph, pw) = in_shape, weight_shape[2:], stride, padding
    return (weight_shape[0], (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1)


class ConvKind:
    """2-D convolution, weight (out, in, kh, kw); NetX ``conv``."""

    name = "conv"

    def output_shape(self, syn: Any) -> tuple[int, ...] | None:
        w = syn.weight
        if w.ndim != 4 or len(syn.in_shape) != 3 or w.shape[1] != syn.in_shape[0]:
            return None
        return conv_output_shape(syn.in_shape, w.shape, syn.stride, syn.padding)

    def forward(self, syn: Any, x: np.ndarray) -> np.ndarray:
        """x [N, Cin, H, W, T] -> float64 [N, C, H', W', T] (exact integers)."""
        n, steps = x.shape[0], x.shape[-1]
        merged = np.moveaxis(x, -1, 1).reshape(n * steps, *x.shape[1:4])
        y = correlate(merged, syn.weight, syn.stride, syn.padding)
        return np.moveaxis(y.reshape(n, steps, *y.shape[1:]), 1, -1)

    def write(self, group: h5py.Group, syn: Any) -> None:
        group.create_dataset("inChannels", data=syn.weight.shape[1])
        group.create_dataset("outChannels", data=syn.weight.shape[0])
        group.create_dataset("kernelSize", data=np.array(syn.weight.shape[2:]))
        group.create_dataset("stride", data=np.array(syn.stride))
        group.create_dataset("padding", data=np.array(syn.padding))
        group.create_dataset("dilation", data=np.array([1, 1]))
        group.create_dataset("groups", data=1)
        group.create_dataset("weight", data=syn.weight.astype(np.float32))

    def read(self, group: h5py.Group, in_shape: tuple[int, ...]) -> dict[str, Any]:
        stride = tuple(int(x) for x in read_integers(group, "stride", (2,)))
        padding = tuple(int(x) for x in read_integers(group, "padding", (2,)))
        if len(in_shape) != 3 or min(stride) < 1 or min(padding) < 0:
            raise ValueError(f"{group.name}: stride {stride} / padding {padding} on input {in_shape}")
        shape = group["weight"].shape if "weight" in group else ()
        if (
            len(shape) != 4
            or shape[1] != in_shape[0]
            or any(k < 1 or k > n + 2 * p for k, n, p in zip(shape[2:], in_shape[1:], padding))
        ):
            raise ValueError(f"{group.name}/weight shape {shape} does not fit the input {tuple(in_shape)}")
        return dict(
            weight=read_integers(group, "weight", shape),
            in_shape=tuple(in_shape),
            stride=stride,
            padding=padding,
        )

    def lava_input(self, x: np.ndarray) -> np.ndarray:
        return swap_layout(x, axis=1)  # N, W, H, C (Lava order)


class DenseKind:
    """Fully connected, weight (out, in) over the flattened input in (C, H, W) order; NetX ``dense``."""

    name = "dense"

    def output_shape(self, syn: Any) -> tuple[int, ...] | None:
        w = syn.weight
        return (w.shape[0],) if w.ndim == 2 and w.shape[1] == int(np.prod(syn.in_shape)) else None

    def forward(self, syn: Any, x: np.ndarray) -> np.ndarray:
        """x [N, ..., T] -> float64 [N, F, T] (exact integers)."""
        n, steps = x.shape[0], x.shape[-1]
        return np.einsum(
            "oi,nit->not", syn.weight.astype(np.float64), x.reshape(n, -1, steps).astype(np.float64)
        )

    def write(self, group: h5py.Group, syn: Any) -> None:
        group.create_dataset("inFeatures", data=syn.weight.shape[1])
        group.create_dataset("outFeatures", data=syn.weight.shape[0])
        group.create_dataset("weight", data=syn.weight.astype(np.float32))

    def read(self, group: h5py.Group, in_shape: tuple[int, ...]) -> dict[str, Any]:
        features = int(np.prod(in_shape))
        shape = group["weight"].shape if "weight" in group else ()
        if len(shape) != 2 or shape[1] != features:
            raise ValueError(f"{group.name}/weight shape {shape} does not fit {features} inputs")
        return dict(weight=read_integers(group, "weight", shape), in_shape=(features,))

    def lava_input(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1)  # flattened in (C, H, W) order, as NetX expects


KINDS: dict[str, ConvKind | DenseKind] = {kind.name: kind for kind in (ConvKind(), DenseKind())}


def kind_of(name: str) -> ConvKind | DenseKind:
    """The synapse kind called ``name``; UserError listing the known ones otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise UserError(f"unknown synapse kind '{name}': known kinds are {', '.join(KINDS)}") from None
