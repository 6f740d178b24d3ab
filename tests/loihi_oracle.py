"""An independent oracle of Loihi 2's CUBA-LIF step, for tests only.

Written from the equations in lava's ``PyLifModelBitAcc`` docstring and Intel's NetX
documentation, in plain Python integers, one neuron at a time, with none of rssnn's code
(``rssnn.dynamics`` uses branch-free int64 shifts; this uses ``//`` on magnitudes), so a test
that compares the two can fail when either is wrong::

    u = wrap24(rtz(u * (4096 - i_decay) / 4096) + (a_in << 6))
    v = clip24(rtz(v * (4096 - v_decay) / 4096) + u + (bias_mant << 6))
    s = v > (vth_mant << 6);  v = 0 where s
"""

from __future__ import annotations

import numpy as np

_HALF = 1 << 23  # 24-bit registers


def _rtz_decay(x: int, decay: int) -> int:
    """x * (4096 - decay) / 4096 rounded toward zero."""
    magnitude = abs(x) * (4096 - decay) // 4096
    return magnitude if x >= 0 else -magnitude


def _wrap24(x: int) -> int:
    """Lava's current register: above 2**23 wraps down, at or below -2**23 wraps up."""
    if x > _HALF:
        return x - 2 * _HALF
    return x + 2 * _HALF if x <= -_HALF else x


def _clip24(x: int) -> int:
    """Lava's voltage register saturates at +-(2**23 - 1)."""
    return max(-_HALF + 1, min(_HALF - 1, x))


def cuba_spikes(a_in, i_decay, v_decay, vth_mant, bias_mant=0, window: int = 0) -> np.ndarray:
    """Spikes [C, T] of C independent neurons for integer input ``a_in`` [C, T].

    Parameters are scalars or [C]; ``window`` > 0 zeroes u and v before steps 0, window,
    2 window, ... (independent images back to back).
    """
    a_in = np.asarray(a_in)
    c, steps = a_in.shape
    params = [np.broadcast_to(np.asarray(p), (c,)) for p in (i_decay, v_decay, vth_mant, bias_mant)]
    out = np.zeros((c, steps), dtype=np.int64)
    for n in range(c):
        di, dv, th, b = (int(p[n]) for p in params)
        u = v = 0
        for t in range(steps):
            if window and t % window == 0:
                u = v = 0
            u = _wrap24(_rtz_decay(u, di) + (int(a_in[n, t]) << 6))
            v = _clip24(_rtz_decay(v, dv) + u + (b << 6))
            if v > (th << 6):
                out[n, t] = 1
                v = 0
    return out
