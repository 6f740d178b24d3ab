"""CPU models of the image encoder and the class decoder."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from rssnn.lava_procs.io.process import ClassDecoder, ImageEncoder, OutputRecorder, SampleSource
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


@implements(proc=SampleSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PySampleSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    s_out_pert: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    data: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    perturbed: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self) -> None:
        n, tau = divmod(self.time_step - 1, self.proc_params["num_steps"])
        if n < self.proc_params["num_samples"]:
            frame = tau % self.data.shape[1]
            self.s_out.send(self.data[n, frame])
            self.s_out_pert.send(self.perturbed[n, frame])
        else:
            zeros = np.zeros(self.data.shape[2:], dtype=np.int32)
            self.s_out.send(zeros)
            self.s_out_pert.send(zeros)


@implements(proc=OutputRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyOutputRecorderModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    result: np.ndarray = LavaPyType(np.ndarray, np.int64)
    raster: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def run_spk(self) -> None:
        p = self.proc_params
        values = self.a_in.recv()[p["offset"] : p["offset"] + p["size"]].astype(np.int64)
        t = self.time_step - p["window_start"]
        if t < 0 or t >= p["num_samples"] * p["num_steps"]:
            return
        n, tau = divmod(t, p["num_steps"])
        if p["mode"] == "count":
            self.result[n] += values != 0
        elif tau == p["num_steps"] - 1:
            self.result[n] = values
        if p["record"]:
            self.raster[t] = values
