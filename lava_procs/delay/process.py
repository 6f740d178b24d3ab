"""SpikeDelay process: holds a layer's spikes for a fixed number of steps.

Dynamics (one step)::

    s_out[t] = s_in[t - delay]      (zeros for the first ``delay`` steps)

Residual networks need it: in Lava (and on Loihi) every synapse hop costs one step, so a skip
synapse from layer ``j`` into layer ``k`` would deliver its current ``k - j - 1`` steps before
the layer's own synapse does. Holding the source's spikes that long aligns them exactly (see
:meth:`rssnn.lowered.LoweredNet.skip_delay`). Lava's only delay mechanism, ``DelayDense``, is a
dense synapse; our skips are convolutions, so the delay is a process of its own in front of
Lava's stock ``Conv`` synapse. On Loihi 2 the same role falls to axon delays or a chain of relay
neurons; only the CPU model exists here.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class SpikeDelay(AbstractProcess):
    """Args:
    shape: the spike tensor's shape (Lava order).
    delay: steps to hold every spike, >= 1.
    """

    def __init__(self, *, shape: tuple[int, ...], delay: int, name: str | None = None) -> None:
        if delay < 1:
            raise ValueError(f"SpikeDelay needs delay >= 1, got {delay}")
        super().__init__(shape=shape, delay=delay, name=name)
        self.s_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.buffer = Var(shape=(delay, *shape), init=np.zeros((delay, *shape), dtype=np.int32))
