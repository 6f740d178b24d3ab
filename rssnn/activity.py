"""Activity of a lowered network per inference: spikes, synaptic operations, neuron updates and
activation sparsity, per layer (numpy only).

The counts the on-device monitor (``lava_procs.monitor``) makes and the counts of the integer
reference (:func:`reference_counts`) are the same quantities, so a test holds them equal.

* **Spikes**: spikes a spiking layer emits in an image's window of T steps.
* **Synaptic operations**: each spike times its neuron's fan-out, the non-zero synapses it drives
  (its own next layer's synapse and any skip synapses reading it). The graded input counts as
  multiply-accumulates: each non-zero input value (pixels and the bias channel) times its fan-out.
* **Neuron updates**: every neuron (the read-out's too) updates every step: neurons x T.
* **Sparsity**: 1 - spikes / (neurons x T) per spiking layer.

Shapes: fan-outs are in PyTorch order, [C, H, W] or [F]; ``flat`` versions are flattened in
Lava's (x, y, c) order, the order the monitor receives spikes in.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rssnn.lowered import LoweredLayer, LoweredNet, SkipSynapse, encode_input


def synapse_fan_out(syn: LoweredLayer | SkipSynapse, in_shape: tuple[int, ...]) -> np.ndarray:
    """Non-zero synapses each input neuron of ``syn`` drives, [in_shape]."""
    w = np.asarray(syn.weight) != 0
    if syn.kind == "dense":
        return w.sum(0).reshape(in_shape).astype(np.int64)
    c, h, wd = in_shape
    _, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = syn.stride, syn.padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    padded = np.zeros((c, h + 2 * ph + sh * oh + kh, wd + 2 * pw + sw * ow + kw), np.int64)
    for dy in range(kh):  # every output position reads input (oy s - p + dy, ox s - p + dx)
        for dx in range(kw):
            per_channel = w[:, :, dy, dx].sum(0)  # output channels reading channel c at this tap
            padded[:, dy : dy + sh * oh : sh, dx : dx + sw * ow : sw] += per_channel[:, None, None]
    return padded[:, ph : ph + h, pw : pw + wd]


def fan_out(net: LoweredNet) -> list[np.ndarray]:
    """Per-neuron fan-out of the input (first entry, [C + 1, H, W] with the bias channel) and
    of every spiking layer (in order), int64 in PyTorch order."""
    out = [np.zeros(net.input_shape, np.int64)]
    spiking = []
    for k, layer in enumerate(net.layers):
        source = out[0] if k == 0 else out[1 + spiking.index(k - 1)]
        source += synapse_fan_out(layer, layer.in_shape).reshape(source.shape)
        for skip in layer.skips:
            target = out[1 + spiking.index(skip.source)]
            target += synapse_fan_out(skip, skip.in_shape)
        if layer.spiking:
            spiking.append(k)
            out.append(np.zeros(layer.out_shape, np.int64))
    return out


def reference_counts(net: LoweredNet, pixels) -> dict[str, np.ndarray]:
    """Totals over the images (uint8 [N, 3, H, W]) from the integer reference: ``spikes`` and
    ``synops`` per spiking layer (int64 [L]) and ``input_macs`` (int64 scalar)."""
    from rssnn.integer_forward import run_fixed

    fans = fan_out(net)
    x = encode_input(pixels)
    input_macs = int((x != 0).sum(0).reshape(-1) @ fans[0].reshape(-1)) * net.num_steps
    spikes = run_fixed(net, pixels)["spikes"]
    per_neuron = [s.sum((0, -1)) for s in spikes]  # spikes per neuron over images and steps
    return dict(
        spikes=np.array([int(p.sum()) for p in per_neuron], np.int64),
        synops=np.array([int((p * f).sum()) for p, f in zip(per_neuron, fans[1:])], np.int64),
        input_macs=np.int64(input_macs),
    )


def summarise(net: LoweredNet, counts: dict[str, Any], images: int) -> dict[str, Any]:
    """Per-inference activity from totals over ``images`` (the monitor's or the reference's):
    per spiking layer and for the network, as plain numbers (JSON ready)."""
    steps = net.num_steps
    names = [layer.name for layer in net.layers if layer.spiking]
    neurons = [int(np.prod(layer.out_shape)) for layer in net.layers if layer.spiking]
    all_neurons = sum(int(np.prod(layer.out_shape)) for layer in net.layers)
    n = max(images, 1)
    layers = []
    for name, size, s, ops in zip(names, neurons, counts["spikes"], counts["synops"]):
        layers.append(
            dict(
                name=name,
                neurons=size,
                spikes_per_inference=float(s) / n,
                synops_per_inference=float(ops) / n,
                neuron_updates_per_inference=size * steps,
                sparsity=1.0 - float(s) / (n * size * steps),
            )
        )
    spikes = float(np.sum(counts["spikes"])) / n
    synops = float(np.sum(counts["synops"])) / n
    input_macs = float(counts["input_macs"]) / n
    return dict(
        images=int(images),
        num_steps=steps,
        layers=layers,
        input_macs_per_inference=input_macs,
        spikes_per_inference=spikes,
        synops_per_inference=synops + input_macs,
        neuron_updates_per_inference=all_neurons * steps,
        sparsity=1.0 - spikes / (sum(neurons) * steps),
    )
