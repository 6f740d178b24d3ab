"""Build the Lava graph of an exported network, reusing lava-dl NetX's blocks.

NetX's ``Conv`` / ``Dense`` blocks wrap a Lava synapse process and a neuron process chosen by
``neuron_params['neuron_proc']``; we pass our :class:`~lava_procs.dlif.process.DLIF` there (the
CUBA kind's process in :mod:`lava_procs.neuron_procs`), so
per-channel leaks and thresholds are first-class Vars (stock NetX's ``LIF`` cannot read them
back) while the synapses, weight layouts and block wiring are NetX's own. The weight and
stride transforms mirror ``lava.lib.dl.netx.hdf5.Network.create_conv/create_dense``.

Timing: layer k (0-based) processes step tau of image n at Lava time step
``n T + 2 + k + tau`` (one step for the source, one per synapse); its reset phase is set so
its state is zero at the start of each of its image windows. Residual inputs (skip synapses
from layer j) pass a :class:`~lava_procs.delay.process.SpikeDelay` of ``k - j - 1`` steps and
a stock Lava ``Conv`` into layer k's neuron, so they arrive on the same step as its own input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rssnn.layout import lava_conv_weight, lava_shape, swap_layout
from rssnn.lowered import INPUT_MESSAGE_BITS, LoweredLayer, LoweredNet, SkipSynapse
from rssnn.netx_file import FILE_KIND
from rssnn.neuron import LoihiCuba

from .dlif.process import DLIF
from .neuron_procs import of as neuron_proc

# Our files' neuron kind (rssnn.netx_file.FILE_KIND, CUBA) as a Lava process: DLIF.
FILE_PROC = neuron_proc(FILE_KIND)


def _per_neuron(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Per channel (C,) -> per neuron in Lava order; channel is the last Lava axis."""
    return np.broadcast_to(np.asarray(values, dtype=np.int64), shape).copy()


def _bias(layer: LoweredLayer, shape: tuple[int, ...]) -> np.ndarray:
    b = np.asarray(layer.bias, dtype=np.int64)
    return _per_neuron(b, shape) if b.ndim == 1 else swap_layout(b).copy()


def _conv_args(syn: LoweredLayer | SkipSynapse) -> dict[str, Any]:
    """A conv synapse's arguments in Lava's layout, as NetX's ``create_conv`` makes them."""
    return dict(
        weight=lava_conv_weight(syn.weight),
        stride=np.array(syn.stride[::-1]),
        padding=np.array(syn.padding[::-1]),
        dilation=np.array([1, 1]),
        groups=1,
    )


def _conv_block(layer: LoweredLayer, input_shape: tuple[int, ...], **block: Any) -> Any:
    from . import netx_blocks

    return netx_blocks.load().Conv(input_shape=input_shape, **block, **_conv_args(layer))


def _dense_block(layer: LoweredLayer, input_shape: tuple[int, ...] | None, **block: Any) -> Any:
    from . import netx_blocks

    netx = netx_blocks.load()
    weight, bits, exponent, sign_mode = netx.optimize_weight_bits(layer.weight.astype(np.float64))
    return netx.Dense(
        weight=weight, num_weight_bits=bits, weight_exponent=exponent, sign_mode=sign_mode, **block
    )


# Lava's half of each synapse kind of rssnn.synapse_kinds: a NetX block (synapse + neuron).
BLOCKS = {"conv": _conv_block, "dense": _dense_block}


def _connect_skip(source: Any, target: Any, skip: SkipSynapse, delay: int) -> None:
    """source block's spikes -> SpikeDelay (``delay`` steps) -> Lava Conv -> target's neuron.

    The target neuron's in-port then has two or more incoming synapses; Lava sums them, as
    Loihi sums the synapses into one compartment.
    """
    from lava.proc.conv.process import Conv as ConvSynapse

    from rssnn.errors import UserError

    from .delay.process import SpikeDelay

    if skip.kind != "conv":
        raise UserError(f"a {skip.kind} skip synapse has no Lava mapping yet (conv skips only)")
    synapse = ConvSynapse(input_shape=lava_shape(skip.in_shape), num_message_bits=0, **_conv_args(skip))
    spikes = source.out
    if delay > 0:
        hold = SpikeDelay(shape=source.out.shape, delay=delay)
        spikes.connect(hold.s_in)
        spikes = hold.s_out
    spikes.connect(synapse.s_in)
    synapse.a_out.connect(target.neuron.a_in)


@dataclass
class LavaNetwork:
    """One copy of the network as Lava processes."""

    blocks: list[Any]
    neurons: list[DLIF]  # spiking layers only, in order
    readout: Any  # the read-out block; its synapse's a_out carries the logits' increments
    inp: Any  # the in-port of the first block (graded input)
    layer_names: list[str] = field(default_factory=list)
    leaks: list[np.ndarray] = field(default_factory=list)  # per neuron, Lava order
    scales: list[float] = field(default_factory=list)


def build(net: LoweredNet, reset_offset: int = 1, gains: list[np.ndarray] | None = None) -> LavaNetwork:
    """Create the NetX blocks of ``net`` with DLIF neurons, pipelined resets every T steps.

    ``reset_offset`` = 1 for a source that starts sending at step 1 (RingBuffer). ``gains``
    (per spiking layer, length T) enable the float model's per-step input gain.
    """
    steps = net.num_steps
    blocks, neurons, names, leaks, scales = [], [], [], [], []
    input_bits = INPUT_MESSAGE_BITS
    prev_shape = lava_shape(net.input_shape)
    for k, layer in enumerate(net.layers):
        shape = lava_shape(layer.out_shape)
        neuron = layer.neuron if layer.spiking else LoihiCuba.integrator()  # read-out: integrates
        neuron_params = FILE_PROC.neuron_params(
            neuron, shape, message_bits=0, reset_interval=steps, reset_offset=(reset_offset + 1 + k) % steps
        )
        if gains is not None and layer.spiking:
            neuron_params["gain"] = gains[len(neurons)]
        block = BLOCKS[layer.kind](
            layer,
            input_shape=prev_shape,
            shape=shape,
            neuron_params=neuron_params,
            input_message_bits=input_bits,
            bias=_bias(layer, shape),
        )
        if blocks:
            src = blocks[-1].out
            if layer.flatten_before and len(blocks[-1].out.shape) == 3:
                src = src.transpose([2, 1, 0]).flatten()  # (C, H, W) order, as NetX
            src.connect(block.inp)
        blocks.append(block)
        for skip in layer.skips:
            _connect_skip(blocks[skip.source], block, skip, net.skip_delay(k, skip))
        if layer.spiking:
            neurons.append(block.neuron)
            names.append(layer.name)
            leaks.append(np.broadcast_to(layer.leak, shape).copy())  # per neuron, Lava order
            scales.append(layer.scale)
        input_bits = 0
        prev_shape = shape
    return LavaNetwork(blocks, neurons, blocks[-1], blocks[0].inp, names, leaks, scales)
