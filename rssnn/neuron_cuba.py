"""The CUBA neuron kind: Loihi 2 CUBA-LIF, our DLIF files' neuron and lava-dl's ``CUBA`` / ``LOIHI``
(numpy and h5py only).

Its two forms are :class:`rssnn.neuron.FloatCuba` (float leaks and threshold: training, Lava's
floating-point model) and :class:`rssnn.neuron.LoihiCuba` (the integers ``iDecay``, ``vDecay``,
``vThMant`` [C] that NetX stores); their arithmetic is :mod:`rssnn.dynamics`'. This class adds
what the rest of the code asks of a neuron kind: its NetX type names and fields (written, and
read back checked), its integer step, and the Loihi 2 resource that caps its neurons per core.
Its Lava process is :class:`~lava_procs.dlif.process.DLIF`, registered in
``lava_procs/neuron_procs.py`` (the core does not import Lava).
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from rssnn import dynamics
from rssnn.layout import channel_first
from rssnn.neuron import FloatCuba, LoihiCuba
from rssnn.synapse_kinds import read_integers


def _scalar_or_array(a: np.ndarray) -> Any:
    """A parameter equal across channels as one int (what lava-dl writes), else the [C] array."""
    return int(a[0]) if len(np.unique(a)) == 1 else a


class CubaKind:
    """Loihi 2 CUBA-LIF: ``u = u (1 - iDecay/4096) + a``, ``v = v (1 - vDecay/4096) + u + b``,
    a binary spike and a hard reset where ``v > vThMant << 6`` (:func:`rssnn.dynamics.cuba_step`)."""

    name = "cuba"
    netx_type = "CUBA"  # what our exporter writes
    # lava-dl's NetX reads LOIHI as CUBA (hdf5.Network.get_neuron_params), and so do we.
    aliases = ("LOIHI",)
    modes = ("cuba",)  # rssnn.lavadl.Neuron.model of a layer of this kind
    fields = ("iDecay", "vDecay", "vThMant")  # LoihiCuba's order
    float_form = FloatCuba
    integer_form = LoihiCuba
    message_bits = 0  # binary spikes
    bias_shift = dynamics.NETX_BIAS_EXP  # v += bias_mant << 6, as lava-dl NetX sets bias_exp
    resets = True  # its state is zeroed at every input window (reset_interval)
    has_membrane = True  # a leaky membrane: the MPPD is defined for it
    # Loihi 2's limit on its neurons per core: rssnn.loihi2.RESOURCES, whose entry gives the
    # source (the compiler tiled the CUBA and the sigma-delta PilotNet identically).
    tile_resource = "neurons_per_core"

    def write(self, group: h5py.Group, neuron: LoihiCuba) -> None:
        """NetX's ``neuron`` group of a layer: type, the three fields (one value where all channels
        agree), ``refDelay`` 1 and binary spikes, as lava-dl writes a CUBA neuron."""
        group.create_dataset("neuron/type", (1,), "S10", [self.netx_type.encode("ascii")])
        for key, value in neuron.netx().items():
            group.create_dataset(f"neuron/{key}", data=_scalar_or_array(value))
        group.create_dataset("neuron/refDelay", data=1)
        group.create_dataset("neuron/gradedSpike", data=False)

    def read(self, neuron: h5py.Group, channels: int) -> LoihiCuba:
        """The fields of a ``neuron`` group as int64 [channels]: each a scalar, (1,) or
        (channels,) (ValueError otherwise, which the file readers report as damage)."""
        values = []
        for key in self.fields:
            shape = neuron[key].shape if key in neuron else None
            if shape not in ((), (1,), (channels,)):
                raise ValueError(f"{neuron.name}/{key} has shape {shape}, expected a scalar or ({channels},)")
            values.append(np.broadcast_to(read_integers(neuron, key, shape), (channels,)).copy())
        return LoihiCuba(*values)

    def on_grid(self, neuron: LoihiCuba, ndim: int) -> LoihiCuba:
        """``neuron``'s [C] (or [1]) parameters shaped to broadcast against states of ``ndim``
        axes, channel first: [C, 1, 1] for (C, H, W), a scalar for one shared value."""
        return LoihiCuba(*(channel_first(p, ndim) for p in (neuron.i_decay, neuron.v_decay, neuron.vth_mant)))

    def initial_state(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(u, v), int64 zeros of ``shape``: the state at the start of a window."""
        return np.zeros(shape, np.int64), np.zeros(shape, np.int64)

    def step(self, neuron: LoihiCuba, state: tuple[Any, Any], a_in: Any, bias: Any = 0) -> tuple[tuple, Any]:
        """One bit-exact step: ((u, v after reset), spikes) from ``state`` = (u, v) int64 and the
        synaptic input ``a_in``; ``bias`` already shifted (``bias_mant << bias_shift``)."""
        u, v, spikes = neuron.step(*state, a_in, bias)
        return (u, v), spikes

    def recorded(self, state: tuple[Any, Any], out: Any) -> tuple[Any, Any, Any]:
        """What a recorded run keeps per step: (spikes, u, v)."""
        return (out, *state)


CUBA = CubaKind()
