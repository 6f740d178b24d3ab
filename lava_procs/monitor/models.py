"""CPU model of the membrane-perturbation monitor (works on fixed- and floating-point copies)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from rssnn import dynamics
from rssnn.lava_procs.monitor.process import MembranePerturbationMonitor


class _MonitorBase(PyLoihiProcessModel):
    leak: np.ndarray = LavaPyType(np.ndarray, float)
    mppd_sum: np.ndarray = LavaPyType(np.ndarray, float)
    mpp_sum: np.ndarray = LavaPyType(np.ndarray, float)
    images: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._eps = None

    def post_guard(self) -> bool:
        return True  # RefPorts are served in the management phase, after the step's update

    def run_post_mgmt(self) -> None:
        p = self.proc_params
        t = self.time_step - p["window_start"]
        steps = p["num_steps"]
        if t < 0 or t // steps >= p["num_images"]:
            return
        tau = t % steps
        state_unit = p["state_unit"]
        u_c, u_p = self.u_clean.read(), self.u_pert.read()
        v_c, v_p = self.v_clean.read(), self.v_pert.read()
        if tau == 0 or self._eps is None:
            self._eps = np.zeros(u_c.shape)
        delta = (u_c.astype(np.float64) - u_p.astype(np.float64)) * state_unit
        self._eps = dynamics.mppd_step(self._eps, self.leak, delta)
        self.mppd_sum[tau] += float(np.mean(self._eps**2))
        dv = (v_c.astype(np.float64) - v_p.astype(np.float64)) * state_unit
        self.mpp_sum[tau] += float(np.mean(dv**2))
        if tau == steps - 1:
            self.images[0] += 1


@implements(proc=MembranePerturbationMonitor, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMonitorModelFixed(_MonitorBase):
    u_clean: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32, precision=24)
    u_pert: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32, precision=24)
    v_clean: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32, precision=24)
    v_pert: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32, precision=24)


@implements(proc=MembranePerturbationMonitor, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyMonitorModelFloat(_MonitorBase):
    u_clean: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
    u_pert: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
    v_clean: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
    v_pert: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
