"""Build the clean + perturbed network pair with its monitors, run it safely, read results.

Both copies are built from one exported file, fed in lock-step by one
:class:`~lava_procs.io.process.ImageEncoder` (which also joins them into one graph: Lava only
runs what is connected), decoded by one :class:`ClassDecoder` each, and watched layer by layer
by :class:`MembranePerturbationMonitor` processes.

Running goes through :mod:`rssnn.lava_guard`: chunks under a watchdog, and whatever happens
(error, watchdog, Ctrl-C, SIGTERM) the Lava runtime is stopped and no worker survives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rssnn import dynamics
from rssnn.lava_guard import run_steps, stop
from rssnn.lava_procs.io.process import ClassDecoder, ImageEncoder
from rssnn.lava_procs.monitor.process import MembranePerturbationMonitor
from rssnn.lava_procs.network import LavaNetwork, build
from rssnn.lowered import LoweredNet, encode_input, first_step, steps_to_run
from rssnn.synapse_kinds import kind_of


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
    monitors: list[MembranePerturbationMonitor] = field(default_factory=list)

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
    monitors = []
    if monitor and perturbed is not None:
        for k, (nc, npert) in enumerate(zip(copies[0].neurons, copies[1].neurons)):
            mon = MembranePerturbationMonitor(
                shape=nc.a_in.shape,
                num_steps=net.num_steps,
                leak=copies[0].leaks[k],
                state_unit=dynamics.state_to_float(1.0, copies[0].scales[k]),
                window_start=first_step(k),
                num_images=n,
                name=f"monitor:{copies[0].layer_names[k]}",
            )
            mon.watch(nc, npert)
            monitors.append(mon)
    return PairGraph(net, n, encoder, copies[0], copies[1] if len(copies) > 1 else None, decoders, monitors)


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
            monitors=[m.results() for m in graph.monitors],
            steps=graph.total_steps,
            **timings,
        )
    finally:
        stop(proc)
