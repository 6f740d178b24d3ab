"""CPU process models of :class:`lava_procs.dlif.process.DLIF`."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from rssnn import dynamics
from rssnn.lava_procs.dlif.process import DLIF
from rssnn.neuron import FloatCuba, LoihiCuba


class _DLIFModelBase:
    """What both DLIF models share: the reset schedule, the layer's neuron built once from its
    parameter Vars (which do not change during a run: Lava cannot set per-neuron Vars), and the
    probe message to the network monitor."""

    _neuron: LoihiCuba | FloatCuba | None = None

    def _loihi_neuron(self) -> LoihiCuba:
        if self._neuron is None:
            self._neuron = LoihiCuba(self.i_decay, self.v_decay, self.vth_mant)
        return self._neuron

    def _float_neuron(self) -> FloatCuba:
        """The file's integers as a float neuron, threshold in integer current units; the bias
        enters the membrane each step, as in the fixed-point model, so it lowers the threshold."""
        if self._neuron is None:
            n = LoihiCuba(self.i_decay, self.v_decay, self.vth_mant).to_float()
            self._neuron = FloatCuba(n.leak, n.threshold - self.bias_mant, n.current_leak)
        return self._neuron

    def _reset_due(self) -> bool:
        interval = self.proc_params["reset_interval"]
        return bool(interval) and self.time_step % interval == self.proc_params["reset_offset"] % interval

    def _send_probes(self, spikes: np.ndarray) -> None:
        """[spikes, u, post-reset v], flat, to the network monitor (if connected)."""
        if self.probe.csp_ports:
            self.probe.send(np.concatenate([spikes.ravel(), self.u.ravel(), self.v.ravel()]))

    def _step_index(self) -> int:
        """Index of the current step inside its reset window (for the per-step gain)."""
        interval = self.proc_params["reset_interval"]
        if not interval:
            return 0
        return (self.time_step - self.proc_params["reset_offset"]) % interval


@implements(proc=DLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyDLIFModelFixed(_DLIFModelBase, PyLoihiProcessModel):
    """Bit-exact Loihi 2 arithmetic: :class:`rssnn.neuron.LoihiCuba` (shared with the reference)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    probe: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    i_decay: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    v_decay: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    vth_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    gain: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)
        if self._reset_due():
            self.u[:] = 0
            self.v[:] = 0
        if not np.all(self.gain == 1.0):
            raise ValueError(
                "the per-step input gain has no fixed-point (Loihi) mapping; "
                "run with select_tag='floating_pt'"
            )
        u, v, s = self._loihi_neuron().step(
            self.u.astype(np.int64),
            self.v.astype(np.int64),
            a_in,
            self.bias_mant.astype(np.int64) << dynamics.NETX_BIAS_EXP,
        )
        self.u[:] = u
        self.v[:] = v
        self.s_out.send(s.astype(np.int32))
        self._send_probes(s.astype(np.int32))


@implements(proc=DLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDLIFModelFloat(_DLIFModelBase, PyLoihiProcessModel):
    """The float DLIF of training (leak = 1 - v_decay/4096, threshold in current units).

    Input and bias are taken in the same integer current units as the fixed-point model
    (``a_in << 6`` and ``bias << 6`` scaled back by 1/64), so both models see one file.
    """

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    probe: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    i_decay: np.ndarray = LavaPyType(np.ndarray, float)
    v_decay: np.ndarray = LavaPyType(np.ndarray, float)
    vth_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    gain: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        if self._reset_due():
            self.u[:] = 0
            self.v[:] = 0
        x = self.gain[self._step_index() % len(self.gain)] * a_in
        u, m, s = self._float_neuron().step(self.u, self.v, x)
        self.u[:] = u
        self.v[:] = np.where(s, 0.0, m + self.bias_mant)
        self.s_out.send(s.astype(float))
        self._send_probes(s.astype(float))
