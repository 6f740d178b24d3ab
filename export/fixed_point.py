"""The PyTorch fixed-point mode: run a :class:`LoweredNet` with Loihi 2's integer arithmetic.

Synaptic sums use float64 convolutions of integers (exact below 2**53), then the neuron update
is :func:`train.neurons.loihi_lif_sequence`, built on :func:`rssnn.dynamics.cuba_step`, the same
code the Lava process models run. This is the reference that Lava must match spike for spike.
"""

from __future__ import annotations

import numpy as np
import torch

from export.lowering import LoweredNet, encode_input
from train.neurons import loihi_lif_sequence


def _synaptic_input(layer, x: torch.Tensor) -> torch.Tensor:
    """Integer synaptic input [N, C, *S, T] of one layer for integer inputs x [N, Cin, *S, T]."""
    n, steps = x.shape[0], x.shape[-1]
    w = torch.from_numpy(layer.weight).double()
    if layer.kind == "conv":
        merged = x.double().permute(0, 4, 1, 2, 3).reshape(n * steps, *x.shape[1:4])
        y = torch.nn.functional.conv2d(merged, w, None, layer.stride, layer.padding)
        y = y.reshape(n, steps, *y.shape[1:]).permute(0, 2, 3, 4, 1)
    else:
        flat = x.double().reshape(n, -1, steps)
        y = torch.einsum("oi,nit->not", w, flat)
    return torch.round(y).to(torch.int64)


def _bias(layer) -> torch.Tensor:
    """(C,) per channel or (C, H, W) per neuron; loihi_lif_sequence broadcasts both."""
    return torch.from_numpy(np.asarray(layer.bias, dtype=np.int64))


@torch.no_grad()
def run_fixed(net: LoweredNet, pixels: torch.Tensor, record_state: bool = False) -> dict[str, object]:
    """Fixed-point forward.

    Args:
        pixels: uint8 images [N, 3, H, W] (raw levels 0..255; the bias channel is added).
    Returns:
        ``spikes``: list of bool tensors per spiking layer, [N, C, H, W, T] or [N, F, T];
        ``logits``: int64 [N, classes] = sum over t of the read-out's synaptic input plus
        T times its bias (argmax = predicted class);
        with ``record_state``, ``currents`` and ``voltages``: int64 u and post-reset v per
        spiking layer, same shapes as the spikes.
    """
    steps = net.num_steps
    x = encode_input(pixels).unsqueeze(-1)  # constant in time: [N, 4, H, W, 1]
    spikes, currents, voltages = [], [], []
    logits = None
    for layer in net.layers:
        a_in = _synaptic_input(layer, x)
        if layer.spiking:
            out = loihi_lif_sequence(
                a_in, layer.i_decay, layer.v_decay, layer.vth, _bias(layer), steps, record_state=record_state
            )
            s = out[0] if record_state else out
            if record_state:
                currents.append(out[1])
                voltages.append(out[2])
            spikes.append(s)
            x = s.to(torch.int64)
        else:
            a_in = a_in.expand(*a_in.shape[:-1], steps)
            logits = a_in.sum(-1) + steps * _bias(layer).view(1, -1)
    result = dict(spikes=spikes, logits=logits)
    if record_state:
        result.update(currents=currents, voltages=voltages)
    return result


def float_equivalent_logits(net: LoweredNet, logits: torch.Tensor) -> torch.Tensor:
    """Integer logits back in float units (mean over T, divided by the read-out scale)."""
    return logits.double() / (net.num_steps * net.layers[-1].scale)
