"""What our NIR graphs promise, shared by the writer (:mod:`.nir_write`) and the reader
(:mod:`.nir_read`): the contract, the default time step, the metadata keys of a folded
BatchNorm, and the ``nir`` package itself (the [nir] extra), imported with a one-line message
when it is missing. docs/nir.md is the long form.
"""

from __future__ import annotations

from rssnn.errors import UserError

# What the written graph promises (also in its metadata, and in docs/nir.md).
CONTRACT = (
    "input: image as float pixels in [0, 1], shape (C, H, W); the same image at each of "
    "num_steps steps; class = argmax of the output summed over the steps; neurons step by "
    "forward Euler with time step dt"
)
DEFAULT_DT = 1e-4  # snnTorch's importer assumes this step; Norse needs from_nir(..., dt=dt)
# A folded BatchNorm's |gamma| and beta, kept in the synapse node's metadata: they bound the
# current (export/lowering.py), so a round trip picks the scale the checkpoint's export picks.
BN_GAMMA, BN_BETA = "rssnn_bn_abs_gamma", "rssnn_bn_beta"


def nir_package():
    """The ``nir`` module, or one line (UserError) naming the extra that installs it."""
    try:
        import nir
    except ImportError as exc:  # the [nir] extra
        raise UserError(
            "NIR needs the 'nir' package: pip install -e '.[nir]' (scripts/setup.sh does)"
        ) from exc
    return nir
