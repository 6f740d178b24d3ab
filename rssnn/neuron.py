"""The CUBA-LIF neuron of rssnn-lava in its two forms (numpy only): the float and the integer form
of the CUBA neuron kind (:mod:`rssnn.neuron_cuba`, one entry of :mod:`rssnn.neuron_kinds`).

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

# NIR states "no decay" as a time constant of this many steps (FloatCuba.to_nir), and a per-step
# decay below NEGLIGIBLE_DECAY (a millionth of the state) is read as none: Loihi's finest is 1/4096.
NO_DECAY_STEPS = 2.0**40
NEGLIGIBLE_DECAY = 1e-6

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

    def to_nir(self, dt: float) -> dict[str, np.ndarray]:
        """This neuron as NIR CubaLIF keyword arguments [C] for forward-Euler steps of ``dt``.

        NIR's CubaLIF, ``tau_syn I' = -I + w_in x`` and ``tau_mem v' = v_leak - v + r I``,
        stepped by forward Euler (as snnTorch and Norse step it) is
        ``I = (1 - dt/tau_syn) I + (dt/tau_syn) w_in x``, ``v = (1 - dt/tau_mem) v +
        (dt/tau_mem) r I``. It is this neuron when ``tau = dt / (1 - leak)`` for both leaks,
        ``w_in = tau_syn / dt`` and ``r = tau_mem / dt`` (then ``v = m`` and ``I = u``);
        ``v_leak = v_reset = 0``. A leak of 1 (no decay: a learned leak at its clamp) becomes
        ``tau = NO_DECAY_STEPS dt``: its decay 2**-40 vanishes in float32 and in Loihi's
        1/4096 steps, while ``tau = inf`` would make Norse compute ``inf * 0``.
        :meth:`from_nir` is the inverse (docs/nir.md).
        """
        cap = NO_DECAY_STEPS * dt
        tau_mem = np.minimum(dynamics.leak_to_time_constant(self.leak, dt), cap)
        tau_syn = np.minimum(dynamics.leak_to_time_constant(self.current_leak, dt), cap)
        zeros = np.zeros_like(self.leak)
        return dict(
            tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, w_in=tau_syn / dt,
            v_threshold=self.threshold.copy(), v_leak=zeros, v_reset=zeros.copy(),
        )  # fmt: skip

    @classmethod
    def from_nir(
        cls, dt: float, tau_mem, r, v_threshold, v_leak=0.0, v_reset=0.0, tau_syn=None, w_in=1.0
    ) -> tuple[FloatCuba, np.ndarray]:
        """A NIR CubaLIF (or LIF: ``tau_syn=None``, no current state) stepped by ``dt`` as this
        neuron plus its input gain: returns (neuron, gain [C]) where the node's input ``x``
        enters as ``gain * x`` (fold it into the incoming weights and bias).

        ``gain = (dt/tau_syn) w_in (dt/tau_mem) r``; 1 for files that :meth:`to_nir` or
        snnTorch wrote. Arguments broadcast to [C]. ValueError (naming the parameter) for what
        this neuron cannot be: a non-zero ``v_leak`` or ``v_reset``, a threshold <= 0, a step
        ``dt`` longer than a time constant, a decay Loihi's 1/4096 steps cannot hold.
        """
        tau_mem, r, v_threshold, v_leak, v_reset, w_in = (
            np.asarray(a, dtype=np.float64) for a in (tau_mem, r, v_threshold, v_leak, v_reset, w_in)
        )
        if np.any(v_leak != 0):
            raise ValueError(f"v_leak must be 0 (got up to {np.abs(v_leak).max():g})")
        if np.any(v_reset != 0):
            raise ValueError(f"v_reset must be 0: Loihi's CUBA neuron resets to 0 (got {v_reset.flat[0]:g})")
        if np.any(~np.isfinite(v_threshold)) or np.any(v_threshold <= 0):
            raise ValueError("v_threshold must be finite and > 0")
        leak = dynamics.time_constant_to_leak(tau_mem, dt)
        current_leak = np.zeros_like(leak) if tau_syn is None else dynamics.time_constant_to_leak(tau_syn, dt)
        for name, value, lo in (("tau_mem", leak, dynamics.LEAK_RANGE[0]), ("tau_syn", current_leak, 0.0)):
            if np.any(np.isnan(value)) or np.any(value < lo) or np.any(value > 1):
                raise ValueError(
                    f"{name} gives a per-step decay 1 - dt/{name} of {np.nanmin(value):g} at dt={dt:g}; "
                    f"it must lie in [{lo:g}, 1] (is dt right? pass --dt)"
                )
            decay = 1.0 - value
            lost = (decay >= NEGLIGIBLE_DECAY) & (np.rint(decay * dynamics.DECAY_UNITY) == 0)
            if lost.any():
                raise ValueError(
                    f"{name}: a per-step decay of {decay[lost].min():.2g} at dt={dt:g} is below "
                    f"Loihi's 1/{dynamics.DECAY_UNITY} step (it would not decay at all)"
                )

        # (dt/tau) * gain, where tau = inf with gain = inf is snnTorch's "no decay" (r = tau/dt).
        def euler_gain(tau, gain):
            tau, gain = np.broadcast_arrays(np.asarray(tau, dtype=np.float64), gain)
            with np.errstate(invalid="ignore"):
                return np.where(np.isposinf(tau) & np.isposinf(gain), 1.0, dt / tau * gain)

        syn_gain = np.ones_like(leak) if tau_syn is None else euler_gain(tau_syn, w_in)
        gain = syn_gain * euler_gain(tau_mem, r)
        if np.any(~np.isfinite(gain)) or np.any(gain <= 0):
            raise ValueError("the input gain (dt/tau_syn) w_in (dt/tau_mem) r must be finite and > 0")
        leak, v_threshold, current_leak, gain = (
            np.atleast_1d(np.array(a)) for a in np.broadcast_arrays(leak, v_threshold, current_leak, gain)
        )
        return cls(leak, v_threshold, current_leak), gain


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
