"""CPU process model of :class:`lava_procs.delay.process.SpikeDelay`: a ring buffer."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from rssnn.lava_procs.delay.process import SpikeDelay


class _RingBuffer:
    """Slot ``t mod delay`` holds the spikes received ``delay`` steps ago: send, then refill."""

    def run_spk(self) -> None:
        slot = self.time_step % self.buffer.shape[0]
        self.s_out.send(self.buffer[slot])
        self.buffer[slot] = self.s_in.recv()


@implements(proc=SpikeDelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PySpikeDelayModelFixed(_RingBuffer, PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    buffer: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)


@implements(proc=SpikeDelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeDelayModelFloat(_RingBuffer, PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    buffer: np.ndarray = LavaPyType(np.ndarray, float)
