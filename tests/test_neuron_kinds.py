"""The neuron-kind registry (rssnn.neuron_kinds, issue 27): the table, each kind's integer step
against values computed by hand, its Loihi 2 placement against docs/loihi2.md's rule, and the
CUBA kind's NetX fields written and read back."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from rssnn import loihi2, netx_file, neuron_kinds
from rssnn.errors import UserError
from rssnn.lowered import LoweredLayer, LoweredNet
from rssnn.neuron import FloatCuba, LoihiCuba
from rssnn.neuron_sigma_delta import SigmaDeltaNeuron

CUBA, SDNN = neuron_kinds.KINDS["cuba"], neuron_kinds.KINDS["sdnn"]


def test_the_table_finds_each_kind_by_its_netx_type_and_lava_dls_alias():
    assert set(neuron_kinds.KINDS) == {"cuba", "sdnn"}
    assert neuron_kinds.kind("CUBA") is CUBA and neuron_kinds.kind("LOIHI") is CUBA
    assert neuron_kinds.kind("SDNN") is SDNN
    assert CUBA.float_form is FloatCuba and CUBA.integer_form is LoihiCuba and SDNN.float_form is None
    assert [neuron_kinds.of_mode(m).name for m in ("cuba", "delta", "sigma_delta", "sigma")] == [
        "cuba", "sdnn", "sdnn", "sdnn",
    ]  # fmt: skip


def test_an_unknown_neuron_type_is_one_line_naming_the_known_ones():
    with pytest.raises(UserError) as err:
        neuron_kinds.kind("RF")
    assert str(err.value) == "unknown neuron type 'RF': known types are CUBA (LOIHI is read as CUBA), SDNN"
    assert neuron_kinds.find("cuba") is None  # NetX types are case-sensitive, as lava-dl reads them


def test_cuba_integer_step_against_hand_computed_values():
    """Three channels: decay with rounding toward zero, a negative state, a spike and its reset."""
    neuron = LoihiCuba(i_decay=[1024, 1024, 0], v_decay=[2048, 2048, 0], vth_mant=[100, 100, 100])
    state = (np.array([1000, -1001, 0]), np.array([5000, -3, 6400]))
    (u, v), spikes = CUBA.step(neuron, state, np.array([3, 0, 1]), np.array([64, 0, 0]))
    # u: 1000 * 3072/4096 = 750, + 3 << 6 = 942; -1001 * 3072/4096 = -750.75 -> -750; 0 + 1 << 6 = 64.
    # v: 5000 / 2 + 942 + 64 = 3506; -3 / 2 = -1.5 -> -1, - 750 = -751; 6400 + 64 = 6464 > 100 << 6.
    assert u.tolist() == [942, -750, 64]
    assert v.tolist() == [3506, -751, 0] and spikes.tolist() == [False, False, True]
    assert CUBA.recorded((u, v), spikes)[1].tolist() == [942, -750, 64]


def test_cuba_float_form_step_against_hand_computed_values():
    neuron = CUBA.float_form(leak=[0.5, 0.5], threshold=[4.0, 4.5], current_leak=[0.5, 0.5])
    u, m, s = neuron.step(np.array([2.0, 2.0]), np.array([4.0, 4.0]), np.array([1.0, 1.0]))
    # u = 0.5 * 2 + 1 = 2; m = 0.5 * 4 + 2 = 4: at the first threshold (>=), under the second.
    assert u.tolist() == [2.0, 2.0] and m.tolist() == [4.0, 4.0] and s.tolist() == [True, False]


def test_sigma_delta_integer_steps_against_hand_computed_values():
    """vth 1 is 1 << 12 = 4096 in the state's units; messages are the sent delta >> 6."""
    neuron = SigmaDeltaNeuron("sigma_delta", vth=1)
    state = SDNN.initial_state((4,))
    state, out = SDNN.step(neuron, state, np.array([5000, 100, -10, 4096]), 0)
    # sigma = a; relu -> [5000, 100, 0, 4096]; 5000 and 4096 (>= 4096) are sent: >> 6 = 78, 64.
    assert out.tolist() == [78, 0, 0, 64]
    assert [s.tolist() for s in state] == [[5000, 100, -10, 4096], [5000, 100, 0, 4096], [0, 100, 0, 0]]
    state, out = SDNN.step(neuron, state, np.array([0, 4000, 0, 0]), 0)
    # channel 1: sigma 4100, delta = 4100 - 100 + 100 = 4100 >= 4096: sent, 4100 >> 6 = 64.
    assert out.tolist() == [0, 64, 0, 0] and state[2].tolist() == [0, 0, 0, 0]
    # A bias enters shifted by 12: relu(-10 + (1 << 12)) = 4086 < 4096, held as residue.
    _, out = SDNN.step(neuron, SDNN.initial_state((1,)), np.array([-10]), 1 << SDNN.bias_shift)
    assert out.tolist() == [0]
    # delta encoder: 2 << 12 = 8192 sent, >> 6 = 128; sigma decoder: a running sum.
    _, out = SDNN.step(SigmaDeltaNeuron("delta", vth=1), SDNN.initial_state((1,)), np.array([2]))
    assert out.tolist() == [128]
    decoder, state = SigmaDeltaNeuron("sigma"), SDNN.initial_state((1,))
    state, first = SDNN.step(decoder, state, np.array([3]))
    _, second = SDNN.step(decoder, state, np.array([4]))
    assert (first.tolist(), second.tolist()) == ([3], [7])


@pytest.mark.parametrize("netx_type", ["CUBA", "LOIHI", "SDNN"])
def test_placement_of_a_layer_of_each_kind_follows_the_rule_of_docs_loihi2(netx_type):
    """docs/loihi2.md: conv 64x4x16 (kernel 24x3x3) -> w = 8, the largest power of two with
    64 * 4 * w <= 4,095: 2 cores of 64x4x8 (as the compiler tiled both PilotNets); dense 100 of
    fan-in 2,560 -> 12000 // 2560 - 2 = 2 words per axon hold 2 * 64 // 14 = 9 neurons: 12 cores."""
    kind = neuron_kinds.kind(netx_type)
    assert loihi2.RESOURCES[kind.tile_resource].value == 4095
    conv = loihi2.LayerCost(1, "conv", "conv", netx_type, (64, 4, 16), 64 * 4 * 16, fan_in=24 * 9)
    assert (loihi2.place_layer(conv).cores, conv.tile) == (2, (64, 4, 8))
    dense = loihi2.LayerCost(2, "dense", "dense", netx_type, (100,), 100, fan_in=2560)
    assert (loihi2.place_layer(dense).cores, dense.tile) == (12, (9,))


def test_placement_refuses_an_unknown_neuron_type_with_the_tables_list():
    layer = loihi2.LayerCost(3, "3:dense", "dense", "RF", (10,), 10, fan_in=10)
    with pytest.raises(UserError, match=r"neuron type 'RF'; known: CUBA \(LOIHI is read as CUBA\), SDNN$"):
        loihi2.place_layer(layer)


def test_cuba_fields_written_and_read_back(tmp_path):
    neuron = LoihiCuba(i_decay=[10, 20, 30], v_decay=[0, 4095, 7], vth_mant=[5, 5, 5])
    with h5py.File(tmp_path / "n.h5", "w") as f:
        CUBA.write(f.create_group("layer"), neuron)
        n = f["layer/neuron"]
        assert n["type"][()].tolist() == [b"CUBA"] and n["vThMant"].shape == ()  # one value: a scalar
        back = CUBA.read(n, 3)
        assert [back.i_decay.tolist(), back.v_decay.tolist(), back.vth_mant.tolist()] == [
            [10, 20, 30], [0, 4095, 7], [5, 5, 5],
        ]  # fmt: skip
        with pytest.raises(ValueError, match="iDecay has shape"):
            CUBA.read(n, 4)  # three values for four channels: damage


def _tiny_net() -> LoweredNet:
    """A 1x2x2 input, one spiking 1x1 conv of 2 channels, a dense read-out of 3 classes."""
    conv = LoweredLayer(
        "conv", "conv0", np.ones((2, 1, 1, 1), np.int64), np.zeros(2, np.int64), (1, 2, 2), (2, 2, 2),
        scale=1.0, neuron=LoihiCuba([4096, 4096], [100, 200], [3, 4]),
    )  # fmt: skip
    readout = LoweredLayer(
        "dense", "fc", np.ones((3, 8), np.int64), np.zeros(3, np.int64), (8,), (3,),
        scale=1.0, flatten_before=True, spiking=False,
    )  # fmt: skip
    return LoweredNet((1, 2, 2), 2, [conv, readout], ["a", "b", "c"])


def test_an_rssnn_file_reads_its_cuba_neurons_through_the_kind(tmp_path):
    path = tmp_path / "tiny.net"
    netx_file.write(path, _tiny_net(), {})
    net, _ = netx_file.read(path)
    assert net.layers[0].neuron.v_decay.tolist() == [100, 200] and net.layers[0].neuron.vth_mant.tolist() == [
        3,
        4,
    ]
    with h5py.File(path, "r+") as f:
        f["layer/1/neuron/type"][0] = b"LOIHI"  # lava-dl's alias: the same kind
    assert netx_file.read(path)[0].layers[0].neuron.i_decay.tolist() == [4096, 4096]
    with h5py.File(path, "r+") as f:
        f["layer/1/neuron/type"][0] = b"SDNN"
    with pytest.raises(UserError, match="neuron type 'SDNN' in an rssnn-lava file, whose neurons are CUBA"):
        netx_file.read(path)


def test_every_kind_has_its_lava_process():
    from rssnn.lava_procs import neuron_procs
    from rssnn.lava_procs.dlif.process import DLIF
    from rssnn.lava_procs.sdn.process import SDN

    assert {k: p.process for k, p in neuron_procs.PROCS.items()} == {"cuba": DLIF, "sdnn": SDN}
    params = neuron_procs.of(CUBA).neuron_params(
        LoihiCuba([1], [2], [3]), (4, 4, 2), message_bits=0, reset_interval=8, reset_offset=3
    )
    assert params["neuron_proc"] is DLIF and params["vth_mant"].tolist() == [3, 3]  # per channel
    assert (params["reset_interval"], params["reset_offset"]) == (8, 3)
    sd = neuron_procs.of(SDNN).neuron_params(
        SigmaDeltaNeuron("sigma", 0), (5,), message_bits=16, reset_interval=8, reset_offset=3
    )
    assert sd["neuron_proc"] is SDN and sd["mode"] == "sigma" and "reset_interval" not in sd
