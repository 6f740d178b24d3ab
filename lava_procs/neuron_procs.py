"""Lava's half of each neuron kind of :mod:`rssnn.neuron_kinds`: its process and NetX neuron_params.

    params = neuron_procs.of(kind).neuron_params(neuron, shape, message_bits=0,
                                                 reset_interval=T, reset_offset=k)
    block = netx.Dense(..., neuron_params=params)    # NetX builds params["neuron_proc"]

One class per kind, one row of :data:`PROCS` keyed by the kind's name; the module refuses to
import if the two tables differ, so a kind added in the core without its Lava process (or the
reverse) fails at once. ``lava_procs/network.py`` (our files) and ``lava_procs/lavadl.py``
(stock lava-dl files) take their neuron processes here. This module is no process folder
(Lava's compiler executes every ``.py`` beside a process module).

Shapes: ``shape`` is a layer's Lava shape, (x, y, c) or (f,); per-channel parameters are
broadcast along its last (channel) axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rssnn import neuron_kinds
from rssnn.neuron import LoihiCuba
from rssnn.neuron_sigma_delta import EXP, SigmaDeltaNeuron

from .dlif.process import DLIF
from .sdn.process import SDN


def _per_channel(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(C,) or (1,) -> int64 (C,) along the Lava shape's channel axis."""
    return np.broadcast_to(np.asarray(values, dtype=np.int64).reshape(-1), shape[-1:]).copy()


class _NeuronProcess:
    """What every kind's Lava half gives a NetX block: ``neuron_params`` holding its process
    (``neuron_proc``), the Var its bias goes to (``bias_key``), its message bits, and the
    kind's own parameters (:meth:`own_params`)."""

    process: type
    bias_key: str

    def neuron_params(
        self,
        neuron: Any,
        shape: tuple[int, ...],
        *,
        message_bits: int,
        reset_interval: int,
        reset_offset: int,
    ) -> dict[str, Any]:
        """NetX ``neuron_params`` of a layer of Lava ``shape`` whose neuron (the kind's integer
        form) is ``neuron``; ``reset_interval`` / ``reset_offset``: zero its state every
        ``reset_interval`` steps at that phase, where the kind resets at all."""
        return dict(
            neuron_proc=self.process,
            bias_key=self.bias_key,
            num_message_bits=message_bits,
            **self.own_params(neuron, shape, reset_interval, reset_offset),
        )

    def own_params(self, neuron: Any, shape: tuple[int, ...], reset_interval: int, reset_offset: int) -> dict:
        raise NotImplementedError


class CubaProcess(_NeuronProcess):
    """CUBA: :class:`~lava_procs.dlif.process.DLIF` (per-channel Vars, resets every window)."""

    kind = neuron_kinds.KINDS["cuba"]
    process = DLIF
    bias_key = "bias_mant"

    def own_params(
        self, neuron: LoihiCuba, shape: tuple[int, ...], reset_interval: int, reset_offset: int
    ) -> dict:
        return dict(
            reset_interval=reset_interval,
            reset_offset=reset_offset,
            i_decay=_per_channel(neuron.i_decay, shape),
            v_decay=_per_channel(neuron.v_decay, shape),
            vth_mant=_per_channel(neuron.vth_mant, shape),
        )


class SigmaDeltaProcess(_NeuronProcess):
    """Sigma-delta: :class:`~lava_procs.sdn.process.SDN` (never reset, as NetX builds it)."""

    kind = neuron_kinds.KINDS["sdnn"]
    process = SDN
    bias_key = "bias"

    def own_params(
        self, neuron: SigmaDeltaNeuron, shape: tuple[int, ...], reset_interval: int, reset_offset: int
    ) -> dict:
        return dict(mode=neuron.mode, vth=neuron.vth, spike_exp=EXP, state_exp=EXP)


NeuronProcess = CubaProcess | SigmaDeltaProcess
PROCS: dict[str, NeuronProcess] = {p.kind.name: p for p in (CubaProcess(), SigmaDeltaProcess())}
if set(PROCS) != set(neuron_kinds.KINDS):
    raise ImportError(
        f"lava_procs.neuron_procs covers neuron kinds {sorted(PROCS)}, rssnn.neuron_kinds has "
        f"{sorted(neuron_kinds.KINDS)}: every kind needs its Lava process here"
    )


def of(kind: neuron_kinds.NeuronKind) -> NeuronProcess:
    """The Lava process of a neuron kind."""
    return PROCS[kind.name]
