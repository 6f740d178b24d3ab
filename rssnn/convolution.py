"""Exact integer convolution in numpy: PyTorch's ``conv2d`` (:func:`correlate`) and Lava's
``Conv`` on one frame (:func:`conv_xyc`), as float64 products of integers.

Used by the synapse kinds' integer forward (the reference Lava must match), by the reader of
stock lava-dl files and by the fast exact Lava synapse model, so the three compute one formula.
"""

from __future__ import annotations

import numpy as np

CHUNK_ELEMENTS = 1 << 24  # im2col rows x columns per product: bounds memory at ~128 MB


def correlate(
    x: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """2-D cross-correlation (PyTorch's ``conv2d``) as im2col + one float64 product per group.

    Exact on integers: weights are 8 bit, inputs at most 24 bit, and every sum stays far below
    2**53, where float64 holds integers exactly. (numpy has no integer matrix product on BLAS,
    and an int64 einsum is ~20x slower.)

    Args:
        x: input [B, C, H, W] (any real dtype).
        weight: [O, C / groups, kh, kw].
        stride, padding, dilation: (h, w) pairs.
    Returns:
        float64 [B, O, H', W'].
    """
    b, c, _, _ = x.shape
    o, c_grp, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = np.lib.stride_tricks.sliding_window_view(
        xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3)
    )
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # [B, C, H', W', kh, kw]
    out_h, out_w = windows.shape[2:4]
    o_grp = o // groups
    w64 = np.asarray(weight, dtype=np.float64)
    out = np.empty((b, o, out_h, out_w))
    rows_per_chunk = max(1, CHUNK_ELEMENTS // max(1, c_grp * kh * kw * out_h * out_w))
    for g in range(groups):
        w = w64[g * o_grp : (g + 1) * o_grp].reshape(o_grp, -1)  # (c, i, j) order
        for start in range(0, b, rows_per_chunk):
            win = windows[start : start + rows_per_chunk, g * c_grp : (g + 1) * c_grp]
            cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, c_grp * kh * kw)
            y = (cols @ w.T).reshape(len(win), out_h, out_w, o_grp)
            out[start : start + len(win), g * o_grp : (g + 1) * o_grp] = y.transpose(0, 3, 1, 2)
    return out


def conv_xyc(
    x: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """Lava's convolution (``lava.proc.conv.utils.conv``) on one frame, exact on integers.

    Args:
        x: input [X, Y, C] (Lava order: width, height, channel).
        weight: [K, kx, ky, C / groups], as Lava's Conv process stores it.
        stride, padding, dilation: (x, y) pairs; groups divides C and K.
    Returns:
        float64 [X', Y', K], equal to Lava's scipy path (a true convolution: the kernel is
        flipped, as ``scipy.signal.convolve2d`` does).
    """
    flipped = np.asarray(weight)[:, ::-1, ::-1, :].transpose(0, 3, 1, 2)  # [K, C/g, kx, ky]
    out = correlate(np.asarray(x).transpose(2, 0, 1)[None], flipped, stride, padding, dilation, groups)
    return out[0].transpose(1, 2, 0)
