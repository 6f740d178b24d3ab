"""The network monitor: one process measures, on the device, the activity of every spiking layer
and (with a perturbed copy) its membrane perturbation.

Inputs arrive, per spiking layer k, on two in-ports fed by the layer's probe (``DLIF.probe``:
spikes, u and post-reset v, flat in Lava's (x, y, c) order, stacked into one message), plus
one for the network's graded input:

* ``clean_k``: the clean copy's layer k (its spikes are the activity), and ``graded_in``: the
  encoder's input;
* ``pert_k``: the perturbed copy's layer k (u and v for the MPPD); left unconnected without one.

A Lava process declares its ports up front and Lava 0.10 cannot concatenate ports
(``ConcatPort`` raises NotImplementedError), so the process has ``MAX_LAYERS`` sets of layer
ports and a network uses the first L.

A probe message reaches the monitor in the step it is sent (a direct port link adds no delay:
Lava's per-hop step comes from synapse models that send before they receive), so layer k's
window of image n is read at the Lava steps ``first_step(k) + n T + tau``.

Per spiking layer, over the image windows it accumulates (:mod:`rssnn.activity` states the
same quantities for the integer reference):

* ``spike_count``: spikes; ``synop_count``: spikes times each neuron's fan-out; ``input_macs``:
  non-zero input values times their fan-out;
* ``mppd_sum[tau]``: sum over images of the mean over neurons of eps[tau]^2, the paper's
  reset-free MPPD ``eps[tau] = leak * eps[tau-1] + (I_clean[tau] - I_pert[tau])`` (eps restarts
  each image), and ``mpp_sum[tau]``: of (v_clean - v_pert)^2, the true perturbation with resets;
  in the trained model's float units (integer state / (64 k), k the layer's export scale).

Only these sums leave the process. One process for the whole network: each process is a worker
that every step synchronises with (benchmarks/lava_throughput.py measures the overhead).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

MAX_LAYERS = 32  # spiking layers one monitor serves (WRN-16 has 13, VGG-11 10)
LAYER_PORTS = ("clean", "pert")


class NetworkMonitor(AbstractProcess):
    """Args (L spiking layers, ``sizes[k]`` neurons each; per-neuron arrays Lava-order flat):
    sizes: neurons per spiking layer.
    input_size: elements of the graded input (pixels and bias channel).
    num_steps: T, the image window length.
    num_images: images to accumulate (later steps are ignored).
    window_starts: per layer, the Lava step at which it integrates image 0's first step.
    input_window_start: the step at which the first synapse reads image 0.
    fan_out: per neuron, the non-zero synapses it drives (concatenated over layers).
    input_fan_out: per input element, likewise.
    leak: per neuron, the MPPD recursion's lambda (concatenated).
    state_unit: per layer, float units per integer state unit, 1 / (64 k).
    mppd: whether a perturbed copy is attached (u/v ports connected).
    """

    def __init__(
        self,
        *,
        sizes: list[int],
        input_size: int,
        num_steps: int,
        num_images: int,
        window_starts: list[int],
        input_window_start: int,
        fan_out: np.ndarray,
        input_fan_out: np.ndarray,
        leak: np.ndarray,
        state_unit: np.ndarray,
        mppd: bool,
        name: str | None = None,
    ) -> None:
        total = int(sum(sizes))
        if len(sizes) > MAX_LAYERS:
            raise ValueError(f"one monitor serves up to {MAX_LAYERS} spiking layers, got {len(sizes)}")
        super().__init__(
            sizes=list(map(int, sizes)),
            num_steps=num_steps,
            num_images=num_images,
            window_starts=list(map(int, window_starts)),
            input_window_start=int(input_window_start),
            mppd=mppd,
            name=name,
        )
        layers = len(sizes)
        self.graded_in = InPort(shape=(input_size,))
        for k in range(MAX_LAYERS):
            size = 3 * int(sizes[k]) if k < layers else 1
            for kind in LAYER_PORTS:
                setattr(self, f"{kind}_{k}", InPort(shape=(size,)))
        self.fan_out = Var(shape=(total,), init=np.asarray(fan_out, dtype=float))
        self.input_fan_out = Var(shape=(input_size,), init=np.asarray(input_fan_out, dtype=float))
        self.leak = Var(shape=(total,), init=np.asarray(leak, dtype=float))
        self.state_unit = Var(shape=(layers,), init=np.asarray(state_unit, dtype=float))
        self.spike_count = Var(shape=(layers,), init=np.zeros(layers))
        self.synop_count = Var(shape=(layers,), init=np.zeros(layers))
        self.input_macs = Var(shape=(1,), init=np.zeros(1))
        self.mppd_sum = Var(shape=(layers, num_steps), init=np.zeros((layers, num_steps)))
        self.mpp_sum = Var(shape=(layers, num_steps), init=np.zeros((layers, num_steps)))
        self.images = Var(shape=(layers,), init=np.zeros(layers))

    def watch(self, clean, pert=None) -> None:
        """Attach to the spiking neurons (``LavaNetwork.neurons``) of the clean copy and, for the
        perturbation, of the perturbed copy; ``graded_in`` is connected by the caller."""
        for k, neuron in enumerate(clean):
            neuron.probe.connect(getattr(self, f"clean_{k}"))
            if pert is not None:
                pert[k].probe.connect(getattr(self, f"pert_{k}"))

    def results(self) -> dict[str, np.ndarray]:
        """Totals: ``spikes``, ``synops`` per layer and ``input_macs`` (int64), and per layer the
        per-step means over the images seen: ``mppd``, ``mpp`` [L, T] and ``images`` [L]."""
        images = self.images.get().astype(np.int64)
        per = np.maximum(images, 1)[:, None]
        return dict(
            spikes=np.rint(self.spike_count.get()).astype(np.int64),
            synops=np.rint(self.synop_count.get()).astype(np.int64),
            input_macs=np.int64(np.rint(self.input_macs.get()[0])),
            images=images,
            mppd=self.mppd_sum.get() / per,
            mpp=self.mpp_sum.get() / per,
        )
