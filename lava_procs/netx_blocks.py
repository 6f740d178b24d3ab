"""lava-dl NetX's block processes and weight-bit rule, without importing torch.

``lava.lib.dl.netx/__init__.py`` imports its HDF5 loader, which imports SLAYER and with it
torch: about 6 s of imports on this machine, for nothing a Lava run uses. The parts a deployment
needs, ``netx.blocks`` (synapse + neuron block processes and their models) and
``netx.utils.optimize_weight_bits``, import only Lava, numpy, h5py and scipy. So the package is
registered without running its ``__init__`` (unless something imported it already), and those
modules load from their files; code that wants the stock loader imports ``netx.hdf5`` by name
(export/verify.py does). Nothing of lava-dl is copied or patched. Importing this module changes
nothing: :func:`load` registers the package, when the network builder first needs a block.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

NETX = "lava.lib.dl.netx"


def load() -> types.SimpleNamespace:
    """NetX's ``Conv`` and ``Dense`` block processes and ``optimize_weight_bits``, with
    ``lava.lib.dl.netx`` registered as a bare package first (its ``__init__`` imports torch)."""
    if NETX not in sys.modules:
        dl = importlib.import_module("lava.lib.dl")  # a namespace package
        package = types.ModuleType(NETX)
        package.__path__ = [str(Path(p) / "netx") for p in dl.__path__ if (Path(p) / "netx").is_dir()]
        package.__package__ = NETX
        sys.modules[NETX] = package
    blocks = importlib.import_module(f"{NETX}.blocks.process")
    utils = importlib.import_module(f"{NETX}.utils")
    return types.SimpleNamespace(
        Conv=blocks.Conv, Dense=blocks.Dense, optimize_weight_bits=utils.optimize_weight_bits
    )
