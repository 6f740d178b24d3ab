"""2x2 average pooling folded into the synapse after it, as both front ends do it.

A pooling layer has no neuron, so it is not a layer at run time: the trained model's front end
(:mod:`.fold_torch`) and the NIR reader (:mod:`.nir_read`) fold it into the next synapse with
these two formulas, on float64 numpy weights. Both are exact: every output of the pooled map is
the mean of a 2x2 block, so the synapse reads each block's four inputs with a quarter weight.
"""

from __future__ import annotations

import numpy as np


def _repeat_2x2(w: np.ndarray) -> np.ndarray:
    """Every spatial weight of w [..., h, w] as a 2x2 block [..., 2h, 2w] of quarter weights."""
    return np.repeat(np.repeat(w, 2, axis=-2), 2, axis=-1) / 4


def pool_into_conv(
    w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """avgpool2x2 followed by conv(w [O, I, kh, kw]) == conv(w' [O, I, 2kh, 2kw], stride 2s,
    padding 2p): returns (w', stride, padding)."""
    return _repeat_2x2(w), (2 * stride[0], 2 * stride[1]), (2 * padding[0], 2 * padding[1])


def pool_into_dense(w: np.ndarray, c: int, h: int, wd: int) -> np.ndarray:
    """avgpool2x2 -> flatten -> dense(w [O, c*h*wd]) == flatten -> dense(w' [O, c*2h*2wd]) on
    the unpooled (c, 2h, 2wd) map."""
    return _repeat_2x2(w.reshape(w.shape[0], c, h, wd)).reshape(w.shape[0], -1)
