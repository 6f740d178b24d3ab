"""Neuron kinds: one class per kind, in its own module, found through one table (numpy and h5py).

    kind = neuron_kinds.kind("LOIHI")        # by a NetX neuron/type; UserError in one line if unknown
    kind.write(group, neuron)                # its NetX fields (CUBA: what our exporter writes)
    (state, out) = kind.step(neuron, state, a_in, bias)   # its integer step

Each kind answers, for a layer's neurons: ``name``; ``netx_type`` and ``aliases`` (the NetX
``neuron/type`` names it is read from); ``modes`` (``rssnn.lavadl.Neuron.model`` values);
``fields`` and ``read`` (its NetX fields, checked); ``float_form`` (None where it has none) and
``integer_form``; ``message_bits``, ``bias_shift``, ``resets``, ``has_membrane``;
``initial_state`` / ``step`` / ``recorded`` (the integer reference, delegating to
:mod:`rssnn.dynamics` or to the kind's own one copy of its arithmetic); and ``tile_resource``,
the :data:`rssnn.loihi2.RESOURCES` entry that caps its neurons per Loihi 2 core.

Adding a kind: one module ``rssnn/neuron_<kind>.py`` with its class, one entry of
:data:`KINDS` below, and its Lava process (a folder under ``lava_procs/`` plus one row of
``lava_procs/neuron_procs.py``'s ``PROCS``: the core does not import Lava). docs/architecture.md,
"Layer types: where a new kind goes", names the files.
"""

from __future__ import annotations

from rssnn.errors import UserError
from rssnn.neuron_cuba import CUBA, CubaKind
from rssnn.neuron_sigma_delta import SIGMA_DELTA, SigmaDeltaKind

NeuronKind = CubaKind | SigmaDeltaKind

KINDS: dict[str, NeuronKind] = {k.name: k for k in (CUBA, SIGMA_DELTA)}

# NetX neuron/type -> kind, aliases included (lava-dl's NetX reads LOIHI as CUBA).
NETX_TYPES: dict[str, NeuronKind] = {t: k for k in KINDS.values() for t in (k.netx_type, *k.aliases)}


def known() -> str:
    """The NetX neuron types with a kind, for messages: ``CUBA (LOIHI is read as CUBA), SDNN``."""
    return ", ".join(
        k.netx_type + "".join(f" ({a} is read as {k.netx_type})" for a in k.aliases) for k in KINDS.values()
    )


def find(netx_type: str) -> NeuronKind | None:
    """The kind a NetX ``neuron/type`` names, or None."""
    return NETX_TYPES.get(netx_type)


def kind(netx_type: str) -> NeuronKind:
    """The kind a NetX ``neuron/type`` names; UserError, one line, listing the known ones otherwise."""
    found = find(netx_type)
    if found is None:
        raise UserError(f"unknown neuron type '{netx_type[:40]}': known types are {known()}")
    return found


def of_mode(mode: str) -> NeuronKind:
    """The kind whose ``modes`` hold ``mode`` (a :class:`rssnn.lavadl.Neuron`'s ``model``)."""
    for k in KINDS.values():
        if mode in k.modes:
            return k
    raise UserError(
        f"unknown neuron mode '{mode[:40]}': known modes are "
        + ", ".join(m for k in KINDS.values() for m in k.modes)
    )
