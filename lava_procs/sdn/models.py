"""CPU model of :class:`lava_procs.sdn.process.SDN` (fixed point, Lava's sdn arithmetic)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from rssnn.lava_procs.sdn.process import SDN


@implements(proc=SDN, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PySDNModelFixed(PyLoihiProcessModel):
    """Lava's ``PyDeltaModelFixed`` / ``PySigmaDeltaModelFixed`` / ``PySigmaModelFixed`` step,
    on the same int32 arrays, plus the probe."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    probe: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    sigma: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    act: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    residue: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self) -> None:
        p = self.proc_params
        a_in = self.a_in.recv()
        mode = p["mode"]
        if mode == "sigma":
            self.sigma = a_in + self.sigma
            s_out = self.sigma
        else:
            if mode == "delta":
                new = np.left_shift(a_in, p["spike_exp"] + p["state_exp"])
            else:
                self.sigma = a_in + self.sigma
                new = np.maximum(self.sigma + self.bias, 0)
            delta = new - self.act + self.residue
            sent = np.where(np.abs(delta) >= self.vth, delta, 0)
            self.residue = delta - sent
            self.act = new
            s_out = np.right_shift(sent, p["state_exp"])
        self.s_out.send(s_out)
        if self.probe.csp_ports:
            self.probe.send(np.concatenate([s_out.ravel(), self.sigma.ravel(), self.act.ravel()]))
