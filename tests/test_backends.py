"""The back-end registry (lava_procs/backends.py): what runs where, and the one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error, call_main, run_cli
from loihi_oracle import cuba_spikes

from rssnn.errors import UserError
from rssnn.lava_procs import backends

STEPS = 6
# No current leak: strongly driven neurons overflow the 24-bit current register, which wraps in
# fixed point only, so these spikes also tell the fixed-point models from the floating-point ones.
DLIF_PARAMS = dict(i_decay=0, v_decay=4096, vth_mant=100_000, bias_mant=1)


def _conv_dlif_spikes(run_cfg, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Graded input x [8, 8, 3, T] (Lava's x, y, c) -> Conv (stride 2, padding 1) -> DLIF;
    the DLIF spikes [4, 4, 4, T] under ``run_cfg``."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.conv.process import Conv
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from rssnn.lava_procs.dlif.process import DLIF

    src = Source(data=x)
    conv = Conv(weight=w, input_shape=x.shape[:3], padding=1, stride=2, num_message_bits=8)
    neuron = DLIF(shape=conv.a_out.shape, **DLIF_PARAMS)
    sink = Sink(shape=neuron.s_out.shape, buffer=x.shape[-1])
    src.s_out.connect(conv.s_in)
    conv.a_out.connect(neuron.a_in)
    neuron.s_out.connect(sink.a_in)
    try:
        src.run(condition=RunSteps(num_steps=x.shape[-1]), run_cfg=run_cfg)
        return sink.data.get().astype(np.int64)
    finally:
        src.stop()


def test_sim_run_configs_run_a_conv_and_dlif_network_equal_to_an_independent_oracle():
    """``auto`` picks the simulation here (no lava-loihi); its run config (our fast conv model,
    our DLIF's fixed-point model) and the stock-synapse variant both give the spikes of Lava's
    own scipy convolution followed by the plain-integer CUBA oracle (tests/loihi_oracle.py).
    A run config selecting floating_pt models differs on 62 of the 384 values."""
    from lava.proc.conv import utils

    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (8, 8, 3, STEPS))
    w = rng.integers(-12, 36, (4, 3, 3, 3))  # mostly excitatory: currents up to about 2**16
    currents = np.stack(
        [utils.conv_scipy(x[..., t], w, (3, 3), (2, 2), (1, 1), (1, 1), 1) for t in range(STEPS)], -1
    )
    a_in = np.zeros_like(currents)
    a_in[..., 1:] = currents[..., :-1]  # a Conv sends last step's result (one step of delay)
    want = cuba_spikes(a_in.reshape(-1, STEPS), **DLIF_PARAMS).reshape(a_in.shape)
    assert 0 < want.sum() < want.size / 2  # both firing and silent neurons are compared

    chosen = backends.choose("auto")
    assert chosen is backends.BACKENDS["sim"] and chosen.label() == "Loihi2SimCfg(fixed_pt)"
    sim = backends.choose("sim")
    for cfg in (chosen.run_config(), sim.run_config(fast_synapses=False)):
        np.testing.assert_array_equal(_conv_dlif_spikes(cfg, x, w), want)


def test_sim_run_config_selects_the_fast_models_and_adds_extra_ones():
    from lava.proc.conv.process import Conv
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    from rssnn.lava_procs.synapses.models import PyConvModelFastFixed

    sim = backends.choose("sim")
    fast = sim.run_config(extra_models={Extractor: PyLoihiExtractorModel})
    assert fast.select_tag == "fixed_pt"
    assert fast.exception_proc_model_map[Conv] is PyConvModelFastFixed
    assert fast.exception_proc_model_map[Extractor] is PyLoihiExtractorModel
    stock = sim.run_config(fast_synapses=False)
    assert stock.select_tag == "fixed_pt" and Conv not in stock.exception_proc_model_map
    assert sim.label(fast_synapses=False) == "Loihi2SimCfg(fixed_pt, stock synapse models)"


def test_loihi2_is_unavailable_here_and_refused_in_one_line():
    ok, reason = backends.BACKENDS["loihi2"].available()
    assert not ok and "lava-loihi" in reason and "\n" not in reason
    with pytest.raises(UserError) as exc:
        backends.choose("loihi2")
    message = str(exc.value)
    assert "--backend loihi2 is not available here" in message and "lava-loihi" in message
    assert "\n" not in message


def test_an_unknown_back_end_is_an_error_naming_the_known_ones():
    with pytest.raises(UserError, match=r"unknown back end 'tpu' \(known: auto, sim, loihi2\)"):
        backends.choose("tpu")


def test_runner_refuses_loihi2_before_reading_anything(tmp_path, capsys):
    """``--backend loihi2`` stops in one line before the file or the images are read: the
    network named does not exist, and the refusal is about the back end, not the file."""
    from rssnn.lava_procs.run import build_parser, main

    out = tmp_path / "r.json"
    argv = ["--net", str(tmp_path / "missing.net"), "--out", str(out), "--data-root", str(tmp_path)]
    err = assert_one_line_error(capsys, call_main(main, argv + ["--backend", "loihi2"]), "lava-loihi")
    assert "missing.net" not in err and not out.exists()
    assert_one_line_error(capsys, call_main(main, argv + ["--backend", "tpu"]), "invalid choice: 'tpu'")
    helptext = " ".join(build_parser().format_help().split())
    assert "auto: loihi2 when available, else sim" in helptext


def test_lavadl_command_imports_alone_without_the_runner_or_torch():
    """No import cycle between run.py and lavadl_command.py, and building a run config (what the
    parent hands Lava's workers) loads no torch."""
    code = (
        "import json, sys\n"
        "import rssnn.lava_procs.lavadl_command\n"
        "from rssnn.lava_procs import backends\n"
        "backends.choose('sim').run_config()\n"
        "print(json.dumps(['rssnn.lava_procs.run' in sys.modules, 'torch' in sys.modules]))\n"
    )
    res = run_cli("-c", code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == [False, False]
