"""Exact, fast CPU process models for Lava's stock synapse processes (selected per run config).

Lava 0.10's ``PyConvModelFixed`` computes every step with ``scipy.signal.convolve2d`` once per
(input channel, output channel) pair, and its torch path is switched off because torch inside
Lava's forked workers hangs; for our networks that is about 90 % of a step. Here the same
convolution is one im2col gather and one float64 matrix product per group
(:func:`rssnn.integer_forward.conv_xyc`, shared with the integer reference forward). It is exact, not
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
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv import utils
from lava.proc.conv.models import AbstractPyConvModel
from lava.proc.conv.process import Conv

from rssnn.integer_forward import conv_xyc


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


def fast_synapse_map() -> dict:
    """``exception_proc_model_map`` entries that select the fast synapse models."""
    return {Conv: PyConvModelFastFixed}
