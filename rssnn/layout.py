"""The two orders of a layer's neurons, and the one conversion between them.

PyTorch and the core (the lowered network, the integer reference) hold a layer's neurons as
(C, H, W) = (c, y, x); Lava and NetX hold them as (x, y, c) = (W, H, C). The conversion reverses
those three axes, so it is its own inverse: :func:`swap_layout` serves both directions. A dense
layer's neurons, (F,), are the same in both orders.
"""

from __future__ import annotations

import numpy as np


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A neuron grid's shape in the other order: (C, H, W) <-> (W, H, C); (F,) stays."""
    return tuple(shape[::-1]) if len(shape) == 3 else tuple(shape)


def swap_layout(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """``a`` with its three neuron axes from ``axis`` on reversed: (C, H, W) <-> (W, H, C).

    The axes before ``axis`` (images, time steps) and after the three (a trailing time axis)
    stay where they are: [N, T, C, H, W] with ``axis=2`` -> [N, T, W, H, C]. An array with
    fewer than ``axis + 3`` axes holds flat (F,) neurons there and is returned as it is.
    Returns a view (no copy), as ``np.transpose``.
    """
    if a.ndim < axis + 3:
        return a
    order = list(range(a.ndim))
    order[axis : axis + 3] = order[axis : axis + 3][::-1]
    return a.transpose(order)


def lava_flat(per_neuron: np.ndarray) -> np.ndarray:
    """A [C, H, W] (or [F]) array flattened in Lava's (x, y, c) order: [C * H * W]."""
    return np.ascontiguousarray(swap_layout(per_neuron)).ravel()


def lava_conv_weight(weight: np.ndarray) -> np.ndarray:
    """A conv weight [O, I/groups, kh, kw] (PyTorch) as Lava's Conv takes it, [O, kx, ky, I/groups]:
    the kernel flipped in both spatial axes and its (I, y, x) axes swapped, as NetX's
    ``create_conv`` does with the same HDF5 weight (a view)."""
    return swap_layout(weight[:, :, ::-1, ::-1], axis=1)


def channel_first(values: np.ndarray, ndim: int) -> np.ndarray:
    """Per-channel values (C,) as int64 shaped to broadcast against a (C, ...) array of ``ndim``
    axes: [C, 1, 1] for (C, H, W); one value (size 1) becomes a scalar array."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    return v.reshape((-1,) + (1,) * (ndim - 1)) if v.size > 1 else v.reshape(())
