"""CPU model of :class:`Hang`: sleeps far longer than any test waits."""

import time

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_hang.process import Hang


@implements(proc=Hang, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyHangModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def run_spk(self) -> None:
        time.sleep(3600)
