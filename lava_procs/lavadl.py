"""Run a stock lava-dl NetX file (:class:`rssnn.lavadl.LavaDlNet`) on the user's inputs, through
our exact fast synapse models, our neuron processes (with probes) and the one network monitor.

The graph is lava-dl NetX's own, process for process: NetX's ``Conv`` / ``Dense`` blocks (their
synapses: Lava's ``Conv``, ``Dense``, ``DelayDense``), neurons :class:`~lava_procs.dlif.process.DLIF`
(CUBA; Lava's bit-accurate ``LIFReset`` arithmetic) or :class:`~lava_procs.sdn.process.SDN`
(sigma-delta; Lava's ``lava.proc.sdn`` arithmetic). So every hop costs the step it costs in a
stock run and the outputs are equal bit for bit, while the run config selects the fast models of
:mod:`lava_procs.synapses.models` for ``Conv`` and ``DelayDense``. Around it:
:class:`~lava_procs.io.process.SampleSource` (clean and perturbed inputs in lock-step),
:class:`~lava_procs.io.process.OutputRecorder` (the read-out) and the
:class:`~lava_procs.monitor.process.NetworkMonitor` (activity of every layer; MPPD with a
perturbed copy, CUBA layers). Runs go through :mod:`rssnn.lava_guard`'s watchdog.

:func:`run_stock` runs the same inputs through ``lava.lib.dl.netx.hdf5.Network`` with Lava's own
models, for the bit-exactness checks and the speed comparison (it imports torch, via SLAYER).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rssnn import lavadl
from rssnn.lava_guard import run_steps, stop
from rssnn.lavadl import LavaDlNet
from rssnn.layout import lava_conv_weight, lava_flat, lava_shape, swap_layout

from . import neuron_procs
from .io.process import OutputRecorder, SampleSource
from .monitor.process import NetworkMonitor

READOUTS = ("spikes", "voltage", "output")


def to_lava(data: np.ndarray) -> np.ndarray:
    """[N, T_in, C, H, W] -> [N, T_in, W, H, C] (Lava order); [N, T_in, F] stays."""
    return swap_layout(data, axis=2)


def _neuron_params(net: LavaDlNet, k: int, reset_interval: int) -> dict[str, Any]:
    """Layer k's NetX neuron_params from its kind's Lava process (:mod:`lava_procs.neuron_procs`);
    CUBA layers reset every ``reset_interval`` steps from their first window on."""
    layer = net.layers[k]
    n = layer.neuron
    return neuron_procs.of(n.kind).neuron_params(
        n.params,
        lava_shape(layer.out_shape),
        message_bits=n.message_bits,
        reset_interval=reset_interval,
        reset_offset=net.first_step(k) % reset_interval if reset_interval else 0,
    )


def _lava_bias(layer: lavadl.Layer) -> np.ndarray | None:
    if layer.bias is None:
        return None
    return layer.bias if layer.bias.ndim == 1 else swap_layout(layer.bias).copy()


@dataclass
class Copy:
    """One copy of the network: its neuron processes in order, its input port, its output."""

    neurons: list[Any]
    inp: Any
    out: Any


def build(net: LavaDlNet, reset_interval: int) -> Copy:
    """The NetX blocks of ``net`` with our neuron processes (see the module docstring)."""
    from . import netx_blocks

    blocks_api = netx_blocks.load()
    neurons: list[Any] = []
    inp = None
    prev = None
    for k, layer in enumerate(net.layers):
        params = _neuron_params(net, k, reset_interval)
        shape = lava_shape(layer.out_shape)
        if layer.kind == "input":
            proc = params.pop("neuron_proc")
            params.pop("bias_key")
            params.pop("num_message_bits")
            neuron = proc(shape=shape, **params)
            inp, out = neuron.a_in, neuron.s_out
            neurons.append(neuron)
            prev = out
            continue
        common = dict(shape=shape, neuron_params=params, input_message_bits=layer.in_message_bits)
        bias = _lava_bias(layer)
        if bias is not None:
            common["bias"] = bias
        if layer.kind == "conv":
            block = blocks_api.Conv(
                input_shape=lava_shape(layer.in_shape),
                weight=lava_conv_weight(layer.weight),
                stride=np.array(layer.stride[::-1]),
                padding=np.array(layer.padding[::-1]),
                dilation=np.array(layer.dilation[::-1]),
                groups=layer.groups,
                **common,
            )
        else:
            weight, bits, exponent, sign_mode = blocks_api.optimize_weight_bits(
                layer.weight.astype(np.float64)
            )
            extra = {} if layer.delay is None else dict(delay=layer.delay.copy())
            block = blocks_api.Dense(
                weight=weight,
                num_weight_bits=bits,
                weight_exponent=exponent,
                sign_mode=sign_mode,
                **extra,
                **common,
            )
        if prev is None:
            inp = block.inp
        else:
            src = prev.transpose([2, 1, 0]).flatten() if layer.flatten_before else prev
            src.connect(block.inp)
        neurons.append(block.neuron)
        prev = block.out
    return Copy(neurons, inp, prev)


@dataclass
class Graph:
    net: LavaDlNet
    num_samples: int
    num_steps: int
    source: SampleSource
    copies: list[Copy]
    recorder: OutputRecorder
    monitor: NetworkMonitor | None

    @property
    def total_steps(self) -> int:
        return self.net.total_steps(self.num_samples, self.num_steps)


def default_readout(net: LavaDlNet) -> str:
    """lava-dl's tutorials: spike counts of a CUBA network's last layer (MNIST), the output
    values of a sigma decoder (PilotNet SDNN)."""
    return "spikes" if net.layers[-1].neuron.model == "cuba" else "output"


def build_graph(
    net: LavaDlNet,
    data: np.ndarray,
    num_steps: int,
    reset_interval: int,
    perturbed: np.ndarray | None = None,
    readout: str = "spikes",
    monitor: bool = True,
    record: bool = False,
) -> Graph:
    """Source, one or two copies, the read-out recorder and the monitor for inputs ``data``
    [N, T_in, *input_shape] (PyTorch order)."""
    n = len(data)
    source = SampleSource(
        data=to_lava(data), num_steps=num_steps, perturbed=None if perturbed is None else to_lava(perturbed)
    )
    copies = [build(net, reset_interval)] + ([build(net, reset_interval)] if perturbed is not None else [])
    source.s_out.connect(copies[0].inp)
    if perturbed is not None:
        source.s_out_pert.connect(copies[1].inp)
    last = len(net.layers) - 1
    size = int(np.prod(net.layers[-1].out_shape))
    recorder_args = dict(
        size=size, window_start=net.first_step(last), num_steps=num_steps, num_samples=n, record=record
    )
    if readout == "voltage":  # the probe carries [s, u, v]: v is its last third
        recorder = OutputRecorder(in_size=3 * size, mode="last", offset=2 * size, **recorder_args)
        copies[0].neurons[-1].probe.connect(recorder.a_in)
    else:
        recorder = OutputRecorder(
            in_size=size, mode="count" if readout == "spikes" else "last", **recorder_args
        )
        out = copies[0].out
        (out.flatten() if len(out.shape) > 1 else out).connect(recorder.a_in)
    mon = _monitor(net, copies, source, n, num_steps) if monitor else None
    return Graph(net, n, num_steps, source, copies, recorder, mon)


def _monitor(
    net: LavaDlNet, copies: list[Copy], source: SampleSource, n: int, num_steps: int
) -> NetworkMonitor:
    source_fan, fans = lavadl.fan_outs(net)
    leaks, units = [], []
    for layer in net.layers:
        if layer.neuron.kind.has_membrane:
            leak, unit = lavadl.mppd_unit(layer)
            leaks.append(
                lava_flat(
                    np.broadcast_to(leak.reshape((-1,) + (1,) * (len(layer.out_shape) - 1)), layer.out_shape)
                )
            )
            units.append(unit)
        else:  # no MPPD for sigma-delta layers (run() refuses a perturbed copy there)
            leaks.append(np.zeros(int(np.prod(layer.out_shape))))
            units.append(0.0)
    mon = NetworkMonitor(
        sizes=[int(np.prod(layer.out_shape)) for layer in net.layers],
        input_size=int(np.prod(net.input_shape)),
        num_steps=num_steps,
        num_images=n,
        window_starts=[net.first_step(k) for k in range(len(net.layers))],
        input_window_start=1,  # the source sends sample 0's first frame at step 1
        fan_out=np.concatenate([lava_flat(f) for f in fans]),
        input_fan_out=lava_flat(source_fan),
        leak=np.concatenate(leaks),
        state_unit=np.array(units),
        mppd=len(copies) > 1,
        name="monitor",
    )
    mon.watch(copies[0].neurons, copies[1].neurons if len(copies) > 1 else None)
    out = source.s_out
    (out.flatten() if len(out.shape) > 1 else out).connect(mon.graded_in)
    return mon


def run(
    graph: Graph, run_cfg: Any, watchdog_s: float = 120.0, progress=None, chunk: int = 64
) -> dict[str, Any]:
    """Run every step of ``graph`` under the watchdog; read the recorder and the monitor; always
    stops the runtime. ``progress(samples_done)`` after every chunk."""
    proc = graph.source
    try:
        delay = graph.total_steps - graph.num_samples * graph.num_steps

        def advance(done: int, k: int) -> None:
            if progress is not None:
                progress(max(0, min(graph.num_samples, (done + k - delay) // graph.num_steps)))

        timings = run_steps(proc, graph.total_steps, run_cfg, chunk, watchdog_s, advance)
        result = dict(
            readout=graph.recorder.result.get().astype(np.int64),
            monitor=graph.monitor.results() if graph.monitor is not None else None,
            steps=graph.total_steps,
            **timings,
        )
        if graph.recorder.proc_params["record"]:
            raster = graph.recorder.raster.get().astype(np.int64)
            result["raster"] = raster.reshape(graph.num_samples, graph.num_steps, -1)
        return result
    finally:
        stop(proc)


def run_stock(
    net: LavaDlNet,
    data: np.ndarray,
    num_steps: int,
    reset_interval: int,
    watchdog_s: float = 300.0,
    chunk: int | None = None,
) -> dict[str, Any]:
    """The same inputs through stock lava-dl: ``netx.hdf5.Network`` (Lava's LIF/LIFReset,
    sigma-delta, Dense, DelayDense and Conv models, ``Loihi2SimCfg(select_tag='fixed_pt')``), a
    ``RingBuffer`` source and sink. Returns the last layer's messages per window [N, T, F] and
    the run time. The reset phase is NetX's ``reset_offset`` chosen so every layer starts each
    window from zero, as :func:`build` does."""
    import lava.proc.conv.utils as conv_utils
    from lava.lib.dl.netx import hdf5
    from lava.proc import io

    from . import backends

    conv_utils.TORCH_IS_AVAILABLE = False  # torch inside Lava's forked workers can hang (lava-dl's tests)
    n = len(data)
    total = net.total_steps(n, num_steps)
    stream = to_lava(lavadl.stream(data, num_steps, total)[:, None])[:, 0]
    kwargs: dict[str, Any] = dict(input_message_bits=int(net.input_message_bits))
    if reset_interval:
        kwargs.update(reset_interval=reset_interval, reset_offset=net.first_step(0) - 1)
    if not net.has_input_neurons and len(net.input_shape) == 3:
        kwargs["input_shape"] = lava_shape(net.input_shape)
    stock = hdf5.Network(net_config=net.path, **kwargs)
    source = io.source.RingBuffer(data=np.moveaxis(stream, 0, -1))
    sink = io.sink.RingBuffer(shape=stock.out.shape, buffer=total)
    source.s_out.connect(stock.in_layer.neuron.a_in if net.has_input_neurons else stock.inp)
    stock.out.connect(sink.a_in)
    try:
        stock_cfg = backends.choose("sim").run_config(fast_synapses=False)  # Lava's own models throughout
        timings = run_steps(source, total, stock_cfg, chunk=chunk or total, watchdog_s=watchdog_s)
        out = np.moveaxis(sink.data.get(), -1, 0).astype(np.int64)  # [S, *lava shape]
    finally:
        stop(source)
    out = out.reshape(total, -1)  # Lava's flat (x, y, c) order, as the recorder's
    window = lavadl.windows(net, len(net.layers) - 1, out, n, num_steps)
    return dict(raster=window, **timings)


def sdnn_refusal(net: LavaDlNet) -> str | None:
    """Why MPPD does not apply, or None (all layers CUBA)."""
    if net.model == "cuba":
        return None
    return (
        "MPPD (the membrane potential perturbation of CUBA neurons under input noise) is not defined for "
        "sigma-delta neurons: they hold no leaky membrane; the monitor counts their activity (messages, "
        "synaptic ops, sparsity) only. Run with --perturb clean"
    )
