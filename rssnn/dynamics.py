"""Shared arithmetic of rssnn-lava: Loihi 2 integer neuron updates and the MPPD recursion.

The integer functions run on numpy int64 arrays (the integer reference forward, Lava's process
models, export checks). ``float_lif_update`` and the MPPD recursion use operators only (``*``,
``+``, comparisons), so training calls them on torch tensors too. Training, export and
``lava_procs`` import them from here; they are never copied.

Loihi 2 CUBA-LIF, as implemented bit-accurately by ``lava.proc.lif.models.PyLifModelBitAcc``::

    u[t] = wrap24(rtz(u[t-1] * (4096 - iDecay) / 4096) + (a_in[t] << 6))
    v[t] = clip24(rtz(v[t-1] * (4096 - vDecay) / 4096) + u[t] + bias)
    s[t] = v[t] > (vThMant << 6);   v[t] = 0 where s[t]          (hard reset)

with ``rtz`` rounding toward zero. The float model of the same neuron is
``u = (1 - cd) u + x``, ``v = lam v + u`` with ``lam = 1 - vDecay / 4096``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DECAY_BITS = 12
DECAY_UNITY = 1 << DECAY_BITS  # 4096: decays are fractions of this
ACT_SHIFT = 6  # synaptic input is MSB-aligned by 6 bits inside the neuron
VTH_SHIFT = 6  # so is the threshold mantissa
STATE_BITS = 24
STATE_MAX = 1 << (STATE_BITS - 1)  # u wraps, v saturates at +-2**23

# Ranges of the Loihi 2 neuron registers (lava.proc.lif.models precisions).
I_DECAY_RANGE = (0, DECAY_UNITY)  # du = iDecay - 1 is 12 bit, ds_offset = 1 reaches 4096
V_DECAY_RANGE = (0, DECAY_UNITY - 1)  # dv has no offset: 4096 does not fit 12 bits
VTH_MANT_RANGE = (1, (1 << 17) - 1)  # 17-bit unsigned, 0 would fire on any positive v
WEIGHT_MANT_RANGE = (-256, 254)  # 8-bit signed mantissa, even values (7-bit magnitude + sign)
BIAS_MANT_RANGE = (-4096, 4095)  # 13-bit signed
NETX_BIAS_EXP = 6  # lava-dl NetX always sets bias_exp = 6: v += bias_mant << 6

# The float leak lam = 1 - vDecay / 4096 therefore lives in [1/4096, 1].
LEAK_RANGE = (1.0 - V_DECAY_RANGE[1] / DECAY_UNITY, 1.0)
CURRENT_LEAK_RANGE = (0.0, 1.0)


def rtz_shift(p: Any, bits: int) -> Any:
    """Arithmetic ``p / 2**bits`` rounded toward zero, for signed int64 arrays or tensors.

    ``p >> 63`` is -1 for negative ``p`` and 0 otherwise, so negative values get ``2**bits - 1``
    added before the floor shift: the classic branch-free signed division by a power of two.
    """
    return (p + ((p >> 63) & ((1 << bits) - 1))) >> bits


def loihi_decay(state: Any, decay: Any) -> Any:
    """Decay an int64 state by ``decay / 4096`` as Loihi does: ``rtz(state * (4096 - decay) >> 12)``."""
    return rtz_shift(state * (DECAY_UNITY - decay), DECAY_BITS)


def wrap24(x: Any) -> Any:
    """Loihi's 24-bit current register: values past +-2**23 wrap around (lava's PyLifModelBitAcc)."""
    x = x - (x > STATE_MAX) * (2 * STATE_MAX)
    return x + (x <= -STATE_MAX) * (2 * STATE_MAX)


def clip24(x: Any) -> Any:
    """Loihi's voltage register saturates at +-(2**23 - 1)."""
    hi = STATE_MAX - 1
    x = x - (x > hi) * (x - hi)
    return x - (x < -hi) * (x + hi)


def cuba_step(
    u: Any, v: Any, a_in: Any, i_decay: Any, v_decay: Any, vth_mant: Any, bias: Any = 0
) -> tuple[Any, Any, Any]:
    """One bit-exact Loihi 2 CUBA-LIF step on int64 arrays/tensors.

    Args:
        u, v: int64 current and voltage states (any shape, broadcastable with the parameters).
        a_in: int64 synaptic input of this step (sum of integer weights times graded spikes).
        i_decay, v_decay: integer decays in 1/4096 (``iDecay``, ``vDecay`` of the NetX file).
        vth_mant: threshold mantissa (``vThMant``); the compared value is ``vth_mant << 6``.
        bias: already-scaled bias ``bias_mant << bias_exp`` added to v every step.

    Returns:
        (u, v, spikes): new current, new post-reset voltage, boolean spikes.
    """
    u = wrap24(loihi_decay(u, i_decay) + (a_in << ACT_SHIFT))
    v = clip24(loihi_decay(v, v_decay) + u + bias)
    spikes = v > (vth_mant << VTH_SHIFT)
    v = v * (spikes == 0)
    return u, v, spikes


def float_lif_update(u: Any, h: Any, x: Any, current_leak: Any, leak: Any, threshold: Any, spike: Any = None):
    """One step of the float DLIF before its reset (training, and Lava's floating-point model).

    ``u = current_leak u + x``, ``m = leak h + u``, ``s = spike(m - threshold)``; ``h`` is the
    post-reset membrane of the previous step. ``spike`` defaults to the Heaviside ``m >= threshold``
    (training passes its surrogate-gradient function). Returns (u, m, s); the caller resets
    ``h = m (1 - s)``, in whatever way its gradients need.
    """
    u = current_leak * u + x
    m = leak * h + u
    s = (m - threshold >= 0) if spike is None else spike(m - threshold)
    return u, m, s


def leak_to_v_decay(leak: Any) -> Any:
    """Float leak ``lam`` in [1/4096, 1] to Loihi's ``vDecay`` (rounded, caller casts to int)."""
    return (1.0 - leak) * DECAY_UNITY


def v_decay_to_leak(v_decay: Any) -> Any:
    """Loihi's ``vDecay`` to the float leak ``lam = 1 - vDecay / 4096`` (inverse of the above)."""
    return 1.0 - v_decay / DECAY_UNITY


def current_leak_to_i_decay(current_leak: Any) -> Any:
    """Float current leak ``cd`` in [0, 1] to Loihi's ``iDecay`` (rounded, caller casts to int)."""
    return (1.0 - current_leak) * DECAY_UNITY


def i_decay_to_current_leak(i_decay: Any) -> Any:
    """Loihi's ``iDecay`` to the float current leak ``1 - iDecay / 4096`` (inverse of the above)."""
    return 1.0 - i_decay / DECAY_UNITY


def leak_to_time_constant(leak: Any, dt: float) -> Any:
    """A per-step decay factor as the time constant of its forward-Euler step of ``dt``:
    ``leak = 1 - dt / tau``, so ``tau = dt / (1 - leak)`` (inf for ``leak == 1``). NIR's
    CubaLIF states ``tau_mem`` (for ``leak``) and ``tau_syn`` (for ``current_leak``) this way."""
    leak = np.asarray(leak, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(leak < 1.0, dt / np.maximum(1.0 - leak, 0.0), np.inf)


def time_constant_to_leak(tau: Any, dt: float) -> Any:
    """Inverse of :func:`leak_to_time_constant`: ``leak = 1 - dt / tau`` (1 for ``tau = inf``)."""
    return 1.0 - dt / np.asarray(tau, dtype=np.float64)


def loihi_neuron_params(leak, threshold, current_leak, weight_step: float) -> dict[str, np.ndarray]:
    """The float neuron (per channel [C]: leak, threshold, current leak) as Loihi integers.

    For a layer whose weights are ``w_int * weight_step`` float units: ``vDecay`` and ``iDecay``
    from the leaks (12-bit and 13-bit ranges), ``vThMant = round(threshold / weight_step)``.
    Returns int64 arrays ``iDecay``, ``vDecay``, ``vThMant``; a threshold outside 17 bits raises
    ValueError. (The inverse conversions: :func:`v_decay_to_leak`, :func:`i_decay_to_current_leak`,
    :func:`state_to_float`; :class:`rssnn.neuron.LoihiCuba` bundles them per layer.)
    """
    leak, threshold, current_leak = (np.asarray(p, dtype=np.float64) for p in (leak, threshold, current_leak))
    v_decay = np.rint(leak_to_v_decay(leak)).astype(np.int64)
    i_decay = np.rint(current_leak_to_i_decay(current_leak)).astype(np.int64)
    vth = np.rint(threshold / weight_step).astype(np.int64)
    lo, hi = VTH_MANT_RANGE
    if vth.min() < lo or vth.max() > hi:
        raise ValueError(
            f"threshold mantissa {vth.min()}..{vth.max()} outside Loihi's {lo}..{hi} for weight "
            f"step {weight_step:g}; choose another weight exponent"
        )
    return {
        "iDecay": np.clip(i_decay, *I_DECAY_RANGE),
        "vDecay": np.clip(v_decay, *V_DECAY_RANGE),
        "vThMant": vth,
    }


def state_to_float(state: Any, scale: float) -> Any:
    """Integer u or v to float current/membrane units: the lowering makes ``v = 64 k m``."""
    return state / ((1 << VTH_SHIFT) * scale)


def mppd_step(eps: Any, leak: Any, delta_current: Any) -> Any:
    """One step of the reset-free membrane potential perturbation dynamics (Ding et al., 2024).

    ``eps[t] = leak * eps[t-1] + (I_clean[t] - I_pert[t])``; ``delta_current`` is the bracket.
    """
    return leak * eps + delta_current


def l2_gain_bound(leak: float, spectral_norm: float) -> float:
    """Theorem 3.1's finite L2-gain constant ``gamma = sqrt(1 / (1 - leak)) * ||W||_2``.

    Infinite for a non-leaky layer (``leak == 1``). The tight l2->l2 gain of the recursion is
    ``||W|| / (1 - leak)``; the paper's constant is what we log, as the paper states it.
    """
    if leak >= 1.0:
        return float("inf")
    return (1.0 / (1.0 - leak)) ** 0.5 * spectral_norm
