"""CPU models of the image encoder and the class decoder."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from rssnn.lava_procs.io.process import ClassDecoder, ImageEncoder
from rssnn.lowered import readout_logits


@implements(proc=ImageEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyImageEncoderModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=8)
    s_out_pert: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=8)
    images: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    perturbed: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)

    def run_spk(self) -> None:
        n = (self.time_step - 1) // self.proc_params["num_steps"]
        if n < self.proc_params["num_images"]:
            self.s_out.send(self.images[n])
            self.s_out_pert.send(self.perturbed[n])
        else:
            zeros = np.zeros(self.images.shape[1:], dtype=np.int32)
            self.s_out.send(zeros)
            self.s_out_pert.send(zeros)


@implements(proc=ClassDecoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyClassDecoderModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64)
    logits: np.ndarray = LavaPyType(np.ndarray, np.int64)
    predictions: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        p = self.proc_params
        t = self.time_step - p["window_start"]
        if t < 0:
            return
        n, tau = divmod(t, p["num_steps"])
        if n >= p["num_images"]:
            return
        self.logits[n] += np.rint(a_in).astype(np.int64)
        if tau == p["num_steps"] - 1:
            self.logits[n] = readout_logits(self.logits[n], self.bias, p["num_steps"])
            self.predictions[n] = int(np.argmax(self.logits[n]))
