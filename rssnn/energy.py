"""Energy and latency per inference on Loihi 2, as a range labelled an estimate (numpy only).

No per-operation energy of Loihi 2 is published. The range brackets it between two sourced
figures, each applied to the activity counted on the device (:mod:`rssnn.activity`):

* **low**: the Hala Point system's efficiency (Intel 2024: 380e12 synaptic operations per second
  at 2,600 W, so at most about 6.8 pJ per operation, everything included) times the synaptic
  operations, plus the static power of the cores the network occupies;
* **high**: Loihi 1's pre-silicon figures (Davies et al., IEEE Micro 2018): 23.6 pJ per synaptic
  operation, 81 pJ per neuron update, 1.7 pJ per spike within a tile plus 4.0 pJ for one hop,
  plus the static power of a whole chip.

Static power: one Loihi 2 chip's 0.232 W (lava-dl's PilotNet CUBA benchmark, measured) times
the time of the inference's steps. The step time, 153 us, is inferred from the same benchmark
(408.91 inferences/s at 16 steps); it depends on the network and on input/output, so latency is
given as that figure too. Every constant sits in :data:`ENERGY` with its source and kind.
"""

from __future__ import annotations

from typing import Any

from rssnn.loihi2 import Constant
from rssnn.lowered import steps_to_run

ENERGY: dict[str, Constant] = {
    "hala_point_pj_per_op": Constant(
        2600 / 380e12 * 1e12,
        "Intel, Hala Point announcement (2024): 380e12 synaptic ops/s at up to 2,600 W "
        "(1,152 Loihi 2 chips); system power over peak ops, so an upper bound per op of that system",
        "documented (derived)",
    ),
    "loihi1_pj_per_synop": Constant(
        23.6, "Davies et al., 'Loihi', IEEE Micro 38(1), 2018, Table 1", "documented"
    ),
    "loihi1_pj_per_neuron_update": Constant(
        81.0, "Davies et al. 2018, Table 1: 52 pJ (inactive) to 81 pJ (active) per update", "documented"
    ),
    "loihi1_pj_per_spike": Constant(
        1.7, "Davies et al. 2018, Table 1: within-tile spike energy", "documented"
    ),
    "loihi1_pj_per_hop": Constant(
        4.0,
        "Davies et al. 2018, Table 1: 3.0-4.0 pJ per east-west / north-south hop; one hop per "
        "spike is assumed (inferred: the hop count depends on placement)",
        "documented (hop count inferred)",
    ),
    "loihi2_static_w": Constant(
        0.232, "lava-dl PilotNet CUBA benchmark on one Loihi 2 chip: 0.232 W static", "measured"
    ),
    "loihi2_step_s": Constant(
        1 / 408.91 / 16,
        "inferred from lava-dl's PilotNet CUBA benchmark: 408.91 inferences/s at 16 steps each",
        "inferred",
    ),
}

# What exists to check against (shared/data/loihi2/README.md): PilotNet CUBA on one chip.
PILOTNET_CUBA = dict(steps=16, total_mj=1.66, dynamic_mj=1.09, static_w=0.232, inferences_per_s=408.91)


def estimate(activity: dict[str, Any], cores: int, cores_per_chip: int = 128) -> dict[str, Any]:
    """Energy (mJ) and latency (ms) per inference from :func:`rssnn.activity.summarise`'s
    per-inference activity and the placement's core count: ``energy_mj`` [low, high] and its
    dynamic and static parts, ``latency_ms`` and ``latency_steps`` (:func:`rssnn.lowered.steps_to_run`
    for one image: T plus the pipeline's depth to the read-out, at the inferred step)."""
    e = {k: c.value for k, c in ENERGY.items()}
    synops = activity["synops_per_inference"]
    updates = activity["neuron_updates_per_inference"]
    spikes = activity["spikes_per_inference"]
    steps = activity["num_steps"]
    step_s = e["loihi2_step_s"]
    window_s = steps * step_s
    dynamic_low = synops * e["hala_point_pj_per_op"] * 1e-12
    dynamic_high = (
        synops * e["loihi1_pj_per_synop"]
        + updates * e["loihi1_pj_per_neuron_update"]
        + spikes * (e["loihi1_pj_per_spike"] + e["loihi1_pj_per_hop"])
    ) * 1e-12
    static_low = e["loihi2_static_w"] * min(cores, cores_per_chip) / cores_per_chip * window_s
    static_high = e["loihi2_static_w"] * max(1, -(-cores // cores_per_chip)) * window_s
    # The one timing formula (rssnn.lowered): the read-out's index is the number of spiking layers.
    latency_steps = steps_to_run(1, steps, len(activity["layers"]))
    return dict(
        energy_mj=[(dynamic_low + static_low) * 1e3, (dynamic_high + static_high) * 1e3],
        dynamic_mj=[dynamic_low * 1e3, dynamic_high * 1e3],
        static_mj=[static_low * 1e3, static_high * 1e3],
        latency_ms=latency_steps * step_s * 1e3,
        latency_steps=latency_steps,
        note="an estimate: per-op constants of Hala Point (low) and Loihi 1 (high), static power "
        "and step time from lava-dl's PilotNet CUBA benchmark (rssnn/energy.py, docs/loihi2.md)",
        constants={k: dict(value=c.value, source=c.source, kind=c.kind) for k, c in ENERGY.items()},
    )


def pilotnet_implied_synops() -> list[float]:
    """Synaptic operations per inference that PilotNet CUBA's measured 1.09 mJ dynamic energy
    implies at the high and the low per-op figure: what a count would have to be for the range
    to hold (neuron updates and spikes ignored)."""
    dyn = PILOTNET_CUBA["dynamic_mj"] * 1e-3
    return [
        dyn / (ENERGY["loihi1_pj_per_synop"].value * 1e-12),
        dyn / (ENERGY["hala_point_pj_per_op"].value * 1e-12),
    ]
