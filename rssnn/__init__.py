"""rssnn-lava: robust, stable spiking neural networks, trained in SLAYER, deployed on Lava.

Lava's runtime calls ``multiprocessing.set_start_method('fork')`` when first imported and
raises if any start method is already fixed, which tqdm's locks and numba's parallel launcher
both do. Every entry point imports this package first, so Lava's setting comes first (0.2 s).
"""

import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401

__version__ = "0.1.0"
