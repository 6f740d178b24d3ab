"""Back ends: where a Lava network runs. One class per kind, found through one table.

    backend = backends.choose("auto")        # or "sim", "loihi2"; UserError in one line if not
    run_cfg = backend.run_config()           # a Lava run config for ``proc.run(..., run_cfg=)``
    backend.label()                          # the name a report records, e.g. "Loihi2SimCfg(fixed_pt)"

Every command that runs a network in Lava (``lava_procs/run.py`` and its lava-dl branch
``lavadl_command.py``, ``commands/certify.py``, ``commands/cost.py``, ``export/verify.py``,
:func:`lava_procs.lavadl.run_stock`) takes its run config from here and builds none itself.
Adding a back end: one class below (name, description, ``available()``, ``label()``,
``run_config()``) and one row of ``BACKENDS``; ``--backend`` offers it and its help says what it
is (docs/architecture.md, "Layer types: where a new kind goes").

This module is no process folder (Lava's compiler executes every ``.py`` beside a process
module) and imports neither torch nor a Lava run config until one is built.
"""

from __future__ import annotations

from typing import Any


class CpuSimulation:
    """Lava's CPU simulation in fixed point (``Loihi2SimCfg(select_tag="fixed_pt")``): bit-exact
    to the integer reference. Our exact fast synapse models (:mod:`lava_procs.synapses.models`)
    replace Lava's stock conv and delay-dense models unless ``fast_synapses`` is False."""

    name = "sim"
    description = "CPU simulation in Lava (Loihi2SimCfg, fixed point, bit-exact)"

    def available(self) -> tuple[bool, str]:
        """(True, what it is): the public Lava release always simulates."""
        return True, self.description

    def label(self, fast_synapses: bool = True) -> str:
        return "Loihi2SimCfg(fixed_pt)" if fast_synapses else "Loihi2SimCfg(fixed_pt, stock synapse models)"

    def run_config(self, fast_synapses: bool = True, extra_models: dict | None = None) -> Any:
        """``Loihi2SimCfg`` selecting the fixed-point models; ``extra_models`` (process class ->
        model class) are added to the exceptions, e.g. a model that carries no tag."""
        from lava.magma.core.run_configs import Loihi2SimCfg

        models: dict = {}
        if fast_synapses:
            from .synapses.models import fast_synapse_map

            models.update(fast_synapse_map())
        models.update(extra_models or {})
        return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)


class Loihi2Hardware:
    """A Loihi 2 system through Intel's lava-loihi (``Loihi2HwCfg``).

    Available only where lava-loihi is installed, a board is reachable (SLURM, or an Oheo Gulch
    host named in ``NXSDKHOST``) and every process we build has a Loihi 2 model. The last is not
    true yet: DLIF, the encoder, decoder, monitor and skip delay have CPU models only
    (docs/loihi2.md lists what each needs). Without lava-loihi, Lava 0.10's ``Loihi2HwCfg``
    fails only at compile time (``NameError: CLoihiProcessModel``), so it is never built then.
    """

    name = "loihi2"
    description = "Loihi 2 hardware (Loihi2HwCfg; needs Intel's lava-loihi and a board)"
    # Set to True once every process of lava_procs has an NcProcessModel (docs/loihi2.md).
    process_models_ready = False

    def available(self) -> tuple[bool, str]:
        """(ok, reason): why not, in one line, checked in the order a user would fix it."""
        import os

        try:  # lava-loihi is closed source; the public Lava answers through this helper
            from lava.utils import loihi, slurm

            installed = bool(loihi.is_installed())
        except ImportError:
            installed = False
        if not installed:
            return False, "needs Intel's lava-loihi extension (INRC members only), which is not installed"
        if not (os.environ.get("NXSDKHOST") or slurm.is_available()):  # pragma: no cover - lava-loihi
            return False, "lava-loihi is installed but no Loihi 2 board is reachable (no SLURM, no NXSDKHOST)"
        if not self.process_models_ready:  # pragma: no cover - needs lava-loihi
            return False, "rssnn-lava's processes have CPU models only so far (see docs/loihi2.md)"
        return True, self.description  # pragma: no cover - needs a Loihi 2 system

    def label(self, fast_synapses: bool = True) -> str:
        return "Loihi2HwCfg"  # the fast synapse models are CPU models: no variant on a chip

    def run_config(
        self, fast_synapses: bool = True, extra_models: dict | None = None
    ) -> Any:  # pragma: no cover - needs a Loihi 2 system
        """``Loihi2HwCfg``: neurocore models first; ``fast_synapses`` does not apply (CPU models).
        No ``select_tag``: lava-dl's hardware tutorials select by resource, not by tag."""
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg(exception_proc_model_map=dict(extra_models or {}))


BACKENDS: dict[str, Any] = {b.name: b for b in (CpuSimulation(), Loihi2Hardware())}
AUTO_ORDER = ("loihi2", "sim")  # ``auto``: the first of these that is available
CHOICES = ("auto", *BACKENDS)


def choose(requested: str) -> Any:
    """The back end for ``--backend requested`` (``auto`` or a name of :data:`BACKENDS`).

    Cheap (no run config is built): a command calls it before any expensive work, so an
    unknown name or an unavailable back end stops it in one line (UserError).
    """
    from rssnn.errors import UserError

    if requested == "auto":
        return next(BACKENDS[name] for name in AUTO_ORDER if BACKENDS[name].available()[0])
    if requested not in BACKENDS:
        raise UserError(f"unknown back end '{requested}' (known: {', '.join(CHOICES)})")
    backend = BACKENDS[requested]
    ok, reason = backend.available()
    if not ok:
        raise UserError(f"--backend {requested} is not available here: {reason}; use --backend sim")
    return backend


def help_text() -> str:
    """``--backend``'s help, from the table (so it stays true as kinds are added)."""
    auto = " when available, else ".join(BACKENDS[name].name for name in AUTO_ORDER)
    kinds = "; ".join(f"{b.name}: {b.description}" for b in BACKENDS.values())
    return f"auto: {auto}; {kinds} (default auto)"
