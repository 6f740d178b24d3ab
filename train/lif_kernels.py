"""Fused CPU kernels for the DLIF time loop (numba, one pass over time per neuron).

Why not plain PyTorch: tensors are [N, C, H, W, T] (time last, SLAYER's layout), so a per-step
loop of torch ops reads strided slices and launches ~4 forward and ~10 backward kernels per step;
measured here that costs more than the convolutions around it (stock SLAYER cuba: 4.7-5.6x an
ANN step). These kernels walk the T contiguous values of each neuron once forward and once
backward, with the gradient formulas written out. ``rssnn.train.neurons`` checks them against an
autograd reference and finite differences (tests/test_neurons.py).

Layout: every array is 2-D ``[M, T]`` with ``M = N * C * S`` neurons (S = spatial size) and the
channel of row ``i`` is ``(i // S) % C``. The input may have one column (a constant input, the
direct-encoded first layer), which the forward reuses every step and the backward sums over time.
"""

from __future__ import annotations

import numba
import numpy as np

# cache=True keys numba's cache on this file's path, size and time, and the cached code records
# this module's import name: edit this file whenever that name changes (it is rssnn.train.*).
_JIT = dict(parallel=True, cache=True, fastmath=False)


@numba.njit(**_JIT)
def dlif_forward(x, num_steps, channels, spatial, leak, threshold, current_leak):
    """Forward DLIF: returns spikes [M, T] and the pre-reset membrane m [M, T] (float32).

    u[t] = current_leak * u[t-1] + x[t];  m[t] = leak * h[t-1] + u[t];
    s[t] = m[t] >= threshold;  h[t] = m[t] * (1 - s[t])   (hard reset to 0).
    """
    m_rows = x.shape[0]
    const_input = x.shape[1] == 1
    spikes = np.empty((m_rows, num_steps), dtype=np.float32)
    membrane = np.empty((m_rows, num_steps), dtype=np.float32)
    for i in numba.prange(m_rows):
        c = (i // spatial) % channels
        lam = leak[c]
        th = threshold[c]
        alpha = current_leak[c]
        u = np.float32(0.0)
        h = np.float32(0.0)
        for t in range(num_steps):
            xt = x[i, 0] if const_input else x[i, t]
            u = alpha * u + xt
            m = lam * h + u
            membrane[i, t] = m
            if m >= th:
                spikes[i, t] = 1.0
                h = np.float32(0.0)
            else:
                spikes[i, t] = 0.0
                h = m
    return spikes, membrane


@numba.njit(**_JIT)
def dlif_backward(
    grad_spikes,
    grad_membrane,
    membrane,
    const_input,
    channels,
    spatial,
    leak,
    threshold,
    current_leak,
    width,
    detach_reset,
    need_current_leak_grad,
):
    """Backward of :func:`dlif_forward` with the triangle surrogate of half-width ``width``.

    ``grad_membrane`` is the gradient of the loss w.r.t. the membrane output, or an empty
    array when the membrane was not used.

    Returns the input gradient ([M, T], or [M, 1] for a constant input) and per-neuron partial
    gradients of leak, threshold and current leak ([M] each; the caller sums them per channel).
    """
    m_rows, num_steps = membrane.shape
    has_gmem = grad_membrane.shape[0] == m_rows
    inv_w2 = 1.0 / (width * width)
    grad_x = np.empty((m_rows, 1 if const_input else num_steps), dtype=np.float32)
    g_leak = np.zeros(m_rows, dtype=np.float32)
    g_th = np.zeros(m_rows, dtype=np.float32)
    g_alpha = np.zeros(m_rows, dtype=np.float32)
    for i in numba.prange(m_rows):
        c = (i // spatial) % channels
        lam = leak[c]
        th = threshold[c]
        alpha = current_leak[c]
        gh = np.float32(0.0)  # dL/dh[t] flowing back from step t+1
        gu_next = np.float32(0.0)  # dL/du[t+1]
        gx_sum = np.float32(0.0)
        acc_leak = np.float32(0.0)
        acc_th = np.float32(0.0)
        acc_alpha = np.float32(0.0)
        for t in range(num_steps - 1, -1, -1):
            m = membrane[i, t]
            fired = m >= th
            dist = abs(m - th)
            sg = (width - dist) * inv_w2 if dist < width else np.float32(0.0)
            # dL/ds[t]: the output gradient, plus the reset path h = m (1 - s) unless detached.
            gs = grad_spikes[i, t]
            if not detach_reset:
                gs -= gh * m
            gm = gs * sg
            if has_gmem:
                gm += grad_membrane[i, t]
            if not fired:
                gm += gh
            acc_th -= gs * sg
            if t > 0:
                m_prev = membrane[i, t - 1]
                h_prev = m_prev if m_prev < th else np.float32(0.0)
                acc_leak += gm * h_prev
            gh = lam * gm
            gu = gm + alpha * gu_next
            gu_next = gu
            if const_input:
                gx_sum += gu
            else:
                grad_x[i, t] = gu
            if need_current_leak_grad and t > 0:
                # u[t-1] = m[t-1] - lam * h[t-2], recovered from the stored membrane.
                h_prev2 = np.float32(0.0)
                if t > 1:
                    m_prev2 = membrane[i, t - 2]
                    h_prev2 = m_prev2 if m_prev2 < th else np.float32(0.0)
                acc_alpha += gu * (membrane[i, t - 1] - lam * h_prev2)
        if const_input:
            grad_x[i, 0] = gx_sum
        g_leak[i] = acc_leak
        g_th[i] = acc_th
        g_alpha[i] = acc_alpha
    return grad_x, g_leak, g_th, g_alpha
