"""Build the clean + perturbed network pair with its monitors, run it safely, read results.

Both copies are built from one exported file, fed in lock-step by one
:class:`~lava_procs.io.process.ImageEncoder` (which also joins them into one graph: Lava only
runs what is connected), decoded by one :class:`ClassDecoder` each, and watched layer by layer
by :class:`MembranePerturbationMonitor` processes.

Running: the steps go in chunks; a watchdog stops a run whose chunk makes no progress within
``watchdog_s`` seconds, and whatever happens (error, watchdog, Ctrl-C) the Lava runtime is
stopped and any child process it left is terminated.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from export.lowering import LoweredNet, encode_input
from lava_procs.io.process import ClassDecoder, ImageEncoder
from lava_procs.monitor.process import MembranePerturbationMonitor
from lava_procs.network import FIRST_LAYER_DELAY, LavaNetwork, build
from rssnn.errors import UserError


def to_lava_input(net: LoweredNet, pixels: torch.Tensor) -> np.ndarray:
    """uint8 images [N, 3, H, W] -> graded input in Lava order, bias channel included."""
    x = encode_input(pixels).numpy()
    if net.layers[0].kind == "dense":
        return x.reshape(len(x), -1)
    return x.transpose(0, 3, 2, 1)


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
        readout_delay = FIRST_LAYER_DELAY + len(self.clean.neurons)
        return self.num_images * self.net.num_steps + readout_delay


def build_pair(
    net: LoweredNet, clean: torch.Tensor, perturbed: torch.Tensor | None, monitor: bool = True
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
            window_start=FIRST_LAYER_DELAY + len(copy.neurons),
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
                scale=1.0 / (64.0 * copies[0].scales[k]),
                window_start=FIRST_LAYER_DELAY + k,
                num_images=n,
                name=f"monitor:{copies[0].layer_names[k]}",
            )
            mon.watch(nc, npert)
            monitors.append(mon)
    return PairGraph(net, n, encoder, copies[0], copies[1] if len(copies) > 1 else None, decoders, monitors)


def _failed_worker(proc: Any) -> str | None:
    """The exception of a Lava worker process that died, if any.

    A process model that raises ends its worker, but Lava 0.10 does not notice: the run hangs
    (lava #178). Lava's ``SystemProcess`` keeps the exception; reading it through the runtime's
    private message infrastructure is the only way in this (final) Lava release.
    """
    infra = getattr(getattr(proc, "runtime", None), "_messaging_infrastructure", None)
    for actor in getattr(infra, "actors", None) or []:
        if not actor.is_alive():
            exc = actor.exception
            if exc:
                return str(exc[0]).strip().splitlines()[0] if str(exc[0]).strip() else repr(exc[0])
    return None


def _terminate_children(timeout: float = 5.0) -> int:
    """Terminate every child process still alive (Lava's runtime workers); returns how many.

    Lava's ``SystemProcess.join`` takes no timeout, so we wait on ``is_alive`` ourselves.
    """
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout
    while any(c.is_alive() for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in children:
        if child.is_alive():
            child.kill()
    multiprocessing.active_children()  # reaps the finished ones
    return len(children)


def run_steps(
    proc: Any, total: int, run_cfg: Any, chunk: int = 32, watchdog_s: float = 120.0, progress=None
) -> dict[str, float]:
    """Run ``total`` steps of the graph holding ``proc`` in chunks, under a watchdog.

    On any failure (an error inside Lava, no progress within ``watchdog_s``, Ctrl-C) the
    runtime is stopped and leftover worker processes are terminated before the error goes up.
    """
    from lava.magma.core.run_conditions import RunSteps

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        done = 0
        while done < total:
            k = min(chunk, total - done)
            errors: list[BaseException] = []

            def step(k=k, errors=errors) -> None:
                try:
                    proc.run(condition=RunSteps(num_steps=k), run_cfg=run_cfg)
                except BaseException as exc:  # re-raised in the caller's thread
                    errors.append(exc)

            worker = threading.Thread(target=step, daemon=True)
            worker.start()
            deadline = time.monotonic() + watchdog_s
            while worker.is_alive() and time.monotonic() < deadline:
                worker.join(0.2)
                failure = _failed_worker(proc)
                if failure:
                    raise UserError(f"a Lava process failed at step {done}: {failure}")
            if worker.is_alive():
                raise UserError(
                    f"Lava made no progress for {watchdog_s:g} s at step {done} of "
                    f"{total}; run stopped (raise --watchdog if the machine is slow)"
                )
            if errors:
                raise errors[0]
            if done == 0:
                timings["compile_and_first_chunk_s"] = time.perf_counter() - t0
            done += k
            if progress is not None:
                progress.update(k)
    except BaseException:
        stop(proc, timeout=5.0)
        raise
    timings["run_s"] = time.perf_counter() - t0
    return timings


def run(
    graph: PairGraph, run_cfg: Any, chunk: int = 32, watchdog_s: float = 120.0, progress=None
) -> dict[str, Any]:
    """Run every step of ``graph``, then read the decoders and monitors; always cleans up."""
    proc = graph.encoder
    try:
        timings = run_steps(proc, graph.total_steps, run_cfg, chunk, watchdog_s, progress)
        return dict(
            predictions=[d.predictions.get().astype(int) for d in graph.decoders],
            monitors=[m.results() for m in graph.monitors],
            steps=graph.total_steps,
            **timings,
        )
    finally:
        stop(proc)


def stop(proc: Any, timeout: float = 30.0) -> None:
    """Stop the runtime (bounded in time, once), then make sure no worker process survives."""
    if getattr(proc, "runtime", None) is not None and not getattr(proc, "_rssnn_stopped", False):
        proc._rssnn_stopped = True
        stopper = threading.Thread(target=proc.stop, daemon=True)
        stopper.start()
        stopper.join(timeout)
    _terminate_children()
