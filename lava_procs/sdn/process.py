"""SDN: lava-dl's sigma-delta neurons (input delta encoder, sigma-delta, sigma decoder) with a
probe for the network monitor.

The arithmetic is Lava's own (``lava.proc.sdn``: ``Delta``, ``SigmaDelta``, ``Sigma``, fixed
point, as lava-dl NetX configures them: ReLU, ``spike_exp = state_exp = 6``, no cumulative
error); one step::

    sigma:        sigma += a_in;  s_out = sigma
    delta:        act_new = a_in << 12
    sigma_delta:  sigma += a_in;  act_new = relu(sigma + (bias << 12))
    (both)        delta = act_new - act + residue;  s = delta where |delta| >= vth << 12, else 0
                  residue = delta - s;  act = act_new;  s_out = s >> 6

What Lava's processes lack is a way to watch them without a probe per Var (every ``Var.get``
crosses processes element by element), so this process adds the ``probe`` port of
:class:`~lava_procs.dlif.process.DLIF`: [s_out, sigma, act] flat in Lava order, one message per
step, sent only when connected. Sigma-delta neurons are never reset (NetX ignores resets there).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

MODES = ("delta", "sigma_delta", "sigma")


class SDN(AbstractProcess):
    """Args:
    shape: Lava order, (x, y, c) or (f,).
    mode: 'delta' (an input layer), 'sigma_delta' or 'sigma' (an output decoder).
    vth: threshold mantissa (NetX ``vThMant``), compared as ``vth << (spike_exp + state_exp)``.
    bias: per neuron or per channel, added as ``bias << (spike_exp + state_exp)``.
    spike_exp, state_exp: NetX's 6 and 6.
    num_message_bits: accepted for NetX block compatibility (the block reads it).
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        mode: str = "sigma_delta",
        vth: int = 0,
        bias=0,
        spike_exp: int = 6,
        state_exp: int = 6,
        num_message_bits: int = 16,
        name: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"SDN mode must be one of {MODES}, got {mode!r}")
        super().__init__(shape=shape, mode=mode, spike_exp=spike_exp, state_exp=state_exp, name=name)
        scale = 1 << (spike_exp + state_exp)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.probe = OutPort(shape=(3 * int(np.prod(shape)),))
        self.vth = Var(shape=(1,), init=int(vth) * scale)
        self.bias = Var(
            shape=shape, init=np.broadcast_to(np.asarray(bias, dtype=np.int64) * scale, shape).copy()
        )
        self.sigma = Var(shape=shape, init=0)
        self.act = Var(shape=shape, init=0)
        self.residue = Var(shape=shape, init=0)
        self.proc_params["num_message_bits"] = num_message_bits
