"""The sigma-delta neuron kind: lava-dl's ``SDNN`` (PilotNet), in stock lava-dl files only (numpy
and h5py only).

A NetX ``SDNN`` layer is one of three modes, as lava-dl NetX builds them: an input layer is a
*delta* encoder, a layer whose neuron group holds ``sigma_output`` a *sigma* decoder, every other
layer a *sigma-delta* neuron with ReLU. NetX sets ``spike_exp = state_exp = 6`` and 16 message
bits. The arithmetic is Lava's ``lava.proc.sdn`` fixed-point models' (``Delta``, ``SigmaDelta``,
``Sigma``); :meth:`SigmaDeltaNeuron.step` is its one copy in the core, and the Lava process
:class:`~lava_procs.sdn.process.SDN` (registered in ``lava_procs/neuron_procs.py``) runs Lava's.
It has no float form here (nothing trains it in rssnn-lava) and no leaky membrane (no MPPD).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from rssnn.errors import UserError
from rssnn.synapse_kinds import read_scalar, read_text

EXP = 6  # NetX's spike_exp and state_exp of sigma-delta neurons
MESSAGE_BITS = 16  # NetX's default message bits of sigma-delta neurons
MODES = ("delta", "sigma_delta", "sigma")


@dataclass(frozen=True)
class SigmaDeltaNeuron:
    """One layer's sigma-delta neuron in integers: its ``mode`` (:data:`MODES`) and threshold
    mantissa ``vth`` (NetX ``vThMant``, compared as ``vth << 12``; unused by a sigma decoder).

    One step on int64 states (sigma, act, residue) of the layer's shape and input ``a_in``::

        sigma:        sigma += a_in;  out = sigma
        delta:        new = a_in << 12
        sigma_delta:  sigma += a_in;  new = relu(sigma + bias)
        (both)        delta = new - act + residue;  sent = delta where |delta| >= vth << 12, else 0
                      residue = delta - sent;  act = new;  out = sent >> 6
    """

    mode: str
    vth: int = 0

    def step(self, state: tuple[Any, Any, Any], a_in: Any, bias: Any = 0) -> tuple[tuple, Any]:
        """((sigma, act, residue), messages); ``bias`` already shifted (``bias << 12``)."""
        sigma, act, residue = state
        if self.mode == "sigma":
            sigma = sigma + a_in
            return (sigma, act, residue), sigma
        scale = EXP + EXP
        if self.mode == "delta":
            new = a_in << scale
        else:
            sigma = sigma + a_in
            new = np.maximum(sigma + bias, 0)
        delta = new - act + residue
        sent = np.where(np.abs(delta) >= self.vth << scale, delta, 0)
        return (sigma, new, delta - sent), sent >> EXP


class SigmaDeltaKind:
    """lava-dl's sigma-delta neurons (:class:`SigmaDeltaNeuron`)."""

    name = "sdnn"
    netx_type = "SDNN"
    aliases: tuple[str, ...] = ()
    modes = MODES  # rssnn.lavadl.Neuron.model of a layer of this kind
    fields = ("vThMant",)
    float_form = None  # none: nothing here trains or runs it in float
    integer_form = SigmaDeltaNeuron
    message_bits = MESSAGE_BITS
    bias_shift = EXP + EXP  # act = relu(sigma + (bias << 12))
    resets = False  # NetX never resets sigma-delta neurons
    has_membrane = False
    # Loihi 2's limit on its neurons per core: rssnn.loihi2.RESOURCES, whose entry gives the
    # source (the compiler tiled the CUBA and the sigma-delta PilotNet identically).
    tile_resource = "neurons_per_core"

    def read(self, neuron: h5py.Group, input_layer: bool) -> SigmaDeltaNeuron:
        """The neuron of an ``SDNN`` group: its mode from where it sits (``input_layer``) and
        ``sigma_output``, its threshold (ValueError for a damaged field, UserError, one line,
        for an activation other than ReLU, which neither NetX nor this code computes)."""
        if "activation" in neuron and read_text(neuron["activation"]).lower() != "relu":
            raise UserError(
                f"{neuron.name}: sigma-delta activation '{read_text(neuron['activation'])[:20]}' has no "
                "model (NetX and this runner compute ReLU only)"
            )
        mode = "delta" if input_layer else ("sigma" if "sigma_output" in neuron else "sigma_delta")
        if mode == "sigma":
            return SigmaDeltaNeuron(mode)
        return SigmaDeltaNeuron(mode, read_scalar(neuron, "vThMant"))

    def on_grid(self, neuron: SigmaDeltaNeuron, ndim: int) -> SigmaDeltaNeuron:
        """Its parameters are one value per layer: unchanged."""
        return neuron

    def initial_state(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sigma, act, residue), int64 zeros of ``shape``."""
        return tuple(np.zeros(shape, np.int64) for _ in range(3))  # type: ignore[return-value]

    def step(self, neuron: SigmaDeltaNeuron, state: tuple, a_in: Any, bias: Any = 0) -> tuple[tuple, Any]:
        """One step of Lava's fixed-point arithmetic (:meth:`SigmaDeltaNeuron.step`)."""
        return neuron.step(state, a_in, bias)

    def recorded(self, state: tuple, out: Any) -> tuple[Any, Any, Any]:
        """What a recorded run keeps per step: (messages, sigma, act)."""
        return (out, state[0], state[1])


SIGMA_DELTA = SigmaDeltaKind()
