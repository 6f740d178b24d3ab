"""rssnn.layout: the (C, H, W) <-> (x, y, c) conversion, against elements indexed by hand."""

from __future__ import annotations

import numpy as np

from rssnn.layout import lava_conv_weight, lava_flat, lava_shape, swap_layout


def test_swap_layout_puts_channel_row_column_at_column_row_channel():
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # (C, H, W)
    lava = swap_layout(a)
    assert lava.shape == (4, 3, 2)
    for c, y, x in np.ndindex(a.shape):
        assert lava[x, y, c] == a[c, y, x]
    assert np.array_equal(swap_layout(lava), a)  # its own inverse


def test_swap_layout_keeps_the_axes_around_the_neurons():
    a = np.arange(2 * 5 * 2 * 3 * 4).reshape(2, 5, 2, 3, 4)  # [N, T, C, H, W]
    lava = swap_layout(a, axis=2)
    assert lava.shape == (2, 5, 4, 3, 2)
    assert lava[1, 4, 3, 2, 1] == a[1, 4, 1, 2, 3]
    windows = np.arange(2 * 4 * 3 * 2 * 5).reshape(2, 4, 3, 2, 5)  # [N, W, H, C, T]
    back = swap_layout(windows, axis=1)
    assert back.shape == (2, 2, 3, 4, 5)
    assert back[1, 0, 2, 3, 4] == windows[1, 3, 2, 0, 4]


def test_flat_neurons_stay_as_they_are():
    per_channel = np.array([3, 1, 2])
    assert swap_layout(per_channel) is per_channel
    dense = np.arange(2 * 5 * 7).reshape(2, 5, 7)  # [N, T, F]
    assert swap_layout(dense, axis=2) is dense
    assert lava_shape((7,)) == (7,) and lava_shape((2, 3, 4)) == (4, 3, 2)


def test_lava_flat_runs_over_channels_fastest():
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    expected = [a[c, y, x] for x in range(4) for y in range(3) for c in range(2)]
    assert lava_flat(a).tolist() == expected
    assert lava_flat(np.array([5, 6])).tolist() == [5, 6]


def test_conv_weight_is_flipped_and_swapped_as_netx_create_conv():
    w = np.arange(4 * 2 * 3 * 5).reshape(4, 2, 3, 5)  # [O, I, kh, kw]
    lava = lava_conv_weight(w)
    assert lava.shape == (4, 5, 3, 2)  # [O, kx, ky, I]
    for o, i, ky, kx in np.ndindex(w.shape):
        assert lava[o, kx, ky, i] == w[o, i, 3 - 1 - ky, 5 - 1 - kx]
