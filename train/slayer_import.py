"""Import lava-dl's SLAYER without its import-time noise and its two unused heavy imports.

lava-dl 0.6.0 prints "No CUDA runtime is found" (torch.utils.cpp_extension, CPU machines) and a
Prophesee toolbox warning (slayer.object_detection) on every import; neither matters here, and
they would bury our one-line error messages.

Every interpreter that trains, evaluates or exports imports SLAYER, and two of its imports are
never used by our models yet cost about 2 s of each start-up on this machine's cores:
``torch.utils.cpp_extension`` (its ``load`` builds SLAYER's CUDA kernels, which a CPU never
calls; importing it imports torch's HIPify tables) and ``slayer.object_detection`` (YOLO
helpers: OpenCV and torchvision). Both are deferred (:class:`_Deferred`): the module object
exists, and its first real use imports the real module. The test suite starts dozens of such
interpreters.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import io
import sys
import types


class _Deferred(types.ModuleType):
    """A module imported at its first attribute access (PEP 562 ``__getattr__``).

    ``__file__``, ``__spec__`` and ``__path__`` are the real module's, found without executing
    it, so that ``inspect`` scans of ``sys.modules`` (torch.jit) do not trigger the import.
    ``eager`` names (e.g. ``load``) are stand-ins bound at ``from M import load`` time that
    import the real module when called.
    """

    def __init__(self, name: str, eager: tuple[str, ...] = ()) -> None:
        super().__init__(name)
        # find_spec(name) would import the parent package; for slayer.object_detection that is
        # SLAYER itself, which must see this module first. Look in the parent's folder instead.
        parent, _, _ = name.rpartition(".")
        where = importlib.util.find_spec(parent).submodule_search_locations
        spec = importlib.machinery.PathFinder.find_spec(name, where)
        self.__spec__ = spec
        self.__file__ = spec.origin if spec else None
        if spec and spec.submodule_search_locations is not None:
            self.__path__ = list(spec.submodule_search_locations)
        for attr in eager:
            setattr(self, attr, self._forwarding(attr))

    def _real(self) -> types.ModuleType:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, real)
        return real

    def _forwarding(self, attr: str):
        def call(*args, **kwargs):
            return getattr(self._real(), attr)(*args, **kwargs)

        call.__name__ = attr
        return call

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)  # dunder probes (copy, pickle, inspect) stay cheap
        return getattr(self._real(), attr)


def _defer(name: str, eager: tuple[str, ...] = ()) -> None:
    """Install the deferred module (unless the real one is loaded) and bind it in its parent
    package when that is loaded (the import system binds only modules it executes)."""
    if name not in sys.modules:
        sys.modules[name] = _Deferred(name, eager)
    parent, _, child = name.rpartition(".")
    if parent in sys.modules and not hasattr(sys.modules[parent], child):
        setattr(sys.modules[parent], child, sys.modules[name])


_defer("torch.utils.cpp_extension", eager=("load",))
_defer("lava.lib.dl.slayer.object_detection")
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    from lava.lib.dl import slayer  # noqa: F401
_defer("lava.lib.dl.slayer.object_detection")  # binds slayer.object_detection

__all__ = ["slayer"]
