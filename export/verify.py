"""Verification: the exported file in Lava (Loihi2SimCfg, fixed point) vs the integer reference.

The reference is :func:`rssnn.integer_forward.run_fixed`: numpy, the core's one Loihi integer
arithmetic (:mod:`rssnn.dynamics`), which training's ``forward_fixed`` also runs.

Lava runs the file through stock ``lava.lib.dl.netx.hdf5.Network`` (residual files, which stock
NetX cannot describe, through our builder :func:`rssnn.lava_procs.network.build`): N images back
to back from a RingBuffer, each repeated for T steps, with NetX's pipelined per-layer reset
(``reset_interval=T``), so one compiled network serves all images. Each layer's spikes leave
through a ``lava.proc.io.extractor.Extractor`` (a channel, not per-element ``Var.get``, which
costs ~30 us per element). Layer k (0-based) processes step tau of image n at Lava time step
``n T + 2 + k + tau``: one step for the source and one per synapse (Lava's synapse delay).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rssnn.integer_forward import run_fixed
from rssnn.lava_guard import cleanup_on_exit, import_lava_runtime, run_steps, stop
from rssnn.layout import swap_layout
from rssnn.lowered import (
    INPUT_MESSAGE_BITS,
    LoweredNet,
    encode_input,
    first_step,
    readout_logits,
    steps_to_run,
)
from rssnn.synapse_kinds import kind_of


def run_lava(
    path: str | Path,
    net: LoweredNet,
    pixels: torch.Tensor,
    chunk: int = 64,
    watchdog_s: float = 120.0,
    fast_synapses: bool = True,
) -> dict[str, Any]:
    """Run uint8 images [N, 3, H, W] through the file in Lava; spikes per spiking layer.

    The file goes through stock ``netx.hdf5.Network``; the synapses run on our exact fast
    models unless ``fast_synapses`` is False. Returns ``spikes`` (list of bool arrays
    [N, C, H, W, T] / [N, F, T] in PyTorch order),
    ``logits`` (int64 [N, classes], the integer read-out applied to Lava's last spikes) and
    timing figures.
    """
    import_lava_runtime()
    from lava.lib.dl.netx import hdf5 as netx_hdf5  # by name: lava_procs may have skipped netx's __init__
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.source import RingBuffer

    num_steps = net.num_steps
    n = pixels.shape[0]
    spiking = [layer for layer in net.layers if layer.spiking]
    total = steps_to_run(n, num_steps, len(spiking) - 1)  # the last spiking layer's windows
    frames = kind_of(net.layers[0].kind).lava_input(encode_input(pixels).astype(np.int32))
    data = np.repeat(frames[..., None], num_steps, axis=-1)  # N, W, H, C, T
    data = np.concatenate(
        [
            np.moveaxis(data, 0, -2).reshape(*frames.shape[1:], -1),
            np.zeros((*frames.shape[1:], first_step(len(spiking))), np.int32),  # drain frames
        ],
        -1,
    )
    t0 = time.perf_counter()
    source = RingBuffer(data=data)
    if net.residual:  # stock NetX cannot describe it: our builder, same blocks and timing
        from ..lava_procs.network import build

        graph = build(net, reset_offset=1)
        source.s_out.connect(graph.inp)
        blocks, close = graph.blocks[: len(spiking)], lambda: None
    else:
        lava_net = netx_hdf5.Network(
            net_config=str(path),
            input_message_bits=INPUT_MESSAGE_BITS,
            reset_interval=num_steps,
            reset_offset=1,
        )
        source.s_out.connect(lava_net.inp)
        blocks = [b for b in lava_net.layers][: len(spiking)]
        close = lava_net.net_config.f.close  # NetX keeps the HDF5 file open; the exporter edits it next
    extractors = []
    for block in blocks:
        ex = Extractor(shape=block.out.shape, buffer_size=chunk)
        block.out.connect(ex.in_port)
        extractors.append(ex)
    recorded = [np.zeros((*b.out.shape, total), dtype=bool) for b in blocks]
    build_s = time.perf_counter() - t0
    # The Extractor's model carries no tag: name it explicitly.
    from ..lava_procs import backends

    run_cfg = backends.choose("sim").run_config(
        fast_synapses=fast_synapses, extra_models={Extractor: PyLoihiExtractorModel}
    )

    def read_sinks(done: int, k: int) -> None:
        for ex, rec in zip(extractors, recorded):
            for j in range(k):
                rec[..., done + j] = ex.receive() != 0

    t_run = time.perf_counter()
    with cleanup_on_exit():
        try:
            run_steps(source, total, run_cfg, chunk=chunk, watchdog_s=watchdog_s, after_chunk=read_sinks)
        finally:
            stop(source)
            close()
    run_s = time.perf_counter() - t_run
    spikes = []
    for k, rec in enumerate(recorded):
        start = first_step(k) - 1  # recorded[..., i] holds Lava step i + 1
        windows = np.stack([rec[..., start + i * num_steps : start + (i + 1) * num_steps] for i in range(n)])
        # N, W, H, C, T -> N, C, H, W, T (a dense layer's N, F, T stays)
        spikes.append(swap_layout(windows, axis=1).copy())
    readout = net.layers[-1]
    last = spikes[-1].reshape(n, -1, num_steps).astype(np.float64)
    summed = np.einsum("oi,nit->no", readout.weight.astype(np.float64), last)
    logits = readout_logits(summed, readout.bias, num_steps)
    return dict(spikes=spikes, logits=logits, build_s=build_s, run_s=run_s, steps=total)


def compare(net: LoweredNet, lava: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """Spike-for-spike comparison, per layer, and agreement of predicted classes."""
    names = [layer.name for layer in net.layers if layer.spiking]
    per_layer = {}
    for name, a, b in zip(names, lava["spikes"], fixed["spikes"]):
        per_layer[name] = dict(
            mismatches=int((a != b).sum()),
            lava_spikes=int(a.sum()),
            reference_spikes=int(b.sum()),
            entries=int(np.size(a)),
        )
    agree = float(np.mean(np.asarray(lava["logits"]).argmax(1) == np.asarray(fixed["logits"]).argmax(1)))
    return dict(
        spike_mismatches=sum(v["mismatches"] for v in per_layer.values()),
        per_layer=per_layer,
        prediction_agreement=agree,
    )


def model_predictor(model: torch.nn.Module, batch_size: int = 250) -> Callable[[torch.Tensor], np.ndarray]:
    """A trained model as ``float_predict``: uint8 images [N, 3, H, W] -> classes [N] (int64)."""
    model.eval()

    @torch.no_grad()
    def predict(pixels: torch.Tensor) -> np.ndarray:
        chunks = [pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size)]
        return np.concatenate([model(c.float() / 255).argmax(1).numpy() for c in chunks])

    return predict


def verify(
    path: str | Path,
    net: LoweredNet,
    float_predict: Callable[[torch.Tensor], np.ndarray],
    pixels: torch.Tensor,
    labels: torch.Tensor,
) -> dict[str, Any]:
    """Lava vs the integer reference on these images, plus float and fixed-point accuracies.

    ``float_predict`` maps uint8 images [N, 3, H, W] to the float model's classes [N]: the
    trained checkpoint, or the float reference of an imported NIR graph."""
    t0 = time.perf_counter()
    fixed = run_fixed(net, pixels)
    fixed_s = time.perf_counter() - t0
    lava = run_lava(path, net, pixels)
    report = compare(net, lava, fixed)
    float_pred = float_predict(pixels)
    y, fixed_pred = labels.numpy(), fixed["logits"].argmax(1)
    report.update(
        n_images=int(len(labels)),
        float_accuracy=float(np.mean(float_pred == y)),
        fixed_point_accuracy=float(np.mean(fixed_pred == y)),
        lava_accuracy=float(np.mean(lava["logits"].argmax(1) == y)),
        float_fixed_agreement=float(np.mean(float_pred == fixed_pred)),
        seconds=dict(
            integer_reference=fixed_s,
            lava_build=lava["build_s"],
            lava_run=lava["run_s"],
            lava_steps=lava["steps"],
            lava_per_image=lava["run_s"] / max(1, len(labels)),
        ),
    )
    report["accuracy_drop_pp"] = 100 * (report["float_accuracy"] - report["fixed_point_accuracy"])
    return report


def fixed_point_accuracy(
    net: LoweredNet,
    float_predict: Callable[[torch.Tensor], np.ndarray],
    pixels: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 500,
) -> dict[str, float]:
    """Float vs fixed-point accuracy on many images without Lava (fast): the float model against
    the numpy integer reference (:func:`rssnn.integer_forward.run_fixed`).

    Lava equals the fixed-point model bit for bit (checked by :func:`verify` on fewer images),
    so this measures the quantisation drop of the deployed network on a meaningful sample.
    """
    float_ok = fixed_ok = agree = 0
    for start in range(0, len(labels), batch_size):
        px, y = pixels[start : start + batch_size], labels[start : start + batch_size]
        f = float_predict(px)
        q = run_fixed(net, px)["logits"].argmax(1)
        y = y.numpy()
        float_ok += int((f == y).sum())
        fixed_ok += int((q == y).sum())
        agree += int((f == q).sum())
    n = max(1, len(labels))
    return dict(
        images=len(labels),
        float_accuracy=float_ok / n,
        fixed_point_accuracy=fixed_ok / n,
        float_fixed_agreement=agree / n,
        accuracy_drop_pp=100 * (float_ok - fixed_ok) / n,
    )
