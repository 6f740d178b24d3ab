"""rssnn-lava: robust, stable spiking neural networks, trained in SLAYER, deployed on Lava.

The package is the numpy-only core (integer dynamics, the lowered network, the NetX file, the
integer reference forward, MPPD, CIFAR reading, the perturbation grammar); ``train``,
``export`` and ``lava_procs`` build on it.

Importing the package imports neither Lava nor torch; ``rssnn.lava_procs`` and the export
verification import Lava's runtime through :func:`rssnn.lava_guard.import_lava_runtime`.
"""

from pathlib import Path as _Path

# ``rssnn.train``, ``rssnn.export``, ``rssnn.lava_procs`` and ``rssnn.commands``: an installed wheel
# holds them inside this package (pyproject's package-dir), so nothing named ``train`` lands in
# site-packages. A
# checkout keeps them as the top-level folders the design names; there they are found here.
_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "lava_procs" / "__init__.py").is_file() and not (_Path(__file__).parent / "train").is_dir():
    __path__.append(str(_checkout))  # noqa: F821  (a package's __path__)

__version__ = "0.1.0"


def _refuse_a_bare_name(name: str) -> None:
    """Refuse ``import lava_procs.run`` (a checkout's folder by its bare name, found through the
    working directory): the rooms' relative imports would then load a second copy of each module,
    and Lava finds no model for a process class of the other copy. ``python -m lava_procs.run``
    stays allowed: runpy imports the package while ``sys.argv[0]`` is ``"-m"`` (the documented
    value while the module is located), and the module itself sets its ``__package__`` to rssnn's."""
    import sys

    if not name.startswith("rssnn.") and getattr(sys, "argv", [])[:1] != ["-m"]:
        raise ImportError(
            f"import rssnn.{name}, not {name}: the checkout's folder is a part of the rssnn package"
        )
