"""CPU model of the network monitor (fixed point).

There is no floating-point model: a whole network cannot run with ``select_tag='floating_pt'``
in Lava 0.10 (its ``Dense`` process offers no floating-point model to the selector), and the
floating-point DLIF holds its states 64 times smaller, so a copy of this model would report
MPPD in the wrong units with nothing to check it against.
"""

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
        self._layer_views = None

    def _window(self, start: int) -> int | None:
        """Step index inside the image windows of a stream that starts at Lava step ``start``
        (probe messages arrive in the step they are sent), or None outside them."""
        p = self.proc_params
        t = self.time_step - start
        return t if 0 <= t < p["num_images"] * p["num_steps"] else None

    def _views(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per layer (fan-out, leak) views into the flat Vars (set by the builder after
        ``__init__``, so taken on first use)."""
        if self._layer_views is None:
            self._layer_views = [(self.fan_out[part], self.leak[part]) for part in self._slices]
        return self._layer_views

    def run_spk(self) -> None:
        p = self.proc_params
        steps = p["num_steps"]
        graded = self.graded_in.recv()
        if self._window(p["input_window_start"]) is not None:
            self.input_macs[0] += float(self.input_fan_out @ (graded != 0))
        for k, (fan_out, leak) in enumerate(self._views()):
            clean, pert = (getattr(self, f"{kind}_{k}").recv() for kind in LAYER_PORTS)
            t = self._window(p["window_starts"][k])
            if t is None:
                continue
            spikes, u_c, v_c = np.split(clean, 3)
            self.spike_count[k] += float(np.count_nonzero(spikes))
            # graded messages (sigma-delta) count as one event each, as binary spikes do
            self.synop_count[k] += float(fan_out @ (spikes != 0))
            tau = t % steps
            if tau == steps - 1:
                self.images[k] += 1
            if not p["mppd"]:
                continue
            _, u_p, v_p = np.split(pert, 3)
            unit, n = self.state_unit[k], len(leak)
            if tau == 0 or self._eps[k] is None:
                self._eps[k] = np.zeros(n)
            eps = dynamics.mppd_step(self._eps[k], leak, unit * (u_c - u_p).astype(np.float64))
            self._eps[k] = eps
            self.mppd_sum[k, tau] += float(eps @ eps) / n
            dv = (v_c - v_p).astype(np.float64)
            self.mpp_sum[k, tau] += unit * unit * float(dv @ dv) / n


def _model(name: str, tag_name: str, dtype: type, state_bits: int):
    """The model class with a typed in-port attribute for every port the process declares."""

    def port(bits):
        return LavaPyType(PyInPort.VEC_DENSE, dtype, precision=bits)

    attrs = {"graded_in": port(state_bits), "__module__": __name__, "__doc__": f"The monitor, {tag_name}."}
    for k in range(MAX_LAYERS):
        for kind in LAYER_PORTS:
            attrs[f"{kind}_{k}"] = port(state_bits)
    cls = type(name, (_MonitorBase,), attrs)
    return implements(proc=NetworkMonitor, protocol=LoihiProtocol)(requires(CPU)(tag(tag_name)(cls)))


PyNetworkMonitorFixed = _model("PyNetworkMonitorFixed", "fixed_pt", np.int32, 24)
