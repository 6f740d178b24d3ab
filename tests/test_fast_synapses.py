"""The fast synapse models equal Lava's stock ones bit for bit (issue 10)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rssnn.convolution import conv_xyc


def _stock(x, w, stride, padding, groups):
    from lava.proc.conv import utils

    k = w.shape[1:3]
    return utils.conv_scipy(x, w, k, stride, padding, (1, 1), groups)


CASES = list(itertools.product([(1, 1), (2, 2), (2, 1)], [(0, 0), (1, 1)], ["dense", "depthwise"], [1, 3]))


@pytest.mark.parametrize("stride, padding, grouping, kernel", CASES)
def test_conv_equals_lavas_scipy_path_on_random_integers(stride, padding, grouping, kernel):
    rng = np.random.default_rng(hash((stride, padding, grouping, kernel)) % 2**32)
    c = 6
    groups = c if grouping == "depthwise" else 1
    k_out = c if grouping == "depthwise" else 5
    x = rng.integers(-(2**12), 2**12, (11, 9, c))  # graded input, also negative values
    w = 2 * rng.integers(-128, 128, (k_out, kernel, kernel, c // groups))  # 8-bit even weights
    fast = conv_xyc(x, w, stride, padding, (1, 1), groups)
    stock = _stock(x, w, stride, padding, groups)
    assert fast.shape == stock.shape
    np.testing.assert_array_equal(fast, stock)


def test_conv_with_dilation_and_asymmetric_kernel_equals_stock():
    from lava.proc.conv import utils

    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (13, 10, 4))
    w = rng.integers(-256, 255, (3, 3, 2, 4))
    stock = utils.conv_scipy(x, w, (3, 2), (2, 1), (1, 0), (2, 1), 1)
    np.testing.assert_array_equal(conv_xyc(x, w, (2, 1), (1, 0), (2, 1), 1), stock)


def test_fast_process_model_equals_stock_model_inside_lava():
    """The Lava process run with our model and with Lava's gives identical outputs per step."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from rssnn.lava_procs.synapses.models import fast_synapse_map

    rng = np.random.default_rng(3)
    steps = 5
    spikes = rng.integers(0, 256, (8, 8, 3, steps))
    w = 2 * rng.integers(-128, 128, (4, 3, 3, 3))
    outputs = []
    for model_map in ({}, fast_synapse_map()):
        src = Source(data=spikes)
        conv = Conv(weight=w, input_shape=(8, 8, 3), padding=1, stride=2, num_message_bits=8)
        sink = Sink(shape=conv.a_out.shape, buffer=steps)
        src.s_out.connect(conv.s_in)
        conv.a_out.connect(sink.a_in)
        cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=model_map)
        try:
            conv.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
            outputs.append(sink.data.get())
        finally:
            conv.stop()
    assert np.abs(outputs[0]).max() > 0
    np.testing.assert_array_equal(outputs[0], outputs[1])
