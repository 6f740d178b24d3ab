"""Exact, fast CPU process models for Lava's stock synapse processes (selected per run config).

Lava 0.10's ``PyConvModelFixed`` computes every step with ``scipy.signal.convolve2d`` once per
(input channel, output channel) pair, and its torch path is switched off because torch inside
Lava's forked workers hangs; for our networks that is about 90 % of a step. Here the same
convolution is one im2col gather and one float64 matrix product per group
(:func:`rssnn.convolution.conv_xyc`, shared with the integer reference forward). It is exact, not
approximate: every operand is an integer (weights 8 bit, inputs at most 24 bit) and every sum
stays far below 2**53, where float64 represents integers exactly. The result is clamped to 24
bits as the stock model does, so outputs equal the stock model's bit for bit (tested).

Selected with :func:`fast_synapse_map` in ``Loihi2SimCfg(exception_proc_model_map=...)``; Lava's
own modules are not patched. BLAS runs single-threaded inside each worker: several Lava
processes share 2 cores, and threads per worker would only contend.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv import utils
from lava.proc.conv.models import AbstractPyConvModel
from lava.proc.conv.process import Conv
from lava.proc.dense.process import DelayDense
from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

from rssnn.convolution import conv_xyc


def _single_threaded_blas() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyConvModelFastFixed(AbstractPyConvModel):
    """Lava's fixed-point Conv, computed by :func:`conv_xyc` (same ports, Vars and timing)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)

    _ready = False

    def run_spk(self) -> None:
        # Same step as the stock model: send last step's result, then compute this step's.
        if not self._ready:
            _single_threaded_blas()
            self._ready = True
        if self.a_buf is None:
            self.a_buf = np.zeros(self.a_out.shape, dtype=np.int32)
        self.a_out.send(self.a_buf)
        s_in = self.s_in.recv()
        if self.num_message_bits.item() == 0:
            s_in = s_in.astype(bool)
        out = conv_xyc(s_in, self.weight, self.stride, self.padding, self.dilation, int(self.groups[0]))
        self.a_buf = utils.signed_clamp(out.astype(self.weight.dtype), bits=24)


@implements(proc=DelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayDenseModelFastFixed(PyLoihiProcessModel):
    """Lava's bit-accurate ``DelayDense`` (what NetX builds for a dense layer with delays), with
    one product per distinct delay instead of Lava's product of a (max_delay + 1) x out x in
    stack with the input every step (NetX sets max_delay 62: 63 full weight copies). Same
    weight clipping and truncation (Lava's own functions), same buffer: a contribution with
    delay d is sent d + 1 steps after its spike arrives."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    delays: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    _per_delay: list | None = None

    def _prepare(self) -> None:
        _single_threaded_blas()
        sign_mode = self.proc_params.get("sign_mode") or determine_sign_mode(self.weights)
        weights = clip_weights(self.weights, sign_mode, num_bits=8)
        weights = truncate_weights(weights, sign_mode, self.proc_params.get("num_weight_bits", 8))
        if np.max(self.delays) > 63:
            raise ValueError(
                f"DelayDense delays must lie in 0..63 for Loihi, got up to {np.max(self.delays)}"
            )
        self._per_delay = [
            (int(d), np.where(self.delays == d, weights, 0).astype(np.float64))
            for d in np.unique(self.delays)
        ]

    def run_spk(self) -> None:
        if self._per_delay is None:
            self._prepare()
        weight_exp = self.proc_params.get("weight_exp", 0)
        self.a_out.send(self.a_buff[:, 0])
        s_in = self.s_in.recv()
        if self.num_message_bits.item() == 0:
            s_in = s_in.astype(bool)
        x = s_in.astype(np.float64)
        self.a_buff[:, 0] = 0
        self.a_buff = np.roll(self.a_buff, -1, axis=1)
        for d, w in self._per_delay:  # exact: integer products far below 2**53
            acc = np.rint(w @ x).astype(np.int64)
            acc = np.left_shift(acc, weight_exp) if weight_exp > 0 else np.right_shift(acc, -weight_exp)
            self.a_buff[:, d] += acc.astype(self.a_buff.dtype)


def fast_synapse_map() -> dict:
    """``exception_proc_model_map`` entries that select the fast synapse models."""
    return {Conv: PyConvModelFastFixed, DelayDense: PyDelayDenseModelFastFixed}
