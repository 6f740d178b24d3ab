"""lava-dl NetX's block processes and weight-bit rule, without importing torch.

``lava.lib.dl.netx/__init__.py`` imports its HDF5 loader, which imports SLAYER and with it
torch: about 6 s of imports on this machine, for nothing a Lava run uses. The parts a deployment
needs, ``netx.blocks`` (synapse + neuron block processes and their models) and
``netx.utils.optimize_weight_bits``, import only Lava, numpy, h5py and scipy. So the package is
registered without running its ``__init__`` (unless something imported it already), and those
modules load from their files; code that wants the stock loader imports ``netx.hdf5`` by name
(export/verify.py does). Nothing of lava-dl is copied or patched.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

NETX = "lava.lib.dl.netx"


def _netx_package() -> None:
    if NETX in sys.modules:
        return
    dl = importlib.import_module("lava.lib.dl")  # a namespace package
    package = types.ModuleType(NETX)
    package.__path__ = [str(Path(p) / "netx") for p in dl.__path__ if (Path(p) / "netx").is_dir()]
    package.__package__ = NETX
    sys.modules[NETX] = package


_netx_package()
from lava.lib.dl.netx.blocks.process import Conv, Dense  # noqa: E402
from lava.lib.dl.netx.utils import optimize_weight_bits  # noqa: E402

__all__ = ["Conv", "Dense", "optimize_weight_bits"]
