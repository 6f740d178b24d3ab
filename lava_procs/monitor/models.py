"""CPU model of the network monitor (fixed- and floating-point copies alike)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from rssnn import dynamics
from rssnn.lava_procs.monitor.process import LAYER_PORTS, MAX_LAYERS, NetworkMonitor


class _MonitorBase(PyLoihiProcessModel):
    fan_out: np.ndarray = LavaPyType(np.ndarray, float)
    input_fan_out: np.ndarray = LavaPyType(np.ndarray, float)
    leak: np.ndarray = LavaPyType(np.ndarray, float)
    state_unit: np.ndarray = LavaPyType(np.ndarray, float)
    spike_count: np.ndarray = LavaPyType(np.ndarray, float)
    synop_count: np.ndarray = LavaPyType(np.ndarray, float)
    input_macs: np.ndarray = LavaPyType(np.ndarray, float)
    mppd_sum: np.ndarray = LavaPyType(np.ndarray, float)
    mpp_sum: np.ndarray = LavaPyType(np.ndarray, float)
    images: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        sizes = proc_params["sizes"]
        ends = np.cumsum(sizes)
        self._slices = [slice(int(e - s), int(e)) for s, e in zip(sizes, ends)]
        self._eps = [None] * len(sizes)

    def _window(self, start: int) -> int | None:
        """Step index inside the image windows of a stream that starts at Lava step ``start``
        (probe messages arrive in the step they are sent), or None outside them."""
        p = self.proc_params
        t = self.time_step - start
        return t if 0 <= t < p["num_images"] * p["num_steps"] else None

    def run_spk(self) -> None:
        p = self.proc_params
        steps = p["num_steps"]
        graded = self.graded_in.recv()
        if self._window(p["input_window_start"]) is not None:
            self.input_macs[0] += float((graded != 0) @ self.input_fan_out)
        for k, part in enumerate(self._slices):
            spikes, u_c, u_p, v_c, v_p = (getattr(self, f"{kind}_{k}").recv() for kind in LAYER_PORTS)
            t = self._window(p["window_starts"][k])
            if t is None:
                continue
            s = spikes != 0
            self.spike_count[k] += float(s.sum())
            self.synop_count[k] += float(self.fan_out[part][s].sum())
            tau = t % steps
            if tau == steps - 1:
                self.images[k] += 1
            if not p["mppd"]:
                continue
            unit = self.state_unit[part]
            if tau == 0 or self._eps[k] is None:
                self._eps[k] = np.zeros(part.stop - part.start)
            delta = (u_c.astype(np.float64) - u_p.astype(np.float64)) * unit
            self._eps[k] = dynamics.mppd_step(self._eps[k], self.leak[part], delta)
            self.mppd_sum[k, tau] += float(np.mean(self._eps[k] ** 2))
            dv = (v_c.astype(np.float64) - v_p.astype(np.float64)) * unit
            self.mpp_sum[k, tau] += float(np.mean(dv**2))


def _model(name: str, tag_name: str, dtype: type, state_bits: int | None, spike_bits: int | None):
    """The model class with a typed in-port attribute for every port the process declares."""

    def port(bits):
        return LavaPyType(PyInPort.VEC_DENSE, dtype, precision=bits)

    attrs = {"graded_in": port(state_bits), "__module__": __name__, "__doc__": f"The monitor, {tag_name}."}
    for k in range(MAX_LAYERS):
        for kind in LAYER_PORTS:
            attrs[f"{kind}_{k}"] = port(spike_bits if kind == "spikes" else state_bits)
    cls = type(name, (_MonitorBase,), attrs)
    return implements(proc=NetworkMonitor, protocol=LoihiProtocol)(requires(CPU)(tag(tag_name)(cls)))


PyNetworkMonitorFixed = _model("PyNetworkMonitorFixed", "fixed_pt", np.int32, 24, 1)
PyNetworkMonitorFloat = _model("PyNetworkMonitorFloat", "floating_pt", float, None, None)
