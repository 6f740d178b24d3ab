"""The integer reference forward of a :class:`~rssnn.lowered.LoweredNet` (numpy only).

Loihi 2 arithmetic on whole batches: synaptic sums as float64 products of integers (exact, see
:func:`rssnn.convolution.correlate`), then the neuron update :func:`lif_sequence`, built on
:func:`rssnn.dynamics.cuba_step`, the same code the Lava process models run. This is what Lava
must match spike for spike (``export/to_netx.py --verify``, ``python -m lava_procs.run``), and it
needs neither torch nor Lava.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rssnn import dynamics
from rssnn.layout import channel_first
from rssnn.lowered import LoweredLayer, LoweredNet, SkipSynapse, encode_input, readout_logits
from rssnn.neuron import LoihiCuba
from rssnn.neuron_cuba import CUBA
from rssnn.synapse_kinds import kind_of


def synaptic_input(layer: LoweredLayer | SkipSynapse, x: np.ndarray) -> np.ndarray:
    """Integer synaptic input [N, C, *S, T] of one synapse for integer inputs x [N, Cin, *S, T]."""
    return np.rint(kind_of(layer.kind).forward(layer, x)).astype(np.int64)


def lif_sequence(
    a_in: np.ndarray, neuron: LoihiCuba, bias, num_steps: int, record_state: bool = False
) -> Any:
    """Run Loihi 2 CUBA-LIF over time on integer synaptic input.

    Args:
        a_in: int64 [N, C, *S, T] or [N, C, *S, 1] (constant over time).
        neuron: the layer's Loihi neuron, parameters per channel [C] (or one value).
        bias: None, per channel [C], or per neuron [C, *S]: ``bias_mant``, added as
            ``bias_mant << 6`` (NetX's bias_exp) to v every step.
    Returns:
        bool spikes [N, C, *S, T]; with ``record_state`` also the int64 current u and
        post-reset voltage v after every step, both [N, C, *S, T].
    """
    a = np.asarray(a_in, dtype=np.int64)
    state_ndim = a.ndim - 2  # (C, *S): the channel axis first once the batch axis is dropped
    neuron = CUBA.on_grid(neuron, state_ndim)
    b = 0
    if bias is not None:
        b = np.asarray(bias, dtype=np.int64)
        b = (channel_first(b, state_ndim) if b.ndim == 1 else b) << CUBA.bias_shift
    u = np.zeros_like(a[..., 0])
    v = np.zeros_like(a[..., 0])
    out, us, vs = [], [], []
    for t in range(num_steps):
        u, v, s = neuron.step(u, v, a[..., 0 if a.shape[-1] == 1 else t], b)
        out.append(s)
        if record_state:
            us.append(u)
            vs.append(v)
    if record_state:
        return np.stack(out, -1), np.stack(us, -1), np.stack(vs, -1)
    return np.stack(out, -1)


def run_fixed(net: LoweredNet, pixels, record_state: bool = False) -> dict[str, Any]:
    """Fixed-point forward.

    Args:
        pixels: uint8 images [N, 3, H, W] (raw levels 0..255; the bias channel is added);
            a numpy array or a CPU torch tensor.
    Returns:
        ``spikes``: list of bool arrays per spiking layer, [N, C, H, W, T] or [N, F, T];
        ``logits``: int64 [N, classes] = sum over t of the read-out's synaptic input plus
        T times its bias (argmax = predicted class);
        with ``record_state``, ``currents`` and ``voltages``: int64 u and post-reset v per
        spiking layer, same shapes as the spikes.
    """
    steps = net.num_steps
    x = encode_input(pixels)[..., None]  # constant in time: [N, 4, H, W, 1]
    spikes, currents, voltages = [], [], []
    logits = None
    for layer in net.layers:
        a_in = synaptic_input(layer, x)
        for skip in layer.skips:  # residual currents add at the neuron's input
            a_in = a_in + synaptic_input(skip, spikes[skip.source].astype(np.int64))
        if layer.spiking:
            out = lif_sequence(a_in, layer.neuron, layer.bias, steps, record_state=record_state)
            s = out[0] if record_state else out
            if record_state:
                currents.append(out[1])
                voltages.append(out[2])
            spikes.append(s)
            x = s.astype(np.int64)
        else:
            a_in = np.broadcast_to(a_in, (*a_in.shape[:-1], steps))
            logits = readout_logits(a_in.sum(-1), layer.bias, steps)
    result = dict(spikes=spikes, logits=logits)
    if record_state:
        result.update(currents=currents, voltages=voltages)
    return result


def float_equivalent_logits(net: LoweredNet, logits: np.ndarray) -> np.ndarray:
    """Integer logits back in float units (mean over T, divided by the read-out scale)."""
    return np.asarray(logits, dtype=np.float64) / (net.num_steps * net.layers[-1].scale)


def mppd_reference(net: LoweredNet, clean, perturbed) -> dict[str, Any]:
    """Predictions and per-layer MPPD of the integer forward on clean and perturbed images.

    MPPD per spiking layer and step: mean over images of the per-image mean of eps[t]^2, with
    eps the reset-free recursion of :func:`rssnn.dynamics.mppd_step` on the current difference
    in float units (the monitor's definition); ``mpp_per_step`` is the true (post-reset)
    membrane difference, squared, for comparison.
    """
    a = run_fixed(net, clean, record_state=True)
    b = run_fixed(net, perturbed, record_state=True)
    per_step, true_per_step = [], []
    spiking = [layer for layer in net.layers if layer.spiking]
    for layer, uc, up, vc, vp in zip(spiking, a["currents"], b["currents"], a["voltages"], b["voltages"]):
        leak = layer.leak.reshape((-1,) + (1,) * (uc.ndim - 3))
        eps = np.zeros(uc.shape[:-1])
        steps_mppd, steps_mpp = [], []
        for t in range(uc.shape[-1]):
            delta = dynamics.state_to_float((uc[..., t] - up[..., t]).astype(np.float64), layer.scale)
            eps = dynamics.mppd_step(eps, leak, delta)
            steps_mppd.append(float((eps**2).reshape(len(eps), -1).mean(1).mean()))
            dv = dynamics.state_to_float((vc[..., t] - vp[..., t]).astype(np.float64), layer.scale)
            steps_mpp.append(float((dv**2).reshape(len(dv), -1).mean(1).mean()))
        per_step.append(steps_mppd)
        true_per_step.append(steps_mpp)
    return dict(
        pred_clean=a["logits"].argmax(1),
        pred_pert=b["logits"].argmax(1),
        mppd_per_step=per_step,
        mpp_per_step=true_per_step,
    )
