"""The one neuron family of rssnn-lava, CUBA-LIF, in its two forms (numpy only).

``FloatCuba`` is the neuron as training sees it (float leak, threshold and current leak per
channel) and as Lava's floating-point model runs it; ``LoihiCuba`` is the same neuron in Loihi 2
integers (``iDecay``, ``vDecay``, ``vThMant``), as the NetX file stores it, the integer reference
and Lava's fixed-point model run it. ``to_loihi`` and ``to_float`` convert between the two for a
layer whose weights are ``w_int * weight_step`` float units. The arithmetic of both steps and of
every conversion lives in :mod:`rssnn.dynamics`; these classes bundle it per layer.

DLIF (leak and threshold learned, per layer or per channel) and the LIF baseline (fixed leak
0.99, threshold 1) are two parameter sets of this one neuron: ``train.neurons.DLIF.float_form``
gives either as a ``FloatCuba``.

Shapes: parameters are [C] (one value per channel; per-layer parameters are repeated), states
and inputs broadcast against them (the channel axis must line up with the parameters').
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rssnn import dynamics

# The reference code's leak (its --tau 0.99): the LIF baseline's fixed leak, DLIF's initial
# leak, and the common leak of the "fixed" MS-MPPD recursion.
REFERENCE_LEAK = 0.99


@dataclass(frozen=True)
class FloatCuba:
    """Float CUBA-LIF: ``u = current_leak u + x``, ``m = leak h + u``, spike where ``m >= threshold``,
    hard reset ``h = m (1 - s)``. Parameters float64 [C]; the threshold in float current units."""

    leak: np.ndarray
    threshold: np.ndarray
    current_leak: np.ndarray

    def __post_init__(self) -> None:
        for name in ("leak", "threshold", "current_leak"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))

    def step(self, u: Any, h: Any, x: Any, spike: Any = None) -> tuple[Any, Any, Any]:
        """One step before the reset: (u, m, s) from :func:`rssnn.dynamics.float_lif_update`."""
        return dynamics.float_lif_update(u, h, x, self.current_leak, self.leak, self.threshold, spike)

    def to_loihi(self, weight_step: float) -> LoihiCuba:
        """The integer neuron for weights ``w_int * weight_step`` (ValueError if it cannot fit)."""
        p = dynamics.loihi_neuron_params(self.leak, self.threshold, self.current_leak, weight_step)
        return LoihiCuba(p["iDecay"], p["vDecay"], p["vThMant"])


@dataclass(frozen=True)
class LoihiCuba:
    """Loihi 2 CUBA-LIF (:func:`rssnn.dynamics.cuba_step`). Parameters int64 [C]: decays in
    1/4096, the threshold mantissa ``vThMant`` (compared as ``vThMant << 6``)."""

    i_decay: np.ndarray
    v_decay: np.ndarray
    vth_mant: np.ndarray

    def __post_init__(self) -> None:
        for name in ("i_decay", "v_decay", "vth_mant"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))

    @classmethod
    def integrator(cls) -> LoihiCuba:
        """The read-out's neuron: no current state, no leak, a threshold it never reaches in
        T steps, so v accumulates the read-out's input (the logits). Parameters [1]."""
        return cls([dynamics.DECAY_UNITY], [0], [dynamics.VTH_MANT_RANGE[1]])

    def netx(self) -> dict[str, np.ndarray]:
        """The NetX neuron fields ``iDecay``, ``vDecay``, ``vThMant`` (int64 [C])."""
        return {"iDecay": self.i_decay, "vDecay": self.v_decay, "vThMant": self.vth_mant}

    def step(self, u: Any, v: Any, a_in: Any, bias: Any = 0) -> tuple[Any, Any, Any]:
        """One bit-exact step on int64 states: (u, v after reset, spikes)."""
        return dynamics.cuba_step(u, v, a_in, self.i_decay, self.v_decay, self.vth_mant, bias)

    def to_float(self, weight_step: float = 1.0) -> FloatCuba:
        """The float neuron these integers encode; ``weight_step`` 1 keeps the threshold in
        integer current units (Lava's floating-point model, which reads the same file)."""
        return FloatCuba(
            leak=dynamics.v_decay_to_leak(self.v_decay.astype(np.float64)),
            threshold=self.vth_mant * float(weight_step),
            current_leak=dynamics.i_decay_to_current_leak(self.i_decay.astype(np.float64)),
        )
