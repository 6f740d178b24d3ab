"""Membrane-perturbation monitor: MPPD measured on the device, reduced inside the process.

One monitor watches one spiking layer in two copies of the network, the clean one and the one
fed with the perturbed input. Every step it reads (RefPorts) the current u and the post-reset
voltage v of both copies and accumulates, per time step tau of the image window,

* ``mppd_sum[tau]``: sum over images of mean over neurons of eps[tau]^2, the paper's reset-free
  MPPD ``eps[tau] = leak * eps[tau-1] + (I_clean[tau] - I_pert[tau])`` (eps restarts each image);
* ``mpp_sum[tau]``: sum over images of mean over neurons of (v_clean - v_pert)^2, the true
  perturbation with resets;

in the float units of the trained model (integer current / (64 k), k the layer's export scale).
Only these (T,) arrays and the image count leave the process. The interface (RefPorts on
``u`` and ``v``, result Vars) does not depend on the implementation: a Loihi 2 model can read
the same states through lava-loihi's embedded state readers and keep the Vars.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class MembranePerturbationMonitor(AbstractProcess):
    """Args:
    shape: the layer's neuron shape (Lava order).
    num_steps: T, the image window length.
    leak: per-neuron leak (1 - vDecay/4096), the MPPD recursion's lambda.
    state_unit: float current units per integer state unit, 1 / (64 k).
    window_start: the time step (1-based) at which this layer starts image 0.
    num_images: images to accumulate (later steps are ignored).
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        num_steps: int,
        leak: np.ndarray,
        state_unit: float,
        window_start: int,
        num_images: int,
        name: str | None = None,
    ) -> None:
        super().__init__(
            shape=shape,
            num_steps=num_steps,
            state_unit=state_unit,
            window_start=window_start,
            num_images=num_images,
            name=name,
        )
        self.u_clean = RefPort(shape=shape)
        self.u_pert = RefPort(shape=shape)
        self.v_clean = RefPort(shape=shape)
        self.v_pert = RefPort(shape=shape)
        self.leak = Var(shape=shape, init=np.broadcast_to(leak, shape).astype(float))
        self.mppd_sum = Var(shape=(num_steps,), init=np.zeros(num_steps))
        self.mpp_sum = Var(shape=(num_steps,), init=np.zeros(num_steps))
        self.images = Var(shape=(1,), init=np.zeros(1, dtype=np.int32))

    def watch(self, clean_neuron: AbstractProcess, pert_neuron: AbstractProcess) -> None:
        """Attach to the same layer of the clean and the perturbed copy."""
        self.u_clean.connect_var(clean_neuron.u)
        self.u_pert.connect_var(pert_neuron.u)
        self.v_clean.connect_var(clean_neuron.v)
        self.v_pert.connect_var(pert_neuron.v)

    def results(self) -> dict[str, np.ndarray]:
        """Per-step means over the images seen: ``mppd`` and ``mpp`` (T,) and ``images``."""
        n = int(self.images.get()[0])
        return dict(images=n, mppd=self.mppd_sum.get() / max(n, 1), mpp=self.mpp_sum.get() / max(n, 1))
