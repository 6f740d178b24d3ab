"""Loihi integer arithmetic of rssnn.dynamics: against Python integers and against real Lava."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rssnn import dynamics


def _rtz_python(p: int, bits: int) -> int:
    q = abs(p) >> bits
    return -q if p < 0 else q


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_rtz_shift_rounds_toward_zero(backend):
    values = [-(1 << 30) - 7, -8193, -4097, -4096, -4095, -1, 0, 1, 4095, 4096, 4097, 1 << 30]
    arr = np.array(values, dtype=np.int64) if backend == "numpy" else torch.tensor(values)
    got = [int(v) for v in dynamics.rtz_shift(arr, 12)]
    assert got == [_rtz_python(v, 12) for v in values]


def test_loihi_decay_matches_lava_formula():
    rng = np.random.default_rng(0)
    state = rng.integers(-(1 << 23), 1 << 23, size=1000)
    decay = rng.integers(0, 4097, size=1000)
    prod = state * (4096 - decay)
    lava = np.sign(prod) * np.right_shift(np.abs(prod), 12)  # PyLifModelBitAcc's expression
    assert np.array_equal(dynamics.loihi_decay(state, decay), lava)
    assert torch.equal(
        dynamics.loihi_decay(torch.from_numpy(state), torch.from_numpy(decay)), torch.from_numpy(lava)
    )


def test_wrap_and_clip_at_24_bits():
    big = np.array([2**23 + 5, -(2**23) - 5, 100], dtype=np.int64)
    assert dynamics.wrap24(big).tolist() == [5 - 2**23, 2**23 - 5, 100]
    assert dynamics.clip24(big).tolist() == [2**23 - 1, -(2**23) + 1, 100]


def test_l2_gain_bound():
    assert dynamics.l2_gain_bound(0.99, 2.0) == pytest.approx(20.0)
    assert dynamics.l2_gain_bound(1.0, 2.0) == float("inf")


def test_cuba_step_equals_lava_bit_accurate_lif():
    """Run Lava's own fixed-point LIF (PyLifModelBitAcc) and replay it with cuba_step."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    steps, n = 12, 6
    rng = np.random.default_rng(1)
    a_in = rng.integers(-60, 200, size=(n, steps))
    du = np.array([4095, 4095, 2047, 1000, 0, 3000])  # iDecay = du + 1
    dv = np.array([41, 0, 2000, 100, 4095, 300])
    vth = np.array([100, 50, 300, 80, 120, 1])
    src = Source(data=a_in.astype(np.int32))
    lif = LIF(shape=(n,), du=du, dv=dv, vth=vth)
    sink = Sink(shape=(n,), buffer=steps)
    src.s_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    try:
        lif.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        lava_spikes = sink.data.get().astype(bool)
    finally:
        lif.stop()
    u = np.zeros(n, dtype=np.int64)
    v = np.zeros(n, dtype=np.int64)
    ours = []
    for t in range(steps):
        u, v, s = dynamics.cuba_step(u, v, a_in[:, t], du + 1, dv, vth)
        ours.append(s)
    ours = np.stack(ours, -1)
    assert lava_spikes.sum() > 5, "test input should make neurons fire"
    assert np.array_equal(ours, lava_spikes)


def test_the_read_out_neuron_integrates_and_never_fires():
    """LoihiCuba.integrator(): what the file, the Lava builder and the reference use for logits."""
    from rssnn.neuron import LoihiCuba

    readout = LoihiCuba.integrator()
    a_in = np.random.default_rng(0).integers(-2000, 2000, size=(64, 10, 16))  # [N, classes, T]
    u = v = np.zeros((64, 10), dtype=np.int64)
    for t in range(a_in.shape[-1]):
        u, v, s = readout.step(u, v, a_in[..., t])
        assert not s.any()
    np.testing.assert_array_equal(v, a_in.sum(-1) << dynamics.ACT_SHIFT)  # v = the summed input
