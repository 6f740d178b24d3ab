"""DLIF neuron process: Loihi 2 CUBA-LIF with per-neuron leak, threshold and decays.

Dynamics (fixed point, one step; see :mod:`rssnn.dynamics`)::

    if reset_interval and time_step % reset_interval == reset_offset:  u = v = 0
    u = wrap24(rtz(u (4096 - i_decay) / 4096) + (a_in << 6))
    v = clip24(rtz(v (4096 - v_decay) / 4096) + u + (bias_mant << 6))
    s = v > (vth_mant << 6);  v = 0 where s

Unlike Lava's ``LIF`` (whose ``du``/``dv``/``vth`` Vars are declared scalar, so reading a
per-channel value back fails), every parameter here is a Var of the neuron shape, so a layer
trained with per-channel leaks and thresholds is represented exactly and stays inspectable.
The floating-point model runs the float DLIF of ``train.neurons`` (leak = 1 - v_decay/4096)
in integer current units, with the optional per-step input gain: it adds the bias to the
membrane after each step, as the fixed point does, so it compares the membrane before that
addition with ``vth_mant - bias_mant``.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


def _full(value, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast a scalar, a per-channel (C,) array (channel last) or a full array to shape."""
    return np.broadcast_to(np.asarray(value), shape).astype(np.int32).copy()


class DLIF(AbstractProcess):
    """Spiking layer of shape ``shape`` (Lava order: (x, y, c) or (f,)).

    Args:
        i_decay, v_decay: integer decays in 1/4096 (iDecay, vDecay of the NetX file), scalar,
            per channel or per neuron.
        vth_mant: threshold mantissa, NetX's vThMant (compared as ``vth_mant << 6``).
        bias_mant: bias added as ``bias_mant << 6`` every step.
        reset_interval, reset_offset: zero u and v when ``time_step % reset_interval ==
            reset_offset`` (0: never), so images can follow each other in one run.
        gain: optional per-step input gain (float model only), length ``reset_interval``.
        num_message_bits: accepted for NetX block compatibility (binary spikes out).
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        i_decay=4096,
        v_decay=0,
        vth_mant=1,
        bias_mant=0,
        reset_interval: int = 0,
        reset_offset: int = 0,
        gain=None,
        num_message_bits: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(shape=shape, reset_interval=reset_interval, reset_offset=reset_offset, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        # The probe for the network monitor: spikes, u and the post-reset v of every step, flat
        # in Lava order and stacked into one message [s, u, v] (one send per step: every port
        # message costs a channel round), sent only when connected.
        self.probe = OutPort(shape=(3 * int(np.prod(shape)),))
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.i_decay = Var(shape=shape, init=_full(i_decay, shape))
        self.v_decay = Var(shape=shape, init=_full(v_decay, shape))
        self.vth_mant = Var(shape=shape, init=_full(vth_mant, shape))
        self.bias_mant = Var(shape=shape, init=_full(bias_mant, shape))
        steps = max(1, reset_interval)
        self.gain = Var(
            shape=(steps,), init=np.ones(steps) if gain is None else np.asarray(gain, dtype=float)
        )
        self.proc_params["num_message_bits"] = num_message_bits
