"""Build the clean + perturbed network pair with its monitors, run it safely, read results.

Both copies are built from one exported file, fed in lock-step by one
:class:`~lava_procs.io.process.ImageEncoder` (which also joins them into one graph: Lava only
runs what is connected), decoded by one :class:`ClassDecoder` each, and watched layer by layer
by one :class:`NetworkMonitor` (activity of the clean copy; MPPD with a perturbed copy).

Running goes through :mod:`rssnn.lava_guard`: chunks under a watchdog, and whatever happens
(error, watchdog, Ctrl-C, SIGTERM) the Lava runtime is stopped and no worker survives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rssnn import activity, dynamics
from rssnn.lava_guard import run_steps, stop
from rssnn.layout import lava_flat
from rssnn.lowered import LoweredNet, encode_input, first_step, steps_to_run
from rssnn.synapse_kinds import kind_of

from .io.process import ClassDecoder, ImageEncoder
from .monitor.process import NetworkMonitor
from .network import LavaNetwork, build


def to_lava_input(net: LoweredNet, pixels: np.ndarray) -> np.ndarray:
    """uint8 images [N, 3, H, W] -> graded input in Lava order, bias channel included."""
    return kind_of(net.layers[0].kind).lava_input(encode_input(pixels))


@dataclass
class PairGraph:
    net: LoweredNet
    num_images: int
    encoder: ImageEncoder
    clean: LavaNetwork
    pert: LavaNetwork | None
    decoders: list[ClassDecoder]
    monitor: NetworkMonitor | None = None

    @property
    def total_steps(self) -> int:
        """Steps until the read-out has seen the last image's whole window."""
        return steps_to_run(self.num_images, self.net.num_steps, len(self.clean.neurons))


def build_pair(
    net: LoweredNet, clean: np.ndarray, perturbed: np.ndarray | None, monitor: bool = True
) -> PairGraph:
    """Lava graph for N clean (and N perturbed) uint8 images [N, 3, H, W]."""
    n = len(clean)
    encoder = ImageEncoder(
        images=to_lava_input(net, clean),
        num_steps=net.num_steps,
        perturbed=None if perturbed is None else to_lava_input(net, perturbed),
    )
    copies = [build(net)] + ([build(net)] if perturbed is not None else [])
    encoder.s_out.connect(copies[0].inp)
    if perturbed is not None:
        encoder.s_out_pert.connect(copies[1].inp)
    readout = net.layers[-1]
    decoders = []
    for copy in copies:
        dec = ClassDecoder(
            num_classes=readout.out_shape[0],
            num_steps=net.num_steps,
            window_start=first_step(len(copy.neurons)),  # the read-out follows the spiking layers
            num_images=n,
            bias=readout.bias,
        )
        copy.readout.synapse.a_out.connect(dec.a_in)
        decoders.append(dec)
    mon = _network_monitor(net, copies, encoder, n) if monitor else None
    return PairGraph(net, n, encoder, copies[0], copies[1] if len(copies) > 1 else None, decoders, mon)


def _network_monitor(
    net: LoweredNet, copies: list[LavaNetwork], encoder: ImageEncoder, n: int
) -> NetworkMonitor:
    """One monitor on every spiking layer: activity of the clean copy, MPPD with a perturbed one."""
    clean = copies[0]
    fans = activity.fan_out(net)
    sizes = [int(np.prod(nc.a_in.shape)) for nc in clean.neurons]
    mon = NetworkMonitor(
        sizes=sizes,
        input_size=int(np.prod(encoder.s_out.shape)),
        num_steps=net.num_steps,
        num_images=n,
        window_starts=[first_step(k) for k in range(len(sizes))],
        input_window_start=first_step(0) - 1,  # the source sends the frame the first synapse reads
        fan_out=np.concatenate([lava_flat(f) for f in fans[1:]]),
        input_fan_out=lava_flat(fans[0]),
        leak=np.concatenate([leak.ravel() for leak in clean.leaks]),
        state_unit=np.array([dynamics.state_to_float(1.0, scale) for scale in clean.scales]),
        mppd=len(copies) > 1,
        name="monitor",
    )
    mon.watch(clean.neurons, copies[1].neurons if len(copies) > 1 else None)
    graded = encoder.s_out.flatten() if len(encoder.s_out.shape) > 1 else encoder.s_out
    graded.connect(mon.graded_in)
    return mon


def run(
    graph: PairGraph,
    run_cfg: Any,
    chunk: int = 32,
    watchdog_s: float = 120.0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run every step of ``graph``, then read the decoders and monitors; always cleans up.

    ``progress(images)`` is called after every chunk with the number of images whose whole
    window has passed the read-out.
    """
    proc = graph.encoder
    try:
        readout_delay = graph.total_steps - graph.num_images * graph.net.num_steps

        def advance(done: int, k: int) -> None:
            if progress is not None:
                progress(max(0, min(graph.num_images, (done + k - readout_delay) // graph.net.num_steps)))

        timings = run_steps(proc, graph.total_steps, run_cfg, chunk, watchdog_s, advance)
        return dict(
            predictions=[d.predictions.get().astype(int) for d in graph.decoders],
            monitor=graph.monitor.results() if graph.monitor is not None else None,
            steps=graph.total_steps,
            **timings,
        )
    finally:
        stop(proc)


def count_activity(
    net: LoweredNet, pixels: np.ndarray, run_cfg: Any, watchdog_s: float = 120.0
) -> dict[str, Any]:
    """Run uint8 images [N, 3, H, W] through one copy of ``net`` with the network monitor and
    return its totals (``spikes``, ``synops`` per spiking layer, ``input_macs``) plus the
    predictions; :func:`rssnn.activity.summarise` turns them into per-inference figures."""
    graph = build_pair(net, pixels, None, monitor=True)
    result = run(graph, run_cfg, watchdog_s=watchdog_s)
    return dict(result["monitor"], predictions=result["predictions"][0], run_s=result["run_s"])
