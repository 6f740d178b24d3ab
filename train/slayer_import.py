"""Import lava-dl's SLAYER without its import-time noise.

lava-dl 0.6.0 prints "No CUDA runtime is found" (torch.utils.cpp_extension, CPU machines) and a
Prophesee toolbox warning (slayer.object_detection) on every import; neither matters here, and
they would bury our one-line error messages.
"""

from __future__ import annotations

import contextlib
import io

with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    from lava.lib.dl import slayer  # noqa: F401

__all__ = ["slayer"]
